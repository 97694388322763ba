"""The generator's transposed convolutions and RGB layer lowered for CUDA GPUs: an image held as its
four stride-2 phases (`Phases`), the four phase convolutions merged into one, and the RGB layer
computed in the phase domain as matrix products with a hand-written backward pass."""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from gan_arith.models import layers
from gan_arith.models.layers import BIAS_INIT, KERNEL_INIT, Phase, interleave, phase_padding


@struct.dataclass
class Phases:
    """An image [B, 2H, 2W, C] held as its four stride-2 phases ``image[:, a::2, b::2]``: the blocks of
    one tensor, ``blocks`` [B, H + s, W + s, 4, C], phase (a, b) being block 2a + b at rows from
    ``shifts[a]`` and columns from ``shifts[b]`` (s = max(shifts)).

    Handed on uninterleaved from `ConvTranspose2x` to `ConvFromPhases`, they save interleaving the
    activations and de-interleaving their gradient: two passes over the generator's largest tensor.
    As blocks of one tensor, because the merged transposed convolution writes all four phases as
    one output (each at its own offset) and the next layer's matrix products read them at once: no
    copies of the phases out of it, nor of their gradients back into it. ``shape`` is the image's.
    """

    blocks: jax.Array
    shifts: tuple[int, int] = struct.field(pytree_node=False, default=(0, 0))

    @property
    def shape(self) -> tuple[int, ...]:
        batch, height, width, _, channels = self.blocks.shape
        margin = max(self.shifts)
        return batch, 2 * (height - margin), 2 * (width - margin), channels

    @property
    def phase(self) -> Phase:
        _, height, width, _ = self.shape
        rows, columns = height // 2, width // 2

        def block(a: int, b: int) -> jax.Array:
            top, left = self.shifts[a], self.shifts[b]
            return self.blocks[:, top : top + rows, left : left + columns, 2 * a + b]

        return tuple(tuple(block(a, b) for b in (0, 1)) for a in (0, 1))

    def interleave(self) -> jax.Array:
        return interleave(self.phase)

    @classmethod
    def stacked(cls, phase: Phase, shifts: tuple[int, int] = (0, 0)) -> "Phases":
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


def _phase_shifts(paddings: list[tuple[int, int, int]]) -> tuple[int, int]:
    """Along one axis, where each phase's output starts in `merged_phase_convolution`'s: phase p's
    first input pixel (-before_p) less the earliest of the two."""
    starts = [-before for _, before, _ in paddings]
    return starts[0] - min(starts), starts[1] - min(starts)


def merged_phase_convolution(
    x: jax.Array, kernel: jax.Array, finish: Callable[[jax.Array], jax.Array] = lambda y: y
) -> Phases:
    """The four phase convolutions of a stride-2 'SAME' transposed convolution as one convolution
    with 4× the output channels, then `finish` (elementwise: the bias tiled over the four blocks
    and the activation).

    Along each axis, phase p's taps kernel[first_p::2] read input pixels m - before_p + t
    (`layers.phase_padding`). All four sub-kernels go into one window (for odd k, the phase with
    fewer taps zero-padded), each phase's output shifted by where its first input pixel lies
    (`_phase_shifts`): phase p at output m is the merged output at m + shift_p, in its own block of
    channels, which is what `Phases` holds. One convolution over one symmetric padding, so no
    per-phase padded copies, one larger GEMM instead of four, and the input gradient summed over
    the phases inside it; the price is the computed border (k = 4: (H+1)² for H²). `finish` goes on
    the merged output, where conv fusion folds it into the convolution.
    """
    k = kernel.shape[0]
    paddings = [phase_padding(k, phase) for phase in (0, 1)]
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
    y = finish(y)
    return Phases(y.reshape(*y.shape[:3], 4, kernel.shape[-1]), shifts)


class ConvTranspose2x(layers.ConvTranspose2x):
    """`layers.ConvTranspose2x` with its phases merged into one convolution (`merged_phase_convolution`);
    with interleave=False the result is returned as `Phases`."""

    interleave: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array | Phases:
        x, kernel, bias = self.kernel_and_bias(x)
        if self.impl == "dilated":
            y = jax.lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            y = self.activated(y, bias)
            return y if self.interleave else Phases.split(y)
        phases = merged_phase_convolution(x, kernel, lambda y: self.activated(y, jnp.tile(bias, 4)))
        return phases.interleave() if self.interleave else phases


def _tap_products(x: jax.Array, kernel: jax.Array, precision: Any) -> jax.Array:
    """Every pixel of x [..., C_in] times every tap of kernel [kh, kw, C_in, C_out]: [..., kh·kw, C_out].

    One matrix product with the kernel as [C_in, kh·kw·C_out], its columns padded to a multiple of 8
    (tensor cores want aligned GEMMs); tap (i, j) is index i·kw + j.
    """
    kh, kw, c_in, c_out = kernel.shape
    matrix = kernel.transpose(2, 0, 1, 3).reshape(c_in, kh * kw * c_out)
    products = jnp.dot(x, jnp.pad(matrix, ((0, 0), (0, -matrix.shape[1] % 8))), precision=precision)
    return products[..., : kh * kw * c_out].reshape(*x.shape[:-1], kh * kw, c_out)


def conv_in_phase_domain(phases: Phases, kernel: jax.Array, precision: Any) -> jax.Array:
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
    # the 'SAME' padding, not the block's border (the merged convolution's computed values there).
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

    return interleave(tuple(tuple(output_phase(a, b) for b in (0, 1)) for a in (0, 1)))


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


def inside_phases(blocks_shape: tuple[int, ...], shifts: tuple[int, int]) -> np.ndarray:
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

    Autodiff of the forward's slices and sums would write the slices' gradients into the
    [B, H + s, W + s, 4, kh·kw·F] products, a slow pad on GPUs (docs/benchmarks.md). With the
    window w at padding `before`, output row p reads block row p + t - before, so block row q gets
    the gradient of output rows q + before - t: rows q + w - 1 - t of the gradient padded by
    w - 1 - before; the weight gradient pairs block row q with the same patch.
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
    inside = inside_phases(blocks.shape, shifts)
    blocks_gradient = jnp.dot(patches, matrix.astype(patches.dtype), precision=precision).reshape(blocks.shape)
    window_gradient = window_gradient_product(blocks, patches, inside, precision)
    window_gradient = window_gradient.reshape(4 * channels, window, window, -1).transpose(1, 2, 0, 3)
    (kernel_gradient,) = kernel_vjp(window_gradient.astype(window_kernel.dtype))
    return jnp.where(inside, blocks_gradient, 0), kernel_gradient


def window_gradient_product(
    blocks: jax.Array, patches: jax.Array, inside: np.ndarray, precision: Any, images_per_product: int = 8
) -> jax.Array:
    """The blocks [B, H + s, W + s, 4, C] without their border (`inside` [H + s, W + s, 4, 1]) against
    the im2col [B, H + s, W + s, P], summed over every pixel: [4·C, P] in float32.

    One product per gcd(B, `images_per_product`) images over the whole blocks, less the border's
    products: a block's border is whole rows and columns, so those are the border rows' plus the
    border columns' less the corners counted twice (small products over the edge rows and
    columns). Masking the border inside one product over all pixels has XLA pad its contraction
    for split-K with copies of both operands; per 8 images the float32 partial sums stay small
    and the contraction unpadded (docs/benchmarks.md).
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
    `phases.interleave()`, computed in the phase domain (`conv_in_phase_domain`): one matrix
    product over the four blocks instead of cuDNN's slow narrow convolution, only the
    `features`-channel output interleaved, not the C_in-channel input, and a hand-written backward
    (`_phase_domain_backward`).
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
        return conv_in_phase_domain(Phases(blocks, phases.shifts), kernel, self.precision) + bias
