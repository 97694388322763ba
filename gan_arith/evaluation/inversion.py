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
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from gan_arith.evaluation.classifier_train import Step, apply_gradients, new_train_state, run_steps
from gan_arith.evaluation.sampling import batched_apply, normal_latents
from gan_arith.files import write_json
from gan_arith.evaluation.classifier_network import ConvTrunk
from gan_arith.models.layers import as_model_range
from gan_arith.train.state import Batch, Metrics, TrainState

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
    steps_per_call: int = 0,
) -> InversionResult:
    """Find z with G(z) ≈ target for each target image (uint8 [0, 255] or float [-1, 1], [N, H, W, 3]).

    Each image gets `restarts` starting points optimised together by Adam (cosine-decayed learning
    rate) for `steps` steps; the restart with the lowest final objective is kept. The starts are
    N(0, I) draws, except that restart 0 is `encode(image)` when an encoder is given; `steps=0`
    with an encoder is encoder-only inversion. `generate`, `encode` and `loss.feature_fn` must be
    jittable functions of arrays (params closed over). `steps_per_call` steps run in one jitted
    `lax.scan` (it must divide `steps`); 0 means all of them on an accelerator and one per call on
    CPU, where XLA runs convolutions inside a scan body 4-5x slower than dispatched one by one
    (measured on this objective; the training loop's steps_per_dispatch has the same default).
    """
    if steps < 0 or restarts < 1:
        raise ValueError(f"steps must be >= 0 and restarts >= 1, got steps={steps}, restarts={restarts}")
    if steps == 0 and encode is None:
        raise ValueError("invert with steps=0 needs an encoder (nothing would move the random starts)")
    if targets.ndim != 4 or targets.shape[-1] != 3:
        raise ValueError(f"targets must be [N, H, W, 3], got shape {tuple(targets.shape)}")
    steps_per_call = steps_per_call or (1 if jax.default_backend() == "cpu" else max(steps, 1))
    if steps_per_call < 1 or steps % steps_per_call:
        raise ValueError(f"steps_per_call must be 0 (auto) or divide steps={steps}, got {steps_per_call}")
    count = targets.shape[0]
    batch_size = min(batch_size, count)
    starts = np.asarray(normal_latents(key, count * restarts, latent_dim)).reshape(count, restarts, latent_dim)
    optimiser = optax.adam(optax.cosine_decay_schedule(learning_rate, max(steps, 1), alpha=0.01))
    Context = tuple[jax.Array, jax.Array | None]  # targets and their features, tiled over the restarts

    def prepare(images: jax.Array, start: jax.Array) -> tuple[tuple[jax.Array, Any], Context]:
        images = as_model_range(images)
        if encode is not None:
            start = start.at[:, 0].set(encode(images).astype(start.dtype))
        # Restarts ride along the batch axis: the objective is a sum of per-image terms and Adam is
        # per-coordinate, so the B·R problems stay independent.
        latents = start.transpose(1, 0, 2).reshape(restarts * images.shape[0], latent_dim)
        target_features = loss.target_features(images)
        tiled_features = None if target_features is None else jnp.tile(target_features, (restarts, 1))
        return (latents, optimiser.init(latents)), (jnp.tile(images, (restarts, 1, 1, 1)), tiled_features)

    def per_image(latents: jax.Array, context: Context) -> jax.Array:
        return loss(latents, generate(latents), *context)

    def advance(carry: tuple[jax.Array, Any], context: Context) -> tuple[jax.Array, Any]:
        def update(carry: tuple[jax.Array, Any], _: None) -> tuple[tuple[jax.Array, Any], None]:
            z, opt_state = carry
            grads = jax.grad(lambda z: per_image(z, context).sum())(z)
            updates, opt_state = optimiser.update(grads, opt_state)
            return (optax.apply_updates(z, updates), opt_state), None

        if steps_per_call == 1:  # no loop at all: XLA:CPU keeps even a one-trip scan slow
            return update(carry, None)[0]
        return jax.lax.scan(update, carry, None, length=steps_per_call)[0]

    def finish(carry: tuple[jax.Array, Any], context: Context) -> tuple[jax.Array, jax.Array, jax.Array]:
        batch = carry[0].shape[0] // restarts
        final = per_image(carry[0], context).reshape(restarts, batch)
        best = jnp.argmin(final, axis=0)
        latents = carry[0].reshape(restarts, batch, latent_dim)[best, jnp.arange(batch)]
        return latents, generate(latents), final[best, jnp.arange(batch)]

    begin = time.perf_counter()
    inputs = (
        jax.ShapeDtypeStruct((batch_size,) + tuple(targets.shape[1:]), targets.dtype),
        jax.ShapeDtypeStruct((batch_size, restarts, latent_dim), jnp.float32),
    )
    carry_and_context = jax.eval_shape(prepare, *inputs)
    compiled_prepare = jax.jit(prepare).lower(*inputs).compile()
    compiled_advance = jax.jit(advance, donate_argnums=0).lower(*carry_and_context).compile() if steps else None
    compiled_finish = jax.jit(finish).lower(*carry_and_context).compile()
    compile_seconds = time.perf_counter() - begin

    def invert_batch(chunk: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
        carry, context = compiled_prepare(*chunk)
        for _ in range(steps // steps_per_call):
            carry = compiled_advance(carry, context)
        return compiled_finish(carry, context)

    begin = time.perf_counter()
    latents, reconstructions, final = batched_apply(invert_batch, (targets, starts), batch_size)
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


def psnr_per_image(result: InversionResult, targets: Any) -> np.ndarray:
    """PSNR in dB [N] of each reconstruction against its target (uint8 or [-1, 1])."""
    return np.asarray(psnr(result.reconstructions, as_model_range(jnp.asarray(targets))))


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


def finetune_encoder(
    encoder: LatentEncoder,
    params: Any,
    generate: GenerateFn,
    images: np.ndarray,
    *,
    steps: int,
    loss: ReconstructionLoss = ReconstructionLoss(),
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    seed: int = 0,
    log_every: int | None = None,
) -> TrainState:
    """Fine-tune a trained encoder (`params`) on real uint8 faces [N, S, S, 3] through the fixed generator.

    Minimises `loss` of G(E(x)) against x (see `make_encoder_finetune_step`) on random batches,
    with a fresh Adam at a smaller rate than the G(z) -> z stage so the start it learned is kept.
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [N, S, S, 3], got {images.dtype} {images.shape}")
    optimizer = optax.adam(learning_rate)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))
    order = np.random.default_rng(seed)
    batch_size = min(batch_size, images.shape[0])

    def next_batch(_: int) -> Batch:
        return {"image": images[np.sort(order.choice(images.shape[0], batch_size, replace=False))]}

    step = make_encoder_finetune_step(encoder, optimizer, generate, loss)
    key = jax.random.PRNGKey(seed)
    return run_steps(state, step, next_batch, steps=steps, key=key, log_every=log_every, name="encoder fine-tune")


ENCODER_FILE = "encoder.json"


def load_or_train_encoder(
    directory: str | Path,
    encoder: LatentEncoder,
    generate: GenerateFn,
    real_images: np.ndarray,
    *,
    trained_for: dict[str, Any],
    latent_steps: int,
    finetune_steps: int,
    loss: ReconstructionLoss = ReconstructionLoss(),
    seed: int = 0,
) -> Any:
    """Encoder params from `directory` when saved there for the same settings, else trained and saved (orbax).

    Training: `latent_steps` of G(z) -> z regression (`fit_encoder`), then `finetune_steps` on
    `real_images` through the reconstruction `loss` (`finetune_encoder`). `trained_for` names the
    generator (e.g. its workdir and step) and the loss's feature network; it is stored in
    `encoder.json` with the settings and a digest of `real_images`, and a saved encoder whose record
    differs is retrained rather than silently reused.
    """
    directory = Path(directory).absolute()
    record = {
        "trained_for": trained_for, "latent_dim": encoder.latent_dim, "width": encoder.width,
        "image_size": int(real_images.shape[1]), "latent_steps": latent_steps, "finetune_steps": finetune_steps,
        "feature_weight": loss.feature_weight, "prior_weight": loss.prior_weight, "seed": seed,
        "real_faces": len(real_images),
        "real_faces_sha1": hashlib.sha1(np.ascontiguousarray(real_images).tobytes()).hexdigest(),
    }
    meta_path = directory / ENCODER_FILE
    checkpointer = ocp.StandardCheckpointer()
    try:
        if meta_path.exists() and json.loads(meta_path.read_text()) == record and (directory / "params").exists():
            return checkpointer.restore(directory / "params")
        print(
            f"Training the latent encoder: {latent_steps} steps G(z) -> z, then {finetune_steps} steps on "
            f"{len(real_images)} real faces; saved in {directory}",
            file=sys.stderr,
        )
        log_every = max((latent_steps + finetune_steps) // 20, 1)
        state = fit_encoder(encoder, generate, record["image_size"], steps=latent_steps, seed=seed, log_every=log_every)
        if finetune_steps:
            state = finetune_encoder(
                encoder, state.params, generate, real_images, steps=finetune_steps, loss=loss, seed=seed,
                log_every=log_every,
            )
        params = jax.device_get(state.params)
        directory.mkdir(parents=True, exist_ok=True)
        checkpointer.save(directory / "params", params, force=True)
        checkpointer.wait_until_finished()
        write_json(record, meta_path, indent=2)
        return params
    finally:
        checkpointer.close()


def compare_inversion_methods(
    targets: Any,
    generate: GenerateFn,
    latent_dim: int,
    key: jax.Array,
    *,
    encode: Callable[[jax.Array], jax.Array],
    steps: int = 300,
    restarts: int = 4,
    loss: ReconstructionLoss = ReconstructionLoss(),
    batch_size: int = 64,
) -> dict[str, InversionResult]:
    """Invert `targets` three ways, with the same objective and step count.

    "optimisation": `restarts` random starts; "encoder": E(x) as is; "encoder+optimisation": one
    start at E(x), optimised (one start, so its time per image shows what the encoder saves).
    """
    settings = dict(steps=steps, loss=loss, batch_size=batch_size)
    return {
        "optimisation": invert(targets, generate, latent_dim, key, restarts=restarts, **settings),
        "encoder": invert(targets, generate, latent_dim, key, encode=encode, restarts=1, **{**settings, "steps": 0}),
        "encoder+optimisation": invert(targets, generate, latent_dim, key, encode=encode, restarts=1, **settings),
    }
