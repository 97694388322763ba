"""A stack of convolution + bias + LeakyReLU layers (the discriminator's body) with fused epilogues on CUDA.

`leaky_conv_stack` computes `y = leaky_relu(conv(y_prev, kernel) + bias)` layer after layer with a
hand-written backward pass. On CUDA GPUs the layers marked `fused` run as cuDNN graphs
(`jax._src.cudnn.fusion.cudnn_fusion`, XLA's `__cudnn$fusion`):
- forward: convolution, bias and LeakyReLU in one kernel (XLA otherwise writes the convolution's
  result and reads it back for the bias and activation: 2 of every activation's 5 memory passes);
- backward: the input gradient into a fused layer's output with that layer's LeakyReLU mask applied
  in the same kernel (the mask comes from the layer's output: y >= 0 where its pre-activation is,
  the slope being positive), so the unmasked gradient is never written and read back.
Weight and bias gradients are XLA's (bias gradients summed in float32 also for bfloat16 inputs,
where autodiff sums them in bfloat16). Elsewhere the same functions run as plain XLA operations
(CPU tests check the hand-written backward against autodiff).

Compiled for an H100 with jax 0.10.2 (tools/gpu_traffic.py, no GPU): the seed's step needs
XLA_FLAGS=--xla_disable_hlo_passes=computation-deduplicator (the deduplicator merges the discriminator
and generator updates' identical fusions and the HLO verifier then rejects them), and cuDNN fusions
of 10×10 layers failed XLA's layout assignment, so the discriminator fuses layers with outputs of
20×20 and more. On a data-parallel mesh XLA does not partition the fusions (it gathers the batch
around them), so the discriminator runs the stack per device under shard_map. Modelled
memory-bound traffic of the bf16 step 6.08 -> 3.62 GB; not yet timed on a GPU.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gan_arith.errors import InputError

_NHWC = ("NHWC", "HWIO", "NHWC")
NEEDED_XLA_FLAG = "--xla_disable_hlo_passes=computation-deduplicator"


def has_needed_xla_flag(xla_flags: str) -> bool:
    """Whether `xla_flags` (XLA_FLAGS' syntax) disables the pass `NEEDED_XLA_FLAG` names."""
    name, _, needed = NEEDED_XLA_FLAG.partition("=")
    return any(
        needed in flag.partition("=")[2].split(",") for flag in xla_flags.split() if flag.partition("=")[0] == name
    )


def check_xla_flags(option: str) -> None:
    """Refuse, naming `option`, to build fused layers for a GPU without `NEEDED_XLA_FLAG` in XLA_FLAGS
    (see the module docstring): XLA would fail compiling with an internal verifier error."""
    if jax.default_backend() == "gpu" and not has_needed_xla_flag(os.environ.get("XLA_FLAGS", "")):
        raise InputError(
            f"{option} needs XLA_FLAGS={NEEDED_XLA_FLAG} set before Python starts (XLA's computation "
            "deduplicator breaks its cuDNN fusions: checked with jax 0.10.2)"
        )


def _on_cuda_as_one_kernel(f: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """`f` as one cuDNN graph on CUDA (XLA's `__cudnn$fusion`), as plain XLA operations elsewhere."""
    from jax._src.cudnn.fusion import cudnn_fusion  # jax's own wrapper; no public API for it (jax 0.10-0.12)

    fused = cudnn_fusion(f)

    @functools.wraps(f)
    def call(*args: jax.Array) -> jax.Array:
        return jax.lax.platform_dependent(*args, cuda=fused, default=f)

    return call


def conv(x: jax.Array, kernel: jax.Array, stride: int, padding: Any) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding, dimension_numbers=_NHWC)


def _leaky_mask(y: jax.Array, gradient: jax.Array, slope: float) -> jax.Array:
    return jnp.where(y >= 0, gradient, gradient * jnp.asarray(slope, gradient.dtype))


def _layer_forward(stride: int, padding: Any, slope: float, fuse: bool) -> Callable[..., jax.Array]:
    def conv_bias_leaky(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
        y = conv(x, kernel, stride, padding) + bias
        return jnp.where(y >= 0, y, y * jnp.asarray(slope, y.dtype))

    return _on_cuda_as_one_kernel(conv_bias_leaky) if fuse else conv_bias_leaky


def _input_gradient(stride: int, padding: Any, slope: float | None, fuse: bool) -> Callable[..., jax.Array]:
    """The gradient of `conv(x, kernel)` at x for output gradient g; with `slope`, masked by the
    LeakyReLU that produced x (x itself is its output)."""

    def input_gradient(g: jax.Array, kernel: jax.Array, x: jax.Array) -> jax.Array:
        kh, kw = kernel.shape[:2]
        pads = padding
        if isinstance(padding, str):
            pads = jax.lax.padtype_to_pads(x.shape[1:3], (kh, kw), (stride, stride), padding)
        # The transposed convolution over g dilated by the stride: before-padding k-1-lo, and after-padding
        # whatever brings the output back to x's size.
        transposed_pads = tuple(
            (k - 1 - lo, n + lo - 1 - (m - 1) * stride)
            for k, (lo, _), n, m in zip((kh, kw), pads, x.shape[1:3], g.shape[1:3])
        )
        # Reversed and transposed outside the fused kernel: inside it XLA's layout assignment rejected the reversal.
        kernel_t = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)

        def masked_input_gradient(g: jax.Array, kernel_t: jax.Array, x: jax.Array) -> jax.Array:
            gradient = jax.lax.conv_general_dilated(
                g, kernel_t, (1, 1), transposed_pads, lhs_dilation=(stride, stride), dimension_numbers=_NHWC
            )
            return gradient if slope is None else _leaky_mask(x, gradient, slope)

        return (_on_cuda_as_one_kernel(masked_input_gradient) if fuse else masked_input_gradient)(g, kernel_t, x)

    return input_gradient


def _kernel_gradient(g: jax.Array, x: jax.Array, kernel: jax.Array, stride: int, padding: Any) -> jax.Array:
    _, vjp = jax.vjp(lambda k: conv(x, k, stride, padding), kernel)
    return vjp(g)[0]


def leaky_conv_stack(
    x: jax.Array,
    kernels: tuple[jax.Array, ...],
    biases: tuple[jax.Array, ...],
    strides: tuple[int, ...],
    paddings: tuple[Any, ...],
    slope: float,
    fused: tuple[bool, ...],
) -> jax.Array:
    """`y = leaky_relu(conv(y, kernel) + bias, slope)` for each layer in turn (NHWC/HWIO; `paddings` as
    `lax.conv_general_dilated` takes them, hashable), returning the last layer's output. `fused[i]`:
    layer i's forward and the input gradient into its output run as cuDNN graphs on CUDA. The
    per-layer arguments are tuples of one length (the backward's gradients take their structure)."""
    per_layer = {"kernels": kernels, "biases": biases, "strides": strides, "paddings": paddings, "fused": fused}
    lengths = {name: len(value) if isinstance(value, tuple) else None for name, value in per_layer.items()}
    if None in lengths.values() or len(set(lengths.values())) != 1 or not kernels:
        kinds = {name: type(value).__name__ for name, value in per_layer.items()}
        raise ValueError(f"leaky_conv_stack needs non-empty tuples of one length per layer; got lengths {lengths}, types {kinds}")
    return _stack(x, kernels, biases, strides, paddings, slope, fused)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _stack(x, kernels, biases, strides, paddings, slope, fused):
    return _stack_forward(x, kernels, biases, strides, paddings, slope, fused)[-1]


def _stack_forward(x, kernels, biases, strides, paddings, slope, fused) -> list[jax.Array]:
    outputs = []
    for kernel, bias, stride, padding, fuse in zip(kernels, biases, strides, paddings, fused, strict=True):
        x = _layer_forward(stride, padding, slope, fuse)(x, kernel, bias)
        outputs.append(x)
    return outputs


def _stack_fwd(x, kernels, biases, strides, paddings, slope, fused):
    outputs = _stack_forward(x, kernels, biases, strides, paddings, slope, fused)
    return outputs[-1], (x, tuple(kernels), tuple(outputs))


def _stack_bwd(strides, paddings, slope, fused, residuals, g):
    x, kernels, outputs = residuals
    inputs = (x, *outputs[:-1])
    g = _leaky_mask(outputs[-1], g, slope)  # gradient at the last layer's pre-activation
    kernel_grads, bias_grads = [None] * len(kernels), [None] * len(kernels)
    x_grad = None
    for index in reversed(range(len(kernels))):
        stride, padding = strides[index], paddings[index]
        bias_grads[index] = jnp.sum(g, axis=(0, 1, 2))
        kernel_grads[index] = _kernel_gradient(g, inputs[index], kernels[index], stride, padding)
        if index > 0:  # into the previous layer's pre-activation, its LeakyReLU applied in the same kernel
            g = _input_gradient(stride, padding, slope, fused[index - 1])(g, kernels[index], inputs[index])
        else:
            x_grad = _input_gradient(stride, padding, None, False)(g, kernels[index], x)
    return x_grad, tuple(kernel_grads), tuple(bias_grads)


_stack.defvjp(_stack_fwd, _stack_bwd)
