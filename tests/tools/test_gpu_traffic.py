"""Tests for tools/gpu_traffic.py: joining a GPU profile with the memory traffic it models."""

import importlib.util
from pathlib import Path

import pytest


HLO_WITH_A_SHARED_FUSION = """
ENTRY %main (p: bf16[4,8]) -> bf16[4,16] {
  %p = bf16[4,8]{1,0} parameter(0)
  %loop_add_fusion = bf16[4,8]{1,0} fusion(%p), kind=kLoop, calls=%fused_add, metadata={op_name="jit(step)/add"}
  %loop_add_fusion.1 = bf16[4,8]{1,0} fusion(%loop_add_fusion), kind=kLoop, calls=%fused_add.1, metadata={op_name="jit(step)/mul" deduplicated_name="loop_add_fusion"}
  ROOT %loop_pad_fusion.2 = bf16[4,16]{1,0} fusion(%loop_add_fusion.1), kind=kLoop, calls=%fused_pad, metadata={op_name="jit(step)/pad"}
}
"""


def test_gpu_traffic_joins_a_profile_with_the_bytes_it_models(monkeypatch):
    for name, value in (("CUDA_VISIBLE_DEVICES", "-1"), ("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1"), ("JAX_PLATFORMS", "cpu")):
        monkeypatch.setenv(name, value)  # what the tool would set on import, undone after the test
    spec = importlib.util.spec_from_file_location("gpu_traffic", Path(__file__).parents[2] / "tools" / "gpu_traffic.py")
    gpu_traffic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_traffic)

    found = gpu_traffic.kernels(HLO_WITH_A_SHARED_FUSION)
    assert [k["runtime_name"] for k in found] == ["loop_add_fusion", "loop_add_fusion", "loop_pad_fusion.2"]
    # Over 2 calls: the shared fusion ran twice per call under one name; the convolution is not memory-bound.
    micros = {"loop_add_fusion": 2.0, "loop_pad_fusion_2": 3.0, "sm90_xmma_fprop_conv": 50.0}
    launches = {"loop_add_fusion": 4, "loop_pad_fusion_2": 2, "sm90_xmma_fprop_conv": 2}
    rows = gpu_traffic.measured_bandwidth(found, micros, launches, calls=2)
    assert [(r["kernel"], r["launches_per_call"], r["op"]) for r in rows] == [
        ("loop_pad_fusion_2", 1, "jit(step)/pad"), ("loop_add_fusion", 2, "jit(step)/add")]
    assert rows[0]["modelled_gb"] == pytest.approx((64 + 128) / 1e9)  # reads bf16[4,8], writes bf16[4,16]
    assert rows[1]["modelled_gb"] == pytest.approx(2 * 128 / 1e9)  # both fusions that share the name
    assert rows[1]["gb_per_s"] == pytest.approx(2 * 128 / 1e9 / 1e-6)  # 1 µs per call
