"""The seed's DCGAN (vector_arithmetic_with_gan.md): 80×80×3 faces from a 100-d latent.

At the defaults the parameter counts equal the seed's Keras tables: generator 1,381,891,
discriminator 1,651,841. `width` and `image_size` scale the same design down for CPU runs.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

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
MirrorSame = Literal["cuda", "always", "never"]
SYMMETRIC_PADDING = ((2, 2), (2, 2))  # of the stride-2 5×5 layers: PyTorch's padding=2


def _mirror_image(x_bhwc: jax.Array) -> jax.Array:
    return x_bhwc[:, ::-1, ::-1]


def _unchanged(x: jax.Array) -> jax.Array:
    return x


def _mirror_kernel(kernel_hwio: jax.Array) -> jax.Array:
    # On CUDA the barrier keeps XLA from folding the input gradient's kernel reversal into this one
    # (reverse of reverse): the gradient would no longer be the backward-input convolution cuDNN
    # runs, and XLA would lower it as a forward convolution over a dilated, padded copy.
    return jax.lax.platform_dependent(
        kernel_hwio,
        cuda=lambda k: jax.lax.optimization_barrier(k[::-1, ::-1]),
        default=lambda k: k[::-1, ::-1],
    )


class Discriminator(nn.Module):
    """images [B, S, S, 3] in [-1, 1] -> real/fake logits [B] (float32); sigmoid(logit) = P(real).

    `padding` of the stride-2 5×5 layers, both giving the seed's table (S -> S/2, same parameters):
    'same' is Keras' (the seed's code), 1 row/column before and 2 after; 'symmetric' is 2 and 2
    (PyTorch's padding=2), every window one pixel further up and left.

    cuDNN pads only symmetrically: for (1, 2) XLA writes a padded copy of each layer's input and
    slices the input gradient out of an enlarged one. On the image mirrored in both spatial axes,
    Keras' windows are exactly the (2, 2)-padded ones (a window over rows 2i-1..2i+3 of an even
    height N is, mirrored, rows 2j-2..2j+2 with j = N/2-1-i). So on CUDA 'same' runs mirrored: the
    image and every kernel mirrored, all layers padded symmetrically, the last feature map mirrored
    back — the same function and parameters at the cost of 'symmetric' (on an H100 'symmetric'
    measured +3.2% float32, +1.0% bfloat16 steps/s over the padded copies; docs/benchmarks.md).
    On CPUs the mirrored form is ~6% slower and XLA pads natively, so they run 'same' as it is.
    `mirror_same` ('cuda', 'always', 'never') overrides where; tests check the CUDA form on CPUs.
    """

    width: int = 128
    image_size: int = 80
    dropout_rate: float = 0.4
    dtype: Any = jnp.float32
    padding: DiscriminatorPadding = "same"
    mirror_same: MirrorSame = "cuda"

    def _where_mirrored(self, *args: jax.Array, mirrored: Callable[..., jax.Array], plain: Callable[..., jax.Array]) -> jax.Array:
        """`mirrored(*args)` where 'same' padding runs mirrored (see the class docstring), else `plain(*args)`."""
        if self.padding != "same" or self.mirror_same == "never":
            return plain(*args)
        if self.mirror_same == "always":
            return mirrored(*args)
        return jax.lax.platform_dependent(*args, cuda=mirrored, default=plain)

    def _layer_convolution(self, convolution: Callable[..., jax.Array], mirrored_padding: Any) -> Callable[..., jax.Array]:
        """`convolution` (the signature of `lax.conv_general_dilated`) for `nn.Conv`, run with a mirrored
        kernel and `mirrored_padding` where the layer's input is mirrored."""

        def layer_conv(lhs: jax.Array, rhs: jax.Array, window_strides: Any, padding: Any, **kwargs: Any) -> jax.Array:
            return self._where_mirrored(
                lhs, rhs,
                mirrored=lambda x, k: convolution(x, _mirror_kernel(k), window_strides, mirrored_padding, **kwargs),
                plain=lambda x, k: convolution(x, k, window_strides, padding, **kwargs),
            )

        return layer_conv

    @nn.compact
    def __call__(self, images_bhwc: jax.Array, *, train: bool = False) -> jax.Array:
        if images_bhwc.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(
                f"Discriminator expects images [B, {self.image_size}, {self.image_size}, 3], got {images_bhwc.shape}"
            )
        if self.padding not in ("same", "symmetric"):
            raise ValueError(f"Discriminator padding must be 'same' or 'symmetric', got {self.padding!r}")
        if self.mirror_same not in ("cuda", "always", "never"):
            raise ValueError(f"Discriminator mirror_same must be 'cuda', 'always' or 'never', got {self.mirror_same!r}")
        layer = dict(kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)
        x = self._where_mirrored(images_bhwc, mirrored=_mirror_image, plain=_unchanged)
        # rgb_conv: on GPUs the column shifts unfolded into 16 channels, where cuDNN is slow with 3. Stride 1,
        # 'SAME' is symmetric: mirrored, only the kernel changes.
        x = _leaky(nn.Conv(
            self.width, (5, 5), padding="SAME", conv_general_dilated=self._layer_convolution(rgb_conv, "SAME"), **layer
        )(x))
        strided_padding = "SAME" if self.padding == "same" else SYMMETRIC_PADDING
        for _ in range(num_doublings(self.image_size, BASE_SIZE)):
            x = _leaky(nn.Conv(
                self.width, (5, 5), strides=(2, 2), padding=strided_padding,
                conv_general_dilated=self._layer_convolution(jax.lax.conv_general_dilated, SYMMETRIC_PADDING), **layer,
            )(x))
        x = self._where_mirrored(x, mirrored=_mirror_image, plain=_unchanged)
        x = x.reshape(x.shape[0], -1)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(1, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)(x)
        return x[:, 0].astype(jnp.float32)
