"""Shared test settings: CPU only, small thread pools, and where the shared CelebA subset lives."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GAN_ARITH_COMPILATION_CACHE", "")  # command-line runs in tests leave ~/.cache alone

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CELEBA = REPO_ROOT.parent / "shared" / "data" / "celeba"


@pytest.fixture
def exact_products():
    """float32 products at full precision: on GPUs JAX's default is TF32 (a 10-bit mantissa), under
    which two exact formulations of one convolution differ by ~1e-4 relative (seen on an H100)."""
    import jax  # here, so that the environment above is set before JAX is first imported

    with jax.default_matmul_precision("highest"):
        yield


TINY_SIZE = 40  # the attribute classifier needs >= 32px; the DCGAN 5·2^k


def tiny_train_config(module, root: Path):
    config = module.get_config()
    config.scale_for_cpu = False
    config.model.update(image_size=TINY_SIZE, width=8, latent_dim=8)
    config.data.update(default_store=str(root / "no_store"), synthetic_dir=str(root / "synthetic"), synthetic_faces=160)
    config.update(batch_size=16, num_epochs=1, eval_every_epochs=1, steps_per_dispatch=0, num_samples=8, tensorboard=False)
    if config.model.kind == "dcgan":
        config.best_metric = "g_loss"  # the Fréchet metric has its own test (test_quality_experiments)
    return config


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict:
    """{kind: (trained workdir, its train config)} for 'dcgan' and 'vae', trained once per session (per xdist worker):
    one DCGAN and one VAE on 160 synthetic faces at 40px, for the experiment and explorer tests (all marked slow)."""
    from experiments import dcgan_celeba, vae_celeba  # here: the environment above is set before JAX's import
    from gan_arith import artifacts

    root = tmp_path_factory.mktemp("tiny_runs")
    runs = {}
    for module in (dcgan_celeba, vae_celeba):
        config = tiny_train_config(module, root)
        workdir = root / config.model.kind
        artifacts.train(config, workdir)
        runs[config.model.kind] = (workdir, config)
    return runs
