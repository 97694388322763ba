"""The explorer's tests run on the tiny trained runs of the experiment tests (a DCGAN and a VAE on synthetic
faces), with a tiny attribute classifier saved for their store so that faces carry readings and the GAN
has attribute directions."""

import pytest

from gan_arith.evaluation.scorer import load_or_train_classifier

SETTINGS = {"grid_size": 24, "classifier_steps": 30, "judge_steps": 30, "direction_faces": 200}


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    """Explorer settings for the tiny runs: small grids, and a classifier (trained here) but no judge."""
    from gan_arith.explore.explorer import Settings

    directory = tmp_path_factory.mktemp("explore")
    return Settings(classifier_dir=str(directory / "classifier"), judge_dir=str(directory / "judge"), **SETTINGS)


@pytest.fixture(scope="session")
def explorers(tiny_runs, settings):
    """{kind: Explorer} on the tiny 'dcgan' and 'vae' runs, sharing one saved 30-step classifier."""
    from gan_arith.explore.explorer import Explorer

    explorers = {kind: Explorer.open(workdir, settings) for kind, (workdir, _) in tiny_runs.items()}
    store = explorers["dcgan"].store
    load_or_train_classifier(store, explorers["dcgan"].run.image_size, settings.classifier_dir,
                             steps=settings.classifier_steps)
    return explorers
