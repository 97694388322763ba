"""Compile the seed's train steps for a TPU pod slice on a machine without TPUs, and check the sharding.

    python tools/tpu_compile.py [--topology v5e:4x4] [--models dcgan,vae] [--dtypes bfloat16,float32] [--json out.json]

Needs libtpu beside the project's dependencies, in its own environment (no TPU is used; libtpu
compiles for the topology it is named):

    python3 -m venv /tmp/venvtpu && . /tmp/venvtpu/bin/activate
    pip install "jax[tpu]==$(python -c 'import jax; print(jax.__version__)')" flax optax orbax-checkpoint \
        ml_collections pillow matplotlib && pip install --no-deps -e .

For each step it builds what a multi-host run builds (`parallel.make_mesh` over every device of the
slice, `build_steps` with the batch sharding, state replicated and donated) and compiles it with
XLA's TPU compiler. Printed per step: compile time, the partitioned program's FLOPs per device
(XLA's count) against this project's count divided by the devices, which shows the batch, the
latents drawn inside the step included, is split rather than replicated; the gradient all-reduces
and the bytes they carry; and memory per device. Exits 1 if a step's FLOPs per device are not
within 15% of its share. A compile check, not a run: nothing executes on a TPU here.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # libtpu only describes the topology; nothing runs on it
os.environ.setdefault("TPU_ACCELERATOR_TYPE", "none")  # silences libtpu's search for local TPU hosts
os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
from jax.experimental import topologies  # noqa: E402

from gan_arith.bench import measure as bench  # noqa: E402
from gan_arith.bench.flops import train_step_flops  # noqa: E402
from gan_arith.train import parallel  # noqa: E402
from gan_arith.train.steps import build_steps  # noqa: E402

SHARE_TOLERANCE = 0.15


def all_reduce_bytes(hlo_text: str) -> tuple[int, int]:
    """(number of all-reduce ops, bytes of their results) in the partitioned program."""
    sizes = {"bf16": 2, "f16": 2, "f32": 4, "s32": 4, "u32": 4, "pred": 1}
    count, total = 0, 0
    for match in re.finditer(r"= (\(.*?\)|\S+) all-reduce(?:-start)?\(", hlo_text):
        count += 1
        for dtype, dims in re.findall(r"\b(bf16|f16|f32|s32|u32|pred)\[([0-9,]*)\]", match.group(1)):
            elements = 1
            for dim in filter(None, dims.split(",")):
                elements *= int(dim)
            total += sizes[dtype] * elements
    return count, total


def compile_step(model: str, dtype: str, mesh: jax.sharding.Mesh) -> dict:
    size = bench.SIZES["seed"]
    steps = build_steps(bench.step_config(model, dtype, size), parallel.batch_sharding(mesh))
    parallel.check_batch_size(size.batch_size, steps.data_batch_size(size.batch_size), mesh)
    started = time.perf_counter()
    compiled = bench.per_step_function(steps, mesh).lower(*bench.abstract_step_inputs(steps, mesh, size)).compile()
    compile_s = time.perf_counter() - started
    xla = compiled.cost_analysis()
    xla = xla[0] if isinstance(xla, (list, tuple)) else xla
    share = train_step_flops(steps, size.batch_size, size.image_size).total / mesh.size
    reduces, reduce_bytes = all_reduce_bytes(compiled.as_text())
    memory = compiled.memory_analysis()
    return {
        "model": model, "dtype": dtype, "compile_s": compile_s,
        "xla_flops_per_device": float(xla.get("flops", 0.0)), "counted_flops_share": share,
        "all_reduces": reduces, "all_reduce_bytes": reduce_bytes,
        "argument_bytes": memory.argument_size_in_bytes, "temp_bytes": memory.temp_size_in_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topology", default="v5e:4x4", help="a TPU slice, e.g. v5e:4x4, v4:2x2x2, v5p:2x2x2, v6e:4x4")
    parser.add_argument("--models", default="dcgan,vae")
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    devices = topologies.get_topology_desc(args.topology, "tpu").devices
    hosts = sorted({device.process_index for device in devices})
    print(f"{args.topology}: {len(devices)} devices ({devices[0].device_kind}) on {len(hosts)} host(s)", flush=True)
    mesh = parallel.make_mesh(devices)
    rows, bad = [], []
    for model in args.models.split(","):
        for dtype in args.dtypes.split(","):
            row = compile_step(model, dtype, mesh)
            ratio = row["xla_flops_per_device"] / row["counted_flops_share"]
            print(f"  {model:5s} {dtype:8s} compiled in {row['compile_s']:5.1f} s; per device: "
                  f"{row['xla_flops_per_device'] / 1e9:7.1f} GFLOP (XLA) vs {row['counted_flops_share'] / 1e9:7.1f} "
                  f"counted / {mesh.size} ({ratio:.2f}x); {row['all_reduces']} all-reduces carrying "
                  f"{row['all_reduce_bytes'] / 1e6:.1f} MB; arguments {row['argument_bytes'] / 1e6:.1f} MB, "
                  f"temporaries {row['temp_bytes'] / 1e6:.1f} MB", flush=True)
            if abs(ratio - 1) > SHARE_TOLERANCE:
                bad.append(f"{model}/{dtype}")
            rows.append(row)
    if args.json:
        args.json.write_text(json.dumps({"topology": args.topology, "devices": len(devices), "hosts": len(hosts),
                                         "jax": jax.__version__, "source_digest": bench.source_digest(), "rows": rows}, indent=1))
    if bad:
        sys.exit(f"FLOPs per device are not the step's share for {', '.join(bad)}: the batch is not split over the slice")


if __name__ == "__main__":
    main()
