"""Training and evaluating the attribute classifier: a pure jitted step, batched prediction, per-attribute accuracy.

Labels arrive as the store keeps them, int8 in {-1, +1}; the loss is binary cross-entropy per
attribute with targets (label + 1) / 2. States are the training loop's `TrainState` (step, params,
opt_state), so the one checkpoint path (gan_arith.train.checkpoint) saves them; the optimiser lives
in the step, as in gan_arith.train.steps. `new_train_state`, `apply_gradients` and `run_steps` also
serve the encoder (inversion.py) and the noise classifier. The classifier functions take any flax
module called as `AttributeClassifier` is (images in [-1, 1] [B, H, W, 3] -> logits [B, A], with a
`num_attributes` field): the project classifier and the judge (evaluation/judge_network.py) alike.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_arith.evaluation.sampling import batched_apply
from gan_arith.models.layers import as_model_range, to_model_range
from gan_arith.progress import Progress
from gan_arith.train.state import Batch, Metrics, TrainState

Step = Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]


def new_train_state(
    model: nn.Module, key: jax.Array, example: jax.Array, optimizer: optax.GradientTransformation
) -> TrainState:
    """Initialise `model` on `example` inputs and `optimizer` on its params, in one jitted call.

    Jitted as a whole because op-by-op initialisation compiles every initialiser and optimiser
    zero-fill separately. Traced with `jax_threefry_partitionable` off: with it on, XLA:CPU
    compiles many initialisers in one module super-linearly slowly (minutes instead of seconds for
    nine truncated normals); the values differ from the partitionable stream but are just as seeded.
    """

    def init(key: jax.Array) -> TrainState:
        params = model.init(key, example)["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))

    with jax.threefry_partitionable(False):
        return jax.jit(init)(key)


def apply_gradients(state: TrainState, grads: Any, optimizer: optax.GradientTransformation) -> TrainState:
    """One optimiser update of `state.params`, counting the step."""
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates), opt_state=opt_state)


def create_classifier_state(
    model: nn.Module, key: jax.Array, image_size: int, optimizer: optax.GradientTransformation
) -> TrainState:
    """Initialise `model` for square images of `image_size` and `optimizer` on its params."""
    return new_train_state(model, key, jnp.zeros((1, image_size, image_size, 3), jnp.float32), optimizer)


def classifier_loss(logits: jax.Array, attributes: jax.Array) -> jax.Array:
    """Mean binary cross-entropy over batch and attributes; `attributes` int8 in {-1, +1}."""
    targets = (attributes.astype(jnp.float32) + 1.0) / 2.0
    return optax.sigmoid_binary_cross_entropy(logits, targets).mean()


def make_classifier_train_step(
    model: nn.Module, optimizer: optax.GradientTransformation, horizontal_flip: bool = True
) -> Step:
    """A jitted `(state, batch, rng) -> (state, metrics)` with the state donated.

    `batch` = {"image": uint8 [B, H, W, 3], "attributes": int8 [B, A]}. With `horizontal_flip`, each
    image is mirrored with probability 1/2 (`rng` picks which): face attributes do not change under
    a mirror, so this doubles the data for free. Metrics: loss and mean accuracy over attributes.
    """

    def step(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
        images = to_model_range(batch["image"])
        if horizontal_flip:
            flip = jax.random.bernoulli(rng, 0.5, (images.shape[0], 1, 1, 1))
            images = jnp.where(flip, images[:, :, ::-1], images)

        def loss_fn(params: Any) -> tuple[jax.Array, jax.Array]:
            logits = model.apply({"params": params}, images)
            return classifier_loss(logits, batch["attributes"]), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        accuracy = jnp.mean((logits > 0) == (batch["attributes"] > 0))
        return apply_gradients(state, grads, optimizer), {"loss": loss, "accuracy": accuracy}

    return jax.jit(step, donate_argnums=0)


def predict_logits(model: nn.Module, params: Any, images: Any, batch_size: int = 256) -> np.ndarray:
    """Logits [N, A] for uint8 [0, 255] or float [-1, 1] images [N, H, W, 3], batched and jitted."""
    logits = _logits_fn(model)
    return batched_apply(lambda chunk: logits(params, chunk), images, batch_size)


def predict_probabilities(model: nn.Module, params: Any, images: Any, batch_size: int = 256) -> np.ndarray:
    """sigmoid(logits) [N, A]: the per-attribute probabilities the success rate thresholds."""
    logits = predict_logits(model, params, images, batch_size)
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid without overflow warnings


@functools.lru_cache(maxsize=16)
def _logits_fn(model: nn.Module) -> Callable[[Any, jax.Array], jax.Array]:
    """The jitted logits(params, images) of `model`: compiled once per model and batch shape, however often
    a scorer is asked (a closure over the parameters would compile on every call)."""
    return jax.jit(lambda params, images: model.apply({"params": params}, as_model_range(images)))


def accuracy_per_attribute(logits: np.ndarray, attributes: np.ndarray) -> np.ndarray:
    """Fraction of rows whose sign(logit) matches the ±1 label, per attribute: float64 [A]."""
    logits, attributes = np.asarray(logits), np.asarray(attributes)
    if logits.shape != attributes.shape or logits.ndim != 2:
        raise ValueError(f"logits {logits.shape} and attributes {attributes.shape} must both be [N, A]")
    return np.mean((logits > 0) == (attributes > 0), axis=0)


def run_steps(
    state: TrainState,
    step: Step,
    next_batch: Callable[[int], Batch],
    *,
    steps: int,
    key: jax.Array,
    log_every: int | None = None,
    name: str = "train",
) -> TrainState:
    """Run `state, metrics = step(state, next_batch(i), fold_in(key, i))` for i < steps.

    The small synchronous loop of the evaluation models (classifier, encoder, noise classifier).
    With `log_every`, a progress line (examples/s, ETA) shows the metrics of every `log_every`-th
    step; reading metrics only then keeps the device from waiting on the host.
    """
    progress = Progress(steps, label=name, unit="examples") if log_every else None
    for index in range(steps):
        batch = next_batch(index)
        state, metrics = step(state, batch, jax.random.fold_in(key, index))
        if progress is not None:
            shown = (index + 1) % log_every == 0 or index + 1 == steps
            extra = {k: float(v) for k, v in metrics.items()} if shown else None
            progress.update(1, len(next(iter(batch.values()))), extra)
    if progress is not None:
        progress.close()
    return state


def fit_classifier(
    model: nn.Module,
    images: np.ndarray,
    attributes: np.ndarray,
    *,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    horizontal_flip: bool = True,
    seed: int = 0,
    log_every: int | None = None,
    name: str = "classifier",
) -> TrainState:
    """Train `model` on uint8 images [N, S, S, 3] and int8 ±1 attributes [N, A] for `steps` random batches.

    Small and synchronous: meant for tests and for the experiments' classifier and judge (a few
    thousand steps). `name` labels the progress lines.
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [N, S, S, 3], got {images.dtype} {images.shape}")
    if attributes.shape != (images.shape[0], model.num_attributes):
        raise ValueError(
            f"attributes must be [N={images.shape[0]}, A={model.num_attributes}], got {attributes.shape}"
        )
    init_key, step_key = jax.random.split(jax.random.PRNGKey(seed))
    # Cosine decay: a short run still ends with small, settling steps.
    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, max(steps, 1), alpha=0.05))
    state = create_classifier_state(model, init_key, images.shape[1], optimizer)
    order = np.random.default_rng(seed)
    batch_size = min(batch_size, images.shape[0])

    def next_batch(_: int) -> Batch:
        rows = np.sort(order.choice(images.shape[0], batch_size, replace=False))
        return {"image": images[rows], "attributes": attributes[rows]}

    step = make_classifier_train_step(model, optimizer, horizontal_flip)
    return run_steps(state, step, next_batch, steps=steps, key=step_key, log_every=log_every, name=name)
