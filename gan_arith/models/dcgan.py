"""The seed's DCGAN (vector_arithmetic_with_gan.md): 80×80×3 faces from a 100-d latent.

At the defaults the parameter counts equal the seed's Keras tables: generator 1,381,891,
discriminator 1,651,841. `width` and `image_size` scale the same design down for CPU runs.
"""

from __future__ import annotations

from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_arith.models.layers import (
    BIAS_INIT, KERNEL_INIT, ConvFromPhases, ConvTransposeImpl, ConvTranspose2x, num_doublings, rgb_conv,
)

LEAKY_SLOPE = 0.2
BASE_SIZE = 5


def _leaky(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, LEAKY_SLOPE)


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
        x = _leaky(x)
        x = x.reshape(-1, BASE_SIZE, BASE_SIZE, self.width)
        doublings = num_doublings(self.image_size, BASE_SIZE)
        for index in range(doublings):
            # The last doubling's phases go to the RGB layer uninterleaved: on GPUs it runs in the
            # phase domain as matrix products (ConvFromPhases), where cuDNN is slow with 3 output channels.
            x = ConvTranspose2x(
                self.width, 4, impl=self.conv_transpose, dtype=self.dtype, activation=_leaky,
                interleave=index < doublings - 1,
            )(x)
        # Named as the nn.Conv it replaces, so parameters and checkpoints keep their paths.
        x = ConvFromPhases(3, 5, dtype=self.dtype, name="Conv_0")(x)
        return jnp.tanh(x.astype(jnp.float32))


DiscriminatorPadding = Literal["same", "symmetric"]


class Discriminator(nn.Module):
    """images [B, S, S, 3] in [-1, 1] -> real/fake logits [B] (float32); sigmoid(logit) = P(real).

    `padding` of the stride-2 5×5 layers, both giving the seed's table (S -> S/2, same parameters):
    'same' is Keras' (the seed's code), 1 row/column before and 2 after; 'symmetric' is 2 and 2
    (PyTorch's padding=2), every window one pixel further up and left. On GPUs 'symmetric' saves
    work: cuDNN pads only symmetrically, so for 'same' XLA writes a padded copy of each layer's
    input and slices the input gradient out of an enlarged one. Measured on an H100: the seed's step
    +3.2% in float32, +1.0% in bfloat16 (docs/benchmarks.md).
    """

    width: int = 128
    image_size: int = 80
    dropout_rate: float = 0.4
    dtype: Any = jnp.float32
    padding: DiscriminatorPadding = "same"

    @nn.compact
    def __call__(self, images_bhwc: jax.Array, *, train: bool = False) -> jax.Array:
        if images_bhwc.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(
                f"Discriminator expects images [B, {self.image_size}, {self.image_size}, 3], got {images_bhwc.shape}"
            )
        if self.padding not in ("same", "symmetric"):
            raise ValueError(f"Discriminator padding must be 'same' or 'symmetric', got {self.padding!r}")
        conv = dict(kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)
        # rgb_conv: on GPUs a matrix product, where cuDNN is slow with 3 input channels.
        x = _leaky(nn.Conv(self.width, (5, 5), padding="SAME", conv_general_dilated=rgb_conv, **conv)(images_bhwc))
        strided_padding = "SAME" if self.padding == "same" else ((2, 2), (2, 2))
        for _ in range(num_doublings(self.image_size, BASE_SIZE)):
            x = _leaky(nn.Conv(self.width, (5, 5), strides=(2, 2), padding=strided_padding, **conv)(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(1, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)(x)
        return x[:, 0].astype(jnp.float32)
