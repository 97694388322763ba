"""Tests for gan_arith/bench/report.py: the verdicts against the H100 targets and the printed lines."""

from gan_arith.bench import report


def test_implementation_line_names_each_rows_value_where_they_differ():
    rows = [{"model": "dcgan", "dtype": dtype, "conv_fusion": fusion, "conv_transpose": "phase"}
            for dtype, fusion in (("float32", "off"), ("bfloat16", "on"))]
    assert report._implementation(rows, "conv_transpose") == "conv_transpose=phase"
    assert report._implementation(rows, "conv_fusion") == "conv_fusion=off (dcgan float32)/on (dcgan bfloat16)"


def test_targets_are_judged():
    def row(dtype, steps_per_s, compile_s):
        return {"model": "dcgan", "dtype": dtype, "steps_per_s": steps_per_s, "data_batch_size": 64,
                "modes": {"per_step": {"compile_s": 1.0}, "fused": {"compile_s": compile_s}}}

    results = {"steps": [row("bfloat16", 170.0, 30.0), row("float32", 40.0, 75.0)],
               "input": {"paths": [{"path": "tf.data -> device", "over_fastest_step": 2.5}]}}
    verdicts = {t["target"]: (t["measured"], t["met"]) for t in report.judge_targets(results)}
    assert verdicts["dcgan bfloat16 >= 160 steps/s"] == (170.0, True)
    assert verdicts["dcgan float32 >= 57 steps/s"] == (40.0, False)
    assert verdicts["dcgan float32 compile < 60 s"] == (75.0, False)  # the slower of the two compiles counts
    # 100 epochs of 50,000 faces at 64 real faces per step: 78,100 steps.
    assert verdicts["dcgan bfloat16: 100 epochs x 50000 faces, steps alone < 600 s"] == (78_100 / 170.0, True)
    assert verdicts["tf.data -> device >= 3x the step's consumption"] == (2.5, False)


def test_kernel_time_lines_give_the_total_by_kind_then_the_largest_kernels():
    profile = {"calls": 4, "ms_per_call": 1.18, "kernels_per_call": 5.0,
               "ms_per_call_by_kind": {"convolution": 1.0, "matmul": 0.1, "other": 0.08},
               "largest": [{"name": "sm90_xmma_dgrad_implicit_gemm_bf16", "kind": "convolution", "ms_per_call": 0.6,
                            "launches_per_call": 1.0}]}
    lines = report.format_kernel_time({"model": "dcgan", "dtype": "bfloat16", "kernel_time": profile})
    assert lines[0] == ("GPU kernel time per step, dcgan bfloat16 (profile of 4 one-step calls): 1.18 ms in 5 kernels "
                        "(convolution 1.00, matmul 0.10, other 0.08 ms)")
    assert lines[1].split() == ["0.600", "ms", "x1", "convolution", "sm90_xmma_dgrad_implicit_gemm_bf16"]
