"""Shared test settings: CPU only, small thread pools, and where the shared CelebA subset lives."""

import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GAN_ARITH_COMPILATION_CACHE", "")  # command-line runs in tests leave ~/.cache alone

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CELEBA = REPO_ROOT.parent / "shared" / "data" / "celeba"
