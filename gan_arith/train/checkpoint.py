"""The one checkpoint path: orbax `CheckpointManager`s under `<workdir>/checkpoints/`.

`latest/` keeps the last `keep` states (what resume reads); `best/` keeps the single state with the
best eval metric (what the latent tools load). Orbax writes each checkpoint to a temporary folder
and renames it when complete, so a run killed mid-save leaves the previous ones intact; a
checkpoint that fails to restore (truncated or corrupted afterwards) is skipped for the one before.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from functools import cached_property
from pathlib import Path
from typing import Callable, Literal

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

from gan_arith.config import with_added_fields
from gan_arith.files import write_text
from gan_arith.models.layers import as_model_range

from gan_arith.train.steps import Steps, TrainState, build_steps

CONFIG_FILE = "config.json"


class Checkpoints:
    """Save train states with their eval metrics; restore the newest one that reads back whole."""

    def __init__(self, directory: str | Path, *, keep: int = 3, best_metric: str = "loss", best_mode: str = "min"):
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        self.directory = Path(directory).absolute()
        self.best_metric = best_metric
        # Both managers save the same step; in a multi-process run their cross-process barriers need
        # distinct names (orbax names them by step alone).
        barriers = {name: ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name) for name in ("latest", "best")}
        self.latest = ocp.CheckpointManager(
            self.directory / "latest",
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, multiprocessing_options=barriers["latest"]),
        )
        self.best = ocp.CheckpointManager(
            self.directory / "best",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1, best_fn=lambda metrics: float(metrics[best_metric]), best_mode=best_mode, create=True,
                multiprocessing_options=barriers["best"],
            ),
        )

    def save(self, state: TrainState, metrics: dict[str, float]) -> None:
        """Save `state` at its step to `latest/`, and to `best/` when `metrics` has the best-metric value."""
        step = int(jax.device_get(state.step))
        metrics = {k: float(v) for k, v in metrics.items()}
        self.latest.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)
        if self.best_metric in metrics:
            self.best.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)
        self.wait()

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def restore(self, abstract_state: TrainState, which: Literal["latest", "best"] = "latest") -> TrainState | None:
        """The newest readable state in `which` (falling back past corrupt ones), or None if it holds none.

        When every checkpoint fails, the newest one's error is raised rather than None returned: the
        cause is then rarely damage (e.g. a state of another shape), and a caller that took None
        for "nothing saved" would start afresh over the saved run.
        """
        manager = self.latest if which == "latest" else self.best
        steps = sorted(manager.all_steps(), reverse=True)
        first_error: Exception | None = None
        for step in steps:
            try:
                return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
            except Exception as error:  # orbax raises many types for damaged files; any of them means "unreadable"
                first_error = first_error or error
                message = f"checkpoint {manager.directory}/{step} is unreadable ({_brief(error)}); trying an older one"
                logging.warning(message)
                warnings.warn(message, stacklevel=2)
        if first_error is not None:
            raise ValueError(
                f"no checkpoint in {manager.directory} could be read (steps {', '.join(map(str, steps))}); the newest "
                f"failed with {_brief(first_error)}"
            ) from first_error
        return None

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def _brief(error: Exception, limit: int = 400) -> str:
    """`Type: message`, cut short: tensorstore's errors carry kilobytes of JSON spec."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= limit else text[:limit] + " ..."


def has_checkpoint(workdir: str | Path) -> bool:
    """Whether `workdir` holds a saved step (in checkpoints/latest or checkpoints/best)."""
    return any(
        path.name.isdigit() for which in ("latest", "best") if (Path(workdir) / "checkpoints" / which).is_dir()
        for path in (Path(workdir) / "checkpoints" / which).iterdir()
    )


def abstract_state(steps: Steps, image_size: int, sharding: jax.sharding.Sharding) -> TrainState:
    """Shapes and dtypes of a fresh state (no compute), with the sharding to restore into.

    The sharding is required: without one, orbax restores onto the devices the checkpoint was saved
    from, which fails in a process with fewer of them (a run trained on 4 GPUs, analysed on 1).
    """
    shapes = jax.eval_shape(lambda rng: steps.init(rng, image_size), jax.random.key(0))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def save_config(workdir: Path, config: ml_collections.ConfigDict) -> None:
    path = workdir / CONFIG_FILE
    write_text(path, config.to_json(indent=2, sort_keys=True))


def load_config(workdir: str | Path) -> ml_collections.ConfigDict:
    path = Path(workdir) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{workdir} is not a training workdir: it has no {CONFIG_FILE}")
    return with_added_fields(ml_collections.ConfigDict(json.loads(path.read_text())))


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
