"""Tests for gan_arith/bench/trace.py: GPU kernel time per call from a jax.profiler trace."""

import gzip
import json
from pathlib import Path

import pytest

from gan_arith.bench import trace


def _write_trace(trace_dir: Path, events: list[dict]) -> None:
    folder = trace_dir / "plugins" / "profile" / "host_run"
    folder.mkdir(parents=True)
    with gzip.open(folder / "host.trace.json.gz", "wt") as f:
        json.dump({"traceEvents": events}, f)


def test_kernel_time_sums_the_gpu_compute_stream_per_call(tmp_path):
    names = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 1, "tid": 14, "name": "thread_name", "args": {"name": "Stream #14(Compute,Memset)"}},
        {"ph": "M", "pid": 1, "tid": 15, "name": "thread_name", "args": {"name": "Stream #15(MemcpyH2D)"}},
        {"ph": "M", "pid": 7, "name": "process_name", "args": {"name": "/host:CPU"}},
    ]
    def kernel(name, micros, tid=14, pid=1):
        return {"ph": "X", "pid": pid, "tid": tid, "ts": 0.0, "dur": micros, "name": name}
    per_call = [kernel("sm90_xmma_dgrad_implicit_gemm_bf16", 600.0), kernel("cudnn_generated_convFwd_pointwise", 400.0),
                kernel("nvjet_sm90_tst_128x160", 100.0), kernel("loop_select_fusion", 50.0),
                kernel("loop_select_fusion", 30.0),
                kernel("MemcpyH2D", 999.0, tid=15), kernel("PjitFunction(step)", 9999.0, tid=3, pid=7)]  # not compute
    _write_trace(tmp_path, names + per_call * 4)

    profile = trace.kernel_time(tmp_path, calls=4, top=2)
    assert profile["ms_per_call"] == pytest.approx(1.18) and profile["kernels_per_call"] == 5
    assert profile["ms_per_call_by_kind"] == pytest.approx({"convolution": 1.0, "matmul": 0.1, "other": 0.08})
    assert profile["largest"] == [
        {"name": "sm90_xmma_dgrad_implicit_gemm_bf16", "kind": "convolution", "ms_per_call": 0.6, "launches_per_call": 1},
        {"name": "cudnn_generated_convFwd_pointwise", "kind": "convolution", "ms_per_call": 0.4, "launches_per_call": 1},
    ]

    cpu_only = tmp_path / "cpu"
    _write_trace(cpu_only, names[3:] + [kernel("PjitFunction(step)", 10.0, tid=3, pid=7)])
    assert trace.kernel_time(cpu_only, calls=1) is None
    assert trace.kernel_time(tmp_path / "no_trace", calls=1) is None
