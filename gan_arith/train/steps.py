"""Pure train steps for the GAN, the VAE and the autoencoder: `(state, batch, rng) -> (state, metrics)`.

Nothing here touches data, files or figures; the caller jits (with donated state and shardings, see
`gan_arith.train.parallel`). Every step takes a batch {"image": uint8 [B, S, S, 3], ...} and converts
it to the model range on device, so the input path moves bytes, not floats.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import optax

from gan_arith.config import COMPUTE_DTYPES, SCHEDULES
from gan_arith.models.autoencoder import AccordionAE
from gan_arith.models.dcgan import Discriminator, Generator
from gan_arith.models.fast import dcgan_modules
from gan_arith.models.layers import to_model_range
from gan_arith.models.vae import VAE
from gan_arith.train.state import Batch, Metrics, TrainState

R1_SUBSAMPLE = 4  # the R1 penalty is measured on 1/R1_SUBSAMPLE of each step's real faces


class Steps(Protocol):
    """What the training loop needs from a model kind."""

    def data_batch_size(self, batch_size: int) -> int: ...

    def init(self, rng: jax.Array, image_size: int) -> TrainState: ...

    def train_step(self, state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]: ...

    def eval_step(self, state: TrainState, batch: Batch, rng: jax.Array) -> Metrics: ...


def _constrain(x: jax.Array, sharding: jax.sharding.Sharding | None) -> jax.Array:
    # Latents drawn inside the step would otherwise be replicated, and every device would run the whole generator.
    return x if sharding is None else jax.lax.with_sharding_constraint(x, sharding)


def _apply_updates(
    optimizer: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any
) -> tuple[Any, Any]:
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _bce_with_logits(logits: jax.Array, label: float) -> jax.Array:
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, label)).mean()


@dataclasses.dataclass(frozen=True)
class GANSteps:
    """The seed's alternating DCGAN update.

    Per step: the discriminator sees `batch_size // 2` real faces (label 1) and as many generated ones
    (label 0) in one update; then the generator, through the just-updated discriminator held fixed,
    is updated on `batch_size` latent points with the non-saturating loss (labels 1). Dropout in the
    discriminator is on in both phases, as in Keras' `train_on_batch`.

    With `ema_decay` > 0 the state also keeps an exponential moving average of the generator's
    weights (as in ProGAN and StyleGAN): samples, evaluation and the latent tools use the average,
    which smooths the generator's step-to-step oscillation around the discriminator's moving target.
    The training updates themselves are unchanged. The decay ramps up as min(ema_decay, (1 + t) /
    (10 + t)) so that a short run's average does not remember the random initialisation.

    With `r1_gamma` > 0 the discriminator's loss adds γ/2 · E|∇x D(x)|² over the real faces (R1,
    estimated on 1/`R1_SUBSAMPLE` of them):
    a discriminator that cannot grow steep around the real faces keeps giving the generator
    gradients it can follow, where an unregularised one wins outright and the generator stalls.
    """

    generator: Generator
    discriminator: Discriminator
    optimizer: optax.GradientTransformation
    batch_sharding: jax.sharding.Sharding | None = None
    ema_decay: float = 0.0
    discriminator_optimizer: optax.GradientTransformation | None = None  # None: `optimizer`, as in the seed
    r1_gamma: float = 0.0

    @property
    def _discriminator_optimizer(self) -> optax.GradientTransformation:
        return self.discriminator_optimizer or self.optimizer

    def data_batch_size(self, batch_size: int) -> int:
        if batch_size % 2:
            raise ValueError(f"GAN batch_size must be even (half real, half generated), got {batch_size}")
        return batch_size // 2

    def init(self, rng: jax.Array, image_size: int) -> TrainState:
        g_rng, d_rng = jax.random.split(rng)
        params = {
            "generator": jax.jit(self.generator.init)(g_rng, jnp.zeros((1, self.generator.latent_dim)))["params"],
            "discriminator": jax.jit(self.discriminator.init)(d_rng, jnp.zeros((1, image_size, image_size, 3)))["params"],
        }
        optimizers = {"generator": self.optimizer, "discriminator": self._discriminator_optimizer}
        opt_state = {name: jax.jit(optimizers[name].init)(p) for name, p in params.items()}
        # A copy, not the same buffers: the jitted step donates the whole state.
        ema_params = {"generator": jax.tree.map(jnp.copy, params["generator"])} if self.ema_decay else {}
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state, ema_params=ema_params)

    def generate(self, generator_params: Any, z_bl: jax.Array) -> jax.Array:
        return self.generator.apply({"params": generator_params}, z_bl)

    def sampling_params(self, state: TrainState) -> Any:
        """The generator parameters samples are drawn with: the moving average when the run keeps one."""
        return state.ema_params["generator"] if self.ema_decay else state.params["generator"]

    def _updated_average(self, state: TrainState) -> TrainState:
        if not self.ema_decay:
            return state
        decay = jnp.minimum(self.ema_decay, (1.0 + state.step) / (10.0 + state.step))
        average = jax.tree.map(
            lambda old, new: decay * old + (1.0 - decay) * new, state.ema_params["generator"], state.params["generator"]
        )
        return state.replace(ema_params={"generator": average})

    def _latents(self, rng: jax.Array, num: int) -> jax.Array:
        z = jax.random.normal(rng, (num, self.generator.latent_dim), jnp.float32)
        return _constrain(z, self.batch_sharding)

    def _real_gradient_norm(self, d_params: Any, real: jax.Array, rng: jax.Array) -> jax.Array:
        """Mean over real faces of |∇x D(x)|², the R1 penalty's measure (Mescheder et al., 2018)."""

        def logit_sum(images: jax.Array) -> jax.Array:
            return self.discriminator.apply({"params": d_params}, images, train=True, rngs={"dropout": rng}).sum()

        gradient = jax.grad(logit_sum)(real).astype(jnp.float32)
        return jnp.sum(gradient * gradient, axis=(1, 2, 3)).mean()

    def discriminator_update(self, state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
        """Phase 1: one Adam step of the discriminator on real (label 1) and generated (label 0) faces."""
        real = to_model_range(batch["image"], self.discriminator.dtype)
        num_real = real.shape[0]
        z_rng, dropout_rng = jax.random.split(rng)
        fake = self.generate(state.params["generator"], self._latents(z_rng, num_real))
        # Written out before the discriminator reads it: fused into the discriminator's mirrored input
        # (a reverse, on CUDA), the generator's last layer (ConvFromPhases' 25-tap sum) took 0.30 ms
        # per step on an H100 for 64 faces, where the same sum written out took 0.10 ms for 128 (the
        # generator update's, kept for tanh's gradient; docs/benchmarks.md).
        fake = jax.lax.optimization_barrier(jax.lax.stop_gradient(fake))
        images = jnp.concatenate([real, fake.astype(real.dtype)], axis=0)

        def loss_fn(d_params: Any) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
            logits = self.discriminator.apply({"params": d_params}, images, train=True, rngs={"dropout": dropout_rng})
            real_logits, fake_logits = logits[:num_real], logits[num_real:]
            # One update on the 2N-image batch: the mean over it is the mean of the two halves' losses.
            loss = 0.5 * (_bce_with_logits(real_logits, 1.0) + _bce_with_logits(fake_logits, 0.0))
            if self.r1_gamma:
                # Measured on a fraction of the real faces (an unbiased estimate of the mean), so its
                # double backward costs a fraction of a step; not lazily in time as StyleGAN2 does,
                # since XLA:CPU runs convolutions inside a conditional on a slow path.
                num_penalised = max(1, num_real // R1_SUBSAMPLE)
                penalty = self._real_gradient_norm(d_params, real[:num_penalised], dropout_rng)
                loss = loss + self.r1_gamma / 2 * penalty
            return loss, (real_logits, fake_logits)

        d_params, d_opt_state = state.params["discriminator"], state.opt_state["discriminator"]
        (_, (real_logits, fake_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
        d_params, d_opt_state = _apply_updates(self._discriminator_optimizer, grads, d_opt_state, d_params)
        state = state.replace(
            params={**state.params, "discriminator": d_params},
            opt_state={**state.opt_state, "discriminator": d_opt_state},
        )
        return state, {
            "d_loss_real": _bce_with_logits(real_logits, 1.0),
            "d_loss_fake": _bce_with_logits(fake_logits, 0.0),
            "d_acc_real": (real_logits > 0).mean(),
            "d_acc_fake": (fake_logits < 0).mean(),
        }

    def generator_update(self, state: TrainState, num_latents: int, rng: jax.Array) -> tuple[TrainState, Metrics]:
        """Phase 2: one Adam step of the generator through the fixed discriminator (non-saturating loss)."""
        z_rng, dropout_rng = jax.random.split(rng)
        z = self._latents(z_rng, num_latents)
        d_variables = {"params": state.params["discriminator"]}

        def loss_fn(g_params: Any) -> jax.Array:
            generated = self.generate(g_params, z).astype(self.discriminator.dtype)
            logits = self.discriminator.apply(d_variables, generated, train=True, rngs={"dropout": dropout_rng})
            return _bce_with_logits(logits, 1.0)

        g_params, g_opt_state = state.params["generator"], state.opt_state["generator"]
        g_loss, grads = jax.value_and_grad(loss_fn)(g_params)
        g_params, g_opt_state = _apply_updates(self.optimizer, grads, g_opt_state, g_params)
        state = state.replace(
            params={**state.params, "generator": g_params},
            opt_state={**state.opt_state, "generator": g_opt_state},
        )
        return state, {"g_loss": g_loss}

    def train_step(self, state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
        d_rng, g_rng = jax.random.split(rng)
        state, d_metrics = self.discriminator_update(state, batch, d_rng)
        state, g_metrics = self.generator_update(state, 2 * batch["image"].shape[0], g_rng)
        state = self._updated_average(state)
        return state.replace(step=state.step + 1), {**d_metrics, **g_metrics}

    def eval_step(self, state: TrainState, batch: Batch, rng: jax.Array) -> Metrics:
        """Discriminator scores on held-out real faces and fresh samples, dropout off."""
        real = to_model_range(batch["image"], self.discriminator.dtype)
        fake = self.generate(self.sampling_params(state), self._latents(rng, real.shape[0]))
        d_params = {"params": state.params["discriminator"]}
        real_logits = self.discriminator.apply(d_params, real)
        fake_logits = self.discriminator.apply(d_params, fake.astype(real.dtype))
        return {
            "d_loss_real": _bce_with_logits(real_logits, 1.0),
            "d_loss_fake": _bce_with_logits(fake_logits, 0.0),
            "g_loss": _bce_with_logits(fake_logits, 1.0),
            "d_acc_real": (real_logits > 0).mean(),
            "d_acc_fake": (fake_logits < 0).mean(),
        }


def _recon_sse(reconstruction: jax.Array, images: jax.Array) -> jax.Array:
    """Per-image sum of squared errors in [-1, 1] (a Gaussian likelihood), averaged over the batch."""
    diff = reconstruction.astype(jnp.float32) - images.astype(jnp.float32)
    return jnp.sum(diff * diff, axis=(1, 2, 3)).mean()


def kl_to_standard_normal(mean_bl: jax.Array, logvar_bl: jax.Array) -> jax.Array:
    """KL(N(μ, σ²) || N(0, I)) summed over latent dimensions, averaged over the batch."""
    return (-0.5 * jnp.sum(1.0 + logvar_bl - mean_bl**2 - jnp.exp(logvar_bl), axis=-1)).mean()


@dataclasses.dataclass(frozen=True)
class VAESteps:
    """VAE update: loss = reconstruction SSE + β·KL, one reparameterised sample per image, BatchNorm in train mode."""

    model: VAE
    optimizer: optax.GradientTransformation
    beta: float = 1.0

    def data_batch_size(self, batch_size: int) -> int:
        return batch_size

    def init(self, rng: jax.Array, image_size: int) -> TrainState:
        init_rng, sample_rng = jax.random.split(rng)
        variables = jax.jit(self.model.init)(init_rng, jnp.zeros((1, image_size, image_size, 3)), sample_rng)
        params = variables["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=jax.jit(self.optimizer.init)(params),
            batch_stats=variables["batch_stats"],
        )

    def _losses(self, reconstruction: jax.Array, images: jax.Array, mean: jax.Array, logvar: jax.Array) -> Metrics:
        recon = _recon_sse(reconstruction, images)
        kl = kl_to_standard_normal(mean, logvar)
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}

    def train_step(self, state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
        images = to_model_range(batch["image"], self.model.dtype)

        def loss_fn(params: Any) -> tuple[jax.Array, tuple[Metrics, Any]]:
            (reconstruction, mean, logvar), updates = self.model.apply(
                {"params": params, "batch_stats": state.batch_stats}, images, rng, train=True, mutable=["batch_stats"]
            )
            metrics = self._losses(reconstruction, images, mean, logvar)
            return metrics["loss"], (metrics, updates["batch_stats"])

        (_, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        params, opt_state = _apply_updates(self.optimizer, grads, state.opt_state, state.params)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state, batch_stats=batch_stats), metrics

    def eval_step(self, state: TrainState, batch: Batch, rng: jax.Array) -> Metrics:
        images = to_model_range(batch["image"], self.model.dtype)
        variables = {"params": state.params, "batch_stats": state.batch_stats}
        reconstruction, mean, logvar = self.model.apply(variables, images, rng, train=False)
        return self._losses(reconstruction, images, mean, logvar)


@dataclasses.dataclass(frozen=True)
class AutoencoderSteps:
    """Accordion autoencoder update: mean squared reconstruction error, BatchNorm in train mode."""

    model: AccordionAE
    optimizer: optax.GradientTransformation

    def data_batch_size(self, batch_size: int) -> int:
        return batch_size

    def init(self, rng: jax.Array, image_size: int) -> TrainState:
        variables = jax.jit(self.model.init)(rng, jnp.zeros((1, image_size, image_size, 3)))
        params = variables["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=jax.jit(self.optimizer.init)(params),
            batch_stats=variables["batch_stats"],
        )

    def train_step(self, state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
        del rng  # deterministic model; the argument keeps the one step signature
        images = to_model_range(batch["image"], self.model.dtype)

        def loss_fn(params: Any) -> tuple[jax.Array, Any]:
            reconstruction, updates = self.model.apply(
                {"params": params, "batch_stats": state.batch_stats}, images, train=True, mutable=["batch_stats"]
            )
            return jnp.mean((reconstruction - images.astype(jnp.float32)) ** 2), updates["batch_stats"]

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        params, opt_state = _apply_updates(self.optimizer, grads, state.opt_state, state.params)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state, batch_stats=batch_stats), {"loss": loss}

    def eval_step(self, state: TrainState, batch: Batch, rng: jax.Array) -> Metrics:
        del rng
        images = to_model_range(batch["image"], self.model.dtype)
        reconstruction = self.model.apply({"params": state.params, "batch_stats": state.batch_stats}, images)
        return {"loss": jnp.mean((reconstruction - images.astype(jnp.float32)) ** 2)}


def fuse_steps(
    train_step: Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]],
) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]:
    """Run `train_step` once per leading-axis slice of `batches` inside one `lax.scan`.

    Step s gets `fold_in(rng, s)` with s the state's own step counter, so a run's randomness depends
    only on the step number: fused or not, resumed or not, the same step sees the same key.
    Metrics come back stacked, [num_steps, ...].
    """

    def run(state: TrainState, batches: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
        def body(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
            return train_step(state, batch, jax.random.fold_in(rng, state.step))

        if jax.tree.leaves(batches)[0].shape[0] == 1:
            # No loop for a single step: XLA:CPU runs convolutions inside a loop body on a slow
            # single-threaded path (jax-ml/jax#12868), even when the loop runs once.
            state, metrics = body(state, jax.tree.map(lambda leaf: leaf[0], batches))
            return state, jax.tree.map(lambda leaf: leaf[None], metrics)
        return jax.lax.scan(body, state, batches)

    return run


def adam(
    learning_rate: float | optax.Schedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7
) -> optax.GradientTransformation:
    """Adam with Keras' epsilon (1e-7), the optimizer all the seeds' models were trained with."""
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


def model_dtype(name: str) -> Any:
    """Compute dtype from a config string (one of `COMPUTE_DTYPES`); parameters stay float32 either way."""
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"compute dtype must be one of {sorted(COMPUTE_DTYPES)}, got {name!r}")
    return getattr(jnp, name)


def learning_rate_schedule(rate: float, schedule: str, total_steps: int) -> float | optax.Schedule:
    """`rate` held ('constant', the seeds') or cosine-decayed to 0 over `total_steps` ('cosine').

    A short run can then start at a rate that learns fast and still end with small, refining steps.
    Both keep the same optimizer state, whatever `total_steps` (a loaded run may pass any).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"learning-rate schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    return rate if schedule == "constant" else optax.cosine_decay_schedule(rate, max(total_steps, 1))


def build_steps(config: Any, batch_sharding: jax.sharding.Sharding | None = None, total_steps: int = 1) -> Steps:
    """The step functions for `config.model.kind` ('dcgan', 'vae' or 'ae') with the configured models and Adam
    (its learning rates on `config.optimizer.schedule` over the run's `total_steps`)."""
    model, opt = config.model, config.optimizer

    def adam_at(rate: float) -> optax.GradientTransformation:
        return adam(learning_rate_schedule(rate, opt.schedule, total_steps), b1=opt.b1, b2=opt.b2, eps=opt.eps)

    optimizer = adam_at(opt.learning_rate)
    dtype = model_dtype(model.dtype)
    if model.kind == "dcgan":
        generator_module, discriminator_module = dcgan_modules(model.impl)
        generator = generator_module(model.latent_dim, model.width, model.image_size, dtype, model.conv_transpose)
        discriminator = discriminator_module(
            model.width, model.image_size, model.dropout_rate, dtype, model.discriminator_padding
        )
        discriminator_optimizer = adam_at(opt.discriminator_learning_rate) if opt.discriminator_learning_rate else None
        return GANSteps(
            generator, discriminator, optimizer, batch_sharding, config.ema_decay, discriminator_optimizer, config.r1_gamma
        )
    if model.kind == "vae":
        vae = VAE(model.latent_dim, model.image_size, dtype, model.conv_transpose, tuple(model.vae_filters))
        return VAESteps(vae, optimizer, model.beta)
    if model.kind == "ae":
        return AutoencoderSteps(AccordionAE(model.image_size, dtype, model.conv_transpose), optimizer)
    raise ValueError(f"config.model.kind must be 'dcgan', 'vae' or 'ae', got {model.kind!r}")
