"""Fréchet distance and kernel inception distance (KID) between two sets of image features.

By default the features come from the project's own attribute classifier (no Inception weights
can be downloaded here), so the numbers rank checkpoints and filters of this project but are NOT
comparable to published FID/KID. A user may supply an Inception (or any) feature network as a
serialized `jax.export` artifact; see `FeatureExtractor.from_exported`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gan_arith.evaluation.formatting import format_kid
from gan_arith.evaluation.sampling import batched_apply, classifier_confidence, normal_latents
from gan_arith.models.layers import as_model_range

ImageFeatureFn = Callable[[jax.Array], jax.Array]  # float images [B, H, W, 3] in [-1, 1] -> features [B, F]
ParamGenerateFn = Callable[[Any, jax.Array], jax.Array]  # (params, latents [B, L]) -> images in [-1, 1]


def _check_features(features: np.ndarray, name: str, min_rows: int = 2) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < min_rows:
        raise ValueError(f"{name} must be [N, F] with N >= {min_rows}, got shape {features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return features


def _check_pair(features_a: np.ndarray, features_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features_a = _check_features(features_a, "features_a")
    features_b = _check_features(features_b, "features_b")
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"feature dims differ: features_a has {features_a.shape[1]}, features_b has {features_b.shape[1]}"
        )
    return features_a, features_b


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and unbiased covariance [F, F] of features [N, F], in float64."""
    features = _check_features(features, "features")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (tiny negative eigenvalues clipped to 0)."""
    values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_from_statistics(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½) for two Gaussians.

    tr((Σa Σb)^½) is computed as tr((Σa^½ Σb Σa^½)^½): the two matrices are similar, and the second
    is symmetric PSD, so eigh gives real eigenvalues and no complex parts or sqrtm failures arise.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    dim = mean_a.shape[0]
    for name, value, shape in (("mean_b", mean_b, (dim,)), ("cov_a", cov_a, (dim, dim)), ("cov_b", cov_b, (dim, dim))):
        if value.shape != shape:
            raise ValueError(f"{name} must have shape {shape} to match mean_a, got {value.shape}")
    root_a = _psd_sqrt(cov_a)
    cross = root_a @ cov_b @ root_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (cross + cross.T)), 0.0, None)).sum()
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt
    return float(max(distance, 0.0))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [Na, F] and [Nb, F] (float64)."""
    features_a, features_b = _check_pair(features_a, features_b)
    return frechet_distance_from_statistics(*feature_statistics(features_a), *feature_statistics(features_b))


class KIDResult(NamedTuple):
    """KID: the mean over subsets and its std over subsets (of `subset_size` rows each); std is None
    when it estimates nothing (one subset, or subsets that are each the whole of both sets)."""

    mean: float
    std: float | None
    subset_size: int


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    m = x.shape[0]
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.mean())


def kernel_inception_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    subsets: int = 100,
    subset_size: int | None = None,
    rng: np.random.Generator | int = 0,
) -> KIDResult:
    """KID (Bińkowski et al. 2018): unbiased MMD² with k(x, y) = (x·y / F + 1)³, mean and std over subsets.

    Each subset draws `subset_size` rows of each set without replacement (default min(1000, Na, Nb)).
    Unbiased means identical distributions give a mean near 0 that can be slightly negative.
    When `subset_size` is the size of both sets every subset is both whole sets (std 0, though the
    estimate is not exact), so the std is None: no estimate of the spread. When it is the size of
    one set only, the std reflects the subsampling of the other set alone.
    """
    features_a, features_b = _check_pair(features_a, features_b)
    largest = min(features_a.shape[0], features_b.shape[0])
    subset_size = min(1000, largest) if subset_size is None else subset_size
    if not 2 <= subset_size <= largest:
        raise ValueError(f"subset_size must be in [2, {largest}] (the smaller set's size), got {subset_size}")
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    rng = np.random.default_rng(rng)
    values = [
        _unbiased_mmd2(
            features_a[rng.choice(features_a.shape[0], subset_size, replace=False)],
            features_b[rng.choice(features_b.shape[0], subset_size, replace=False)],
        )
        for _ in range(subsets)
    ]
    identical = subsets < 2 or subset_size == features_a.shape[0] == features_b.shape[0]
    return KIDResult(float(np.mean(values)), None if identical else float(np.std(values)), subset_size)


def distribution_distances(
    real_features: np.ndarray,
    generated_features: np.ndarray,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int | None = None,
    seed: int = 0,
) -> dict[str, float | None]:
    """{"frechet", "kid_mean", "kid_std", "kid_subset_size"} between real and generated features: what
    reports log. "kid_std" is None where the subsets cannot estimate a spread (see
    `kernel_inception_distance`): printed as "± n/a", never as ± 0."""
    kid = kernel_inception_distance(real_features, generated_features, kid_subsets, kid_subset_size, seed)
    return {"frechet": frechet_distance(real_features, generated_features), "kid_mean": kid.mean, "kid_std": kid.std,
            "kid_subset_size": kid.subset_size}


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
    """A feature network for the Fréchet distance: `fn` maps float images [B, H, W, 3] in [-1, 1] to [B, F].

    `fn` must be jittable. Calling the extractor runs it batched and jitted on uint8 [0, 255] or
    float [-1, 1] images (numpy, memory-mapped or jax) and returns numpy float32 [N, F];
    `of_generated` extracts features of G(z) batch by batch without keeping the images.
    """

    name: str
    fn: ImageFeatureFn
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        # Built once so repeated calls reuse the compiled function.
        object.__setattr__(self, "_extract", jax.jit(lambda images: self.fn(as_model_range(images))))

    def __call__(self, images: Any) -> np.ndarray:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [N, H, W, 3], got shape {tuple(images.shape)}")
        return batched_apply(self._extract, images, self.batch_size)

    def of_generated(self, generate: Callable[[jax.Array], jax.Array], latents: Any) -> np.ndarray:
        """Features of generate(latents) (generate: latents [B, L] -> images in [-1, 1]), batched."""
        return batched_apply(jax.jit(lambda z: self.fn(generate(z))), latents, self.batch_size)

    @classmethod
    def from_classifier(cls, model: Any, params: Any, batch_size: int = 256) -> "FeatureExtractor":
        """Penultimate features of the project's `AttributeClassifier` (`model`, its params)."""
        return cls(
            f"classifier-{model.width}",
            lambda images: model.apply({"params": params}, images, method=model.features),
            batch_size,
        )

    @classmethod
    def from_exported(cls, path: str | os.PathLike, batch_size: int = 64) -> "FeatureExtractor":
        """Load a user-supplied feature network saved with `jax.export` (e.g. an Inception-v3 pool3 port).

        The file holds `jax.export.export(jax.jit(f))(spec).serialize()` bytes where `f` takes one
        float array NHWC [B, H, W, 3] with values in [-1, 1] (any further normalisation baked into
        `f`) and returns features [B, F] (or [B, 1, 1, F]). H and W must be static; images of another
        size are resized bilinearly to them. B may be symbolic (`jax.export.symbolic_shape("b, 299,
        299, 3")`) or fixed, in which case it becomes the batch size. Nothing is ever downloaded.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"feature network file not found: {path}")
        with open(path, "rb") as handle:
            exported = jax.export.deserialize(bytearray(handle.read()))
        if len(exported.in_avals) != 1:
            raise ValueError(f"{path}: the exported function must take one input, it takes {len(exported.in_avals)}")
        spec = exported.in_avals[0]
        shape = tuple(spec.shape)
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]) or shape[3] != 3:
            raise ValueError(f"{path}: the exported input must be [B, H, W, 3] with static H, W; it is {shape}")
        fixed_batch, height, width, _ = shape
        if isinstance(fixed_batch, int):
            batch_size = fixed_batch

        def features(images: jax.Array) -> jax.Array:
            count = images.shape[0]
            if images.shape[1:3] != (height, width):
                images = jax.image.resize(images, (count, height, width, 3), method="bilinear")
            if isinstance(fixed_batch, int) and count < fixed_batch:  # fewer images than the network's batch
                images = jnp.pad(images, ((0, fixed_batch - count), (0, 0), (0, 0), (0, 0)))
            out = exported.call(images.astype(spec.dtype))
            return out.reshape(out.shape[0], -1)[:count].astype(jnp.float32)

        return cls(f"exported:{os.path.basename(path)}", features, batch_size)


def sample_quality(
    images: Any,
    real_features: np.ndarray,
    features: FeatureExtractor,
    logits_fn: Callable[[Any], np.ndarray] | None = None,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int | None = None,
    seed: int = 0,
) -> dict[str, float | None]:
    """How close `images` [N, H, W, 3] come to the real faces behind `real_features` [M, F].

    {"frechet", "kid_mean", "kid_std", "kid_subset_size"} in the feature space of `features`, plus "confidence" (the
    mean `classifier_confidence`, 0.5 undecided .. 1 certain) when `logits_fn` maps images to
    attribute logits [N, A]. Compare sets of equal size: the Fréchet estimate is biased upwards
    by an amount that shrinks with the number of samples.
    """
    report = distribution_distances(
        real_features, features(images), kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed
    )
    if logits_fn is not None:
        report["confidence"] = float(np.mean(classifier_confidence(logits_fn(images))))
    return report


def compare_sample_quality(
    image_sets: Mapping[str, Any],
    real_features: np.ndarray,
    features: FeatureExtractor,
    logits_fn: Callable[[Any], np.ndarray] | None = None,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """`sample_quality` of each named image set against the same real features.

    The KID subset size is capped at the smallest set (and the real set), so every set is
    measured with the same estimator; where the cap makes each subset the whole of both sets, the
    KID std is None (no estimate of its spread), not 0.
    """
    if not image_sets:
        raise ValueError("image_sets is empty: there is nothing to compare")
    subset = min(kid_subset_size, len(real_features), *(len(images) for images in image_sets.values()))
    return {
        name: sample_quality(images, real_features, features, logits_fn, kid_subsets=kid_subsets,
                             kid_subset_size=subset, seed=seed)
        for name, images in image_sets.items()
    }


def format_quality(quality: Mapping[str, Mapping[str, float]]) -> str:
    """One line per set of `compare_sample_quality`'s result, for the experiments' printed summary."""
    width = max(len(name) for name in quality)
    return "\n".join(
        f"{name:>{width}}: Fréchet {q['frechet']:.3f}  KID {format_kid(q['kid_mean'], q['kid_std'])}"
        + (f"  confidence {q['confidence']:.3f}" if "confidence" in q else "")
        for name, q in quality.items()
    )


NOISE_METRICS = ("frechet", "kid_mean")  # both: lower is closer to the real faces
_METRIC_LABELS = {"frechet": ("Fréchet", 3), "kid_mean": ("KID", 4)}  # printed name, decimals


def noise_floor(
    quality: Mapping[str, Mapping[str, float]], unfiltered: Sequence[str], metrics: Sequence[str] = NOISE_METRICS
) -> dict[str, dict[str, Any]]:
    """{metric: {"mean", "std", "difference_std", "values"}} over independent unfiltered sample sets
    (`unfiltered`, names in `quality`, at least 2): how much a distance moves between sets of the same
    sampler. std is the sample std (ddof 1; with few sets itself a rough estimate); difference_std =
    std·√(1 + 1/R), the spread of one more set's distance minus the mean of these R, which is what a
    filtered set of the same size is compared by."""
    if len(unfiltered) < 2:
        raise ValueError(f"a noise floor needs at least 2 unfiltered sample sets, got {len(unfiltered)}")
    floor = {}
    for metric in metrics:
        values = [float(quality[name][metric]) for name in unfiltered]
        std = float(np.std(values, ddof=1))
        floor[metric] = {"mean": float(np.mean(values)), "std": std,
                         "difference_std": std * math.sqrt(1 + 1 / len(values)), "values": values}
    return floor


def versus_noise(value: float, floor: Mapping[str, Any], spreads: float = 2.0) -> dict[str, Any]:
    """A filtered sampler's distance against the unfiltered sets' noise floor (lower is better).

    {"value", "difference" (value − unfiltered mean), "in_spreads" (difference / the floor's
    difference_std, None when it is 0), "verdict"}: "better" or "worse" when |difference| >= spreads ×
    difference_std, else "within noise" ("no noise estimate" when it is 0).
    """
    difference, std = float(value) - floor["mean"], floor["difference_std"]
    if not std > 0:
        return {"value": float(value), "difference": difference, "in_spreads": None, "verdict": "no noise estimate"}
    verdict = "within noise" if abs(difference) < spreads * std else ("better" if difference < 0 else "worse")
    return {"value": float(value), "difference": difference, "in_spreads": difference / std, "verdict": verdict}


def compare_with_noise(
    quality: Mapping[str, Mapping[str, float]],
    unfiltered: Sequence[str],
    filtered: Sequence[str],
    spreads: float = 2.0,
    metrics: Sequence[str] = NOISE_METRICS,
) -> dict[str, Any]:
    """The noise floor of the `unfiltered` sets and each `filtered` sampler's verdict against it, JSON-ready:
    {"unfiltered_sets", "spreads", "rule", "floor": {metric: ...}, "samplers": {name: {metric: versus_noise}}}."""
    floor = noise_floor(quality, unfiltered, metrics)
    return {
        "unfiltered_sets": list(unfiltered),
        "spreads": spreads,
        "rule": f"better/worse when |value - unfiltered mean| >= {spreads:g} x std * sqrt(1 + 1/R) (std over the "
                "R unfiltered sets: the spread of one more set's difference from their mean), else within noise",
        "floor": floor,
        "samplers": {
            name: {metric: versus_noise(quality[name][metric], floor[metric], spreads) for metric in metrics}
            for name in filtered
        },
    }


def format_noise(comparison: Mapping[str, Any]) -> str:
    """Printed lines for `compare_with_noise`: the noise floor, then each filtered sampler's verdicts."""
    floor = comparison["floor"]
    sets = len(comparison["unfiltered_sets"])
    lines = [f"noise floor, {sets} unfiltered sets (mean ± std): " + ", ".join(
        f"{_METRIC_LABELS[m][0]} {f['mean']:.{_METRIC_LABELS[m][1]}f} ± {f['std']:.{_METRIC_LABELS[m][1]}f}"
        for m, f in floor.items()) + f"; differences below in sd = std·√(1 + 1/{sets})"]
    width = max([len(name) for name in comparison["samplers"]] + [0])
    for name, verdicts in comparison["samplers"].items():
        parts = []
        for metric, v in verdicts.items():
            title, digits = _METRIC_LABELS[metric]
            spread = "n/a" if v["in_spreads"] is None else f"{v['in_spreads']:+.1f}"
            parts.append(f"{title} {v['value']:.{digits}f} ({v['difference']:+.{digits}f}, {spread} sd): {v['verdict']}")
        lines.append(f"{name:>{width}} vs unfiltered: " + "; ".join(parts))
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class GeneratorFrechet:
    """The Fréchet distance of a generator's samples from fixed real faces: the training loop's "frechet".

    The latents and the real statistics are fixed once, so successive checkpoints differ only by
    their generator parameters; `generate(params, z)` is compiled together with the features once.
    """

    features: FeatureExtractor
    generate: ParamGenerateFn
    real_mean: np.ndarray
    real_cov: np.ndarray
    latents: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "_features_of", jax.jit(lambda params, z: self.features.fn(self.generate(params, z))))

    @classmethod
    def from_real_images(
        cls, features: FeatureExtractor, generate: ParamGenerateFn, real_images: Any, key: jax.Array,
        num_samples: int, latent_dim: int,
    ) -> "GeneratorFrechet":
        """Real statistics from `real_images` (uint8 or [-1, 1]); `num_samples` latents z ~ N(0, I) from `key`."""
        if num_samples < 2:
            raise ValueError(f"num_samples must be >= 2 for a covariance, got {num_samples}")
        mean, cov = feature_statistics(features(real_images))
        return cls(features, generate, mean, cov, np.asarray(normal_latents(key, num_samples, latent_dim)))

    def __call__(self, params: Any) -> float:
        generated = batched_apply(lambda z: self._features_of(params, z), self.latents, self.features.batch_size)
        return frechet_distance_from_statistics(*feature_statistics(generated), self.real_mean, self.real_cov)


def load_feature_extractor(
    network_path: str | os.PathLike | None,
    classifier: tuple[Any, Any] | None = None,
    batch_size: int = 256,
) -> FeatureExtractor:
    """The user's exported network when `network_path` is given, else the classifier (model, params)."""
    if network_path:
        return FeatureExtractor.from_exported(network_path, batch_size)
    if classifier is None:
        raise ValueError("load_feature_extractor needs network_path or classifier=(model, params)")
    return FeatureExtractor.from_classifier(*classifier, batch_size=batch_size)
