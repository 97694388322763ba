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
