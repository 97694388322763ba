"""Time the seed's DCGAN step with different implementations of the discriminator's RGB input convolution.

    python tools/rgb_conv_variants.py [--dtypes bfloat16,float32] [--variants column,matmul,im2col2,cmajor,patches,pad8]

A measuring tool for a GPU session (docs/benchmarks.md), not part of the library: it swaps
`gan_arith.models.dcgan.rgb_conv` (used only by the discriminator's 3 -> 128 input layer; the
generator's RGB layer is `ConvFromPhases`) for each variant and times the step as `gan_arith.bench` does.
- column: the library's CUDA choice (`column_unfolded_conv`: the kw column shifts unfolded into
  channels, zero-padded to a multiple of 8, then cuDNN's kh×1 convolution over them; measured
  2026-11-26 as `wunfold16`, 122.6 vs 110.5 steps/s bf16 over `matmul`);
- matmul: the library's choice before it: im2col (all kh·kw shifted copies, one concatenation), then one GEMM;
- padN: cuDNN with the 3 input channels zero-padded to N;
- im2col2: the input unfolded in two concatenations (the kw column shifts, then the kh row shifts of
  those) instead of one of kh·kw slices: the one-step concatenation ran at 0.25-0.5 TB/s on an H100
  (index arithmetic over 26 operands);
- cmajor: the unfolding built channels-major ([kh·kw·C, B, H, W]: each of the 25 slices lands as one
  contiguous block instead of 3 channels interleaved into every pixel), the GEMM contracting its
  leading axis;
- patches: XLA's own `lax.conv_general_dilated_patches` (a grouped convolution with a one-hot kernel).
Every variant is first checked against `lax.conv_general_dilated` (value and gradients) on random inputs.
"""

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp

from gan_arith import bench
from gan_arith.data.synthetic import write_synthetic_store
from gan_arith.models import dcgan
from gan_arith.models.layers import column_unfolded_conv
from gan_arith.train import parallel
from gan_arith.train.steps import build_steps


def padded_input_conv(channels: int):
    def conv(lhs, rhs, window_strides, padding, **kwargs):
        extra = -lhs.shape[-1] % channels
        lhs = jnp.pad(lhs, ((0, 0), (0, 0), (0, 0), (0, extra)))
        rhs = jnp.pad(rhs, ((0, 0), (0, 0), (0, extra), (0, 0)))
        return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)

    return conv


def two_step_im2col_conv(lhs, rhs, window_strides, padding, **kwargs):
    kh, kw, c_in, c_out = rhs.shape
    (top, bottom), (left, right) = [((k - 1) // 2, k // 2) for k in (kh, kw)] if padding == "SAME" else padding
    x = jnp.pad(lhs, ((0, 0), (top, bottom), (left, right), (0, 0)))
    height, width = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    columns = jnp.concatenate([x[:, :, j : j + width, :] for j in range(kw)], axis=-1)  # [B, H+p, W, kw*C]
    patches = jnp.concatenate([columns[:, i : i + height] for i in range(kh)], axis=-1)  # [B, H, W, kh*kw*C]
    return jnp.dot(patches, rhs.reshape(kh * kw * c_in, c_out), precision=kwargs.get("precision"))


def channel_major_im2col_conv(lhs, rhs, window_strides, padding, **kwargs):
    kh, kw, c_in, c_out = rhs.shape
    (top, bottom), (left, right) = [((k - 1) // 2, k // 2) for k in (kh, kw)] if padding == "SAME" else padding
    x = jnp.moveaxis(jnp.pad(lhs, ((0, 0), (top, bottom), (left, right), (0, 0))), -1, 0)  # [C, B, H+p, W+p]
    height, width = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    patches = jnp.concatenate([x[:, :, i : i + height, j : j + width] for i in range(kh) for j in range(kw)])
    depth = kh * kw * c_in
    align = -depth % 8
    patches = jnp.concatenate([patches, jnp.zeros((align, *patches.shape[1:]), patches.dtype)])  # [taps·C + align, B, H, W]
    kernel = jnp.pad(rhs.reshape(depth, c_out), ((0, align), (0, 0)))
    return jnp.einsum("kbhw,ko->bhwo", patches, kernel, precision=kwargs.get("precision"))


def im2col_matmul_conv(lhs, rhs, window_strides, padding, **kwargs):
    kh, kw, c_in, c_out = rhs.shape
    (top, bottom), (left, right) = [((k - 1) // 2, k // 2) for k in (kh, kw)] if padding == "SAME" else padding
    x = jnp.pad(lhs, ((0, 0), (top, bottom), (left, right), (0, 0)))
    height, width = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    depth = kh * kw * c_in
    align = -depth % 8
    unfolded = [x[:, i : i + height, j : j + width, :] for i in range(kh) for j in range(kw)]
    unfolded.append(jnp.zeros((x.shape[0], height, width, align), x.dtype))
    kernel = jnp.pad(rhs.reshape(depth, c_out), ((0, align), (0, 0)))
    return jnp.dot(jnp.concatenate(unfolded, axis=-1), kernel, precision=kwargs.get("precision"))


def xla_patches_conv(lhs, rhs, window_strides, padding, **kwargs):
    kh, kw, c_in, c_out = rhs.shape
    pads = [((k - 1) // 2, k // 2) for k in (kh, kw)] if padding == "SAME" else padding
    # A one-hot kernel: exact only at full precision (TF32 would round the copied pixels).
    patches = jax.lax.conv_general_dilated_patches(
        lhs, (kh, kw), (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST
    )  # features ordered (c, i, j)
    kernel = jnp.transpose(rhs, (2, 0, 1, 3)).reshape(kh * kw * c_in, c_out)
    return jnp.dot(patches, kernel, precision=kwargs.get("precision"))


NAMED = {"column": column_unfolded_conv, "matmul": im2col_matmul_conv, "im2col2": two_step_im2col_conv,
         "cmajor": channel_major_im2col_conv, "patches": xla_patches_conv}


def variant(name: str):
    return NAMED[name] if name in NAMED else padded_input_conv(int(name.removeprefix("pad")))


def check_variant(conv) -> None:
    """The variant must compute the same function: value and both gradients against lax, float32, exact products."""
    for c_in, c_out in ((3, 16),):
        x = jax.random.normal(jax.random.key(c_in), (2, 10, 10, c_in))
        kernel = jax.random.normal(jax.random.key(c_out), (5, 5, c_in, c_out))
        dn = ("NHWC", "HWIO", "NHWC")

        def loss(f, x, kernel):
            return jnp.sum(jnp.sin(f(x, kernel, (1, 1), "SAME", dimension_numbers=dn, precision="highest")))

        expected = jax.value_and_grad(lambda *a: loss(jax.lax.conv_general_dilated, *a), argnums=(0, 1))(x, kernel)
        got = jax.value_and_grad(lambda *a: loss(conv, *a), argnums=(0, 1))(x, kernel)
        for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
            error = float(jnp.linalg.norm(g - e) / jnp.linalg.norm(e))
            if not error < 1e-4:
                raise SystemExit(f"variant differs from lax.conv_general_dilated: relative error {error:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--variants", default="column,matmul")
    parser.add_argument("--size", default="seed")
    parser.add_argument("--json")
    args = parser.parse_args()
    size = bench.SIZES[args.size]
    if args.size != "seed":
        size = dataclasses.replace(size, image_size=10, width=8, batch_size=8, num_faces=64, windows=2, window_s=0.0)
    mesh = parallel.make_mesh()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        images = write_synthetic_store(Path(tmp) / "faces", num_faces=size.num_faces, image_sizes=[size.image_size]).images(size.image_size)
        initial = None
        for dtype in args.dtypes.split(","):
            for name in args.variants.split(","):
                check_variant(variant(name))
                dcgan.rgb_conv = variant(name)
                config = bench.step_config("dcgan", dtype, size)
                steps = build_steps(config, parallel.batch_sharding(mesh))
                if initial is None:
                    initial = bench.initial_state(steps, size.image_size)
                row = bench.bench_step(steps, config, initial, size, mesh, images, None)
                per_step = row["modes"]["per_step"]
                results.append({"variant": name, "dtype": dtype, "steps_per_s": row["steps_per_s"],
                                "compile_s": per_step["compile_s"], "windows": per_step["window_steps_per_s"]})
                print(f"RESULT {name:7s} {dtype:9s} {row['steps_per_s']:8.2f} steps/s  compile {per_step['compile_s']:.1f} s  "
                      f"windows {' '.join(f'{r:.1f}' for r in per_step['window_steps_per_s'])}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": jax.devices()[0].device_kind, "results": results}, indent=1))


if __name__ == "__main__":
    main()
