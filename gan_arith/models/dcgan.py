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
    BIAS_INIT, KERNEL_INIT, ConvFromPhases, ConvTransposeImpl, ConvTranspose2x, leaky_relu, num_doublings,
    unfold_columns,
)

LEAKY_SLOPE = 0.2
BASE_SIZE = 5


def _leaky(x: jax.Array) -> jax.Array:
    return leaky_relu(x, LEAKY_SLOPE)


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
DISCRIMINATOR_KERNEL = 5


def _conv(x_bhwc: jax.Array, kernel_hwio: jax.Array, stride: int, padding: Any) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x_bhwc, kernel_hwio, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _mirror_image(x_bhwc: jax.Array) -> jax.Array:
    return x_bhwc[:, ::-1, ::-1]


def _mirror_kernel(kernel_hwio: jax.Array, *, on_cuda: bool) -> jax.Array:
    # On CUDA the barrier keeps XLA from folding the input gradient's kernel reversal into this one
    # (reverse of reverse): the gradient would no longer be the backward-input convolution cuDNN
    # runs, and XLA would lower it as a forward convolution over a dilated, padded copy.
    mirrored = kernel_hwio[::-1, ::-1]
    return jax.lax.optimization_barrier(mirrored) if on_cuda else mirrored


class _ConvParams(nn.Module):
    """The parameters of an `nn.Conv` (same names, shapes, initialisers), for a layer computed elsewhere."""

    features: int
    kernel_size: int

    @nn.compact
    def __call__(self, in_features: int) -> tuple[jax.Array, jax.Array]:
        k = self.kernel_size
        kernel = self.param("kernel", KERNEL_INIT, (k, k, in_features, self.features), jnp.float32)
        return kernel, self.param("bias", BIAS_INIT, (self.features,), jnp.float32)


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
    back — the same function and parameters at the cost of 'symmetric' (on an H100 +2.7% float32,
    +0.8% bfloat16 steps/s over the padded copies; docs/benchmarks.md). On CPUs the mirrored form
    is ~6% slower and XLA pads natively, so they run 'same' as it is. `mirror_same` ('cuda',
    'always', 'never') overrides where; tests check the CUDA form on CPUs.

    On CUDA the RGB input layer runs column-unfolded (`unfold_columns`), where cuDNN is slow
    with 3 input channels.
    """

    width: int = 128
    image_size: int = 80
    dropout_rate: float = 0.4
    dtype: Any = jnp.float32
    padding: DiscriminatorPadding = "same"
    mirror_same: MirrorSame = "cuda"

    def convolution_layers(self) -> list[tuple[int, int, int]]:
        """(input channels, output channels, stride) of each 5×5 LeakyReLU convolution, input first
        ('SAME' at stride 1, the padding above at stride 2); `gan_arith.flops` counts them from this."""
        return [(3, self.width, 1)] + [(self.width, self.width, 2)] * num_doublings(self.image_size, BASE_SIZE)

    def _convolutions(
        self, images: jax.Array, kernels: list[jax.Array], biases: list[jax.Array], *, on_cuda: bool
    ) -> jax.Array:
        """The LeakyReLU convolution layers as lowered for CUDA (`on_cuda`) or for other platforms."""
        mirrored = self.padding == "same" and (
            self.mirror_same == "always" or (self.mirror_same == "cuda" and on_cuda)
        )
        if mirrored:
            images, kernels = _mirror_image(images), [_mirror_kernel(k, on_cuda=on_cuda) for k in kernels]
        # Stride 1, 'SAME' is symmetric: mirrored, only the kernel changes.
        x, first_kernel, first_padding = unfold_columns(images, kernels[0], "SAME") if on_cuda else (images, kernels[0], "SAME")
        strided_padding = SYMMETRIC_PADDING if mirrored or self.padding == "symmetric" else "SAME"
        strides = [stride for _, _, stride in self.convolution_layers()]
        paddings = [first_padding] + [strided_padding] * (len(strides) - 1)
        for kernel, bias, stride, padding in zip([first_kernel, *kernels[1:]], biases, strides, paddings, strict=True):
            x = _leaky(_conv(x, kernel, stride, padding) + bias)
        return _mirror_image(x) if mirrored else x

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
        # Named as the nn.Conv layers they replace, so parameters and checkpoints keep their paths.
        params = [
            _ConvParams(features, DISCRIMINATOR_KERNEL, name=f"Conv_{index}")(in_features)
            for index, (in_features, features, _) in enumerate(self.convolution_layers())
        ]
        layers = len(params)
        images, *tensors = nn.dtypes.promote_dtype(images_bhwc, *(t for pair in params for t in pair), dtype=self.dtype)
        kernels, biases = list(tensors[0::2]), list(tensors[1::2])

        def convolutions(on_cuda: bool) -> Callable[..., jax.Array]:
            return lambda images, *t: self._convolutions(images, list(t[:layers]), list(t[layers:]), on_cuda=on_cuda)

        x = jax.lax.platform_dependent(images, *kernels, *biases, cuda=convolutions(True), default=convolutions(False))
        x = x.reshape(x.shape[0], -1)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(1, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)(x)
        return x[:, 0].astype(jnp.float32)
