"""Fréchet distance, KID and feature extractors on toy Gaussians and tiny networks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from gan_arith.evaluation.formatting import format_kid, significant
from gan_arith.evaluation.frechet import (
    FeatureExtractor,
    GeneratorFrechet,
    compare_sample_quality,
    compare_with_noise,
    format_noise,
    format_quality,
    noise_floor,
    versus_noise,
    _unbiased_mmd2,
    distribution_distances,
    frechet_distance,
    frechet_distance_from_statistics,
    kernel_inception_distance,
)
from gan_arith.models.layers import to_model_range


def _random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    factor = rng.normal(size=(dim, dim))
    return factor @ factor.T / dim + 0.1 * np.eye(dim)


def test_frechet_of_a_set_with_itself_is_zero_and_a_shift_adds_its_squared_length():
    features = np.random.default_rng(0).normal(size=(500, 8))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    # Same covariance, mean moved by the all-ones vector: exactly ||1||^2 = 8.
    assert frechet_distance(features, features + 1.0) == pytest.approx(8.0, rel=1e-9)


def test_frechet_from_statistics_matches_the_closed_form():
    rng = np.random.default_rng(1)
    mean_a, mean_b = rng.normal(size=4), rng.normal(size=4)
    # Diagonal covariances: sum((m_a - m_b)^2) + sum((sqrt(s_a) - sqrt(s_b))^2).
    var_a, var_b = np.array([1.0, 2.0, 0.5, 3.0]), np.array([4.0, 1.0, 0.5, 0.25])
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    got = frechet_distance_from_statistics(mean_a, np.diag(var_a), mean_b, np.diag(var_b))
    assert got == pytest.approx(expected, rel=1e-12)
    # Non-commuting full covariances: the textbook formula with scipy's sqrtm.
    cov_a, cov_b = _random_covariance(rng, 4), _random_covariance(rng, 4)
    reference = (
        np.sum((mean_a - mean_b) ** 2)
        + np.trace(cov_a + cov_b - 2 * np.real(scipy.linalg.sqrtm(cov_a @ cov_b)))
    )
    assert frechet_distance_from_statistics(mean_a, cov_a, mean_b, cov_b) == pytest.approx(reference, rel=1e-9)


def test_frechet_of_samples_approaches_the_gaussians_distance():
    rng = np.random.default_rng(2)
    cov_a, cov_b = _random_covariance(rng, 3), _random_covariance(rng, 3)
    mean_a, mean_b = np.zeros(3), np.array([1.0, -0.5, 0.25])
    exact = frechet_distance_from_statistics(mean_a, cov_a, mean_b, cov_b)
    samples_a = rng.multivariate_normal(mean_a, cov_a, size=40_000)
    samples_b = rng.multivariate_normal(mean_b, cov_b, size=40_000)
    assert frechet_distance(samples_a, samples_b) == pytest.approx(exact, rel=0.05)


def test_frechet_rejects_mismatched_or_bad_features():
    with pytest.raises(ValueError, match="feature dims differ"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="features_b must be"):
        frechet_distance(np.zeros((5, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))


def test_unbiased_mmd_matches_the_u_statistic_written_out():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    kernel = lambda a, b: (a @ b / 2 + 1) ** 3  # noqa: E731
    within = sum(kernel(x[i], x[j]) + kernel(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    across = sum(kernel(x[i], y[j]) for i in range(5) for j in range(5)) / 25
    assert _unbiased_mmd2(x, y) == pytest.approx(within - 2 * across, rel=1e-12)


def test_kid_is_unbiased_for_identical_distributions_and_positive_for_different_ones():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4))
    same = kernel_inception_distance(x, y, subsets=100, subset_size=100, rng=0)
    # A biased (V-statistic) estimate would sit near +0.2 here; the unbiased one straddles 0.
    assert abs(same.mean) < 0.03
    single = [kernel_inception_distance(x, y, subsets=1, subset_size=50, rng=seed).mean for seed in range(20)]
    assert min(single) < 0.0 < max(single)
    shifted = kernel_inception_distance(x, y + 1.0, subsets=100, subset_size=100, rng=0)
    assert shifted.mean > 10 * shifted.std / np.sqrt(100) and shifted.mean > 1.0
    assert distribution_distances(x, y + 1.0, kid_subsets=100, kid_subset_size=100)["kid_mean"] == shifted.mean


def test_kid_spread_is_unavailable_when_every_subset_is_the_same():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + 0.5
    whole = kernel_inception_distance(x, y, subsets=20, subset_size=30, rng=0)
    # Every subset is both whole sets: the value stands, its spread is unknown (not 0).
    assert whole.std is None and whole.mean == pytest.approx(_unbiased_mmd2(x, y), rel=1e-9)
    assert kernel_inception_distance(x, y, subsets=20, rng=0).std is None  # the default size, capped at 30
    assert kernel_inception_distance(x, y, subsets=1, subset_size=10, rng=0).std is None  # one subset
    assert kernel_inception_distance(x, y, subsets=20, subset_size=10, rng=0).std > 0
    assert kernel_inception_distance(x, np.vstack([y, y + 0.1]), subsets=20, subset_size=30, rng=0).std > 0
    distances = distribution_distances(x, y, kid_subsets=20)
    assert distances["kid_std"] is None and distances["kid_subset_size"] == 30
    assert distribution_distances(x, y, kid_subsets=20, kid_subset_size=10)["kid_subset_size"] == 10


def test_kid_rejects_a_subset_larger_than_a_set():
    with pytest.raises(ValueError, match="subset_size must be in"):
        kernel_inception_distance(np.zeros((10, 2)), np.zeros((20, 2)), subset_size=11)


def _toy_features(images: jax.Array) -> jax.Array:
    """A stand-in feature network: per-channel means and a fixed projection of the pixels."""
    projection = jnp.linspace(-1.0, 1.0, images.shape[1] * images.shape[2] * 3).reshape(-1, 1)
    return jnp.concatenate([images.mean(axis=(1, 2)), images.reshape(images.shape[0], -1) @ projection], axis=1)


@pytest.mark.parametrize("batch_dim", ["b", 4])
def test_exported_feature_network_is_loaded_resized_and_batched(tmp_path, batch_dim):
    spec_shape = jax.export.symbolic_shape("b, 8, 8, 3") if batch_dim == "b" else (batch_dim, 8, 8, 3)
    exported = jax.export.export(jax.jit(_toy_features))(jax.ShapeDtypeStruct(spec_shape, jnp.float32))
    path = tmp_path / "net.jaxexport"
    path.write_bytes(exported.serialize())
    extractor = FeatureExtractor.from_exported(path, batch_size=3)
    assert extractor.batch_size == (3 if batch_dim == "b" else 4)
    images = np.random.default_rng(5).integers(0, 256, size=(7, 16, 16, 3), dtype=np.uint8)
    expected = _toy_features(jax.image.resize(to_model_range(images), (7, 8, 8, 3), method="bilinear"))
    np.testing.assert_allclose(extractor(images), expected, rtol=1e-5, atol=1e-5)
    # Fewer images than a fixed-batch network takes are padded and trimmed.
    np.testing.assert_allclose(extractor(images[:2]), expected[:2], rtol=1e-5, atol=1e-5)


def test_exported_feature_network_must_take_images(tmp_path):
    exported = jax.export.export(jax.jit(lambda x: x * 2))(jax.ShapeDtypeStruct((2, 5), jnp.float32))
    path = tmp_path / "bad.jaxexport"
    path.write_bytes(exported.serialize())
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        FeatureExtractor.from_exported(path)
    with pytest.raises(FileNotFoundError):
        FeatureExtractor.from_exported(tmp_path / "missing.jaxexport")


def test_features_of_generated_images_match_features_of_the_images():
    extractor = FeatureExtractor("toy", _toy_features, batch_size=4)
    def generate(z):
        return jnp.tanh(jnp.broadcast_to(z[:, :1, None, None], (z.shape[0], 8, 8, 3)) * jnp.arange(3))

    latents = np.random.default_rng(6).normal(size=(9, 2)).astype(np.float32)
    np.testing.assert_allclose(extractor.of_generated(generate, latents), extractor(generate(latents)), rtol=1e-6)


def _mean_color_features() -> FeatureExtractor:
    return FeatureExtractor("mean-rgb", lambda images: images.mean(axis=(1, 2)), batch_size=16)


def test_compare_sample_quality_ranks_a_shifted_set_worse_and_adds_confidence():
    rng = np.random.default_rng(0)
    real = rng.uniform(-0.5, 0.5, size=(60, 4, 4, 3)).astype(np.float32)
    close = rng.uniform(-0.5, 0.5, size=(40, 4, 4, 3)).astype(np.float32)
    shifted = close + 0.4
    features = _mean_color_features()
    logits = lambda images: np.asarray(images).mean(axis=(1, 2))  # noqa: E731  three "attributes"
    quality = compare_sample_quality({"close": close, "shifted": shifted}, features(real), features, logits,
                                     kid_subsets=5, kid_subset_size=1000)
    assert quality["close"]["frechet"] < 0.05 < quality["shifted"]["frechet"]
    assert quality["close"]["kid_mean"] < quality["shifted"]["kid_mean"]
    assert 0.5 < quality["close"]["confidence"] < quality["shifted"]["confidence"] < 1
    lines = format_quality(quality).splitlines()
    assert len(lines) == 2 and lines[1].startswith("shifted: Fréchet") and "confidence" in lines[1]
    with pytest.raises(ValueError, match="image_sets is empty"):
        compare_sample_quality({}, features(real), features)


def test_compare_sample_quality_reports_no_kid_spread_when_sets_are_smaller_than_the_subset_size():
    rng = np.random.default_rng(1)
    real = rng.uniform(-0.5, 0.5, size=(40, 4, 4, 3)).astype(np.float32)
    sample = rng.uniform(-0.5, 0.5, size=(40, 4, 4, 3)).astype(np.float32) + 0.1
    features = _mean_color_features()
    quality = compare_sample_quality({"sample": sample}, features(real), features, kid_subsets=5, kid_subset_size=500)
    assert quality["sample"]["kid_std"] is None and quality["sample"]["kid_subset_size"] == 40
    assert quality["sample"]["kid_mean"] > 0
    assert format_quality(quality).endswith(f"KID {significant(quality['sample']['kid_mean'])} ± n/a")
    subsampled = compare_sample_quality({"sample": sample}, features(real), features, kid_subsets=5, kid_subset_size=20)
    kid = subsampled["sample"]
    assert f"KID {format_kid(kid['kid_mean'], kid['kid_std'])}" in format_quality(subsampled) and "n/a" not in format_quality(subsampled)


UNFILTERED = ["unfiltered", "unfiltered_2", "unfiltered_3"]


def _quality(frechets, kids):
    return {name: {"frechet": f, "kid_mean": k} for name, f, k in zip(
        UNFILTERED + ["better", "same", "worse"], frechets, kids)}


def test_filtered_samplers_are_judged_against_the_spread_of_unfiltered_sets():
    # Unfiltered Fréchet 5, 6, 7: mean 6, std (ddof 1) 1; one more set minus their mean spreads by
    # sd = 1·√(1 + 1/3) = 1.155. KID 0.25 thrice: no spread at all.
    quality = _quality([5.0, 6.0, 7.0, 3.5, 4.2, 8.5], [0.25, 0.25, 0.25, 0.125, 0.25, 0.5])
    floor = noise_floor(quality, UNFILTERED)
    sd = math.sqrt(4 / 3)
    assert floor["frechet"].pop("values") == [5.0, 6.0, 7.0]
    assert floor["frechet"] == pytest.approx({"mean": 6.0, "std": 1.0, "difference_std": sd})
    comparison = compare_with_noise(quality, UNFILTERED, ["better", "same", "worse"])
    verdicts = {name: v["frechet"] for name, v in comparison["samplers"].items()}
    assert verdicts["better"] == pytest.approx({"value": 3.5, "difference": -2.5, "in_spreads": -2.5 / sd, "verdict": "better"})
    # 1.8 std (1.56 sd) below the mean: lower, but within what another unfiltered set could score.
    assert verdicts["same"]["verdict"] == "within noise" and verdicts["same"]["in_spreads"] == pytest.approx(-1.8 / sd)
    assert verdicts["worse"]["verdict"] == "worse"
    assert comparison["samplers"]["worse"]["kid_mean"]["verdict"] == "no noise estimate"
    assert comparison["samplers"]["worse"]["kid_mean"]["in_spreads"] is None
    lenient = compare_with_noise(quality, UNFILTERED, ["better"], spreads=3.0)
    assert lenient["samplers"]["better"]["frechet"]["verdict"] == "within noise"
    lines = format_noise(comparison).splitlines()
    assert lines[0] == ("noise floor, 3 unfiltered sets (mean ± std): Fréchet 6.000 ± 1.000, KID 0.2500 ± 0.0000; "
                        "differences below in sd = std·√(1 + 1/3)")
    assert lines[2] == ("  same vs unfiltered: Fréchet 4.200 (-1.800, -1.6 sd): within noise; "
                        "KID 0.2500 (+0.0000, n/a sd): no noise estimate")
    with pytest.raises(ValueError, match="at least 2 unfiltered sample sets"):
        noise_floor(quality, ["unfiltered"])
    assert versus_noise(6.5, {"mean": 6.0, "difference_std": 0.2}, spreads=2.0)["verdict"] == "worse"


def test_generator_frechet_equals_the_distance_of_generated_features():
    features = _mean_color_features()
    generate = lambda params, z: jnp.tanh(params["scale"] * z[:, None, None, :3] * jnp.ones((1, 4, 4, 1)))  # noqa: E731
    real = np.asarray(generate({"scale": 0.5}, jax.random.normal(jax.random.PRNGKey(0), (80, 5))))
    metric = GeneratorFrechet.from_real_images(features, generate, real, jax.random.PRNGKey(1), 50, 5)
    for scale in (0.5, 2.0):
        expected = frechet_distance(np.asarray(generate({"scale": scale}, metric.latents)).mean(axis=(1, 2)), features(real))
        assert metric({"scale": scale}) == pytest.approx(expected, rel=1e-5)
    assert metric({"scale": 0.5}) < metric({"scale": 2.0})
