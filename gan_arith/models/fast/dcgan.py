"""The seed's DCGAN as CUDA GPUs run it fast: `models.dcgan`'s networks, fields and parameter trees,
the same functions, other lowerings. Measurements: docs/benchmarks.md."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_arith.models import dcgan
from gan_arith.models.dcgan import BASE_SIZE, LEAKY_SLOPE, SYMMETRIC_PADDING
from gan_arith.models.fast.layers import leaky_relu, unfold_columns
from gan_arith.models.fast.phases import ConvFromPhases, ConvTranspose2x
from gan_arith.models.layers import BIAS_INIT, KERNEL_INIT, num_doublings

DISCRIMINATOR_KERNEL = 5


def _leaky(x: jax.Array) -> jax.Array:
    return leaky_relu(x, LEAKY_SLOPE)


class Generator(dcgan.Generator):
    """`dcgan.Generator` with each transposed convolution's phases merged into one convolution, its
    bias and LeakyReLU applied per phase, and the last one's phases handed uninterleaved to the RGB
    layer, which runs in the phase domain as matrix products (cuDNN is slow with 3 output channels)."""

    @nn.compact
    def __call__(self, z_bl: jax.Array) -> jax.Array:
        self.check_latents(z_bl)
        dense = dict(kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)
        x = _leaky(nn.Dense(BASE_SIZE * BASE_SIZE * self.width, **dense)(z_bl))
        x = x.reshape(-1, BASE_SIZE, BASE_SIZE, self.width)
        doublings = num_doublings(self.image_size, BASE_SIZE)
        for index in range(doublings):
            x = ConvTranspose2x(
                self.width, 4, impl=self.conv_transpose, dtype=self.dtype, activation=_leaky,
                interleave=index < doublings - 1,
            )(x)
        x = ConvFromPhases(3, 5, dtype=self.dtype, name="Conv_0")(x)  # the nn.Conv's name and parameters
        return jnp.tanh(x.astype(jnp.float32))


def _conv(x_bhwc: jax.Array, kernel_hwio: jax.Array, stride: int, padding: object) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x_bhwc, kernel_hwio, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _mirror_image(x_bhwc: jax.Array) -> jax.Array:
    return x_bhwc[:, ::-1, ::-1]


def _mirror_kernel(kernel_hwio: jax.Array) -> jax.Array:
    # The barrier keeps XLA from folding the input gradient's kernel reversal into this one (reverse
    # of reverse): the gradient would no longer be the backward-input convolution cuDNN runs, and
    # XLA would lower it as a forward convolution over a dilated, padded copy.
    return jax.lax.optimization_barrier(kernel_hwio[::-1, ::-1])


class _ConvParams(nn.Module):
    """The parameters of an `nn.Conv` (same names, shapes, initialisers), for a layer computed elsewhere."""

    features: int
    kernel_size: int

    @nn.compact
    def __call__(self, in_features: int) -> tuple[jax.Array, jax.Array]:
        k = self.kernel_size
        kernel = self.param("kernel", KERNEL_INIT, (k, k, in_features, self.features), jnp.float32)
        return kernel, self.param("bias", BIAS_INIT, (self.features,), jnp.float32)


class Discriminator(dcgan.Discriminator):
    """`dcgan.Discriminator` with its convolutions padded symmetrically and its RGB layer column-unfolded.

    cuDNN pads only symmetrically: for Keras' (1, 2) XLA writes a padded copy of each layer's input
    and slices the input gradient out of an enlarged one. On the image mirrored in both spatial
    axes, Keras' windows are exactly the (2, 2)-padded ones (a window over rows 2i-1..2i+3 of an
    even height N is, mirrored, rows 2j-2..2j+2 with j = N/2-1-i). So 'same' runs mirrored: the
    image and every kernel mirrored, all layers padded symmetrically, the last feature map mirrored
    back: the same function and parameters at the cost of 'symmetric'. The RGB input layer runs
    column-unfolded (`unfold_columns`), where cuDNN is slow with 3 input channels.
    """

    def convolution_layers(self) -> list[tuple[int, int, int]]:
        """(input channels, output channels, stride) of each 5×5 LeakyReLU convolution, input first
        ('SAME' at stride 1, the padding above at stride 2); `gan_arith.bench.flops` counts them from this."""
        return [(3, self.width, 1)] + [(self.width, self.width, 2)] * num_doublings(self.image_size, BASE_SIZE)

    def convolutions(self, images: jax.Array, kernels: list[jax.Array], biases: list[jax.Array]) -> jax.Array:
        """The LeakyReLU convolution layers on their kernels and biases, mirrored for 'same'."""
        mirrored = self.padding == "same"
        if mirrored:
            images, kernels = _mirror_image(images), [_mirror_kernel(k) for k in kernels]
        # Stride 1, 'SAME' is symmetric: mirrored, only the kernel changes.
        x, first_kernel, first_padding = unfold_columns(images, kernels[0], "SAME")
        strides = [stride for _, _, stride in self.convolution_layers()]
        paddings = [first_padding] + [SYMMETRIC_PADDING] * (len(strides) - 1)
        for kernel, bias, stride, padding in zip([first_kernel, *kernels[1:]], biases, strides, paddings, strict=True):
            x = _leaky(_conv(x, kernel, stride, padding) + bias)
        return _mirror_image(x) if mirrored else x

    @nn.compact
    def __call__(self, images_bhwc: jax.Array, *, train: bool = False) -> jax.Array:
        self.check_images(images_bhwc)
        params = [  # the nn.Conv layers' names and parameters
            _ConvParams(features, DISCRIMINATOR_KERNEL, name=f"Conv_{index}")(in_features)
            for index, (in_features, features, _) in enumerate(self.convolution_layers())
        ]
        images, *tensors = nn.dtypes.promote_dtype(images_bhwc, *(t for pair in params for t in pair), dtype=self.dtype)
        x = self.convolutions(images, list(tensors[0::2]), list(tensors[1::2]))
        x = x.reshape(x.shape[0], -1)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(1, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, dtype=self.dtype)(x)
        return x[:, 0].astype(jnp.float32)
