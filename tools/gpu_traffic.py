"""Compile a train step for an H100 on a machine without one, and list its kernels and memory traffic.

    python tools/gpu_traffic.py [--models dcgan] [--dtypes bfloat16,float32] [--discriminator-padding same]
                                [--conv-transpose phase] [--conv-fusion] [--top 15] [--json traffic.json]
                                [--trace ROW.trace.json.gz [--trace-calls 10]]

(`--conv-fusion`: compiled with XLA's cuDNN convolution fusion, config.conv_fusion='on'. `--trace`:
a GPU profile of the same code and row, from `python -m gan_arith.bench --profile`: each measured
memory-bound kernel with the bytes modelled for it and the bandwidth that makes, for one model and
dtype. A kernel far below the H100's ~3 TB/s is bound by its access pattern or arithmetic, which
the byte count alone does not show (docs/benchmarks.md has examples). Rows above the H100's ~3.35 TB/s are not fast
kernels: a slice's whole operand counted, or two kernels whose numbered names this compile and the
profiled one gave the other way round.)

Needs the CUDA build of jaxlib next to the project's dependencies, in its own environment (the GPU
is not needed, nor a driver; XLA compiles for the H100 described in H100_TARGET). Model the jax
version the GPU runs (the device tool's image: 0.11.2, whose CUDA wheels need Python >= 3.12; on
this project's machines pyenv has one):

    /root/.pyenv/versions/3.12.1/bin/python -m venv /tmp/venv312 && . /tmp/venv312/bin/activate
    pip install "jax[cuda13]==0.11.2" "flax==0.12.10" optax orbax-checkpoint ml_collections pillow matplotlib \
        && pip install --no-deps -e .

What it reports, per (model, dtype): the kernels of XLA's optimised step (cuDNN convolutions, GEMM
fusions, and the memory-bound loop/input fusions), each with the bytes it reads and writes (operand
and result sizes), and a range for the time of the memory-bound ones: ``MS_PER_GB``, the measured
memory-bound kernel time over the bytes this model counts for the same code, from two H100 profiles
of two versions of the step (docs/benchmarks.md, "Where the time went"; the dearer one per byte ran
im2col concatenations at 0.25-0.5 TB/s). A model of traffic, not a measurement:
autotuning is off without a device, and a kernel's bytes are upper bounds (a fusion reading a
slice counts its whole operand). Use it to rank changes before a GPU session measures them.
"""

from __future__ import annotations

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")  # no driver or CUPTI here
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the cuda plugin still registers for topologies

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import topologies  # noqa: E402

from gan_arith.bench import measure as bench  # noqa: E402
from gan_arith.bench import trace  # noqa: E402
from gan_arith.models.layers import CONV_TRANSPOSE_IMPLS  # noqa: E402
from gan_arith.train import parallel  # noqa: E402
from gan_arith.train.steps import build_steps  # noqa: E402

# An H100 SXM as XLA's GPU compiler sees it (jax-ml/jax#28376); runtime and cuDNN versions of jax 0.10's
# and 0.11's CUDA 13 wheels.
H100_TARGET = """
gpu_device_info {
  threads_per_block_limit: 1024 threads_per_warp: 32 shared_memory_per_block: 49152
  shared_memory_per_core: 233472 threads_per_core_limit: 2048 core_count: 132 fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535 block_dim_limit_z: 65535
  memory_bandwidth: 3352320000000
  l2_cache_size: 52428800
  clock_rate_ghz: 1.98
  device_memory_size: 84929347584
  shared_memory_per_block_optin: 232448
  cuda_compute_capability { major: 9 } registers_per_core_limit: 65536 registers_per_block_limit: 65536
}
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 28 }
runtime_version { major: 13 minor: 0 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""
# Measured memory-bound kernel time per modelled GB on one H100, for two profiled versions of the step (see above).
MS_PER_GB = {"bfloat16": (2.83 / 7.421, 4.59 / 8.689), "float32": (4.85 / 14.276, 7.17 / 16.478)}
_BYTES = {"bf16": 2, "f16": 2, "f32": 4, "s32": 4, "u32": 4, "u8": 1, "s8": 1, "pred": 1, "f64": 8, "s64": 8, "u64": 8}
_SHAPE = re.compile(r"\b(" + "|".join(_BYTES) + r")\[([0-9,]*)\]")
_NOT_KERNELS = {"parameter", "get-tuple-element", "bitcast", "tuple", "constant"}


def shape_bytes(text: str) -> int:
    """Bytes of every array shape written in ``text`` (a result type, possibly a tuple)."""
    return sum(_BYTES[t] * int(np.prod([int(d) for d in dims.split(",") if d])) for t, dims in _SHAPE.findall(text))


def kernels(hlo_text: str) -> list[dict]:
    """The entry computation's kernels: name, kind, bytes read and written, result type."""
    entry = hlo_text[hlo_text.index("\nENTRY"):]
    results, found = {}, []
    for line in entry.splitlines()[1:]:
        match = re.match(r"\s*(?:ROOT )?%(\S+) = (.*?) ([\w\-]+)\((.*)", line)
        if not match:
            continue
        name, result, opcode, rest = match.groups()
        results[name] = result
        if opcode in _NOT_KERNELS:
            continue
        # A profile names a kernel by its deduplicated computation, shared by identical fusions.
        runtime = re.search(r'deduplicated_name="([^"]+)"', line)
        op_name = re.search(r'op_name="([^"]+)"', line)
        if opcode == "custom-call":
            kind = re.search(r'custom_call_target="([^"]+)"', line).group(1)
            result = result.split(", u8[")[0]  # the cuDNN/cuBLAS workspace is scratch, not traffic
        elif opcode == "fusion":
            if '"kind":"__triton' in line:
                kind = "gemm fusion"
            elif "kind=kCustom" in line:
                kind = "cudnn fusion"  # a convolution with its epilogue (XLA's conv fusion, --conv-fusion), not memory-bound
            else:
                kind = "fusion:" + re.search(r"kind=(\w+)", line).group(1)
        else:
            kind = opcode
        operands = re.findall(r"%([\w.\-]+)", rest.split("), ")[0])
        read = sum(shape_bytes(results.get(operand, "")) for operand in operands)
        found.append({"name": name, "kind": kind, "read": read, "written": shape_bytes(result), "result": result,
                      "runtime_name": runtime.group(1) if runtime else name, "op": op_name.group(1) if op_name else ""})
    return found


def measured_bandwidth(found: list[dict], micros: dict[str, float], launches: dict[str, int],
                       calls: int) -> list[dict]:
    """The profiled memory-bound kernels (`micros` and `launches` per kernel name over `calls` calls,
    from trace.gpu_kernels) joined with the bytes modelled for them, slowest first. The profile writes
    HLO's dots as underscores (loop_pad_fusion_2 for loop_pad_fusion.2)."""
    modelled = collections.defaultdict(list)
    for kernel in found:
        if memory_bound(kernel):
            modelled[kernel["runtime_name"]].append(kernel)
    rows = []
    for name, us in micros.items():
        members = modelled.get(re.sub(r"_(\d+)$", r".\1", name)) or modelled.get(name)
        if not members:
            continue
        ms = us / calls / 1000
        gigabytes = sum(k["read"] + k["written"] for k in members) / 1e9
        rows.append({"kernel": name, "ms_per_call": ms, "launches_per_call": launches[name] / calls,
                     "modelled_gb": gigabytes, "gb_per_s": gigabytes / (ms / 1000), "op": members[0]["op"]})
    return sorted(rows, key=lambda row: -row["ms_per_call"])


def memory_bound(kernel: dict) -> bool:
    return kernel["kind"].startswith("fusion:") or kernel["kind"] in ("copy", "transpose", "pad", "concatenate", "slice")


def compile_step(model: str, dtype: str, discriminator_padding: str, conv_fusion: bool = False,
                 conv_transpose: str = "phase") -> str:
    """The optimised HLO of the seed-size step (one step per call, state donated) for one H100."""
    topology = topologies.get_topology_desc(platform="cuda", target_config=H100_TARGET, topology="1x1x1")
    mesh = parallel.make_mesh(topology.devices)
    size = bench.SIZES["seed"]
    config = bench.step_config(model, dtype, size, conv_transpose, discriminator_padding)
    steps = build_steps(config, parallel.batch_sharding(mesh))
    options = {parallel.XLA_CONV_FUSION: True} if conv_fusion else None  # ('auto' would look at this host's devices)
    lowered = bench.per_step_function(steps, mesh, options).lower(*bench.abstract_step_inputs(steps, mesh, size))
    return lowered.compile().as_text()


def report(model: str, dtype: str, found: list[dict], top: int) -> dict:
    by_kind = collections.defaultdict(lambda: [0, 0])
    for kernel in found:
        by_kind[kernel["kind"]][0] += 1
        by_kind[kernel["kind"]][1] += kernel["read"] + kernel["written"]
    bound = [k for k in found if memory_bound(k)]
    bound_gb = sum(k["read"] + k["written"] for k in bound) / 1e9
    print(f"\n{model} {dtype}: {len(found)} kernels")
    for kind, (count, total) in sorted(by_kind.items(), key=lambda item: -item[1][1]):
        print(f"  {kind:40s} {count:4d} kernels {total / 1e9:8.3f} GB")
    predicted = [bound_gb * ms for ms in MS_PER_GB[dtype]]
    print(f"  memory-bound: {len(bound)} kernels, {bound_gb:.3f} GB -> {predicted[0]:.2f}-{predicted[1]:.2f} ms "
          "per step on an H100")
    for kernel in sorted(bound, key=lambda k: -(k["read"] + k["written"]))[:top]:
        print(f"    {(kernel['read'] + kernel['written']) / 1e6:8.1f} MB  {kernel['kind']:14s} {kernel['result'][:90]}")
    return {"model": model, "dtype": dtype, "kernels": len(found), "memory_bound_kernels": len(bound),
            "memory_bound_gb": bound_gb, "predicted_memory_bound_ms_range": predicted,
            "by_kind": {kind: {"kernels": c, "gb": b / 1e9} for kind, (c, b) in by_kind.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="dcgan")
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--discriminator-padding", choices=("same", "symmetric"), default="same")
    parser.add_argument("--conv-transpose", choices=CONV_TRANSPOSE_IMPLS, default="phase")
    parser.add_argument("--conv-fusion", action="store_true", help="compile with XLA's cuDNN convolution fusion")
    parser.add_argument("--top", type=int, default=15, help="list this many of the largest memory-bound kernels")
    parser.add_argument("--hlo-dir", type=Path, help="also write each optimised HLO here")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--trace", type=Path, help="a GPU profile of this row (bench --profile): measured bandwidths")
    parser.add_argument("--trace-calls", type=int, default=bench.PROFILED_CALLS, help="calls the trace holds")
    args = parser.parse_args()
    if args.trace and ("," in args.models or "," in args.dtypes):
        parser.error("--trace is the profile of one row: give one --models and one --dtypes")
    rows = []
    for model in args.models.split(","):
        for dtype in args.dtypes.split(","):
            hlo = compile_step(model, dtype, args.discriminator_padding, args.conv_fusion, args.conv_transpose)
            if args.hlo_dir:
                args.hlo_dir.mkdir(parents=True, exist_ok=True)
                (args.hlo_dir / f"{model}_{dtype}.hlo").write_text(hlo)
            found = kernels(hlo)
            rows.append(report(model, dtype, found, args.top))
            if args.trace:
                measured = measured_bandwidth(found, *trace.gpu_kernels(args.trace), args.trace_calls)
                print(f"  measured memory-bound kernels ({args.trace}): {sum(r['ms_per_call'] for r in measured):.3f} ms "
                      "per call; the slowest:")
                for row in measured[:args.top]:
                    print(f"    {row['ms_per_call']:6.3f} ms {row['modelled_gb'] * 1e3:7.1f} MB {row['gb_per_s']:6.0f} GB/s "
                          f"x{row['launches_per_call']:<3.3g} {row['kernel'][:32]:32s} {row['op'][-70:]}")
                rows[-1]["measured"] = measured
    if args.json:
        args.json.write_text(json.dumps({"source_digest": bench.source_digest(), "jax": jax.__version__,
                                         "discriminator_padding": args.discriminator_padding,
                                         "conv_transpose": args.conv_transpose,
                                         "conv_fusion": "on" if args.conv_fusion else "off", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
