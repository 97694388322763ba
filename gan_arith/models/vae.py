"""The seed's convolutional VAE, version 1 (vector_arithmetic_with_vae.md): 80×80×3 faces, 256-d latent.

Encoder 305,840 parameters (305,808 trainable + 32 BatchNorm statistics), decoder 203,251, as in
the seed's Keras tables.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_arith.models.layers import BIAS_INIT, KERNEL_INIT, ConvTransposeImpl, ConvTranspose2x, num_doublings

ENCODER_FILTERS = (128, 64, 32, 16)
BASE_SIZE = 5


def reparameterize(mean_bl: jax.Array, logvar_bl: jax.Array, rng: jax.Array) -> jax.Array:
    """z = μ + exp(½·logσ²)·ε with ε ~ N(0, I): a sample that stays differentiable in μ and logσ²."""
    eps = jax.random.normal(rng, mean_bl.shape, jnp.float32)
    return mean_bl + jnp.exp(0.5 * logvar_bl) * eps


def _filters(image_size: int, filters: tuple[int, ...] = ()) -> tuple[int, ...]:
    """`filters` when given, else the seed's sequence, shortened from the front for images smaller than 80×80."""
    if filters:
        return tuple(filters)
    return ENCODER_FILTERS[-num_doublings(image_size, BASE_SIZE) :] if image_size <= 80 else ENCODER_FILTERS


class Encoder(nn.Module):
    """images [B, S, S, 3] in [-1, 1] -> (mean, logvar), each [B, latent_dim] float32."""

    latent_dim: int = 256
    image_size: int = 80
    dtype: Any = jnp.float32
    filters: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, images_bhwc: jax.Array, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
        if images_bhwc.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"Encoder expects images [B, {self.image_size}, {self.image_size}, 3], got {images_bhwc.shape}")
        layer = dict(kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)
        x = images_bhwc
        for filters in _filters(self.image_size, self.filters):  # conv2d .. conv2d_3
            x = nn.relu(nn.Conv(filters, (3, 3), strides=(2, 2), padding="SAME", **layer)(x))
        # batch_normalization, with Keras' defaults: momentum 0.99, epsilon 1e-3.
        x = nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3, dtype=self.dtype)(x)
        x = x.reshape(x.shape[0], -1)  # flatten
        mean = nn.Dense(self.latent_dim, name="mean", **layer)(x)  # dense
        logvar = nn.Dense(self.latent_dim, name="logvar", **layer)(x)  # dense_1
        return mean.astype(jnp.float32), logvar.astype(jnp.float32)


class Decoder(nn.Module):
    """latent [B, latent_dim] -> images [B, S, S, 3] in [-1, 1] (float32)."""

    image_size: int = 80
    dtype: Any = jnp.float32
    conv_transpose: ConvTransposeImpl = "phase"
    filters: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, z_bl: jax.Array) -> jax.Array:
        filters = _filters(self.image_size, self.filters)
        x = nn.Dense(BASE_SIZE * BASE_SIZE * filters[-1], kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)(z_bl)
        x = nn.relu(x).reshape(-1, BASE_SIZE, BASE_SIZE, filters[-1])  # intermediate_decoder, reshape
        for features in (*reversed(filters[:-1]), 3):  # conv2d_transpose .. conv2d_transpose_3
            x = ConvTranspose2x(features, 3, impl=self.conv_transpose, dtype=self.dtype)(x)
            x = nn.relu(x) if features != 3 else x
        return jnp.tanh(x.astype(jnp.float32))


class VAE(nn.Module):
    """Encoder + decoder; `__call__` returns (reconstruction, mean, logvar) for one reparameterised sample."""

    latent_dim: int = 256
    image_size: int = 80
    dtype: Any = jnp.float32
    conv_transpose: ConvTransposeImpl = "phase"
    filters: tuple[int, ...] = ()

    def setup(self) -> None:
        self.encoder = Encoder(self.latent_dim, self.image_size, self.dtype, self.filters)
        self.decoder = Decoder(self.image_size, self.dtype, self.conv_transpose, self.filters)

    def encode(self, images_bhwc: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        return self.encoder(images_bhwc, train=train)

    def decode(self, z_bl: jax.Array) -> jax.Array:
        return self.decoder(z_bl)

    def __call__(
        self, images_bhwc: jax.Array, rng: jax.Array, train: bool = False
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        mean, logvar = self.encode(images_bhwc, train)
        return self.decode(reparameterize(mean, logvar, rng)), mean, logvar
