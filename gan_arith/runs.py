"""Load a trained model from its training workdir in one call: `load_run(workdir)`.

    from gan_arith.runs import load_run
    run = load_run("workdirs/dcgan_celeba")  # best checkpoint
    images = run.generate(latents)            # [B, latent_dim] -> [B, S, S, 3] in [-1, 1]
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path
from typing import Callable, Literal

import jax
import jax.numpy as jnp
import ml_collections

from gan_arith.models.layers import as_model_range
from gan_arith.train.checkpoint import Checkpoints, abstract_state, load_config
from gan_arith.train.state import TrainState
from gan_arith.train.steps import Steps, build_steps


@dataclasses.dataclass
class TrainedRun:
    """A trained model loaded from a workdir, with jitted callables on images (uint8 [0, 255] or float [-1, 1])
    and on latent batches [B, latent_dim]."""

    config: ml_collections.ConfigDict
    steps: Steps
    state: TrainState
    workdir: Path

    @property
    def kind(self) -> str:
        return self.config.model.kind

    @property
    def latent_dim(self) -> int:
        """Length of the model's latent vectors (the GAN's prior, the VAE's code)."""
        if self.kind == "ae":  # its config's latent_dim is an unused base-config field
            raise ValueError(f"{self.workdir} holds an 'ae' model, which has no latent vectors (its code is a feature map)")
        return self.config.model.latent_dim

    @property
    def image_size(self) -> int:
        return self.config.model.image_size

    def _require(self, kind: str, what: str) -> None:
        if self.kind != kind:
            raise ValueError(f"{self.workdir} holds a {self.kind!r} model, which has no {what}")

    def _on_latents(self, fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
        """`fn` jitted, for latent batches only: a single [D] latent would pass some layers and not others."""
        jitted = jax.jit(fn)

        def call(z: jax.Array) -> jax.Array:
            if jnp.ndim(z) != 2 or jnp.shape(z)[1] != self.latent_dim:
                raise ValueError(f"latents must be a batch [B, {self.latent_dim}], got shape {jnp.shape(z)}")
            return jitted(z)

        return call

    @cached_property
    def generate(self) -> Callable[[jax.Array], jax.Array]:
        """latents [B, latent_dim] -> images [B, S, S, 3] (GAN generator or VAE decoder)."""
        if self.kind == "dcgan":
            return self._on_latents(lambda z: self.steps.generate(self.steps.sampling_params(self.state), z))
        self._require("vae", "generator or decoder")
        return self.decode

    @cached_property
    def discriminate(self) -> Callable[[jax.Array], jax.Array]:
        """images -> real/fake logits [B] (dropout off)."""
        self._require("dcgan", "discriminator")
        variables = {"params": self.state.params["discriminator"]}
        return jax.jit(lambda images: self.steps.discriminator.apply(variables, as_model_range(images)))

    @cached_property
    def encode(self) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
        """images -> (mean, logvar) of the VAE posterior (BatchNorm in eval mode)."""
        self._require("vae", "encoder")
        model = self.steps.model
        variables = {"params": self.state.params, "batch_stats": self.state.batch_stats}
        return jax.jit(lambda images: model.apply(variables, as_model_range(images), method=model.encode))

    @cached_property
    def decode(self) -> Callable[[jax.Array], jax.Array]:
        self._require("vae", "decoder")
        model = self.steps.model
        variables = {"params": self.state.params, "batch_stats": self.state.batch_stats}
        return self._on_latents(lambda z: model.apply(variables, z, method=model.decode))

    @cached_property
    def reconstruct(self) -> Callable[[jax.Array], jax.Array]:
        """images -> reconstructions: the VAE decodes the posterior mean; the autoencoder runs in eval mode."""
        if self.kind == "vae":
            return jax.jit(lambda images: self.decode(self.encode(images)[0]))
        self._require("ae", "reconstruction")
        variables = {"params": self.state.params, "batch_stats": self.state.batch_stats}
        return jax.jit(lambda images: self.steps.model.apply(variables, as_model_range(images)))


def load_run(workdir: str | Path, which: Literal["best", "latest"] = "best") -> TrainedRun:
    """Load a trained model from a training workdir in one call: the best checkpoint (the latest when the run
    kept no best; a best that cannot be read is an error, not a silent fall-back to another model)."""
    workdir = Path(workdir)
    config = load_config(workdir)
    steps = build_steps(config)
    checkpoints = Checkpoints(workdir / "checkpoints", best_metric=config.best_metric, best_mode=config.best_mode)
    # Onto this process's first device, whatever devices the run was trained on.
    target = abstract_state(steps, config.model.image_size, jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
    try:
        state = checkpoints.restore(target, which)
        if state is None and which == "best":  # a run that never evaluated its best metric
            state = checkpoints.restore(target, "latest")
    finally:
        checkpoints.close()
    if state is None:
        raise FileNotFoundError(f"{workdir}/checkpoints holds no checkpoint")
    return TrainedRun(config=config, steps=steps, state=state, workdir=workdir)
