"""GPU kernel time from a ``jax.profiler`` trace: per call, by kind (convolution, matmul, other), largest kernels.

``python -m gan_arith.bench --profile DIR`` records the traces; `kernel_time` reads one back.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
from pathlib import Path
from typing import Any

# Kernel kinds by the names cuDNN, cuBLAS and XLA give their GPU kernels, tested in this order:
# cuDNN's convolutions include "implicit_gemm" kernels, so convolutions come before matmuls.
KERNEL_KINDS = (
    ("convolution", re.compile(r"conv|dgrad|wgrad", re.IGNORECASE)),
    ("matmul", re.compile(r"gemm|nvjet|cublas|dot", re.IGNORECASE)),
)



def kernel_kind(name: str) -> str:
    """'convolution', 'matmul' or 'other' (XLA's elementwise/reduction fusions, copies, memsets) for a GPU kernel name."""
    return next((kind for kind, pattern in KERNEL_KINDS if pattern.search(name)), "other")


def gpu_kernels(trace_file: Path) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """(microseconds, launches) per kernel name on the GPU compute streams of a ``jax.profiler``
    trace (a .trace.json.gz); both empty where it holds none (CPU and TPU traces)."""
    with gzip.open(trace_file, "rt") as f:
        events = json.load(f)["traceEvents"]
    gpus = {e["pid"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
            and e["args"]["name"].startswith("/device:GPU")}
    streams = {(e["pid"], e["tid"]) for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"
               and e["pid"] in gpus and "Compute" in e["args"]["name"]}
    micros: collections.Counter[str] = collections.Counter()
    launches: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and (event["pid"], event.get("tid")) in streams:
            micros[event["name"]] += event["dur"]
            launches[event["name"]] += 1
    return micros, launches


def kernel_time(trace_dir: Path, calls: int, top: int = 8) -> dict[str, Any] | None:
    """GPU kernel time per call, by kind and for the `top` largest kernels, from the trace that
    ``jax.profiler.trace(trace_dir)`` wrote of `calls` calls; None where it holds no GPU compute
    stream (CPU and TPU traces)."""
    files = sorted(trace_dir.glob("plugins/profile/*/*.trace.json.gz"))
    if not files:
        return None
    micros, launches = gpu_kernels(files[-1])
    if not micros:
        return None
    by_kind = {kind: 0.0 for kind, _ in KERNEL_KINDS} | {"other": 0.0}
    for name, us in micros.items():
        by_kind[kernel_kind(name)] += us / calls / 1000
    return {
        "calls": calls,
        "ms_per_call": sum(micros.values()) / calls / 1000,
        "ms_per_call_by_kind": by_kind,
        "kernels_per_call": sum(launches.values()) / calls,
        "largest": [{"name": name, "kind": kernel_kind(name), "ms_per_call": us / calls / 1000,
                     "launches_per_call": launches[name] / calls} for name, us in micros.most_common(top)],
    }
