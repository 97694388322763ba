"""Time the seed's DCGAN step with the weight gradient of the generator's RGB layer computed in different ways.

    python tools/rgb_wgrad_variants.py [--dtypes bfloat16,float32] [--variants library,grouped8]
                                       [--json F] [--profile DIR]

A measuring tool for a GPU session (docs/benchmarks.md), not part of the library. It swaps
`layers._window_gradient` (in the CUDA branch's backward of `ConvFromPhases`: the blocks against
the im2col of the output phases' gradient, summed over 128·41·41 = 215,168 pixels at seed size,
less the border's products) for each variant and times the step as `gan_arith.bench` does (one
step per call). On CPUs the library runs XLA's convolution there instead, so the timings mean
something on CUDA GPUs only.
- library: one product per image, [128, 512, 192] float32 summed over the batch afterwards; on an
  H100 (2026-11-26 13:24) XLA fused that sum into the kernel gradient's scatter, 35.8 µs;
- grouped8 (`images_per_product=8`): one product per 8 images (contraction 13,448), a [16, 512,
  192] sum; modelled (tools/gpu_traffic.py) -44 MB and no padded copies (32 images per product
  had XLA pad the contraction again). Whether cuBLAS runs that shape as fast only the GPU says.
Every variant is first checked against the library's gradients (float32, exact products) on random
inputs with a non-zero border. Earlier variants (one product over all pixels with the border
masked; per image with it masked) are in git history at 8786604.
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

LIBRARY = layers._window_gradient
VARIANTS = {"library": LIBRARY, "grouped8": functools.partial(LIBRARY, images_per_product=8)}


def check_variant(variant) -> None:
    """The layer's gradients with the variant against the library's, float32, exact products, non-zero border."""
    blocks = jax.random.normal(jax.random.key(0), (2, 7, 6, 4, 8))  # 6×5 phases at shifts (0, 1)
    kernel = jax.random.normal(jax.random.key(1), (5, 5, 8, 3))
    cotangent = jax.random.normal(jax.random.key(2), (2, 12, 10, 3))

    def gradients(window_gradient):
        layers._window_gradient = window_gradient
        loss = lambda b, k: jnp.sum(layers._conv_in_phase_domain(layers.Phases(b, (0, 1)), k, "highest") * cotangent)
        return jax.jit(jax.grad(loss, argnums=(0, 1)))(blocks, kernel)

    expected, got = gradients(LIBRARY), gradients(variant)
    for e, g in zip(expected, got):
        error = float(jnp.linalg.norm(g - e) / jnp.linalg.norm(e))
        if not error < 1e-5:
            raise SystemExit(f"variant differs from the library's: relative error {error:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--variants", default=",".join(VARIANTS))
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
            layers._window_gradient = VARIANTS[name]
            for dtype in args.dtypes.split(","):
                config = bench.step_config("dcgan", dtype, size)
                steps = build_steps(config, parallel.batch_sharding(mesh))
                if initial is None:
                    initial = bench.initial_state(steps, size.image_size)
                profile = args.profile / name if args.profile else None
                row = bench.bench_step(steps, config, initial, size, mesh, images, None, profile)
                per_step = row["modes"]["per_step"]
                kernels = row.get("kernel_time")
                results.append({"variant": name, "dtype": dtype, "steps_per_s": row["steps_per_s"],
                                "compile_s": per_step["compile_s"], "windows": per_step["window_steps_per_s"],
                                "kernel_time": kernels})
                print(f"RESULT {name:9s} {dtype:9s} {row['steps_per_s']:8.2f} steps/s  compile {per_step['compile_s']:.1f} s  "
                      f"windows {' '.join(f'{r:.1f}' for r in per_step['window_steps_per_s'])}"
                      + (f"  GPU kernels {kernels['ms_per_call']:.3f} ms" if kernels else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": jax.devices()[0].device_kind, "results": results}, indent=1))


if __name__ == "__main__":
    main()
