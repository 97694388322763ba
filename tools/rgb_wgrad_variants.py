"""Time the seed's DCGAN step with the weight gradient of the generator's RGB layer computed in different ways.

    python tools/rgb_wgrad_variants.py [--dtypes bfloat16,float32] [--variants library,batched,corrected]
                                       [--json F] [--profile DIR]

A measuring tool for a GPU session (docs/benchmarks.md), not part of the library. It swaps
`layers._window_gradient` (in the CUDA branch's backward of `ConvFromPhases`: the border-masked
blocks against the im2col of the output phases' gradient, summed over 128·41·41 = 215,168 pixels
at seed size) for each variant and times the step as `gan_arith.bench` does (one step per call).
On CPUs the library runs XLA's convolution there instead, so the timings mean something on CUDA
GPUs only. On an H100 (2026-11-26 12:19) XLA padded that GEMM's contraction to 215,296 rows for its
split-K, copying both operands (the masking fused into the blocks' copy): 0.154 + 0.059 ms per bf16 step.
- library: one GEMM over all pixels (`layers._window_gradient`);
- batched: one GEMM per image (contraction 41·41, no split-K needed), summed over the batch
  afterwards ([128, 512, 192] float32); modelled (tools/gpu_traffic.py) -0.127 GB: the im2col's
  copy gone, the blocks' masking still a pass of its own;
- corrected: `batched` over the unmasked blocks, less the border rows' and columns' products
  (small GEMMs over the two edge rows and columns): no masking pass and no padded copies; eight
  more small kernels (the model counts each slice with its whole operand, so its bytes say nothing here).
Every variant is first checked against the library's gradients (float32, exact products) on random
inputs with a non-zero border.
"""

import argparse
import functools
import json
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from gan_arith import bench
from gan_arith.data.synthetic import write_synthetic_store
from gan_arith.models import layers
from gan_arith.train import parallel
from gan_arith.train.steps import build_steps

LIBRARY = layers._window_gradient


def _per_image(blocks: jax.Array, patches: jax.Array, precision) -> jax.Array:
    batch, rows, columns, phases, channels = blocks.shape
    return jnp.einsum(
        "bqx,bqp->bxp", blocks.reshape(batch, rows * columns, phases * channels),
        patches.reshape(batch, rows * columns, -1).astype(blocks.dtype),
        precision=precision, preferred_element_type=jnp.float32,
    ).sum(0)


def batched(blocks, patches, inside, precision):
    return _per_image(jnp.where(inside, blocks, 0), patches, precision)


def corrected(blocks, patches, inside, precision):
    # A block's border is whole rows and columns (`layers._inside_phases`): its products are the
    # border rows' plus the border columns' less the corners counted twice.
    outside = ~inside[..., 0]  # [rows, columns, 4]
    rows = [r for r in range(outside.shape[0]) if outside[r].all(axis=0).any()]
    columns = [c for c in range(outside.shape[1]) if outside[:, c].all(axis=0).any()]
    row_out = np.array([outside[r].all(axis=0) for r in rows], np.float32)  # [edge rows, 4]
    column_out = np.array([outside[:, c].all(axis=0) for c in columns], np.float32)
    edge_rows, edge_columns = blocks[:, rows], blocks[:, :, columns]
    products = functools.partial(jnp.einsum, precision=precision, preferred_element_type=jnp.float32)
    row_part = products("brcsx,brcp->rsxp", edge_rows, patches[:, rows].astype(blocks.dtype))
    column_part = products("brcsx,brcp->csxp", edge_columns, patches[:, :, columns].astype(blocks.dtype))
    corner_part = products("brcsx,brcp->rcsxp", edge_rows[:, :, columns], patches[:, rows][:, :, columns].astype(blocks.dtype))
    border = (jnp.einsum("rs,rsxp->sxp", row_out, row_part) + jnp.einsum("cs,csxp->sxp", column_out, column_part)
              - jnp.einsum("rs,cs,rcsxp->sxp", row_out, column_out, corner_part))
    return _per_image(blocks, patches, precision) - border.reshape(-1, border.shape[-1])


VARIANTS = {"library": LIBRARY, "batched": batched, "corrected": corrected}


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
