"""What the latent and evaluation experiments start from: a trained generative model.

`load_or_train(run_dir, train_config)` loads the trained run in `run_dir` (finishing a stopped one
first), or — when there is none — trains one there first with `train_config` (CPU-scaled on a host
without an accelerator), saying so.
`run_store_and_classifier(config)` adds the run's face store and its attribute classifier.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import ml_collections

from gan_arith.config import command_line_fields, scale_for_host
from gan_arith.data.sources import resolve_store
from gan_arith.data.store import FaceStore
from gan_arith.errors import InputError
from gan_arith.evaluation.scorer import AttributeScorer, classifier_attributes, load_or_train_classifier
from gan_arith.train.checkpoint import CONFIG_FILE, TrainedRun, has_checkpoint, load_config, load_run
from gan_arith.train.loop import train


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
