"""The seed's DCGAN (vector_arithmetic_with_gan.md): 80×80×3 faces from a 100-d latent, layer by layer
as the seed's Keras tables list them. At the defaults the parameter counts are the seed's: generator
1,381,891, discriminator 1,651,841. `width` and `image_size` scale the same design down for CPU runs.
`gan_arith.models.fast` computes the same functions on the same parameters, faster on CUDA GPUs."""

from __future__ import annotations

import functools
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_arith.models.layers import (
    BIAS_INIT, KERNEL_INIT, Conv2x, Conv2xImpl, ConvTransposeImpl, ConvTranspose2x, num_doublings,
)

LEAKY_SLOPE = 0.2
BASE_SIZE = 5
DiscriminatorPadding = Literal["same", "symmetric"]
SYMMETRIC_PADDING = ((2, 2), (2, 2))  # of the stride-2 5×5 layers: PyTorch's padding=2
leaky_relu = functools.partial(nn.leaky_relu, negative_slope=LEAKY_SLOPE)


class Generator(nn.Module):
    """latent [B, latent_dim] -> images [B, S, S, 3] in [-1, 1] (float32 whatever the compute dtype)."""

    latent_dim: int = 100
    width: int = 128
    image_size: int = 80
    dtype: Any = jnp.float32
    conv_transpose: ConvTransposeImpl = "phase"

    def check_latents(self, z_bl: jax.Array) -> None:
        if z_bl.ndim != 2 or z_bl.shape[-1] != self.latent_dim:
            raise ValueError(f"Generator expects latents of shape [B, {self.latent_dim}], got {z_bl.shape}")

    @nn.compact
    def __call__(self, z_bl: jax.Array) -> jax.Array:
        self.check_latents(z_bl)
        layer = dict(kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)
        x = leaky_relu(nn.Dense(BASE_SIZE * BASE_SIZE * self.width, **layer)(z_bl))  # dense_1, leaky_re_lu_5
        x = x.reshape(-1, BASE_SIZE, BASE_SIZE, self.width)  # reshape
        # conv2d_transpose .. conv2d_transpose_3, each with its leaky_re_lu
        for _ in range(num_doublings(self.image_size, BASE_SIZE)):
            x = ConvTranspose2x(self.width, 4, impl=self.conv_transpose, dtype=self.dtype, activation=leaky_relu)(x)
        x = nn.Conv(3, (5, 5), padding="SAME", **layer)(x)  # conv2d_5
        return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
    """images [B, S, S, 3] in [-1, 1] -> real/fake logits [B] (float32); sigmoid(logit) = P(real).

    `padding` of the stride-2 5×5 layers, both giving the seed's table (S -> S/2, same parameters):
    'same' is Keras' (the seed's code), 1 row/column before and 2 after; 'symmetric' is 2 and 2
    (PyTorch's padding=2), every window one pixel further up and left: a different function.
    `conv_2x` is how those layers are computed (`Conv2x`: the same function and parameters either way).
    """

    width: int = 128
    image_size: int = 80
    dropout_rate: float = 0.4
    dtype: Any = jnp.float32
    padding: DiscriminatorPadding = "same"
    conv_2x: Conv2xImpl = "phase"

    def check_images(self, images_bhwc: jax.Array) -> None:
        size = self.image_size
        if images_bhwc.shape[1:] != (size, size, 3):
            raise ValueError(f"Discriminator expects images [B, {size}, {size}, 3], got {images_bhwc.shape}")
        if self.padding not in ("same", "symmetric"):
            raise ValueError(f"Discriminator padding must be 'same' or 'symmetric', got {self.padding!r}")

    @nn.compact
    def __call__(self, images_bhwc: jax.Array, *, train: bool = False) -> jax.Array:
        self.check_images(images_bhwc)
        layer = dict(kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)
        strided = "SAME" if self.padding == "same" else SYMMETRIC_PADDING
        x = leaky_relu(nn.Conv(self.width, (5, 5), padding="SAME", **layer)(images_bhwc))  # conv2d, leaky_re_lu
        for index in range(1, num_doublings(self.image_size, BASE_SIZE) + 1):  # conv2d_1 .. conv2d_4, each with its leaky_re_lu
            conv = Conv2x(self.width, 5, padding=strided, impl=self.conv_2x, dtype=self.dtype, name=f"Conv_{index}")
            x = leaky_relu(conv(x))
        x = x.reshape(x.shape[0], -1)  # flatten
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)  # dropout
        return nn.Dense(1, **layer)(x)[:, 0].astype(jnp.float32)  # dense

