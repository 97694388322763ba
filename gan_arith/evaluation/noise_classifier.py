"""Which noise makes a good face? Label latents by a score, learn good-vs-bad on z, sample predicted-good noise.

The seed's last open question: "Can we classify noise that will yield a 'real' image from the
generator versus noise that will yield a fake image?" Latents are labelled by a score of their
image (the discriminator logit, or the attribute classifier's confidence): the top quantile is
good (1), the bottom quantile bad (0), the middle is left out. A small MLP on z learns the labels;
its held-out ROC AUC says how predictable image quality is from the noise alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_arith.evaluation.classifier_train import Step, apply_gradients, new_train_state, run_steps
from gan_arith.evaluation.sampling import SamplingStats, batched_apply, draw_until, normal_latents
from gan_arith.train.state import Batch, Metrics, TrainState


def label_by_score(scores: np.ndarray, quantile: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Indices and labels of the extremes: top `quantile` of scores -> 1 (good), bottom -> 0 (bad).

    Returns (indices, labels int8) with the bad rows first; the middle 1 − 2·quantile is dropped
    so the classifier learns a clear contrast rather than noise around the median.
    """
    scores = np.asarray(scores)
    if scores.ndim != 1 or scores.size < 2:
        raise ValueError(f"scores must be a 1-D array of at least 2 values, got shape {scores.shape}")
    if not 0.0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile}")
    per_side = max(1, int(round(quantile * scores.size)))
    order = np.argsort(scores, kind="stable")
    indices = np.concatenate([order[:per_side], order[-per_side:]])
    labels = np.concatenate([np.zeros(per_side, np.int8), np.ones(per_side, np.int8)])
    return indices, labels


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact ROC AUC: P(score of a positive > score of a negative) + ½ P(tie) (Mann–Whitney U with mid-ranks)."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be 1-D of the same length")
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"roc_auc needs both classes, got {positives} positives and {negatives} negatives")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # Tied scores share the mean of the ranks they span.
    group_start = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]
    group_id = np.cumsum(group_start) - 1
    starts = np.flatnonzero(group_start)
    ends = np.r_[starts[1:], scores.size]
    mid_ranks = (starts + ends + 1) / 2.0  # ranks are 1-based: group spans ranks starts+1 .. ends
    ranks = np.empty(scores.size)
    ranks[order] = mid_ranks[group_id]
    u_statistic = ranks[labels].sum() - positives * (positives + 1) / 2.0
    return float(u_statistic / (positives * negatives))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates [T] as the threshold falls through the distinct scores, from (0, 0) to (1, 1)."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, dtype=np.float64)
    roc_auc(labels, scores)  # the same input checks
    order = np.argsort(-scores, kind="stable")
    labels, scores = labels[order], scores[order]
    # Only the last of a run of tied scores is a threshold: ties move together.
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    true_positives = np.cumsum(labels)[last_of_tie]
    false_positives = np.cumsum(~labels)[last_of_tie]
    return np.r_[0.0, false_positives / false_positives[-1]], np.r_[0.0, true_positives / true_positives[-1]]


class NoiseMLP(nn.Module):
    """Latents [B, L] -> good-noise logit [B]: a small ReLU MLP."""

    hidden: tuple[int, ...] = (256, 256)

    @nn.compact
    def __call__(self, latents: jax.Array) -> jax.Array:
        x = latents
        for features in self.hidden:
            x = nn.relu(nn.Dense(features)(x))
        return nn.Dense(1)(x)[:, 0]


def make_noise_train_step(model: NoiseMLP, optimizer: optax.GradientTransformation) -> Step:
    """Jitted `(state, {"latent": [B, L], "label": int8 [B]}, rng) -> (state, metrics)`, state donated (rng unused)."""

    def step(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
        del rng
        targets = batch["label"].astype(jnp.float32)

        def loss_fn(params: Any) -> tuple[jax.Array, jax.Array]:
            logits = model.apply({"params": params}, batch["latent"])
            return optax.sigmoid_binary_cross_entropy(logits, targets).mean(), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        accuracy = jnp.mean((logits > 0) == (targets > 0.5))
        return apply_gradients(state, grads, optimizer), {"loss": loss, "accuracy": accuracy}

    return jax.jit(step, donate_argnums=0)


def fit_noise_classifier(
    latents: np.ndarray,
    labels: np.ndarray,
    *,
    model: NoiseMLP = NoiseMLP(),
    steps: int = 2000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    seed: int = 0,
    log_every: int | None = None,
) -> TrainState:
    """Train `model` to predict `labels` (0/1) from `latents` [N, L] on random batches."""
    latents, labels = np.asarray(latents, np.float32), np.asarray(labels)
    if latents.ndim != 2 or labels.shape != (latents.shape[0],):
        raise ValueError(f"latents must be [N, L] and labels [N], got {latents.shape} and {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (bad) or 1 (good)")
    init_key, step_key = jax.random.split(jax.random.PRNGKey(seed))
    optimizer = optax.adam(learning_rate)
    state = new_train_state(model, init_key, jnp.zeros((1, latents.shape[1]), jnp.float32), optimizer)
    order = np.random.default_rng(seed)
    batch_size = min(batch_size, latents.shape[0])

    def next_batch(_: int) -> Batch:
        rows = order.choice(latents.shape[0], batch_size, replace=False)
        return {"latent": latents[rows], "label": labels[rows].astype(np.int8)}

    step = make_noise_train_step(model, optimizer)
    return run_steps(state, step, next_batch, steps=steps, key=step_key, log_every=log_every, name="noise")


def noise_probabilities(model: NoiseMLP, params: Any, latents: Any, batch_size: int = 4096) -> np.ndarray:
    """P(good | z) [N] for latents [N, L], batched."""
    return batched_apply(_predictor(model, params), latents, batch_size)


def _predictor(model: NoiseMLP, params: Any) -> Callable[[jax.Array], jax.Array]:
    return jax.jit(lambda z: jax.nn.sigmoid(model.apply({"params": params}, z)))


def sample_good_noise(
    model: NoiseMLP,
    params: Any,
    latent_dim: int,
    num_samples: int,
    key: jax.Array,
    *,
    threshold: float = 0.5,
    batch_size: int = 4096,
    max_batches: int = 1000,
) -> tuple[np.ndarray, SamplingStats]:
    """Draw z ~ N(0, I) and keep those with P(good | z) > `threshold` until `num_samples` are kept."""
    predict = _predictor(model, params)

    def propose(batch_key: jax.Array) -> tuple[jax.Array, jax.Array]:
        latents = normal_latents(batch_key, batch_size, latent_dim)
        return latents, predict(latents) > threshold

    latents, stats = draw_until(propose, num_samples, key, max_batches)
    return latents, SamplingStats(stats.proposed, stats.accepted, {"threshold": threshold})


@dataclasses.dataclass(frozen=True)
class NoiseClassifierEvaluation:
    """A noise classifier trained on part of a labelled latent pool and tested on the rest."""

    params: Any
    held_out_labels: np.ndarray  # int8 [H], 1 = good
    held_out_probabilities: np.ndarray  # P(good | z) [H]
    train_accuracy: float

    @property
    def held_out_auc(self) -> float:
        return roc_auc(self.held_out_labels, self.held_out_probabilities)

    @property
    def held_out_accuracy(self) -> float:
        return float(np.mean((self.held_out_probabilities > 0.5) == (self.held_out_labels == 1)))


def evaluate_noise_classifier(
    latents: np.ndarray,
    scores: np.ndarray,
    *,
    quantile: float = 0.25,
    held_out_fraction: float = 0.2,
    model: NoiseMLP = NoiseMLP(),
    steps: int = 2000,
    batch_size: int = 256,
    seed: int = 0,
) -> NoiseClassifierEvaluation:
    """Label the pool's extremes by `scores` (`label_by_score`), train on a random part, test on the rest.

    The held-out latents were never seen in training, so their AUC measures how well image quality
    can be predicted from fresh noise, which is what `sample_good_noise` relies on.
    """
    latents = np.asarray(latents, np.float32)
    if latents.ndim != 2 or np.shape(scores) != (latents.shape[0],):
        raise ValueError(f"latents must be [N, L] and scores [N], got {latents.shape} and {np.shape(scores)}")
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
    indices, labels = label_by_score(scores, quantile)
    order = np.random.default_rng(seed).permutation(len(indices))
    held_out = max(2, int(round(held_out_fraction * len(indices))))
    test, train = order[:held_out], order[held_out:]
    if len(train) < 2:
        raise ValueError(f"{len(indices)} labelled latents leave nothing to train on; draw more latents")
    state = fit_noise_classifier(
        latents[indices[train]], labels[train], model=model, steps=steps, batch_size=batch_size, seed=seed
    )
    train_probabilities = noise_probabilities(model, state.params, latents[indices[train]])
    return NoiseClassifierEvaluation(
        params=jax.device_get(state.params),
        held_out_labels=labels[test],
        held_out_probabilities=noise_probabilities(model, state.params, latents[indices[test]]),
        train_accuracy=float(np.mean((train_probabilities > 0.5) == (labels[train] == 1))),
    )
