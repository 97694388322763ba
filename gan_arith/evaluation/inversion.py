"""GAN inversion (image -> latent): optimisation from several restarts, an encoder, and both combined.

The seed asks whether the generator can recreate dataset images by searching for their latent
vectors, and whether an encoder could predict those vectors. `invert` answers both: it optimises
z for pixel MSE (+ an optional feature loss, e.g. the attribute classifier's features) + a Gaussian
prior penalty, from random restarts and, when given an encoder, from the encoder's guess.
`LatentEncoder` is trained to map G(z) back to z and can be fine-tuned on real faces through the
fixed generator. PSNR and SSIM measure the reconstructions.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_arith.evaluation.classifier_train import Step, apply_gradients, new_train_state, run_steps
from gan_arith.evaluation.sampling import as_model_range, batched_apply, normal_latents
from gan_arith.models.classifier import ConvTrunk
from gan_arith.train.steps import Batch, Metrics, TrainState

GenerateFn = Callable[[jax.Array], jax.Array]  # latents [B, L] -> images [B, H, W, 3] in [-1, 1]
FeatureFn = Callable[[jax.Array], jax.Array]  # images in [-1, 1] -> features [B, F]


@dataclasses.dataclass(frozen=True)
class ReconstructionLoss:
    """Per-image objective: pixel MSE + feature_weight · feature MSE + prior_weight · ½‖z‖²/L.

    The prior term is the N(0, I) negative log-likelihood per latent dimension: it keeps z where the
    generator was trained, instead of in far-out regions that match pixels with unnatural latents.
    """

    feature_fn: FeatureFn | None = None
    feature_weight: float = 0.0
    prior_weight: float = 1e-3

    def __post_init__(self) -> None:
        if self.feature_weight and self.feature_fn is None:
            raise ValueError("feature_weight > 0 needs a feature_fn")

    def target_features(self, targets: jax.Array) -> jax.Array | None:
        return self.feature_fn(targets) if self.feature_fn is not None and self.feature_weight else None

    def __call__(
        self, latents: jax.Array, images: jax.Array, targets: jax.Array, target_features: jax.Array | None
    ) -> jax.Array:
        """Per-image loss [B] of latents [B, L] whose generated `images` should match `targets`."""
        loss = jnp.mean((images - targets) ** 2, axis=(1, 2, 3))
        if target_features is not None:
            loss = loss + self.feature_weight * jnp.mean((self.feature_fn(images) - target_features) ** 2, axis=1)
        return loss + self.prior_weight * 0.5 * jnp.mean(latents**2, axis=1)


@dataclasses.dataclass(frozen=True)
class InversionResult:
    """Latents [N, L], their reconstructions G(z) [N, H, W, 3] in [-1, 1], the final per-image objective [N]."""

    latents: np.ndarray
    reconstructions: np.ndarray
    loss: np.ndarray
    seconds_per_image: float  # execution only, measured after compiling
    compile_seconds: float


def invert(
    targets: Any,
    generate: GenerateFn,
    latent_dim: int,
    key: jax.Array,
    *,
    encode: Callable[[jax.Array], jax.Array] | None = None,
    steps: int = 300,
    restarts: int = 4,
    learning_rate: float = 0.05,
    loss: ReconstructionLoss = ReconstructionLoss(),
    batch_size: int = 64,
) -> InversionResult:
    """Find z with G(z) ≈ target for each target image (uint8 [0, 255] or float [-1, 1], [N, H, W, 3]).

    Each image gets `restarts` starting points optimised together by Adam (cosine-decayed learning
    rate) for `steps` steps in one jitted `lax.scan`; the restart with the lowest final objective is
    kept. The starts are N(0, I) draws, except that restart 0 is `encode(image)` when an encoder is
    given; `steps=0` with an encoder is encoder-only inversion. `generate`, `encode` and
    `loss.feature_fn` must be jittable functions of arrays (params closed over).
    """
    if steps < 0 or restarts < 1:
        raise ValueError(f"steps must be >= 0 and restarts >= 1, got steps={steps}, restarts={restarts}")
    if steps == 0 and encode is None:
        raise ValueError("invert with steps=0 needs an encoder (nothing would move the random starts)")
    if targets.ndim != 4 or targets.shape[-1] != 3:
        raise ValueError(f"targets must be [N, H, W, 3], got shape {tuple(targets.shape)}")
    count = targets.shape[0]
    batch_size = min(batch_size, count)
    starts = np.asarray(normal_latents(key, count * restarts, latent_dim)).reshape(count, restarts, latent_dim)
    optimiser = optax.adam(optax.cosine_decay_schedule(learning_rate, max(steps, 1), alpha=0.01))

    def invert_batch(images: jax.Array, start: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        images = as_model_range(images)
        if encode is not None:
            start = start.at[:, 0].set(encode(images).astype(start.dtype))
        batch = images.shape[0]
        # Restarts ride along the batch axis: the objective is a sum of per-image terms and Adam is
        # per-coordinate, so the B·R problems stay independent.
        latents = start.transpose(1, 0, 2).reshape(restarts * batch, latent_dim)
        tiled = jnp.tile(images, (restarts, 1, 1, 1))
        target_features = loss.target_features(images)
        tiled_features = None if target_features is None else jnp.tile(target_features, (restarts, 1))

        def per_image(z: jax.Array) -> jax.Array:
            return loss(z, generate(z), tiled, tiled_features)

        def update(carry: tuple[jax.Array, Any], _: None) -> tuple[tuple[jax.Array, Any], None]:
            z, opt_state = carry
            grads = jax.grad(lambda z: per_image(z).sum())(z)
            updates, opt_state = optimiser.update(grads, opt_state)
            return (optax.apply_updates(z, updates), opt_state), None

        (latents, _), _ = jax.lax.scan(update, (latents, optimiser.init(latents)), None, length=steps)
        final = per_image(latents).reshape(restarts, batch)
        best = jnp.argmin(final, axis=0)
        latents = latents.reshape(restarts, batch, latent_dim)[best, jnp.arange(batch)]
        return latents, generate(latents), final[best, jnp.arange(batch)]

    begin = time.perf_counter()
    compiled = (
        jax.jit(invert_batch)
        .lower(
            jax.ShapeDtypeStruct((batch_size,) + tuple(targets.shape[1:]), targets.dtype),
            jax.ShapeDtypeStruct((batch_size, restarts, latent_dim), jnp.float32),
        )
        .compile()
    )
    compile_seconds = time.perf_counter() - begin
    begin = time.perf_counter()
    latents, reconstructions, final = batched_apply(lambda chunk: compiled(*chunk), (targets, starts), batch_size)
    elapsed = time.perf_counter() - begin
    return InversionResult(latents, reconstructions, final, elapsed / count, compile_seconds)


@functools.partial(jax.jit, static_argnames="data_range")
def psnr(images: jax.Array, references: jax.Array, data_range: float = 2.0) -> jax.Array:
    """Per-image peak signal-to-noise ratio in dB; `data_range` 2 for images in [-1, 1]."""
    mse = jnp.mean((jnp.asarray(images, jnp.float32) - jnp.asarray(references, jnp.float32)) ** 2, axis=(1, 2, 3))
    return 10.0 * jnp.log10(data_range**2 / mse)


def _gaussian_filter_valid(images: jax.Array, sigma: float, size: int) -> jax.Array:
    """Separable Gaussian blur of [B, H, W, C] keeping only positions where the window fits ('valid')."""
    offsets = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
    weights = jnp.exp(-(offsets**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    channels = images.shape[-1]
    for kernel_shape in ((size, 1, 1, 1), (1, size, 1, 1)):
        kernel = jnp.tile(weights.reshape(kernel_shape), (1, 1, 1, channels))
        images = jax.lax.conv_general_dilated(
            images, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels
        )
    return images


@functools.partial(jax.jit, static_argnames=("data_range", "sigma", "window"))
def ssim(
    images: jax.Array, references: jax.Array, data_range: float = 2.0, sigma: float = 1.5, window: int = 11
) -> jax.Array:
    """Per-image structural similarity (Wang et al. 2004), Gaussian window, averaged over pixels and channels.

    Matches `skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, channel_axis=-1)`: population moments, border of window//2 cropped.
    """
    images, references = jnp.asarray(images, jnp.float32), jnp.asarray(references, jnp.float32)
    if images.shape != references.shape or images.ndim != 4:
        raise ValueError(f"images {images.shape} and references {references.shape} must both be [B, H, W, C]")
    if min(images.shape[1:3]) < window:
        raise ValueError(f"ssim needs images of at least {window}×{window}, got {images.shape[1:3]}")

    def blur(x: jax.Array) -> jax.Array:
        return _gaussian_filter_valid(x, sigma, window)

    mean_a, mean_b = blur(images), blur(references)
    var_a = blur(images * images) - mean_a**2
    var_b = blur(references * references) - mean_b**2
    cov = blur(images * references) - mean_a * mean_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mean_a * mean_b + c1) * (2 * cov + c2)) / ((mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2))
    return jnp.mean(index, axis=(1, 2, 3))


def reconstruction_metrics(result: InversionResult, targets: Any) -> dict[str, float]:
    """Mean PSNR and SSIM of `result.reconstructions` against `targets` (uint8 or [-1, 1]) and seconds per image."""
    references = as_model_range(jnp.asarray(targets))
    return {
        "psnr": float(jnp.mean(psnr(result.reconstructions, references))),
        "ssim": float(jnp.mean(ssim(result.reconstructions, references))),
        "seconds_per_image": result.seconds_per_image,
    }


class LatentEncoder(nn.Module):
    """Images [B, H, W, 3] in [-1, 1] (H, W >= 32) -> latents [B, latent_dim]: the classifier's conv trunk + Dense."""

    latent_dim: int
    width: int = 32
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        features = ConvTrunk(width=self.width, dtype=self.dtype)(images)
        return nn.Dense(self.latent_dim, dtype=self.dtype)(features).astype(jnp.float32)


def create_encoder_state(
    encoder: LatentEncoder, key: jax.Array, image_size: int, optimizer: optax.GradientTransformation
) -> TrainState:
    """Initialise `encoder` for square images of `image_size` and `optimizer` on its params."""
    return new_train_state(encoder, key, jnp.zeros((1, image_size, image_size, 3), jnp.float32), optimizer)


def make_encoder_latent_step(
    encoder: LatentEncoder, optimizer: optax.GradientTransformation, generate: GenerateFn
) -> Step:
    """Jitted `(state, {"latent": z [B, L]}, rng) -> (state, metrics)`: regress E(G(z)) onto z (MSE), state donated.

    The generator is fixed (its output is a constant of the step); `rng` is unused because the
    batch already carries the randomness, and is kept so every step has one signature.
    """

    def step(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
        del rng
        latents = batch["latent"]
        images = jax.lax.stop_gradient(generate(latents))

        def loss_fn(params: Any) -> jax.Array:
            return jnp.mean((encoder.apply({"params": params}, images) - latents) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return apply_gradients(state, grads, optimizer), {"loss": loss}

    return jax.jit(step, donate_argnums=0)


def make_encoder_finetune_step(
    encoder: LatentEncoder,
    optimizer: optax.GradientTransformation,
    generate: GenerateFn,
    loss: ReconstructionLoss = ReconstructionLoss(),
) -> Step:
    """Jitted `(state, {"image": uint8 [B, H, W, 3]}, rng) -> (state, metrics)`: fine-tune E on real faces.

    Minimises the same per-image objective as `invert` for z = E(x) through the fixed generator,
    so the encoder learns what optimisation would find. `rng` is unused (one signature for all steps).
    """

    def step(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
        del rng
        targets = as_model_range(batch["image"])
        target_features = loss.target_features(targets)

        def loss_fn(params: Any) -> jax.Array:
            latents = encoder.apply({"params": params}, targets)
            return jnp.mean(loss(latents, generate(latents), targets, target_features))

        value, grads = jax.value_and_grad(loss_fn)(state.params)
        return apply_gradients(state, grads, optimizer), {"loss": value}

    return jax.jit(step, donate_argnums=0)


def fit_encoder(
    encoder: LatentEncoder,
    generate: GenerateFn,
    image_size: int,
    *,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    log_every: int | None = None,
) -> TrainState:
    """Train `encoder` to map G(z) back to z on fresh N(0, I) latents for `steps` steps (Adam)."""
    init_key, latent_key, step_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    optimizer = optax.adam(learning_rate)
    state = create_encoder_state(encoder, init_key, image_size, optimizer)

    def next_batch(index: int) -> Batch:
        return {"latent": normal_latents(jax.random.fold_in(latent_key, index), batch_size, encoder.latent_dim)}

    step = make_encoder_latent_step(encoder, optimizer, generate)
    return run_steps(state, step, next_batch, steps=steps, key=step_key, log_every=log_every, name="encoder")


def encoder_fn(encoder: LatentEncoder, params: Any) -> Callable[[jax.Array], jax.Array]:
    """The `encode` argument of `invert` for a trained encoder: images in [-1, 1] -> latents."""
    return lambda images: encoder.apply({"params": params}, images)
