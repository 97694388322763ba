"""What the seeds' models share: Keras' initialisers, the image range, the stride-2 convolution and
transposed convolution in the forms XLA runs fast on CPUs, and parameter counting."""

from __future__ import annotations

import functools
import typing
from typing import Any, Callable, Literal, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Keras' defaults, so freshly initialised models start where the seeds' models started.
KERNEL_INIT = nn.initializers.glorot_uniform()
BIAS_INIT = nn.initializers.zeros

ConvTransposeImpl = Literal["phase", "dilated"]
CONV_TRANSPOSE_IMPLS: tuple[str, ...] = typing.get_args(ConvTransposeImpl)
Conv2xImpl = ConvTransposeImpl  # the same two forms: four phase convolutions, or lax's dilated one
Pads = tuple[tuple[int, int], tuple[int, int]]  # (before, after) of the rows, then of the columns
Phase = tuple[tuple[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]  # [a][b]: image[:, a::2, b::2]


def to_model_range(images_u8: jax.Array, dtype: Any = jnp.float32) -> jax.Array:
    """uint8 [0, 255] images -> float images in [-1, 1] (the range every model consumes and produces)."""
    return images_u8.astype(dtype) / 127.5 - 1.0


def as_model_range(images: jax.Array) -> jax.Array:
    """uint8 batches (from stores) become float32 [-1, 1]; float batches (from generators) pass through."""
    return to_model_range(images) if images.dtype == jnp.uint8 else images.astype(jnp.float32)


def from_model_range(images: jax.Array | np.ndarray) -> np.ndarray:
    """Float images in [-1, 1] -> uint8 [0, 255] numpy images (rounded, clipped)."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def phase_padding(kernel_size: int, phase: int) -> tuple[int, int, int]:
    """First tap, padding before and padding after for one output phase of a stride-2 'SAME' transpose.

    `lax.conv_transpose(..., padding='SAME')` pads the 2x-dilated input by `pad_before` and correlates
    with the kernel. Output 2m + phase only ever meets input pixels through taps j = j0, j0 + 2, ...,
    and tap j0 + 2t reads input pixel m + t + offset, which is a plain stride-1 correlation.
    """
    pad_before = kernel_size - 1 if kernel_size < 3 else (kernel_size + 1) // 2  # lax's, for stride 2
    first_tap = (pad_before - phase) % 2
    num_taps = len(range(first_tap, kernel_size, 2))
    offset = (phase + first_tap - pad_before) // 2
    return first_tap, -offset, num_taps - 1 + offset


def phase_convolutions(x: jax.Array, kernel: jax.Array) -> Phase:
    """The four output phases of a stride-2 'SAME' transposed convolution, each a stride-1
    convolution with its sub-kernel and padding (`phase_padding`)."""
    paddings = [phase_padding(kernel.shape[0], phase) for phase in (0, 1)]
    return tuple(
        tuple(
            jax.lax.conv_general_dilated(
                x, kernel[tap_h::2, tap_w::2], (1, 1), ((before_h, after_h), (before_w, after_w)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )
            for tap_w, before_w, after_w in paddings
        )
        for tap_h, before_h, after_h in paddings
    )


def interleave(phase: Phase) -> jax.Array:
    """The image [B, 2H, 2W, C] whose pixel (2m + a, 2n + b) is phase[a][b][m, n]."""
    batch, height, width, channels = phase[0][0].shape
    rows = [jnp.stack(phase[a], axis=3) for a in (0, 1)]
    return jnp.stack(rows, axis=2).reshape(batch, 2 * height, 2 * width, channels)


def kernel_and_bias(layer: nn.Module, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """An `nn.Conv`'s parameters for `layer` (its `kernel_size`, `features` and `dtype`; float32, the
    same names, shapes and initialisers) and its input, all promoted to the compute dtype."""
    k = layer.kernel_size
    kernel = layer.param("kernel", KERNEL_INIT, (k, k, x.shape[-1], layer.features), jnp.float32)
    bias = layer.param("bias", BIAS_INIT, (layer.features,), jnp.float32)
    return nn.dtypes.promote_dtype(x, kernel, bias, dtype=layer.dtype)


class ConvTranspose2x(nn.Module):
    """`nn.ConvTranspose(features, (k, k), strides=(2, 2), padding='SAME')` then `activation`: the same
    parameters and outputs.

    impl="phase" computes the four output phases as stride-1 convolutions and interleaves them. Its
    gradient has no convolution with lhs dilation, which XLA:CPU runs on a slow path (jax-ml/jax#23783,
    #31662; measured in docs/benchmarks.md). An `activation` goes on each phase with the bias, where
    XLA fuses both into the phase's convolution; without one the bias is added once, after the
    interleave. impl="dilated" is `lax.conv_transpose`, the reference.
    """

    features: int
    kernel_size: int
    impl: ConvTransposeImpl = "phase"
    dtype: Any = jnp.float32
    activation: Callable[[jax.Array], jax.Array] | None = None

    def kernel_and_bias(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        return kernel_and_bias(self, x)

    def activated(self, y: jax.Array, bias: jax.Array) -> jax.Array:
        return y + bias if self.activation is None else self.activation(y + bias)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.impl not in CONV_TRANSPOSE_IMPLS:
            raise ValueError(f"ConvTranspose2x impl must be one of {', '.join(CONV_TRANSPOSE_IMPLS)}, got {self.impl!r}")
        x, kernel, bias = self.kernel_and_bias(x)
        if self.impl == "dilated":
            y = jax.lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return self.activated(y, bias)
        phase = phase_convolutions(x, kernel)
        if self.activation is None:
            return interleave(phase) + bias
        return interleave(tuple(tuple(self.activated(y, bias) for y in row) for row in phase))


def stride_2_pads(spatial_shape: Sequence[int], kernel_size: int, padding: str | Sequence[tuple[int, int]]) -> Pads:
    """The explicit (before, after) padding of the rows and the columns of a stride-2 `nn.Conv` with this padding."""
    if isinstance(padding, str):
        pads = jax.lax.padtype_to_pads(tuple(spatial_shape), (kernel_size, kernel_size), (2, 2), padding)
    else:
        pads = padding
    (before_h, after_h), (before_w, after_w) = pads
    return (int(before_h), int(after_h)), (int(before_w), int(after_w))


def strided_convolution(x: jax.Array, kernel: jax.Array, pads: Pads) -> jax.Array:
    """The stride-2 convolution `nn.Conv` computes (its bias aside)."""
    return jax.lax.conv_general_dilated(x, kernel, (2, 2), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def input_phase_padding(kernel_size: int, before: int, size: int, out_size: int, phase: int) -> tuple[int, int, int]:
    """First tap, padding before and padding after of the stride-1 convolution that gives the input
    gradient of a stride-2 convolution at the input pixels 2m + phase, along one axis.

    Output o reads input pixel 2o + i - before through tap i, so pixel 2m + phase meets the
    cotangent only through taps i = first_tap + 2t, at output m + shift - t: a correlation of the
    cotangent with those taps reversed. Every phase gets ceil(size / 2) pixels (the last one of an
    odd size is cropped after the interleave).
    """
    first_tap = (phase + before) % 2
    num_taps = len(range(first_tap, kernel_size, 2))
    shift = (phase + before - first_tap) // 2
    pad_before = num_taps - 1 - shift
    return first_tap, pad_before, (size + 1) // 2 - out_size - pad_before + num_taps - 1


def input_gradient_phases(cotangent: jax.Array, kernel: jax.Array, pads: Pads, input_shape: Sequence[int]) -> jax.Array:
    """The input gradient of `strided_convolution(x, kernel, pads)` for this cotangent: each of its four
    phases a stride-1 convolution (`input_phase_padding`), interleaved."""
    k = kernel.shape[0]
    axes = [
        [input_phase_padding(k, before, size, out_size, phase) for phase in (0, 1)]
        for (before, _), size, out_size in zip(pads, input_shape[1:3], cotangent.shape[1:3], strict=True)
    ]
    phase = tuple(
        tuple(
            # HWOI: the kernel's input channels are the cotangent's, its outputs the input's
            jax.lax.conv_general_dilated(
                cotangent, kernel[tap_h::2, tap_w::2][::-1, ::-1], (1, 1), ((before_h, after_h), (before_w, after_w)),
                dimension_numbers=("NHWC", "HWOI", "NHWC"),
            )
            for tap_w, before_w, after_w in axes[1]
        )
        for tap_h, before_h, after_h in axes[0]
    )
    return interleave(phase)[:, : input_shape[1], : input_shape[2]]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def phase_gradient_convolution(x: jax.Array, kernel: jax.Array, pads: Pads) -> jax.Array:
    """`strided_convolution`, its input gradient computed by `input_gradient_phases`."""
    return strided_convolution(x, kernel, pads)


def _phase_gradient_forward(x: jax.Array, kernel: jax.Array, pads: Pads) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    # Itself, not lax's: a gradient of this gradient (the R1 penalty's) differentiates the forward again
    return phase_gradient_convolution(x, kernel, pads), (x, kernel)


def _phase_gradient_backward(
    pads: Pads, residuals: tuple[jax.Array, jax.Array], cotangent: jax.Array
) -> tuple[jax.Array, jax.Array]:
    x, kernel = residuals
    _, kernel_vjp = jax.vjp(lambda kernel: strided_convolution(x, kernel, pads), kernel)
    return input_gradient_phases(cotangent, kernel, pads, x.shape), kernel_vjp(cotangent)[0]


phase_gradient_convolution.defvjp(_phase_gradient_forward, _phase_gradient_backward)


class Conv2x(nn.Module):
    """`nn.Conv(features, (k, k), strides=(2, 2), padding=padding)`: the same parameters and outputs.

    impl="phase" gives it an input gradient computed as four stride-1 convolutions, one per phase of
    the input, interleaved. lax's own input gradient is a convolution over the zero-dilated
    cotangent, which XLA:CPU runs on a slow path outside YNNPACK (measured in docs/benchmarks.md).
    The forward and the weight gradient are lax's. impl="dilated" is lax's throughout, the reference.
    """

    features: int
    kernel_size: int
    padding: str | Sequence[tuple[int, int]] = "SAME"
    impl: Conv2xImpl = "phase"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.impl not in CONV_TRANSPOSE_IMPLS:
            raise ValueError(f"Conv2x impl must be one of {', '.join(CONV_TRANSPOSE_IMPLS)}, got {self.impl!r}")
        x, kernel, bias = kernel_and_bias(self, x)
        pads = stride_2_pads(x.shape[1:3], self.kernel_size, self.padding)
        convolution = phase_gradient_convolution if self.impl == "phase" else strided_convolution
        return convolution(x, kernel, pads) + bias


def count_parameters(variables: Any) -> int:
    """Number of scalars in a variables tree (params and batch statistics), counted the way Keras counts them."""
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(variables)))


def num_doublings(image_size: int, base_size: int = 5) -> int:
    """How many stride-2 stages lead from `base_size` to `image_size` (80 -> 4); errors name the bad size."""
    doublings = int(round(np.log2(image_size / base_size))) if image_size >= base_size else -1
    if doublings < 1 or base_size * 2**doublings != image_size:
        raise ValueError(
            f"image_size must be {base_size}·2^k with k >= 1 (10, 20, 40, 80, 160, ...), got {image_size}"
        )
    return doublings
