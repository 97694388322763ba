"""Tiny trained runs shared by the experiment tests: one DCGAN and one VAE on 160 synthetic faces at 40px."""

from pathlib import Path

import ml_collections
import pytest

from experiments import dcgan_celeba, vae_celeba
from gan_arith import artifacts

TINY_SIZE = 40  # the attribute classifier needs >= 32px; the DCGAN 5·2^k


def tiny_train_config(module, root: Path) -> ml_collections.ConfigDict:
    config = module.get_config()
    config.scale_for_cpu = False
    config.model.update(image_size=TINY_SIZE, width=8, latent_dim=8)
    config.data.update(default_store=str(root / "no_store"), synthetic_dir=str(root / "synthetic"), synthetic_faces=160)
    config.update(batch_size=16, num_epochs=1, eval_every_epochs=1, steps_per_dispatch=0, num_samples=8, tensorboard=False)
    if config.model.kind == "dcgan":
        config.best_metric = "g_loss"  # the Fréchet metric has its own test (test_quality_experiments)
    return config


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, tuple[Path, ml_collections.ConfigDict]]:
    """{kind: (trained workdir, its train config)} for 'dcgan' and 'vae', trained once per session."""
    root = tmp_path_factory.mktemp("tiny_runs")
    runs = {}
    for module in (dcgan_celeba, vae_celeba):
        config = tiny_train_config(module, root)
        workdir = root / config.model.kind
        artifacts.train(config, workdir)
        runs[config.model.kind] = (workdir, config)
    return runs


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
