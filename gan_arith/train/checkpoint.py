"""The one checkpoint path: orbax `CheckpointManager`s under `<workdir>/checkpoints/`.

`latest/` keeps the last `keep` states (what resume reads); `best/` keeps the single state with the
best eval metric (what the latent tools load). Orbax writes each checkpoint to a temporary folder
and renames it when complete, so a run killed mid-save leaves the previous ones intact; a
checkpoint that fails to restore (truncated or corrupted afterwards) is skipped for the one before.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Literal

import jax
import ml_collections
import orbax.checkpoint as ocp

from gan_arith.config import with_added_fields
from gan_arith.files import write_text
from gan_arith.train.state import TrainState
from gan_arith.train.steps import Steps

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
