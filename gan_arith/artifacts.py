"""What the experiments start from: face stores, attribute classifiers, the Fréchet metric, trained
runs, resolved here and handed to the training loop and the latent tools.

`train(config, workdir)` trains (or resumes) a run on the face store `config.data` names, with the
GAN's Fréchet distance as an eval metric it may keep its best checkpoint by.
`load_or_train(run_dir, train_config)` loads the trained run in `run_dir` (finishing a stopped one
first), or — when there is none — trains one there first with `train_config` (CPU-scaled on a host
without an accelerator), saying so.
`run_store_and_classifier(config)` adds the run's face store and its attribute classifier.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections

from gan_arith.cli import command_line_fields
from gan_arith.config import scale_for_host
from gan_arith.data.selection import held_out_faces, select_faces
from gan_arith.data.store import FaceStore
from gan_arith.data.stores import resolve_store
from gan_arith.errors import InputError
from gan_arith.evaluation.frechet import GeneratorFrechet
from gan_arith.evaluation.scorer import AttributeScorer, classifier_attributes, load_or_train_classifier
from gan_arith.evaluation.classifier_network import MIN_IMAGE_SIZE
from gan_arith.runs import TrainedRun, load_run
from gan_arith.train import loop
from gan_arith.train.checkpoint import CONFIG_FILE, has_checkpoint, load_config
from gan_arith.train.state import TrainState
from gan_arith.train.steps import Steps


def train(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Train (or resume) the run described by `config` in `workdir` (`gan_arith.train.loop.train`); returns
    its summary dict.

    Its faces are the store `config.data` names (`resolve_store`: opened, prepared or rendered); a GAN
    run may keep its best checkpoint by the "frechet" metric (`frechet_metric`).
    """
    gan = config.model.kind == "dcgan"
    if gan and config.best_metric == "frechet":
        _check_frechet_choices(config)

    def open_store() -> tuple[FaceStore, str]:
        store, source = resolve_store(config.data, config.model.image_size, config.seed)
        if config.best_metric == "frechet":
            _check_frechet_store(store)  # before the faces go to the devices and the config is saved
        return store, source

    return loop.train(config, workdir, open_store, {"frechet": frechet_metric(config)} if gan else None)


def _check_frechet_choices(config: ml_collections.ConfigDict) -> None:
    """Raise an InputError unless the Fréchet metric can be a GAN run's best metric with `config`'s choices."""
    if config.best_mode != "min" or config.model.image_size < MIN_IMAGE_SIZE:
        raise InputError(
            f"best_metric='frechet' needs best_mode='min' and images of at least {MIN_IMAGE_SIZE}px (its attribute "
            f"classifier's minimum), got best_mode={config.best_mode!r}, image_size={config.model.image_size}; "
            f"use --config.best_metric=g_loss"
        )


def _check_frechet_store(store: FaceStore) -> None:
    """Raise an InputError unless `store` can train the Fréchet metric's attribute classifier."""
    train_faces, test_faces = len(store.select(None, "train")), len(store.select(None, "test"))
    if not store.attribute_names or not train_faces or not test_faces:
        has = f"{train_faces} train and {test_faces} test faces" if store.attribute_names else "no attribute labels"
        raise InputError(
            f"best_metric='frechet' measures samples with an attribute classifier trained on a store's labelled "
            f"train and test faces, and {store.root} has {has}; use --config.best_metric=g_loss"
        )


def frechet_metric(config: ml_collections.ConfigDict) -> loop.MetricFactory:
    """The GAN's "frechet" eval metric for `gan_arith.train.loop.train`: generated faces against held-out
    real ones (`held_out_faces`, else training faces) in the feature space of the attribute classifier,
    which is trained on the run's store on first use."""

    def make(store: FaceStore, steps: Steps) -> Callable[[TrainState], float]:
        size = config.model.image_size
        scorer = load_or_train_classifier(store, size, config.classifier_dir, steps=config.classifier_steps)
        held_out = held_out_faces(store, config.data)
        rows = held_out if len(held_out) >= 2 else select_faces(store, config.data)
        metric = GeneratorFrechet.from_real_images(
            scorer.features, steps.generate,
            store.gather(size, rows[: config.num_fd_samples]), jax.random.fold_in(jax.random.key(config.seed), 4),
            config.num_fd_samples, config.model.latent_dim,
        )
        return lambda state: metric(steps.sampling_params(state))

    return make


def load_or_train(
    run_dir: str | Path, train_config: ml_collections.ConfigDict, flag: str = "config.train"
) -> TrainedRun:
    """The trained run in `run_dir` (best checkpoint), which must be of `train_config`'s model kind.

    A run that was stopped before it finished is finished first with its own saved config; a
    directory without a run gets one trained with `train_config` (CPU-scaled without an accelerator;
    the fields the user set on the command line under `--<flag>.` are kept).
    """
    run_dir = Path(run_dir)
    kind = train_config.model.kind
    saved = load_config(run_dir) if (run_dir / CONFIG_FILE).exists() else None
    if saved is not None and saved.model.kind != kind:
        run_option = flag.removesuffix(".train") + ".run"
        raise InputError(f"{run_option}={run_dir} holds a {saved.model.kind} run; this experiment needs a {kind} run")
    given = command_line_fields(sys.argv, flag)
    if saved is not None and has_checkpoint(run_dir) and given:
        # The run keeps the config it was started with; a changed setting needs a new --<run> directory.
        print(f"{run_dir} holds a run already: ignoring {', '.join(f'--{flag}.{name}' for name in sorted(given))} "
              f"(it keeps its own config)", file=sys.stderr)
    if not (run_dir / "summary.json").exists():
        if saved is not None and has_checkpoint(run_dir):
            config = saved
            print(f"{run_dir}: an unfinished training run; finishing it with its own config first", file=sys.stderr)
        else:
            config = ml_collections.ConfigDict(train_config.to_dict())
            # The user's own --<flag>.* fields win over the CPU scaling, as for a training command.
            changes = scale_for_host(config, jax.default_backend(), keep=given)
            print(
                f"No finished training run in {run_dir}: training a {kind} there first"
                + (f" (CPU-scaled: {'; '.join(changes)})" if changes else ""),
                file=sys.stderr,
            )
        train(config, run_dir)
    return load_run(run_dir)


def trained_run(config: ml_collections.ConfigDict, kind: str = "") -> TrainedRun:
    """The trained run of an experiment config from `gan_arith.config.analysis_config`: `config.run`,
    or `config[kind].run` for experiments over several kinds (`load_or_train` with that section's
    `train` config and command-line fields)."""
    section = config[kind] if kind else config
    return load_or_train(section.run, section.train, f"config.{kind}.train" if kind else "config.train")


def run_store(run: TrainedRun) -> FaceStore:
    """The face store the run was trained on (same resolution rules as training)."""
    return resolve_store(run.config.data, run.image_size, run.config.seed)[0]


def run_store_and_classifier(
    config: ml_collections.ConfigDict, kind: str = "", check: Callable[[FaceStore, Sequence[str]], None] | None = None
) -> tuple[TrainedRun, FaceStore, AttributeScorer]:
    """For an experiment config: its trained run (`trained_run`), the run's face store, and the
    attribute classifier for that store at the run's image size. `check(store, classifier attribute
    names)` runs before the classifier is loaded or trained (minutes), for the user's attribute names."""
    run = trained_run(config, kind)
    store = run_store(run)
    if check is not None:
        check(store, classifier_attributes(store))
    scorer = load_or_train_classifier(store, run.image_size, config.classifier_dir, steps=config.classifier_steps)
    return run, store, scorer
