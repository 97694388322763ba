"""The DCGAN lowered for CUDA GPUs (`fast.dcgan`): the plain models' parameter trees and functions,
computed in forms cuDNN and XLA's GPU compiler run fast. `config.model.impl` chooses: 'plain'
(`models.dcgan`), 'fast' (this package, correct anywhere but slow off CUDA) or 'auto' (fast on CUDA
GPUs). The VAE and the autoencoder have one form."""

from __future__ import annotations

import jax
import jax.extend

from gan_arith.models import dcgan as plain
from gan_arith.models.fast import dcgan as fast

IMPLS = ("auto", "plain", "fast")


def uses_fast(impl: str) -> bool:
    """Whether `impl` ('auto', 'plain' or 'fast') selects this package here: 'auto' on CUDA GPUs."""
    if impl not in IMPLS:
        raise ValueError(f"model impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    on_cuda = jax.default_backend() == "gpu" and "cuda" in jax.extend.backend.backends()
    return impl == "fast" or (impl == "auto" and on_cuda)


def dcgan_modules(impl: str) -> tuple[type[plain.Generator], type[plain.Discriminator]]:
    """The DCGAN's generator and discriminator classes for `impl` (`uses_fast`)."""
    return (fast.Generator, fast.Discriminator) if uses_fast(impl) else (plain.Generator, plain.Discriminator)
