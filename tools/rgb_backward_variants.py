"""Time the seed's DCGAN step with the backward of the generator's RGB layer written in different ways.

    python tools/rgb_backward_variants.py [--dtypes bfloat16,float32] [--variants library,conv,patches]
                                          [--json F] [--profile DIR]

A measuring tool for a GPU session (docs/benchmarks.md), not part of the library. It swaps
`layers._conv_in_phase_domain` (the CUDA branch of `ConvFromPhases`: the generator's 128 -> 3
channel 5×5 layer over the last transposed convolution's phases) for each variant and times the
step as `gan_arith.bench` does (one step per call). On CPUs the library runs XLA's convolution
there instead, so the timings mean something on CUDA GPUs only.
- library: the tap products as one GEMM over the four blocks, their sums per output phase;
  autodiff's backward, whose largest part is the products' gradient, a sum of 25 zero-padded
  slices per element in one loop fusion (0.27-0.34 ms per bf16 step on an H100, 0.4-0.5 TB/s);
- conv: the same forward; the backward as cuDNN's: the layer written as one convolution of the
  blocks seen as [B, H+1, W+1, 4·C] (border zeroed; a 4×4 window, padding 1: each output phase's
  5×5 taps land at their blocks' offsets) into the four output phases' 4·3 channels,
  differentiated by `jax.vjp`: its input gradient is cuDNN's dgrad from the 12-channel output
  gradient straight into the blocks' layout, its weight gradient cuDNN's wgrad, the 5×5 kernel's
  gradient gathered from that;
- patches: the same gradients as `conv`, as two GEMMs sharing one im2col of the 12-channel output
  gradient ([B, H+1, W+1, 16·12], built in two concatenations: the column shifts, then the rows).
Every variant is first checked against the library's function (values and both gradients, float32,
exact products) on random inputs, borders included.
"""

import argparse
import functools
import json
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp

from gan_arith import bench
from gan_arith.data.synthetic import write_synthetic_store
from gan_arith.models import layers
from gan_arith.train import parallel
from gan_arith.train.steps import build_steps

LIBRARY = layers._conv_in_phase_domain


def phase_window_kernel(kernel: jax.Array, shifts: tuple[int, int]) -> jax.Array:
    """The 'SAME' k×k kernel [k, k, C, F] (k odd) as the kernel [w, w, 4·C, 4·F] of one convolution
    from `Phases` blocks (padding 1 each side) to the four output phases, block 2a + b of each."""
    k, _, channels, features = kernel.shape
    half = k // 2

    def offset(out: int, tap: int) -> tuple[int, int]:  # (source phase, window index) along one axis
        source, shift = (out + tap - half) % 2, (out + tap - half) // 2
        return source, shift + shifts[source] + 1

    window = 1 + max(offset(o, t)[1] for o in (0, 1) for t in range(k))
    merged = jnp.zeros((window, window, 2, 2, channels, 2, 2, features), kernel.dtype)
    for out_h in (0, 1):
        for out_w in (0, 1):
            for i in range(k):
                source_h, row = offset(out_h, i)
                for j in range(k):
                    source_w, column = offset(out_w, j)
                    merged = merged.at[row, column, source_h, source_w, :, out_h, out_w].set(kernel[i, j])
    return merged.reshape(window, window, 4 * channels, 4 * features)


def without_border(blocks: jax.Array, shifts: tuple[int, int]) -> jax.Array:
    """The blocks with their border zeroed: it is no part of the image (on CUDA the merged transposed
    convolution's computed values), where the 'SAME' padding has zeros."""
    _, rows, columns, _, _ = blocks.shape
    margin = max(shifts)
    ones = jnp.ones((1, rows - margin, columns - margin, 1), blocks.dtype)
    inside = layers.Phases.stacked(((ones, ones), (ones, ones)), shifts).blocks > 0
    return jnp.where(inside, blocks, 0)


def output_phases(image: jax.Array) -> jax.Array:
    """[B, 2H, 2W, F] -> [B, H, W, 4·F]: output phase (a, b) in block 2a + b, as `as_one_convolution` makes them."""
    return jnp.concatenate([image[:, a::2, b::2] for a in (0, 1) for b in (0, 1)], axis=-1)


def as_one_convolution(blocks: jax.Array, kernel: jax.Array, shifts: tuple[int, int], precision) -> jax.Array:
    batch, rows, columns, _, channels = blocks.shape
    blocks = without_border(blocks, shifts)
    y = jax.lax.conv_general_dilated(
        blocks.reshape(batch, rows, columns, 4 * channels), phase_window_kernel(kernel, shifts), (1, 1),
        ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision,
    )  # [B, H, W, 4·F]: output phase (a, b) in block 2a + b
    features = kernel.shape[-1]
    phase = y.reshape(*y.shape[:3], 2, 2, features)
    return layers._interleave(tuple(tuple(phase[:, :, :, a, b] for b in (0, 1)) for a in (0, 1)))


def _conv_backward(shifts, precision, residuals, cotangent):
    _, vjp = jax.vjp(lambda b, k: as_one_convolution(b, k, shifts, precision), *residuals)
    return vjp(cotangent)


def _patches_backward(shifts, precision, residuals, cotangent):
    # The same gradients as `_conv_backward` (the convolution's of `as_one_convolution`), as two GEMMs
    # sharing one im2col of the 12-channel output gradient: with the convolution's 4×4 window at
    # padding 1, output p reads blocks row p + t - 1, so blocks row q gets the gradient of outputs
    # q + 1 - t, i.e. rows q + w - 1 - t of the gradient padded by w - 2 (w = 4).
    blocks, kernel = residuals
    _, rows, columns, _, channels = blocks.shape
    window_kernel, kernel_vjp = jax.vjp(lambda k: phase_window_kernel(k, shifts), kernel)
    window = window_kernel.shape[0]
    margin = window - 2  # the window's reach beyond the convolution's padding of 1
    gradient = jnp.pad(output_phases(cotangent), ((0, 0), (margin, margin), (margin, margin), (0, 0)))
    columns_first = jnp.concatenate(
        [gradient[:, :, window - 1 - t : window - 1 - t + columns] for t in range(window)], axis=-1
    )  # [B, rows + 3, columns, 4·12]
    patches = jnp.concatenate(
        [columns_first[:, window - 1 - t : window - 1 - t + rows] for t in range(window)], axis=-1
    )  # [B, rows, columns, (t_h, t_w, 12)]
    outputs = patches.shape[-1] // (window * window)
    matrix = window_kernel.transpose(0, 1, 3, 2).reshape(window * window * outputs, 4 * channels)
    blocks_gradient = jnp.dot(patches, matrix.astype(patches.dtype), precision=precision)
    blocks_gradient = without_border(blocks_gradient.reshape(blocks.shape), shifts)
    flat_blocks = without_border(blocks, shifts).reshape(-1, 4 * channels)
    window_gradient = jnp.dot(flat_blocks.T, patches.reshape(flat_blocks.shape[0], -1).astype(flat_blocks.dtype),
                              precision=precision, preferred_element_type=jnp.float32)
    window_gradient = window_gradient.reshape(4 * channels, window, window, outputs).transpose(1, 2, 0, 3)
    (kernel_gradient,) = kernel_vjp(window_gradient.astype(window_kernel.dtype))
    return blocks_gradient, kernel_gradient


def library_forward_with(backward):
    """The library's function with its gradients from `backward(shifts, precision, (blocks, kernel), cotangent)`."""

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
    def function(blocks, kernel, shifts, precision):
        return LIBRARY(layers.Phases(blocks, shifts), kernel, precision)

    def forward(blocks, kernel, shifts, precision):
        return function(blocks, kernel, shifts, precision), (blocks, kernel)

    function.defvjp(forward, backward)

    def variant(phases: layers.Phases, kernel: jax.Array, precision) -> jax.Array:
        return function(phases.blocks, kernel, phases.shifts, precision)

    return variant


VARIANTS = {"library": LIBRARY, "conv": library_forward_with(_conv_backward),
            "patches": library_forward_with(_patches_backward)}


def check_variant(variant) -> None:
    """Values and gradients of the variant against the library's, float32, exact products."""
    blocks = jax.random.normal(jax.random.key(0), (2, 7, 6, 4, 8))  # 6×5 phases at shifts (0, 1)
    kernel = jax.random.normal(jax.random.key(1), (5, 5, 8, 3))
    cotangent = jax.random.normal(jax.random.key(2), (2, 12, 10, 3))

    def loss(f, blocks, kernel):
        return jnp.sum(f(layers.Phases(blocks, (0, 1)), kernel, "highest") * cotangent)

    expected = jax.jit(jax.value_and_grad(functools.partial(loss, LIBRARY), argnums=(0, 1)))(blocks, kernel)
    got = jax.jit(jax.value_and_grad(functools.partial(loss, variant), argnums=(0, 1)))(blocks, kernel)
    for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
        error = float(jnp.linalg.norm(g - e) / jnp.linalg.norm(e))
        if not error < 1e-5:
            raise SystemExit(f"variant differs from the library's: relative error {error:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--variants", default="library,conv,patches")
    parser.add_argument("--size", default="seed", choices=sorted(bench.SIZES))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", type=Path, help="trace each row here (bench --profile)")
    args = parser.parse_args()
    size = bench.SIZES[args.size]
    mesh = parallel.make_mesh()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        store = write_synthetic_store(Path(tmp) / "faces", num_faces=size.num_faces, image_sizes=[size.image_size])
        images = store.images(size.image_size)
        initial = None
        for name in args.variants.split(","):
            check_variant(VARIANTS[name])
            layers._conv_in_phase_domain = VARIANTS[name]
            for dtype in args.dtypes.split(","):
                config = bench.step_config("dcgan", dtype, size)
                steps = build_steps(config, parallel.batch_sharding(mesh))
                if initial is None:
                    initial = bench.initial_state(steps, size.image_size)
                profile = args.profile / name if args.profile else None
                row = bench.bench_step(steps, config, initial, size, mesh, images, None, profile)
                per_step = row["modes"]["per_step"]
                results.append({"variant": name, "dtype": dtype, "steps_per_s": row["steps_per_s"],
                                "compile_s": per_step["compile_s"], "windows": per_step["window_steps_per_s"],
                                "kernel_time": row.get("kernel_time")})
                kernels = row.get("kernel_time")
                print(f"RESULT {name:8s} {dtype:9s} {row['steps_per_s']:8.2f} steps/s  compile {per_step['compile_s']:.1f} s  "
                      f"windows {' '.join(f'{r:.1f}' for r in per_step['window_steps_per_s'])}"
                      + (f"  GPU kernels {kernels['ms_per_call']:.3f} ms" if kernels else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": jax.devices()[0].device_kind, "results": results}, indent=1))


if __name__ == "__main__":
    main()
