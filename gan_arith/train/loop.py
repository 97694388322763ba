"""The one training loop: GAN, VAE and autoencoder through their step functions.

Side effects live here, never in the steps: data, progress, JSON-lines and TensorBoard logs, sample
and reconstruction figures, checkpoints, resume. A run is a pure function of its config: batch
order comes from (seed, epoch) and step randomness from fold_in(key, step), so a run resumed from a
checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from gan_arith import figures
from gan_arith.config import check_model_config, check_train_config
from gan_arith.data.device import DeviceFaces, fits_on_device, put_process_local
from gan_arith.data.selection import held_out_faces, select_faces
from gan_arith.data.store import FaceStore, partition_code
from gan_arith.errors import InputError
from gan_arith.files import write_json, write_text
from gan_arith.models.layers import from_model_range, to_model_range
from gan_arith.progress import Pace, Progress, format_eta
from gan_arith.train import parallel
from gan_arith.train.checkpoint import CONFIG_FILE, Checkpoints, abstract_state, has_checkpoint, load_config, save_config
from gan_arith.train.state import TrainState
from gan_arith.train.steps import Steps, build_steps

# Fields a resumed run may change; anything else would make the checkpoint mean something else.
RESUMABLE_CHANGES = (
    "num_epochs", "eval_every_epochs", "keep_checkpoints", "tensorboard", "steps_per_dispatch", "conv_fusion",
    "num_fd_samples", "classifier_dir", "classifier_steps",
    # Recipes, already applied: what they change is compared in the effective fields themselves.
    "cpu", "scale_for_cpu",
)
NUM_EVAL_IMAGES = 8
PIPELINES = ("auto", "device", "tfdata")
PROGRESS_METRICS = ("d_loss_real", "d_loss_fake", "g_loss", "loss", "recon", "kl")

# An eval metric a run's caller adds to those of the eval step (the GAN's Fréchet distance, made in
# gan_arith/artifacts.py): given the run's face store and steps, once before the first step, the
# function that measures a train state.
MetricFactory = Callable[[FaceStore, Steps], Callable[[TrainState], float]]
# Opens (or makes) the run's face store; returns it with a line saying where it came from (the
# experiments' is gan_arith/data/stores.py resolve_store).
OpenStore = Callable[[], tuple[FaceStore, str]]


class DivergenceError(RuntimeError):
    """Raised when a training loss becomes NaN or infinite; the last good checkpoint is kept."""


class TfDataBatches:
    """The tf.data path behind the device path's interface: stacks of consecutive batches of one epoch."""

    def __init__(self, store: FaceStore, indices: np.ndarray, *, size: int, batch_size: int, seed: int, mesh):
        self.store, self.indices, self.size, self.batch_size, self.seed = store, indices, size, batch_size, seed
        self.steps_per_epoch = len(indices) // batch_size
        self._sharding = parallel.batch_sharding(mesh, leading_axes=1)
        self._position: tuple[int, int] | None = None
        self._iterator: Iterator[dict[str, np.ndarray]] | None = None

    def stacked_batches(self, epoch: int, start_step: int, num_steps: int) -> dict[str, jax.Array]:
        from gan_arith.data.tfdata import make_tfdata_iterator

        if self._position != (epoch, start_step):
            self._iterator = make_tfdata_iterator(
                self.store, size=self.size, batch_size=self.batch_size, seed=self.seed, epoch=epoch,
                indices=self.indices, start_step=start_step,
            )
        batches = [next(self._iterator) for _ in range(num_steps)]
        self._position = (epoch, start_step + num_steps)
        stacked = {key: np.stack([b[key] for b in batches]) for key in batches[0]}
        return put_process_local(stacked, self._sharding)  # this host's rows of the global batch


def check_run_choices(
    config: ml_collections.ConfigDict, eval_metrics: Collection[str], added_metrics: Collection[str] = ()
) -> None:
    """Raise an InputError naming a choice of `config` that the run cannot honour. Checked before anything
    is written: each would otherwise surface only after the face store is made (minutes for raw CelebA)
    or, for a best_metric that neither the eval step (`eval_metrics`) nor the caller (`added_metrics`)
    logs, never: no best checkpoint would be kept, and the latent tools would silently read the last one."""
    if config.data.pipeline not in PIPELINES:
        raise InputError(f"config.data.pipeline must be one of {', '.join(PIPELINES)}, got {config.data.pipeline!r}")
    if config.data.partition:
        try:
            partition_code(config.data.partition)
        except ValueError as error:
            raise InputError(f"config.data.partition: {error}") from None
    if config.data.max_faces < 0:
        raise InputError(f"config.data.max_faces must be >= 0 (0 = all selected faces), got {config.data.max_faces}")
    if config.steps_per_dispatch < 0:
        raise InputError(f"config.steps_per_dispatch must be >= 0 (0 = auto), got {config.steps_per_dispatch}")
    if config.best_mode not in ("min", "max"):
        raise InputError(f"config.best_mode must be 'min' or 'max', got {config.best_mode!r}")
    kind = config.model.kind
    known = sorted(eval_metrics) + list(added_metrics)
    if config.best_metric not in known:
        raise InputError(
            f"config.best_metric={config.best_metric!r} is not an eval metric of {kind} runs; they log {', '.join(known)}"
        )


def choose_pipeline(choice: str, num_bytes: int) -> str:
    """'device' or 'tfdata' for config.data.pipeline, one of `PIPELINES` (``auto``: device-resident when it fits)."""
    if choice == "auto":
        fits = fits_on_device(num_bytes)
        if jax.process_count() > 1:  # one answer on every process: they must all run the same computations
            fits = bool(np.all(multihost_utils.process_allgather(np.array(fits))))
        return "device" if fits else "tfdata"
    return choice


def _pipeline(config: ml_collections.ConfigDict, store: FaceStore, indices: np.ndarray, batch_size: int, mesh):
    size = config.model.image_size
    choice = choose_pipeline(config.data.pipeline, len(indices) * size * size * 3)
    if choice == "device":
        images = store.gather(size, indices)
        attributes = store.attributes[indices] if store.attribute_names else None
        return DeviceFaces(images, attributes, batch_size=batch_size, seed=config.seed, mesh=mesh), choice
    return TfDataBatches(store, indices, size=size, batch_size=batch_size, seed=config.seed, mesh=mesh), choice


def _check_resumable(workdir: Path, config: ml_collections.ConfigDict) -> None:
    """Refuse a config that differs from the saved one of a run that has checkpoints to resume."""
    if not (workdir / CONFIG_FILE).exists() or not has_checkpoint(workdir):
        return  # nothing saved to continue (e.g. a run that failed before its first checkpoint)
    saved = json.loads(load_config(workdir).to_json())
    current = json.loads(config.to_json())
    for fields in (saved, current):  # the models' lowering, not what they compute
        fields["model"].pop("impl", None)
    differing = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k) and k not in RESUMABLE_CHANGES)
    if differing:
        raise InputError(
            f"{workdir} holds a run with a different config ({', '.join(differing)} differ); "
            f"use another --workdir or the same config"
        )


class _Logger:
    """metrics.jsonl always; TensorBoard scalars and images when tensorboardX is installed.

    A run resumed at `start_step` first drops what an interrupted invocation logged after that step
    (it is about to be logged again): metrics.jsonl is rewritten without those rows, and TensorBoard
    is told to hide them (`purge_step`).
    """

    def __init__(self, workdir: Path, tensorboard: bool, start_step: int, write: bool = True):
        """`write=False` (every process of a multi-process run but the first) logs nothing."""
        self.jsonl, self.writer = None, None
        if not write:
            return
        path = workdir / "metrics.jsonl"
        if path.exists():
            lines = path.read_text().splitlines(keepends=True)
            kept = [line for line in lines if _logged_step(line) <= start_step]
            if len(kept) < len(lines):
                write_text(path, "".join(kept))
        self.jsonl = open(path, "a", buffering=1)
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter

                self.writer = SummaryWriter(str(workdir / "tensorboard"), purge_step=start_step + 1)
            except ImportError:
                print("tensorboardX is not installed: logging to metrics.jsonl only", file=sys.stderr)

    def scalars(self, step: int, split: str, metrics: dict[str, float], **extra: Any) -> None:
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, "split": split, **extra, **metrics}) + "\n")
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(f"{split}/{name}", value, step)

    def image(self, step: int, tag: str, image_hwc: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image_hwc, step, dataformats="HWC")

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
        if self.writer is not None:
            self.writer.close()


def _logged_step(line: str) -> float:
    """The step of a metrics.jsonl line; a line cut short by a kill counts as after every step."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def _eval_batch(store: FaceStore, config: ml_collections.ConfigDict, batch_size: int, mesh) -> dict[str, jax.Array]:
    """A fixed batch of held-out faces (`held_out_faces`, else training faces) for eval and figures."""
    held_out = held_out_faces(store, config.data)
    indices = held_out if len(held_out) >= batch_size else select_faces(store, config.data)
    rows = np.random.default_rng(config.seed).choice(indices, size=batch_size, replace=len(indices) < batch_size)
    batch = {"image": store.gather(config.model.image_size, np.sort(rows))}
    return jax.device_put(batch, parallel.batch_sharding(mesh))


def _figure_images(kind: str, steps: Steps, state: TrainState, eval_batch: dict[str, jax.Array], fixed_z: jax.Array) -> dict[str, np.ndarray]:
    """The epoch's figures as uint8 host arrays: 'samples' (GAN, VAE) and 'originals' + 'reconstructions' (VAE, AE).

    Computed by every process of a multi-process run (the arrays span all of them); one writes them.
    """
    if kind == "dcgan":
        return {"samples": from_model_range(jax.jit(steps.generate)(steps.sampling_params(state), fixed_z))}
    originals = eval_batch["image"][:NUM_EVAL_IMAGES]
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    model = steps.model
    images = to_model_range(originals)
    shown = {"originals": np.asarray(originals)}
    if kind == "vae":
        mean, _ = model.apply(variables, images, method=model.encode)
        shown["reconstructions"] = from_model_range(model.apply(variables, mean, method=model.decode))
        shown["samples"] = from_model_range(model.apply(variables, fixed_z[:, : model.latent_dim], method=model.decode))
    else:
        shown["reconstructions"] = from_model_range(model.apply(variables, images))
    return shown


def _write_figures(kind: str, shown: dict[str, np.ndarray], workdir: Path, epoch: int, step: int, logger: _Logger) -> None:
    out = workdir / "figures"
    if "samples" in shown:
        title = f"epoch {epoch}, step {step}" if kind == "dcgan" else f"VAE prior samples, epoch {epoch}"
        figures.plot_image_grid(shown["samples"], out / f"samples_epoch{epoch:04d}.png", title=title)
    if "reconstructions" in shown:
        figures.plot_reconstructions(
            shown["originals"], {"reconstruction": shown["reconstructions"]},
            out / f"reconstructions_epoch{epoch:04d}.png", title=f"epoch {epoch}, step {step}",
        )
        logger.image(step, "reconstructions", figures.image_mosaic(np.concatenate([shown["originals"], shown["reconstructions"]])))
    else:
        logger.image(step, "samples", figures.image_mosaic(shown["samples"]))


def resolve_steps_per_dispatch(requested: int, backend: str) -> int:
    """`requested`, or for 0 (auto): 1 on CPU, 10 on accelerators.

    Fusing steps in one `lax.scan` removes per-step dispatch on GPU/TPU, but XLA:CPU runs the
    convolutions inside a scan body several times slower than the same step dispatched alone
    (`python -m gan_arith.bench` shows it; jax-ml/jax#12868), so CPU runs dispatch one step at a time.
    """
    if requested:
        return requested
    return 1 if backend == "cpu" else 10


def _mean_metrics(stacked: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(np.mean(values)) for name, values in stacked.items()}


def _run_data(
    config: ml_collections.ConfigDict, open_store: OpenStore, batch_size: int, mesh: Mesh
) -> tuple[FaceStore, str, np.ndarray, Any, str]:
    """The run's store (`open_store()`), its description, the selected faces, and the input pipeline over
    them with its name."""
    store, source = parallel.first_process_first(open_store, "face store")
    indices = select_faces(store, config.data)
    if len(indices) < batch_size:
        raise InputError(
            f"{len(indices)} faces selected (config.data.query/partition/max_faces), fewer than the {batch_size} real "
            f"faces one step of config.batch_size={config.batch_size} reads"
        )
    data, pipeline = _pipeline(config, store, indices, batch_size, mesh)
    return store, source, indices, data, pipeline


def train(
    config: ml_collections.ConfigDict, workdir: str | Path, open_store: OpenStore,
    added_metrics: Mapping[str, MetricFactory] | None = None,
) -> dict[str, Any]:
    """Train (or resume) the run described by `config` in `workdir` on the store `open_store()` returns;
    returns a summary dict.

    `open_store()` is called once the config is checked and the workdir accepted, so a refused run makes no
    store (preparing one takes minutes). `added_metrics` are eval metrics the caller can add, by name;
    the one `config.best_metric` names is measured at every evaluation.
    """
    added_metrics = added_metrics or {}
    parallel.initialize_distributed()
    # Bad settings fail here, before anything is written: the numbers, the model's own checks (shapes
    # traced without compute), then the named choices (against the metrics the eval step and the caller log).
    check_train_config(config)
    check_model_config(config)
    mesh = parallel.make_mesh()
    compiler_options = parallel.step_compiler_options(config)
    steps = build_steps(config, parallel.batch_sharding(mesh))
    batch_size = steps.data_batch_size(config.batch_size)
    parallel.check_batch_size(config.batch_size, batch_size, mesh)
    state_shapes = abstract_state(steps, config.model.image_size, parallel.replicated(mesh))
    size = config.model.image_size
    eval_batch_spec = {"image": jax.ShapeDtypeStruct((batch_size, size, size, 3), np.uint8)}
    check_run_choices(
        config, jax.eval_shape(steps.eval_step, state_shapes, eval_batch_spec, jax.random.key(0)), added_metrics
    )

    workdir = Path(workdir)
    made_workdir = not workdir.exists()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        parallel.check_shared_directory(workdir)
        _check_resumable(workdir, config)
        store, source, indices, data, pipeline = _run_data(config, open_store, batch_size, mesh)
    except InputError:
        if made_workdir:  # a refused run leaves no empty directory behind (rmdir refuses a non-empty one)
            with contextlib.suppress(OSError):
                workdir.rmdir()
        raise
    # Every process computes; the first writes the files and prints (they would be the same on all).
    lead = jax.process_index() == 0
    console = sys.stderr if lead else open(os.devnull, "w")
    if lead:
        save_config(workdir, config)

    checkpoints = Checkpoints(
        workdir / "checkpoints", keep=config.keep_checkpoints, best_metric=config.best_metric, best_mode=config.best_mode
    )
    state = checkpoints.restore(state_shapes)
    resumed = state is not None
    steps_per_epoch = data.steps_per_epoch
    total_steps = steps_per_epoch * config.num_epochs
    # Again, now that the run's length is known: the learning-rate schedule spans it (same state shapes).
    steps = build_steps(config, parallel.batch_sharding(mesh), total_steps)
    summary_file = workdir / "summary.json"
    if resumed and int(state.step) >= total_steps and summary_file.exists():
        checkpoints.close()
        print(f"{workdir}: already trained for {int(state.step)} steps ({int(state.step) // steps_per_epoch} epochs); "
              f"its summary is {summary_file} (raise --config.num_epochs to train on)", file=console)
        if not lead:
            console.close()
        return json.loads(summary_file.read_text())
    if state is None:
        state = parallel.put_replicated(steps.init(jax.random.key(config.seed), config.model.image_size), mesh)
    train_steps = parallel.compile_train_steps(steps.train_step, mesh, compiler_options)
    eval_step = parallel.compile_eval_step(steps.eval_step, mesh, compiler_options)
    step_rng = jax.random.fold_in(jax.random.key(config.seed), 1)
    eval_rng = jax.random.fold_in(jax.random.key(config.seed), 2)
    latent_dim = config.model.latent_dim
    fixed_z = jax.random.normal(jax.random.fold_in(jax.random.key(config.seed), 3), (config.num_samples, latent_dim))
    eval_batch = _eval_batch(store, config, batch_size, mesh)
    make_metric = added_metrics.get(config.best_metric)
    added_metric = make_metric(store, steps) if make_metric is not None else None

    steps_per_dispatch = resolve_steps_per_dispatch(config.steps_per_dispatch, jax.default_backend())
    if steps_per_dispatch > 1 and jax.default_backend() == "cpu":
        print(f"note: steps_per_dispatch={steps_per_dispatch} fuses steps in a lax.scan, which XLA:CPU runs 5-27x "
              f"slower (jax-ml/jax#12868); 0 (auto) dispatches one step at a time on CPU", file=console)
    start_step = int(state.step)
    per_step = (f"{batch_size} real faces (batch {config.batch_size}: + {batch_size} generated)"
                if config.model.kind == "dcgan" else f"{batch_size} faces")
    print(
        f"{config.model.kind}: {len(indices)} faces from {source}, {pipeline} pipeline, {mesh.size} device(s) "
        f"({jax.default_backend()}), {steps_per_epoch} steps/epoch of {per_step}, {config.num_epochs} epochs"
        + (f"; resuming at step {start_step}" if resumed else "")
        + (f"; {jax.process_count()} processes" if jax.process_count() > 1 else "")
        + ("; XLA fuses convolutions into cuDNN graphs (config.conv_fusion)" if compiler_options else ""),
        file=console,
    )
    logger = _Logger(workdir, config.tensorboard, start_step, write=lead)
    last_eval: dict[str, float] = {}
    start_time = time.monotonic()
    run_pace = Pace()  # from the first dispatch on: compiling is not the pace

    def report(progress: Progress, epoch: int, step: int, num_steps: int, stacked: dict[str, jax.Array]) -> None:
        # The one host sync per dispatch: the metrics of all its fused steps come back together.
        metrics = _mean_metrics(jax.device_get(stacked))
        if not all(math.isfinite(v) for v in metrics.values()):
            raise DivergenceError(
                f"non-finite loss in steps {step - num_steps + 1}..{step} (epoch {epoch + 1}): {metrics}. "
                f"The last good checkpoint in {workdir / 'checkpoints'} is kept; lower the learning "
                f"rate or use float32 and re-run."
            )
        logger.scalars(step, "train", metrics, epoch=epoch + 1)
        shown = {k: v for k, v in metrics.items() if k in PROGRESS_METRICS}
        # The whole run's remaining time at this invocation's pace, evaluations included.
        run_pace.add(num_steps)
        shown["run_ETA"] = format_eta(total_steps - step, run_pace.rate)
        progress.update(num_steps, num_steps * batch_size, shown)

    try:
        for epoch in range(start_step // steps_per_epoch, config.num_epochs):
            step_in_epoch = int(state.step) - epoch * steps_per_epoch
            progress = Progress(
                steps_per_epoch, label=f"epoch {epoch + 1}/{config.num_epochs}", unit="img", done=step_in_epoch,
                stream=console,
            )
            # A dispatch's metrics are read after the next dispatch is queued, so the device never waits
            # for the host's fetch, logging and next dispatch (docs/benchmarks.md, the seed's run end to end).
            pending: tuple[int, int, dict[str, jax.Array]] | None = None
            while step_in_epoch < steps_per_epoch:
                num_steps = min(steps_per_dispatch, steps_per_epoch - step_in_epoch)
                batches = data.stacked_batches(epoch, step_in_epoch, num_steps)
                state, stacked = train_steps(state, batches, step_rng)
                for metric in jax.tree.leaves(stacked):
                    metric.copy_to_host_async()
                step_in_epoch += num_steps
                if pending is not None:
                    report(progress, epoch, *pending)
                # epoch * steps_per_epoch + step_in_epoch = state.step, without a device read
                pending = (epoch * steps_per_epoch + step_in_epoch, num_steps, stacked)
            if pending is not None:
                report(progress, epoch, *pending)
            progress.close()
            finished = epoch + 1 == config.num_epochs
            if (epoch + 1) % config.eval_every_epochs == 0 or finished:
                last_eval = {k: float(v) for k, v in jax.device_get(eval_step(state, eval_batch, eval_rng)).items()}
                if added_metric is not None:
                    last_eval[config.best_metric] = added_metric(state)
                logger.scalars(int(state.step), "eval", last_eval, epoch=epoch + 1)
                images = _figure_images(config.model.kind, steps, state, eval_batch, fixed_z)
                if lead:
                    _write_figures(config.model.kind, images, workdir, epoch + 1, int(state.step), logger)
                checkpoints.save(state, last_eval)
                print(f"epoch {epoch + 1}: eval " + "  ".join(f"{k} {v:.4g}" for k, v in last_eval.items()), file=console)
    finally:
        checkpoints.wait()
        checkpoints.close()
        logger.close()
        if not lead:
            console.close()
    elapsed = time.monotonic() - start_time
    summary = {
        "workdir": str(workdir), "source": source, "pipeline": pipeline, "devices": mesh.size,
        "steps": int(state.step), "total_steps": total_steps, "resumed_from": start_step if resumed else None,
        "seconds": round(elapsed, 1), "eval": last_eval,
    }
    if lead:
        write_json(summary, summary_file, indent=2)
    return summary
