"""Building blocks shared by the models: image range conversion and a fast exact transposed convolution."""

from __future__ import annotations

from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Keras' defaults, so freshly initialised models start where the seeds' models started.
KERNEL_INIT = nn.initializers.glorot_uniform()
BIAS_INIT = nn.initializers.zeros

ConvTransposeImpl = Literal["phase", "dilated"]


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


def _phase_padding(kernel_size: int, phase: int) -> tuple[int, int, int]:
    """First tap, padding before and padding after for one output phase of a stride-2 'SAME' transpose.

    `lax.conv_transpose(..., padding='SAME')` pads the 2x-dilated input by `pad_before` and correlates
    with the kernel. Output 2m + phase only ever meets input pixels through taps j = j0, j0 + 2, ...,
    and tap j0 + 2t reads input pixel m + t + offset, which is a plain stride-1 correlation.
    """
    stride = 2
    if stride > kernel_size - 1:
        pad_before = kernel_size - 1
    else:
        pad_before = int(np.ceil((kernel_size + stride - 2) / 2))
    first_tap = (pad_before - phase) % 2
    num_taps = len(range(first_tap, kernel_size, 2))
    offset = (phase + first_tap - pad_before) // 2
    return first_tap, -offset, num_taps - 1 + offset


class ConvTranspose2x(nn.Module):
    """`nn.ConvTranspose(features, (k, k), strides=(2, 2), padding='SAME')` with the same parameters and outputs.

    impl="phase" computes the four output phases as stride-1 convolutions with the matching
    sub-kernels of the one k×k kernel and interleaves them. Its gradient avoids convolutions with
    lhs dilation, whose backward pass XLA runs on a slow path (jax-ml/jax#23783, #31662): on CPU the
    DCGAN generator's forward+backward is about 8x faster this way. impl="dilated" is the plain
    `lax.conv_transpose`, kept as the reference the fast path is tested against.
    """

    features: int
    kernel_size: int
    impl: ConvTransposeImpl = "phase"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", KERNEL_INIT, (k, k, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", BIAS_INIT, (self.features,), jnp.float32)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        if self.impl == "dilated":
            y = jax.lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return y + bias
        if self.impl != "phase":
            raise ValueError(f"ConvTranspose2x impl must be 'phase' or 'dilated', got {self.impl!r}")
        phases = [[None, None], [None, None]]
        for phase_h in (0, 1):
            tap_h, before_h, after_h = _phase_padding(k, phase_h)
            for phase_w in (0, 1):
                tap_w, before_w, after_w = _phase_padding(k, phase_w)
                phases[phase_h][phase_w] = jax.lax.conv_general_dilated(
                    x,
                    kernel[tap_h::2, tap_w::2],
                    window_strides=(1, 1),
                    padding=((before_h, after_h), (before_w, after_w)),
                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                )
        batch, height, width, _ = x.shape
        # [B, H, 2(phase_h), W, 2(phase_w), C] -> [B, 2H, 2W, C]: output (2m + ph, 2n + pw) = phase[ph][pw][m, n].
        rows = [jnp.stack(phases[phase_h], axis=3) for phase_h in (0, 1)]
        y = jnp.stack(rows, axis=2).reshape(batch, 2 * height, 2 * width, self.features)
        return y + bias


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
