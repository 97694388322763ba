"""Elementwise and input-layer lowerings for CUDA GPUs: a LeakyReLU that XLA's convolution fusion
folds into cuDNN graphs, and the RGB convolution with its column shifts unfolded into channels."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def leaky_relu(x: jax.Array, slope: float) -> jax.Array:
    """``jax.nn.leaky_relu`` (x where x >= 0, slope·x below; gradient 1 or slope), for 0 < slope <= 1.

    The same values and gradients, written for XLA's convolution fusion on GPUs (config.conv_fusion):
    a maximum is an operation it folds into the cuDNN graph of the convolution before it (a select
    is not), and the gradient's mask is read from the output (y >= 0 exactly where x >= 0, but for
    an x so close to 0 that slope·x underflows to zero), so nothing needs the pre-activation after
    the forward pass and, fused, it is never written to memory.
    """
    if not 0 < slope <= 1:  # at 0, slope·x is -0.0 below zero and the output could not tell the sign
        raise ValueError(f"leaky_relu needs 0 < slope <= 1 (it computes max(x, slope * x)), got slope={slope}")
    return jnp.maximum(x, slope * x)


def _leaky_relu_forward(x: jax.Array, slope: float) -> tuple[jax.Array, jax.Array]:
    y = leaky_relu(x, slope)
    return y, y


def _leaky_relu_backward(slope: float, y: jax.Array, cotangent: jax.Array) -> tuple[jax.Array]:
    # A select, not a multiply by a mask: XLA folds a multiply into the next layer's input-gradient
    # convolution as a cuDNN graph, modelled as more traffic than this (tools/gpu_traffic.py), and
    # the select keeps cuDNN's own input-gradient kernels.
    return (jnp.where(y >= 0, cotangent, slope * cotangent),)


leaky_relu.defvjp(_leaky_relu_forward, _leaky_relu_backward)


def _same_padding(kernel_size: int) -> tuple[int, int]:
    return (kernel_size - 1) // 2, kernel_size // 2


def unfold_columns(lhs: jax.Array, rhs: jax.Array, padding: Any) -> tuple[jax.Array, jax.Array, tuple[Any, Any]]:
    """A stride-1 NHWC/HWIO convolution over few input channels (an RGB image) in a form cuDNN runs fast:
    (columns [B, H, W_out, kw·C_in + zeros], kernel [kh, 1, kw·C_in + zeros, C_out], padding) such that
    `lax.conv_general_dilated(columns, kernel, (1, 1), padding)` is `conv(lhs, rhs, 'padding')`.

    cuDNN runs convolutions with 3 input channels at a small fraction of a GPU's peak. Here the kw
    column shifts of the input are unfolded into channels (zero-padded to a multiple of 8: 15 -> 16
    for RGB and k = 5) and cuDNN runs the kh×1 convolution over them: the same products, over a
    tensor kw times the image instead of the kh·kw times of a full im2col (docs/benchmarks.md).
    """
    kh, kw, c_in, c_out = rhs.shape
    if isinstance(padding, str):
        if padding not in ("SAME", "VALID"):
            raise ValueError(f"unfold_columns padding must be 'SAME', 'VALID' or pairs, got {padding!r}")
        padding = [_same_padding(kh), _same_padding(kw)] if padding == "SAME" else [(0, 0), (0, 0)]
    rows, (left, right) = padding
    x = jnp.pad(lhs, ((0, 0), (0, 0), (left, right), (0, 0)))
    width = x.shape[2] - kw + 1
    depth = kw * c_in
    align = -depth % 8
    columns = [x[:, :, j : j + width, :] for j in range(kw)]  # channel j·C_in + c: pixel (h, w + j), channel c
    if align:
        columns.append(jnp.zeros((*x.shape[:2], width, align), x.dtype))
    kernel = jnp.pad(rhs.reshape(kh, 1, depth, c_out), ((0, 0), (0, 0), (0, align), (0, 0)))
    return jnp.concatenate(columns, axis=-1), kernel, (tuple(rows), (0, 0))
