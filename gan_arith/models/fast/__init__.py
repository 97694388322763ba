"""The DCGAN lowered for CUDA GPUs (`fast.dcgan`): the plain models' parameter trees and functions,
computed in forms cuDNN and XLA's GPU compiler run fast. `config.model.impl` chooses: 'plain'
(`models.dcgan`), 'fast' (this package, correct anywhere but slow off CUDA) or 'auto' (fast on CUDA
GPUs). The VAE and the autoencoder have one form."""

from __future__ import annotations

import jax
import jax.extend

from gan_arith.models import dcgan
from gan_arith.models.fast import dcgan as fast_dcgan

IMPLS = ("auto", "plain", "fast")


def uses_fast(impl: str) -> bool:
    """Whether `impl` ('auto', 'plain' or 'fast') selects this package here: 'auto' on CUDA GPUs."""
    if impl not in IMPLS:
        raise ValueError(f"model impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    return impl == "fast" or (impl == "auto" and jax.default_backend() == "gpu" and "cuda" in jax.extend.backend.backends())


def dcgan_modules(impl: str) -> tuple[type[dcgan.Generator], type[dcgan.Discriminator]]:
    """The DCGAN's generator and discriminator classes for `impl` (`uses_fast`)."""
    return (fast_dcgan.Generator, fast_dcgan.Discriminator) if uses_fast(impl) else (dcgan.Generator, dcgan.Discriminator)
