"""The seed's DCGAN (vector_arithmetic_with_gan.md): 80×80×3 faces from a 100-d latent.

At the defaults the parameter counts equal the seed's Keras tables: generator 1,381,891,
discriminator 1,651,841. `width` and `image_size` scale the same design down for CPU runs.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_arith.models.layers import (
    BIAS_INIT, KERNEL_INIT, ConvTransposeImpl, ConvTranspose2x, num_doublings, rgb_conv,
)

LEAKY_SLOPE = 0.2
BASE_SIZE = 5


class Generator(nn.Module):
    """latent [B, latent_dim] -> images [B, S, S, 3] in [-1, 1] (float32 whatever the compute dtype)."""

    latent_dim: int = 100
    width: int = 128
    image_size: int = 80
    dtype: Any = jnp.float32
    conv_transpose: ConvTransposeImpl = "phase"

    @nn.compact
    def __call__(self, z_bl: jax.Array) -> jax.Array:
        if z_bl.ndim != 2 or z_bl.shape[-1] != self.latent_dim:
            raise ValueError(f"Generator expects latents of shape [B, {self.latent_dim}], got {z_bl.shape}")
        dense = dict(kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)
        x = nn.Dense(BASE_SIZE * BASE_SIZE * self.width, **dense)(z_bl)
        x = nn.leaky_relu(x, LEAKY_SLOPE)
        x = x.reshape(-1, BASE_SIZE, BASE_SIZE, self.width)
        for _ in range(num_doublings(self.image_size, BASE_SIZE)):
            x = ConvTranspose2x(self.width, 4, impl=self.conv_transpose, dtype=self.dtype)(x)
            x = nn.leaky_relu(x, LEAKY_SLOPE)
        # rgb_conv: on GPUs a matrix product, where cuDNN is slow with 3 output channels.
        x = nn.Conv(3, (5, 5), padding="SAME", conv_general_dilated=rgb_conv, **dense)(x)
        return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
    """images [B, S, S, 3] in [-1, 1] -> real/fake logits [B] (float32); sigmoid(logit) = P(real)."""

    width: int = 128
    image_size: int = 80
    dropout_rate: float = 0.4
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images_bhwc: jax.Array, *, train: bool = False) -> jax.Array:
        if images_bhwc.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(
                f"Discriminator expects images [B, {self.image_size}, {self.image_size}, 3], got {images_bhwc.shape}"
            )
        conv = dict(padding="SAME", kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)
        # rgb_conv: on GPUs a matrix product, where cuDNN is slow with 3 input channels.
        x = nn.Conv(self.width, (5, 5), conv_general_dilated=rgb_conv, **conv)(images_bhwc)
        x = nn.leaky_relu(x, LEAKY_SLOPE)
        for _ in range(num_doublings(self.image_size, BASE_SIZE)):
            x = nn.Conv(self.width, (5, 5), strides=(2, 2), **conv)(x)
            x = nn.leaky_relu(x, LEAKY_SLOPE)
        x = x.reshape(x.shape[0], -1)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(1, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)(x)
        return x[:, 0].astype(jnp.float32)
