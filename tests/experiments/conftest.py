"""The experiment tests' settings on the tiny trained runs (`tiny_runs`, in tests/conftest.py): one DCGAN and one VAE
on 160 synthetic faces at 40px, with a tiny classifier and judge."""

from pathlib import Path

import ml_collections
import pytest

# `tiny_runs` itself is in tests/conftest.py, shared with the explorer's tests: one fixture definition, so each
# pytest-xdist worker trains the runs once however its tests are spread over the two directories.


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory) -> Path:
    """One directory for the tiny attribute classifier, so it is trained once per session."""
    return tmp_path_factory.mktemp("classifier")


@pytest.fixture(scope="session")
def judge_dir(tmp_path_factory) -> Path:
    """One directory for the tiny attribute judge, so it is trained once per session."""
    return tmp_path_factory.mktemp("judge")


@pytest.fixture(scope="session")
def tiny_experiment_config(tiny_runs, classifier_dir, judge_dir):
    """configure(module, kind=None, **changes): the module's config pointed at the tiny runs.

    With `kind`, sets config.run/config.train (one-model experiments); without, config.<kind>.run/train
    for every kind the config has. A tiny classifier and judge (30 steps each) are shared through
    `classifier_dir` and `judge_dir`.
    """

    def configure(module, kind: str | None = None, **changes) -> ml_collections.ConfigDict:
        config = module.get_config()
        for name, (workdir, train_config) in tiny_runs.items():
            target = config if name == kind else config.get(name) if kind is None else None
            if target is not None:
                target.run, target.train = str(workdir), train_config
        if "classifier_dir" in config:
            config.update(classifier_dir=str(classifier_dir), classifier_steps=30)
        if "judge_dir" in config:
            config.update(judge_dir=str(judge_dir), judge_steps=30)
        config.update(changes)
        return config

    return configure
