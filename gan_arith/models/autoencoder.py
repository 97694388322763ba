"""The seed's accordion autoencoder V1 (vector_arithmetic_with_vae.md): two stacked conv encoder/decoder
blocks at 128×128×3, 1,635,846 parameters of which 1,024 are BatchNorm statistics."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_arith.models.layers import BIAS_INIT, KERNEL_INIT, ConvTransposeImpl, ConvTranspose2x

ENCODER_FILTERS = (128, 128, 256)
DECODER_FILTERS = (128, 64, 3)


class AccordionBlock(nn.Module):
    """Three stride-2 3×3 convolutions down, BatchNorm, three stride-2 3×3 transposed convolutions up."""

    dtype: Any = jnp.float32
    conv_transpose: ConvTransposeImpl = "phase"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        layer = dict(kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)
        for filters in ENCODER_FILTERS:  # conv2d .. conv2d_2 (conv2d_3 .. conv2d_5 in the second block)
            x = nn.relu(nn.Conv(filters, (3, 3), strides=(2, 2), padding="SAME", **layer)(x))
        x = nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3, dtype=self.dtype)(x)
        for features in DECODER_FILTERS:  # conv2d_transpose .. conv2d_transpose_2
            x = ConvTranspose2x(features, 3, impl=self.conv_transpose, dtype=self.dtype)(x)
            # The last layer of each block emits an image, so the second block reads what the first wrote.
            x = nn.relu(x) if features != 3 else jnp.tanh(x)
        return x


class AccordionAE(nn.Module):
    """images [B, S, S, 3] in [-1, 1] -> reconstructions, same shape, float32. S must be a multiple of 8."""

    image_size: int = 128
    dtype: Any = jnp.float32
    conv_transpose: ConvTransposeImpl = "phase"

    @nn.compact
    def __call__(self, images_bhwc: jax.Array, train: bool = False) -> jax.Array:
        if images_bhwc.shape[1:] != (self.image_size, self.image_size, 3) or self.image_size % 8:
            raise ValueError(
                f"AccordionAE expects images [B, {self.image_size}, {self.image_size}, 3] with a size divisible "
                f"by 8, got {images_bhwc.shape}"
            )
        x = AccordionBlock(self.dtype, self.conv_transpose)(images_bhwc, train)
        x = AccordionBlock(self.dtype, self.conv_transpose)(x, train)
        return x.astype(jnp.float32)
