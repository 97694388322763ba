"""The bench's verdicts and tables: its results against the H100 targets, and the text it prints."""

from __future__ import annotations

from typing import Any

# The project's speed targets for one H100 at the seed's size (docs/benchmarks.md sets them against a
# faithful PyTorch version of the same step).
TARGET_STEPS_PER_S = {"bfloat16": 160.0, "float32": 57.0}
SEED_RUN_FACES, SEED_RUN_EPOCHS, TARGET_SEED_RUN_S = 50_000, 100, 600.0
TARGET_INPUT_RATIO = 3.0
TARGET_COMPILE_S = 60.0



def judge_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The H100 targets against this run (meaningful on one H100 only; the device is recorded)."""
    out = []
    for row in results["steps"]:
        if row["model"] == "dcgan" and row["dtype"] in TARGET_STEPS_PER_S:
            goal = TARGET_STEPS_PER_S[row["dtype"]]
            out.append({"target": f"dcgan {row['dtype']} >= {goal:g} steps/s", "measured": row["steps_per_s"],
                        "met": row["steps_per_s"] >= goal})
            # A lower bound on the full run: steps alone, no loading, evaluation or checkpoints.
            run_s = SEED_RUN_EPOCHS * (SEED_RUN_FACES // row["data_batch_size"]) / row["steps_per_s"]
            out.append({"target": f"dcgan {row['dtype']}: {SEED_RUN_EPOCHS} epochs x {SEED_RUN_FACES} faces, "
                                  f"steps alone < {TARGET_SEED_RUN_S:g} s", "measured": run_s,
                        "met": run_s < TARGET_SEED_RUN_S})
        compile_s = max(mode["compile_s"] for mode in row["modes"].values())
        out.append({"target": f"{row['model']} {row['dtype']} compile < {TARGET_COMPILE_S:g} s", "measured": compile_s,
                    "met": compile_s < TARGET_COMPILE_S})
    for row in results.get("input", {}).get("paths", []):
        if "over_fastest_step" in row:
            out.append({"target": f"{row['path']} >= {TARGET_INPUT_RATIO:g}x the step's consumption",
                        "measured": row["over_fastest_step"], "met": row["over_fastest_step"] >= TARGET_INPUT_RATIO})
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "unknown" if value is None else format(value, spec)


# The implementation choices each row records (model options and how the step compiles), printed above the table.
IMPLEMENTATION_FIELDS = ("conv_transpose", "discriminator_padding", "conv_fusion")


def _implementation(rows: list[dict[str, Any]], name: str) -> str:
    """`name=value`, or the value of each row where the rows differ (conv_fusion 'auto' may)."""
    values = {row.get(name) for row in rows}  # (rows of older JSON files may lack a field)
    if len(values) == 1:
        return f"{name}={values.pop()}"
    return f"{name}=" + "/".join(f"{row.get(name)} ({row['model']} {row['dtype']})" for row in rows)


# Seen in XLA:CPU's compiled HLO (jax 0.10.2): each bfloat16 convolution is converted to float32, run, and converted back.
BFLOAT16_ON_CPU = ("bfloat16 on CPU: XLA:CPU runs each bfloat16 convolution in float32 between two conversions, so it "
                   "only adds work; CPU runs compute in float32.")


def format_report(results: dict[str, Any]) -> str:
    """The human-readable tables of a results dict."""
    env = results["environment"]
    lines = [
        f"gan_arith.bench  {env['date']}  {env['device_count']} x {env['device_kind']} ({env['backend']})  "
        f"jax {env['versions']['jax']}",
        f"size {env['size']['name']}: {env['changes_from_seed']}; load average at start "
        + " ".join(f"{x:.2f}" for x in env["load_average_start"]),
    ]
    if results["steps"]:
        lines.append(
            "implementation: " + ", ".join(_implementation(results["steps"], name) for name in IMPLEMENTATION_FIELDS)
            + (f"; XLA_FLAGS={env['xla_flags']}" if env.get("xla_flags") else "")
        )
    lines += [
        "",
        f"{'model':6s} {'dtype':9s} {'compile s':>10s} {'1/call':>8s} {'k/call':>11s} {'steps/s':>8s} "
        f"{'images/s':>9s} {'GFLOP/step':>10s} {'XLA GFLOP':>9s} {'TFLOP/s':>8s} {'% peak':>7s}",
    ]
    for row in results["steps"]:
        per_step, fused = row["modes"]["per_step"], row["modes"].get("fused")
        fused_text = f"{fused['steps_per_s']:.2f} (k={fused['steps_per_call']})" if fused else "-"
        compile_text = f"{per_step['compile_s']:.1f}" + (f"/{fused['compile_s']:.1f}" if fused else "")
        xla = row["xla_flops_per_step"]
        fraction = None if row["peak_fraction"] is None else 100 * row["peak_fraction"]
        lines.append(
            f"{row['model']:6s} {row['dtype']:9s} {compile_text:>10s} {per_step['steps_per_s']:8.2f} "
            f"{fused_text:>11s} {row['steps_per_s']:8.2f} {row['images_per_s']:9.0f} "
            f"{row['flops_per_step'] / 1e9:10.2f} {_fmt(None if xla is None else xla / 1e9, '9.2f')} "
            f"{row['achieved_flops_per_s'] / 1e12:8.3f} {_fmt(fraction, '7.1f')}"
        )
    lines += [
        "steps/s and images/s: the faster of one step per call (1/call) and k steps fused in one lax.scan (k/call);",
        "images/s = data images consumed (the GAN reads batch/2 real faces per step); GFLOP/step counted from layer",
        "shapes (gan_arith.bench.flops), XLA GFLOP from the one-step computation's cost_analysis (on GPU it leaves out",
        "convolutions run as cuDNN custom calls, not those in conv_fusion's cuDNN graphs); compile s: 1/call[/k/call].",
    ]
    if env["backend"] == "cpu" and any(row["dtype"] == "bfloat16" for row in results["steps"]):
        lines.append(BFLOAT16_ON_CPU)
    for row in results["steps"]:
        if row.get("kernel_time"):
            lines += [""] + format_kernel_time(row)
    if "input" in results:
        fastest = results["input"]["fastest_step"]
        lines += ["", f"input path (images/s, batch {results['input']['batch_size']}) vs the fastest step's consumption "
                      f"({fastest['model']} {fastest['dtype']}: {fastest['images_per_s']:.0f} images/s)"]
        for row in results["input"]["paths"]:
            if "skipped" in row:
                lines.append(f"  {row['path']:42s} skipped: {row['skipped']}")
            else:
                lines.append(f"  {row['path']:42s} {row['images_per_s']:12.0f}  {row['over_fastest_step']:8.1f}x")
    if "conv_transpose" in results:
        ct = results["conv_transpose"]
        lines += ["", f"generator forward+backward, float32, batch {ct['batch_size']}: "
                      f"phase {ct['phase']['ms']:.1f} ms, dilated {ct['dilated']['ms']:.1f} ms "
                      f"({ct['dilated_over_phase']:.1f}x)"]
    if "targets" in results:
        lines += ["", "targets (set for one H100):"]
        lines += [f"  {'met' if t['met'] else 'NOT met':8s} {t['target']}: {t['measured']:.2f}" for t in results["targets"]]
    lines += ["", f"load average at end {' '.join(f'{x:.2f}' for x in env['load_average_end'])}; "
                  f"total {env['total_s']:.0f} s"]
    return "\n".join(lines)


def format_kernel_time(row: dict[str, Any]) -> list[str]:
    """The lines of a step row's GPU kernel time (``kernel_time``): the total by kind, then the largest kernels."""
    profile = row["kernel_time"]
    kinds = ", ".join(f"{kind} {ms:.2f}" for kind, ms in profile["ms_per_call_by_kind"].items())
    return [f"GPU kernel time per step, {row['model']} {row['dtype']} (profile of {profile['calls']} one-step calls): "
            f"{profile['ms_per_call']:.2f} ms in {profile['kernels_per_call']:.0f} kernels ({kinds} ms)"] + [
        f"  {kernel['ms_per_call']:6.3f} ms  x{kernel['launches_per_call']:<4.3g} {kernel['kind']:11s} {kernel['name'][:80]}"
        for kernel in profile["largest"]
    ]
