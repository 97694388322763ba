"""Drawing and scoring latent samples: batched evaluation, top-fraction filtering, discriminator rejection sampling.

The seed asks whether the discriminator can tell good generated faces from bad ones. Two filters
answer with samples: keep the top fraction of D(G(z)) scores, or discriminator rejection sampling
(DRS, Azadi et al. 2019, "Discriminator Rejection Sampling", ICLR), which accepts each sample with
a probability derived from its logit so that the accepted samples follow a corrected distribution.
`draw_until` is the one accept-until-N loop; DRS and the good-noise sampler both use it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


ScoreFn = Callable[[jax.Array], jax.Array]  # latents [B, L] -> scores [B]
ImageScoreFn = Callable[[jax.Array], jax.Array]  # images [B, H, W, 3] in [-1, 1] -> scores [B]


def _pad_rows(array: Any, rows: int) -> Any:
    """Append `rows` copies of the last row (numpy stays numpy, jax stays on device)."""
    xp = jnp if isinstance(array, jax.Array) else np
    return xp.concatenate([array, xp.repeat(array[-1:], rows, axis=0)])


def batched_apply(fn: Callable[[Any], Any], inputs: Any, batch_size: int) -> Any:
    """Apply `fn` (jitted by the caller) to `inputs` in batches along axis 0; outputs concatenated as numpy.

    `inputs` is an array (numpy, memory-mapped or jax) or a pytree of them with equal leading
    axes. The last short batch is padded to `batch_size` by repeating its last row, so `fn`
    compiles once; padded rows are dropped. Outputs may be any pytree of arrays with a batch axis.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = {leaf.shape[0] for leaf in jax.tree.leaves(inputs)}
    if len(lengths) != 1:
        raise ValueError(f"batched_apply: inputs must all have the same number of rows, got {sorted(lengths)}")
    total = lengths.pop()
    if total == 0:
        raise ValueError("batched_apply: inputs is empty (0 rows)")
    outputs = []
    for start in range(0, total, batch_size):
        chunk = jax.tree.map(lambda leaf: leaf[start : start + batch_size], inputs)
        valid = min(batch_size, total - start)
        if valid < batch_size and total > batch_size:
            chunk = jax.tree.map(lambda leaf: _pad_rows(leaf, batch_size - valid), chunk)
        # Keep device results until the end so batches dispatch back to back.
        outputs.append((fn(chunk), valid))
    return jax.tree.map(
        lambda *leaves: np.concatenate([np.asarray(leaf)[:valid] for leaf, (_, valid) in zip(leaves, outputs)]),
        *[out for out, _ in outputs],
    )


def through_generator(generate: Callable[[jax.Array], jax.Array], score_images: ImageScoreFn) -> ScoreFn:
    """The jitted latent score z -> score_images(generate(z)), e.g. the discriminator logit D(G(z))."""
    return jax.jit(lambda latents: score_images(generate(latents)))


def classifier_confidence(logits: Any) -> jax.Array:
    """Per-image confidence [B] of attribute logits [B, A]: the mean over attributes of max(p, 1 − p).

    max(p, 1 − p) = sigmoid(|logit|): 0.5 when the classifier cannot decide, 1 when it is certain.
    A face the classifier was trained on is labelled decisively; a garbled one is not.
    """
    logits = jnp.asarray(logits, jnp.float32)
    if logits.ndim != 2:
        raise ValueError(f"logits must be [B, A], got shape {logits.shape}")
    return jnp.mean(jax.nn.sigmoid(jnp.abs(logits)), axis=1)


def image_scorer(
    name: str,
    discriminate: ImageScoreFn | None = None,
    classifier_logits: Callable[[jax.Array], jax.Array] | None = None,
) -> ImageScoreFn:
    """The image score called `name`: "discriminator" (its logit) or "confidence" (`classifier_confidence`)."""
    if name == "discriminator" and discriminate is not None:
        return discriminate
    if name == "confidence" and classifier_logits is not None:
        return lambda images: classifier_confidence(classifier_logits(images))
    raise ValueError(
        f"image score {name!r} is unknown or lacks its model: 'discriminator' needs discriminate, "
        f"'confidence' needs classifier_logits"
    )


def top_fraction(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the highest `fraction` of `scores` (at least one), best first."""
    scores = np.asarray(scores)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array, got shape {scores.shape}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    keep = max(1, int(round(fraction * scores.size)))
    return np.argsort(-scores, kind="stable")[:keep]


@dataclasses.dataclass(frozen=True)
class SamplingStats:
    """What a filtered sampler did: how many latents it proposed and accepted, plus method settings."""

    proposed: int
    accepted: int
    settings: dict[str, float]

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0

    def as_dict(self) -> dict[str, float]:
        counts = {"proposed": self.proposed, "accepted": self.accepted, "acceptance_rate": self.acceptance_rate}
        return {**counts, **self.settings}


def draw_until(
    propose: Callable[[jax.Array], tuple[np.ndarray, np.ndarray]],
    num_samples: int,
    key: jax.Array,
    max_batches: int,
) -> tuple[np.ndarray, SamplingStats]:
    """Call `propose(key) -> (latents [B, L], accept [B] bool)` with fresh keys until `num_samples` are accepted.

    Returns the first `num_samples` accepted latents and stats (all proposed and accepted latents
    count, including the surplus of the last batch, so the rate is unbiased). Raises a
    RuntimeError after `max_batches` batches so a filter that (almost) never accepts cannot hang.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    accepted: list[np.ndarray] = []
    count = proposed = 0
    for batch in range(max_batches):
        latents, accept = propose(jax.random.fold_in(key, batch))
        latents, accept = np.asarray(latents), np.asarray(accept, dtype=bool)
        proposed += accept.size
        accepted.append(latents[accept])
        count += int(accept.sum())
        if count >= num_samples:
            return np.concatenate(accepted)[:num_samples], SamplingStats(proposed, count, {})
    raise RuntimeError(
        f"draw_until: only {count} of {num_samples} samples accepted after max_batches={max_batches} "
        f"({proposed} proposed, acceptance {count / proposed:.2%}); raise max_batches or loosen the filter"
    )


def normal_latents(key: jax.Array, count: int, latent_dim: int) -> jax.Array:
    """The prior every model here samples from: z ~ N(0, I), float32 [count, latent_dim]."""
    return jax.random.normal(key, (count, latent_dim), jnp.float32)


def more_unfiltered_sets(
    generate: Callable[[jax.Array], jax.Array], latent_dim: int, count: int, seed: int, num_sets: int
) -> dict[str, np.ndarray]:
    """Images of `num_sets` − 1 further independent sets of `count` prior samples, "unfiltered_2", ...:
    with an experiment's own "unfiltered" set, the sets whose spread is the noise floor a filtered
    sampler must beat (`frechet.compare_with_noise`). Their keys come from `seed` alone."""
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), 1), num_sets - 1)
    return {f"unfiltered_{i}": batched_apply(generate, normal_latents(key, count, latent_dim), 256)
            for i, key in enumerate(keys, start=2)}


def top_fraction_sample(
    score_fn: ScoreFn,
    latent_dim: int,
    num_samples: int,
    fraction: float,
    key: jax.Array,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray, SamplingStats]:
    """Draw ceil(num_samples / fraction) latents, score them, keep the best `num_samples`.

    `score_fn` (jitted by the caller) maps latents to scores, e.g. z -> D(G(z)). Returns the kept
    latents (best first), their scores and stats.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    proposed = math.ceil(num_samples / fraction)
    latents = np.asarray(normal_latents(key, proposed, latent_dim))
    scores = batched_apply(score_fn, latents, batch_size)
    keep = np.argsort(-scores, kind="stable")[:num_samples]
    return latents[keep], scores[keep], SamplingStats(proposed, num_samples, {"fraction": fraction})


def drs_base_score(logits: np.ndarray, max_logit: float, epsilon: float = 1e-6) -> np.ndarray:
    """F(x) + γ = D̃(x) − log(1 − exp(D̃(x) − D*_M − ε)), in float64 (Azadi et al. 2019, eq. 8).

    Logits above `max_logit` are treated as equal to it (the sampler raises D*_M as it sees them).
    """
    logits = np.asarray(logits, dtype=np.float64)
    gap = np.minimum(logits - max_logit, 0.0) - epsilon
    return logits - np.log(-np.expm1(gap))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def drs_gamma(base_scores: np.ndarray, target_acceptance: float) -> float:
    """γ such that the mean acceptance probability sigmoid(F₀ − γ) over `base_scores` is `target_acceptance`.

    The mean is strictly decreasing in γ, so bisection finds it to float precision.
    """
    if not 0.0 < target_acceptance < 1.0:
        raise ValueError(f"target_acceptance must be in (0, 1), got {target_acceptance}")
    base_scores = np.asarray(base_scores, dtype=np.float64)
    span = 50.0 + np.abs(np.log(target_acceptance / (1 - target_acceptance)))
    low, high = base_scores.min() - span, base_scores.max() + span
    for _ in range(200):
        mid = 0.5 * (low + high)
        if _sigmoid(base_scores - mid).mean() > target_acceptance:
            low = mid
        else:
            high = mid
    return float(0.5 * (low + high))


def rejection_sample(
    score_fn: ScoreFn,
    latent_dim: int,
    num_samples: int,
    key: jax.Array,
    *,
    target_acceptance: float = 0.5,
    burn_in: int = 2048,
    batch_size: int = 256,
    epsilon: float = 1e-6,
    max_batches: int = 1000,
) -> tuple[np.ndarray, SamplingStats]:
    """Discriminator rejection sampling: accept z with probability sigmoid(F(z)), F as in Azadi et al. 2019.

    `score_fn` maps latents to discriminator logits D̃(G(z)). A burn-in set of `burn_in` latents
    estimates D*_M (the max logit) and fixes γ so that the mean acceptance probability on it equals
    `target_acceptance` (the paper picks γ as a percentile of F; solving for the rate is the same
    knob, expressed in what the user wants). D*_M is raised whenever a larger logit shows up.
    Returns `num_samples` accepted latents [N, L] and stats (acceptance rate, D*_M, γ).
    """
    burn_key, sample_key = jax.random.split(key)
    burn_logits = batched_apply(score_fn, normal_latents(burn_key, burn_in, latent_dim), batch_size)
    max_logit = float(np.max(burn_logits))
    gamma = drs_gamma(drs_base_score(burn_logits, max_logit, epsilon), target_acceptance)

    def propose(batch_key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
        nonlocal max_logit
        latent_key, accept_key = jax.random.split(batch_key)
        latents = normal_latents(latent_key, batch_size, latent_dim)
        logits = np.asarray(score_fn(latents), dtype=np.float64)
        max_logit = max(max_logit, float(logits.max()))
        probability = _sigmoid(drs_base_score(logits, max_logit, epsilon) - gamma)
        uniform = np.asarray(jax.random.uniform(accept_key, (batch_size,)), dtype=np.float64)
        return latents, uniform < probability

    latents, stats = draw_until(propose, num_samples, sample_key, max_batches)
    settings = {"target_acceptance": target_acceptance, "gamma": gamma, "max_logit": max_logit, "burn_in": burn_in}
    return latents, dataclasses.replace(stats, settings=settings)
