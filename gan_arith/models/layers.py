"""Building blocks shared by the models: image range conversion, fast exact transposed convolutions,
and the convolutions at the RGB ends of the DCGAN."""

from __future__ import annotations

import functools
import math
import typing
from typing import Any, Callable, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

# Keras' defaults, so freshly initialised models start where the seeds' models started.
KERNEL_INIT = nn.initializers.glorot_uniform()
BIAS_INIT = nn.initializers.zeros

ConvTransposeImpl = Literal["phase", "dilated"]
CONV_TRANSPOSE_IMPLS: tuple[str, ...] = typing.get_args(ConvTransposeImpl)


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


PhaseTuple = tuple[tuple[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]  # [a][b]: image[:, a::2, b::2]


def _interleave(phase: PhaseTuple) -> jax.Array:
    # [B, H, 2(phase_h), W, 2(phase_w), C] -> [B, 2H, 2W, C]: output (2m + a, 2n + b) = phase[a][b][m, n].
    batch, height, width, channels = phase[0][0].shape
    rows = [jnp.stack(phase[a], axis=3) for a in (0, 1)]
    return jnp.stack(rows, axis=2).reshape(batch, 2 * height, 2 * width, channels)


@struct.dataclass
class Phases:
    """An image [B, 2H, 2W, C] held as its four stride-2 phases ``image[:, a::2, b::2]``: the blocks of
    one tensor, ``blocks`` [B, H + s, W + s, 4, C], phase (a, b) being block 2a + b at rows from
    ``shifts[a]`` and columns from ``shifts[b]`` (s = max(shifts)).

    ``ConvTranspose2x`` computes its output phase by phase; handing them on uninterleaved to a layer
    that can use them (``ConvFromPhases``) saves interleaving the activations and de-interleaving
    their gradient: two passes over the generator's largest tensor. As blocks of one tensor, because
    on CUDA the four phases are one convolution's output (`_merged_phase_convolution`, each phase
    at its own offset) and the next layer's matrix products run over all four at once: no copies
    of the phases out of it, nor of their gradients back into it. ``shape`` is the image's.
    """

    blocks: jax.Array
    shifts: tuple[int, int] = struct.field(pytree_node=False, default=(0, 0))

    @property
    def shape(self) -> tuple[int, ...]:
        batch, height, width, _, channels = self.blocks.shape
        margin = max(self.shifts)
        return batch, 2 * (height - margin), 2 * (width - margin), channels

    @property
    def phase(self) -> PhaseTuple:
        _, height, width, _ = self.shape
        rows, columns = height // 2, width // 2

        def block(a: int, b: int) -> jax.Array:
            top, left = self.shifts[a], self.shifts[b]
            return self.blocks[:, top : top + rows, left : left + columns, 2 * a + b]

        return tuple(tuple(block(a, b) for b in (0, 1)) for a in (0, 1))

    def interleave(self) -> jax.Array:
        return _interleave(self.phase)

    @classmethod
    def stacked(cls, phase: PhaseTuple, shifts: tuple[int, int] = (0, 0)) -> "Phases":
        """The phases given separately, copied into blocks at `shifts`."""
        margin = max(shifts)

        def placed(a: int, b: int) -> jax.Array:
            rows, columns = (shifts[a], margin - shifts[a]), (shifts[b], margin - shifts[b])
            return jnp.pad(phase[a][b], ((0, 0), rows, columns, (0, 0)))

        return cls(jnp.stack([placed(a, b) for a in (0, 1) for b in (0, 1)], axis=3), shifts)

    @classmethod
    def split(cls, images_bhwc: jax.Array) -> "Phases":
        if images_bhwc.shape[1] % 2 or images_bhwc.shape[2] % 2:
            raise ValueError(f"Phases.split needs an even height and width, got {images_bhwc.shape}")
        return cls.stacked(tuple(tuple(images_bhwc[:, a::2, b::2] for b in (0, 1)) for a in (0, 1)))


class ConvTranspose2x(nn.Module):
    """`nn.ConvTranspose(features, (k, k), strides=(2, 2), padding='SAME')` with the same parameters and outputs.

    impl="phase" computes the four output phases as stride-1 convolutions with the matching
    sub-kernels of the one k×k kernel and interleaves them. Its gradient avoids convolutions with
    lhs dilation, whose backward pass XLA runs on a slow path (jax-ml/jax#23783, #31662): on CPU the
    DCGAN generator's forward+backward is about 8x faster this way. On CUDA GPUs, for even k (each
    phase k/2 taps), the four run as one convolution with 4× the output channels
    (`_merged_phase_convolution`): on an H100 the seed's DCGAN step +7.2% bf16, +4.9% float32 over
    four (docs/benchmarks.md, 2026-11-26), where on CPUs it is 4× slower. (One shared symmetric
    padding for four separate convolutions measured no faster on an H100.) impl="dilated" is the
    plain `lax.conv_transpose`, kept as the reference the fast path is tested against.

    `activation` (elementwise) is applied to each phase with the bias before interleaving, where XLA
    fuses both into the phase convolutions' outputs instead of making another pass over the
    interleaved image (on GPUs; on CPUs it makes no difference). With interleave=False the result is
    returned as `Phases`.
    """

    features: int
    kernel_size: int
    impl: ConvTransposeImpl = "phase"
    dtype: Any = jnp.float32
    activation: Callable[[jax.Array], jax.Array] | None = None
    interleave: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array | Phases:
        k = self.kernel_size
        kernel = self.param("kernel", KERNEL_INIT, (k, k, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", BIAS_INIT, (self.features,), jnp.float32)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        if self.impl == "dilated":
            y = jax.lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            y = _bias_and_activation(y, bias, self.activation)
            return y if self.interleave else Phases.split(y)
        if self.impl not in CONV_TRANSPOSE_IMPLS:
            raise ValueError(
                f"ConvTranspose2x impl must be one of {', '.join(CONV_TRANSPOSE_IMPLS)}, got {self.impl!r}"
            )
        # Bias and activation go on each phase when there is an activation to fuse them with, or no
        # interleave: a bare bias is cheaper after the interleave on CPU (the VAE step fell from ~40 to
        # ~28 steps/s with it per phase).
        per_phase = self.activation is not None or not self.interleave
        paddings = [_phase_padding(k, phase) for phase in (0, 1)]

        def lowering(merged: bool) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array | Phases]:
            def run(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array | Phases:
                args = (x, kernel, paddings, bias if per_phase else None, self.activation)
                if merged:
                    phases = _merged_phase_convolution(*args)
                    return phases.interleave() if self.interleave else phases
                phase = _phase_convolutions(*args)
                return _interleave(phase) if self.interleave else Phases.stacked(phase, _phase_shifts(paddings))

            return run

        if k % 2:  # phases of k//2 and k//2 + 1 taps: merged, a quarter or more of its products would be zeros
            result = lowering(merged=False)(x, kernel, bias)
        else:
            result = jax.lax.platform_dependent(x, kernel, bias, cuda=lowering(True), default=lowering(False))
        return result if per_phase else result + bias


def _bias_and_activation(
    y: jax.Array, bias: jax.Array | None, activation: Callable[[jax.Array], jax.Array] | None
) -> jax.Array:
    y = y if bias is None else y + bias
    return y if activation is None else activation(y)


def _phase_convolutions(
    x: jax.Array, kernel: jax.Array, paddings: list[tuple[int, int, int]], bias: jax.Array | None,
    activation: Callable[[jax.Array], jax.Array] | None,
) -> PhaseTuple:
    """The four output phases of `ConvTranspose2x`, each its own stride-1 convolution with the
    phase's sub-kernel and padding (`_phase_padding`: first tap, before, after per axis); then the
    bias and activation, where given a bias."""
    phases = [[None, None], [None, None]]
    for phase_h, (tap_h, before_h, after_h) in enumerate(paddings):
        for phase_w, (tap_w, before_w, after_w) in enumerate(paddings):
            y = jax.lax.conv_general_dilated(
                x,
                kernel[tap_h::2, tap_w::2],
                window_strides=(1, 1),
                padding=((before_h, after_h), (before_w, after_w)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )
            phases[phase_h][phase_w] = y if bias is None else _bias_and_activation(y, bias, activation)
    return tuple(tuple(row) for row in phases)


def _phase_shifts(paddings: list[tuple[int, int, int]]) -> tuple[int, int]:
    """Along one axis, where each phase's output starts in `_merged_phase_convolution`'s: phase p's
    first input pixel (-before_p) less the earliest of the two."""
    starts = [-before for _, before, _ in paddings]
    return starts[0] - min(starts), starts[1] - min(starts)


def _merged_phase_convolution(
    x: jax.Array, kernel: jax.Array, paddings: list[tuple[int, int, int]], bias: jax.Array | None,
    activation: Callable[[jax.Array], jax.Array] | None,
) -> Phases:
    """The four phase convolutions of `ConvTranspose2x` as one convolution with 4× the output channels.

    Along each axis, phase p's taps kernel[first_p::2] read input pixels m - before_p + t. All four
    sub-kernels go into one window (for odd k, the phase with fewer taps zero-padded), each
    phase's output shifted by where its first input pixel lies (`_phase_shifts`): phase p at
    output m is the merged output at m + shift_p, in its own block of channels, which is what
    `Phases` holds. One convolution over one symmetric padding, so no per-phase padded copies, one
    larger GEMM instead of four, and the input gradient summed over the phases inside it; the price
    is the computed border (k = 4: (H+1)² for H²). The bias (tiled over the blocks) and activation
    go on the merged output, where conv fusion folds them into the convolution.
    """
    k = kernel.shape[0]
    firsts = [first for first, _, _ in paddings]
    counts = [len(range(first, k, 2)) for first in firsts]
    window, shifts = max(counts), _phase_shifts(paddings)

    def sub_kernel(phase_h: int, phase_w: int) -> jax.Array:
        taps = kernel[firsts[phase_h]::2, firsts[phase_w]::2]
        return jnp.pad(taps, ((0, window - counts[phase_h]), (0, window - counts[phase_w]), (0, 0), (0, 0)))

    merged_kernel = jnp.concatenate([sub_kernel(a, b) for a in (0, 1) for b in (0, 1)], axis=-1)
    before = max(before for _, before, _ in paddings)
    padding = (before, max(shifts) - before + window - 1)
    y = jax.lax.conv_general_dilated(
        x, merged_kernel, (1, 1), (padding, padding), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    if bias is not None:
        y = _bias_and_activation(y, jnp.tile(bias, 4), activation)
    return Phases(y.reshape(*y.shape[:3], 4, kernel.shape[-1]), shifts)


def _same_padding(kernel_size: int) -> tuple[int, int]:
    return (kernel_size - 1) // 2, kernel_size // 2


def unfold_columns(lhs: jax.Array, rhs: jax.Array, padding: Any) -> tuple[jax.Array, jax.Array, tuple[Any, Any]]:
    """A stride-1 NHWC/HWIO convolution over few input channels (an RGB image) in a form cuDNN runs fast:
    (columns [B, H, W_out, kw·C_in + zeros], kernel [kh, 1, kw·C_in + zeros, C_out], padding) such that
    `lax.conv_general_dilated(columns, kernel, (1, 1), padding)` is `conv(lhs, rhs, 'padding')`.

    cuDNN runs convolutions with 3 input channels at 20-40 TFLOP/s on an H100, ~5% of its peak. Here
    the kw column shifts of the input are unfolded into channels (zero-padded to a multiple of 8:
    15 -> 16 for RGB and k = 5) and cuDNN runs the kh×1 convolution over them: the same products,
    over a tensor kw times the image instead of the kh·kw times of a full im2col. On the seed's
    DCGAN step (one H100, docs/benchmarks.md) the full im2col with one GEMM (and the generator's
    RGB layer as GEMMs) had taken it from 90.3 to 102.3 steps/s (bf16) over cuDNN's 3-channel
    convolutions, later changes to 110.5, and this from 110.5 to 122.6 (bf16), 57.2 to 59.1 (f32).
    On CPUs XLA's own convolution is faster (the column form ~8% slower on the CPU step).
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


def _tap_products(x: jax.Array, kernel: jax.Array, precision: Any) -> jax.Array:
    """Every pixel of x [..., C_in] times every tap of kernel [kh, kw, C_in, C_out]: [..., kh·kw, C_out].

    One matrix product with the kernel as [C_in, kh·kw·C_out], its columns padded to a multiple of 8
    (tensor cores want aligned GEMMs); tap (i, j) is index i·kw + j.
    """
    kh, kw, c_in, c_out = kernel.shape
    matrix = kernel.transpose(2, 0, 1, 3).reshape(c_in, kh * kw * c_out)
    products = jnp.dot(x, jnp.pad(matrix, ((0, 0), (0, -matrix.shape[1] % 8))), precision=precision)
    return products[..., : kh * kw * c_out].reshape(*x.shape[:-1], kh * kw, c_out)


def _conv_in_phase_domain(phases: Phases, kernel: jax.Array, precision: Any) -> jax.Array:
    """A 'SAME' stride-1 k×k convolution (k odd) of the image held by `phases`, computed in the phase
    domain; the result interleaved. Its gradients are `_phase_domain_backward`'s."""
    return _phase_domain_conv(phases.blocks, kernel, phases.shifts, precision)


def _tap_source(kernel_size: int, out: int, tap: int) -> tuple[int, int]:
    """Along one axis, output phase `out`'s tap `tap` reads (source phase, offset): output pixel p sums
    tap i of input pixel p + i - k//2, which for output phase o lies in phase (o + i - k//2) mod 2 at
    offset ⌊(o + i - k//2) / 2⌋."""
    position = out + tap - kernel_size // 2
    return position % 2, position // 2


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _phase_domain_conv(blocks: jax.Array, kernel: jax.Array, shifts: tuple[int, int], precision: Any) -> jax.Array:
    """The per-tap products of every pixel of all four phases in one matrix product (`_tap_products`
    over the blocks), then per output phase their sums (col2im), each tap read where `_tap_source` says."""
    k = kernel.shape[0]
    half = k // 2
    before, after = -((-half) // 2), (k - half) // 2  # the largest backward and forward offsets
    margins = ((0, 0), (before, after), (before, after), (0, 0), (0, 0))
    products = _tap_products(blocks, kernel, precision)  # [B, H + s, W + s, 4, k·k, F]
    # Each phase's products cut out of its block and zero-padded on their own: beyond the phase lies
    # the 'SAME' padding, not the block's border (on CUDA the merged convolution's computed values there).
    phase = Phases(products.reshape(*products.shape[:4], -1), shifts).phase
    products = [[jnp.pad(p.reshape(*p.shape[:3], k * k, -1), margins) for p in row] for row in phase]
    _, height, width, _ = phase[0][0].shape

    def output_phase(out_h: int, out_w: int) -> jax.Array:
        total = 0
        for i in range(k):
            source_h, shift_h = _tap_source(k, out_h, i)
            for j in range(k):
                source_w, shift_w = _tap_source(k, out_w, j)
                top, left = before + shift_h, before + shift_w
                total = total + products[source_h][source_w][:, top : top + height, left : left + width, i * k + j]
        return total

    return _interleave(tuple(tuple(output_phase(a, b) for b in (0, 1)) for a in (0, 1)))


def _phase_window_taps(kernel_size: int, shifts: tuple[int, int]) -> tuple[np.ndarray, int]:
    """Where `_phase_domain_conv`'s taps lie when it is written as one stride-1 convolution with a
    w×w window from the blocks (seen as [B, H + s, W + s, 4·C], padded by `before` rows and columns)
    to the four output phases: [w, w, source_h, source_w, out_h, out_w] -> tap i·k + j, or k² for none.
    Along each axis, output phase o's tap i reads `_tap_source`'s phase at its offset + shifts[source]
    within the block."""
    k = kernel_size

    def source_and_offset(out: int, tap: int) -> tuple[int, int]:
        source, offset = _tap_source(k, out, tap)
        return source, offset + shifts[source]

    offsets = [source_and_offset(out, tap)[1] for out in (0, 1) for tap in range(k)]
    before = -min(offsets)
    taps = np.full((before + 1 + max(offsets),) * 2 + (2, 2, 2, 2), k * k)
    for out_h in (0, 1):
        for out_w in (0, 1):
            for i in range(k):
                source_h, row = source_and_offset(out_h, i)
                for j in range(k):
                    source_w, column = source_and_offset(out_w, j)
                    taps[row + before, column + before, source_h, source_w, out_h, out_w] = i * k + j
    return taps, before


def _phase_window(kernel: jax.Array, taps: np.ndarray) -> jax.Array:
    """kernel [k, k, C, F] placed at `taps` (`_phase_window_taps`): [w, w, 4·C, 4·F], channels block 2a + b first."""
    k, _, channels, features = kernel.shape
    flat = jnp.concatenate([kernel.reshape(k * k, channels, features), jnp.zeros_like(kernel[:1, 0])])
    window = taps.shape[0]
    merged = flat[taps].transpose(0, 1, 2, 3, 6, 4, 5, 7)  # [w, w, 2, 2, C, 2, 2, F]
    return merged.reshape(window, window, 4 * channels, 4 * features)


def _inside_phases(blocks_shape: tuple[int, ...], shifts: tuple[int, int]) -> np.ndarray:
    """[H + s, W + s, 4, 1]: True where a block holds its phase, False on its border."""
    _, rows, columns, _, _ = blocks_shape
    margin = max(shifts)

    def within(length: int) -> list[np.ndarray]:  # per phase along one axis
        return [(np.arange(length) >= shift) & (np.arange(length) < length - margin + shift) for shift in shifts]

    row_in, column_in = within(rows), within(columns)
    inside = [row_in[a][:, None] & column_in[b][None, :] for a in (0, 1) for b in (0, 1)]
    return np.stack(inside, axis=-1)[..., None]


def _phase_domain_forward(
    blocks: jax.Array, kernel: jax.Array, shifts: tuple[int, int], precision: Any
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return _phase_domain_conv(blocks, kernel, shifts, precision), (blocks, kernel)


def _phase_domain_backward(
    shifts: tuple[int, int], precision: Any, residuals: tuple[jax.Array, jax.Array], cotangent: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The gradients of `_phase_domain_conv` as those of the one convolution `_phase_window_taps`
    describes, computed as two matrix products sharing one im2col of the output phases' gradient
    (4·F channels: 12 for RGB); the blocks' border gets none and gives none.

    Autodiff of the forward's slices and sums wrote the slices' gradients into the [B, H + s, W + s,
    4, kh·kw·F] products: on an H100 two pad kernels of ~1 ms per bf16 step at ~160 GB/s. This
    measured 119.3 -> 156.9 seed steps/s (bf16); cuDNN's dgrad and wgrad of that convolution 145.5
    (docs/benchmarks.md, 2026-11-26 12:13). With the window w at padding `before`, output row p
    reads block row p + t - before, so block row q gets the gradient of output rows q + before - t:
    rows q + w - 1 - t of the gradient padded by w - 1 - before; the weight gradient pairs block
    row q with the same patch.
    """
    blocks, kernel = residuals
    batch, rows, columns, _, channels = blocks.shape
    taps, before = _phase_window_taps(kernel.shape[0], shifts)
    window_kernel, kernel_vjp = jax.vjp(lambda k: _phase_window(k, taps), kernel)
    window = taps.shape[0]
    gradient = Phases.split(cotangent).blocks
    height, width = gradient.shape[1:3]
    gradient = jnp.pad(
        gradient.reshape(batch, height, width, -1),
        ((0, 0), (window - 1 - before, rows + before - height), (window - 1 - before, columns + before - width), (0, 0)),
    )
    columns_first = jnp.concatenate(
        [gradient[:, :, window - 1 - t : window - 1 - t + columns] for t in range(window)], axis=-1
    )
    patches = jnp.concatenate(
        [columns_first[:, window - 1 - t : window - 1 - t + rows] for t in range(window)], axis=-1
    )  # [B, H + s, W + s, (t_h, t_w, 4·F)]
    matrix = window_kernel.transpose(0, 1, 3, 2).reshape(patches.shape[-1], 4 * channels)
    inside = _inside_phases(blocks.shape, shifts)
    blocks_gradient = jnp.dot(patches, matrix.astype(patches.dtype), precision=precision).reshape(blocks.shape)
    window_gradient = _window_gradient(blocks, patches, inside, precision)
    window_gradient = window_gradient.reshape(4 * channels, window, window, -1).transpose(1, 2, 0, 3)
    (kernel_gradient,) = kernel_vjp(window_gradient.astype(window_kernel.dtype))
    return jnp.where(inside, blocks_gradient, 0), kernel_gradient


def _window_gradient(
    blocks: jax.Array, patches: jax.Array, inside: np.ndarray, precision: Any, images_per_product: int = 8
) -> jax.Array:
    """The blocks [B, H + s, W + s, 4, C] without their border (`inside` [H + s, W + s, 4, 1]) against
    the im2col [B, H + s, W + s, P], summed over every pixel: [4·C, P] in float32.

    One product per gcd(B, `images_per_product`) images over the whole blocks, less the border's
    products: a block's border is whole rows and columns, so those are the border rows' plus the
    border columns' less the corners counted twice (small products over the edge rows and
    columns). On an H100 (docs/benchmarks.md, 2026-11-26 13:24-13:40), one product over all
    B·(H + s)·(W + s) pixels with the border masked had XLA pad its contraction for split-K
    (215,168 -> 215,296 rows at seed size) with copies of both operands, the masking fused into
    one: 0.21 ms per bf16 step; one product per image instead measured GPU kernels 6.271 -> 6.119
    ms, 158.39 -> 159.07 steps/s per call; per 8 images 159.75 -> 160.56 on another machine (its
    [B/8, 4·C, P] float32 partial sums 1/8 of the per-image ones; per 32 images XLA pads the
    contraction again, in the GPU compiler's model).
    """
    batch, _, _, phases, channels = blocks.shape
    patches = patches.astype(blocks.dtype)
    products = functools.partial(jnp.einsum, precision=precision, preferred_element_type=jnp.float32)
    groups = batch // math.gcd(batch, images_per_product)
    whole = products(
        "gqx,gqp->gxp", blocks.reshape(groups, -1, phases * channels), patches.reshape(groups, -1, patches.shape[-1])
    ).sum(0)
    outside = ~inside[..., 0]  # [H + s, W + s, 4]
    row_border, column_border = outside.all(axis=1), outside.all(axis=0)  # [H + s, 4], [W + s, 4]: border in phase s
    edge_rows, edge_columns = np.flatnonzero(row_border.any(-1)), np.flatnonzero(column_border.any(-1))
    row_outside = row_border[edge_rows].astype(np.float32)
    column_outside = column_border[edge_columns].astype(np.float32)
    row_blocks, row_patches = blocks[:, edge_rows], patches[:, edge_rows]
    by_row = products("brcsx,brcp->rsxp", row_blocks, row_patches)
    by_column = products("brcsx,brcp->csxp", blocks[:, :, edge_columns], patches[:, :, edge_columns])
    by_corner = products("brcsx,brcp->rcsxp", row_blocks[:, :, edge_columns], row_patches[:, :, edge_columns])
    border = (
        jnp.einsum("rs,rsxp->sxp", row_outside, by_row)
        + jnp.einsum("cs,csxp->sxp", column_outside, by_column)
        - jnp.einsum("rs,cs,rcsxp->sxp", row_outside, column_outside, by_corner)
    )
    return whole - border.reshape(phases * channels, -1)


_phase_domain_conv.defvjp(_phase_domain_forward, _phase_domain_backward)


class ConvFromPhases(nn.Module):
    """`nn.Conv(features, (k, k), padding='SAME')` (k odd) of the image that `Phases` hold, for a narrow output.

    Same parameters ('kernel' [k, k, C_in, features], 'bias') and result as that `nn.Conv` on
    `phases.interleave()`. On CUDA GPUs it runs in the phase domain (`_conv_in_phase_domain`): one
    matrix product over the four blocks instead of cuDNN's slow narrow convolution (see
    `unfold_columns`), only the `features`-channel output interleaved, not the C_in-channel input,
    and a hand-written backward (`_phase_domain_backward`). Elsewhere it interleaves and calls XLA's
    convolution, which beats the unfolded form on CPUs.
    """

    features: int
    kernel_size: int
    dtype: Any = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, phases: Phases) -> jax.Array:
        k = self.kernel_size
        if k % 2 == 0:
            raise ValueError(f"ConvFromPhases kernel_size must be odd ('SAME' centres the window), got {k}")
        kernel = self.param("kernel", KERNEL_INIT, (k, k, phases.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", BIAS_INIT, (self.features,), jnp.float32)
        blocks, kernel, bias = nn.dtypes.promote_dtype(phases.blocks, kernel, bias, dtype=self.dtype)

        def phase_domain(blocks: jax.Array, kernel: jax.Array) -> jax.Array:
            return _conv_in_phase_domain(Phases(blocks, phases.shifts), kernel, self.precision)

        def interleaved(blocks: jax.Array, kernel: jax.Array) -> jax.Array:
            return jax.lax.conv_general_dilated(
                Phases(blocks, phases.shifts).interleave(), kernel, (1, 1), "SAME",
                dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=self.precision,
            )

        y = jax.lax.platform_dependent(blocks, kernel, cuda=phase_domain, default=interleaved)
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
