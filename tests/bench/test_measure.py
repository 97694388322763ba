"""Tests for gan_arith/bench/measure.py: a smoke run of the benchmark (no timing assertions), its timing
windows, and correctness of what it times.

The fast path (phase transposed convolutions, steps fused in a donated lax.scan) must train
exactly like the plain one (dilated `lax.conv_transpose`, one jitted step per call), and
bfloat16 compute must still train.
"""

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_arith.bench import measure as bench
from gan_arith.bench.flops import train_step_flops
from gan_arith.data.synthetic import render_faces
from gan_arith.evaluation.frechet import frechet_distance
from gan_arith.train import parallel
from gan_arith.train.steps import build_steps

TINY = ["--image-size", "10", "--width", "8", "--batch-size", "8", "--num-faces", "64", "--windows", "2",
        "--window-s", "0"]


def tiny_size(**changes) -> bench.Size:
    return dataclasses.replace(bench.SIZES["cpu"], image_size=10, width=8, batch_size=8, **changes)


@pytest.mark.slow
def test_bench_smoke_writes_complete_json(tmp_path, capsys, monkeypatch):
    path = tmp_path / "out" / "bench.json"
    argv = TINY + ["--dtypes", "bfloat16", "--fuse", "2", "--fused-rows", "dcgan/bfloat16", "--conv-fusion", "on",
                   "--json", str(path)]
    compiled_with = []  # the compiler options each timed function was jitted with (XLA:CPU ignores this one)
    for owner, name in ((bench, "per_step_function"), (parallel, "compile_train_steps")):
        def recording(steps_or_step, mesh, compiler_options=None, _original=getattr(owner, name)):
            compiled_with.append(compiler_options)
            return _original(steps_or_step, mesh, compiler_options)
        monkeypatch.setattr(owner, name, recording)
    bench.main(argv)
    assert compiled_with == [{parallel.XLA_CONV_FUSION: True}] * 3  # dcgan 1/call and 2/call, vae 1/call
    printed = capsys.readouterr().out
    results = json.loads(path.read_text())

    env = results["environment"]
    assert env["backend"] == "cpu" and env["device_count"] == jax.device_count()
    assert env["size"]["image_size"] == 10 and "image_size 10 (seed 80)" in env["changes_from_seed"]
    assert len(env["load_average_start"]) == 3 and env["total_s"] > 0
    assert env["source_digest"] == bench.source_digest() and len(env["source_digest"]) == 12
    assert "unknown" in printed  # no peak is known for a CPU
    assert "implementation: conv_transpose=phase, discriminator_padding=same, conv_fusion=on" in printed
    assert "bfloat16 on CPU: XLA:CPU runs each bfloat16 convolution in float32" in printed

    rows = {row["model"]: row for row in results["steps"]}
    assert sorted(rows) == ["dcgan", "vae"]
    for model, row in rows.items():
        assert row["dtype"] == "bfloat16" and row["conv_transpose"] == "phase" and row["discriminator_padding"] == "same"
        assert row["conv_fusion"] == "on"
        per_step = row["modes"]["per_step"]
        assert per_step["steps_per_call"] == 1 and per_step["compile_s"] > 0 and row["best_mode"] in row["modes"]
        assert len(per_step["window_steps_per_s"]) == 2 and min(per_step["window_steps_per_s"]) > 0
        steps = build_steps(bench.step_config(model, "bfloat16", tiny_size()))
        assert row["flops_per_step"] == train_step_flops(steps, 8, 10).total
        # XLA skips padding taps and adds elementwise work: same order, not equal.
        assert 0.5 < row["xla_flops_per_step"] / row["flops_per_step"] < 1.5
        assert row["peak_flops_per_s"] is None and row["peak_fraction"] is None
    assert rows["dcgan"]["data_batch_size"] == 4 and rows["vae"]["data_batch_size"] == 8
    assert rows["dcgan"]["modes"]["fused"]["steps_per_call"] == 2 and "fused" not in rows["vae"]["modes"]

    paths = {row["path"]: row for row in results["input"]["paths"]}
    assert set(paths) == {"device-resident, 1 batch per call", "device-resident, 2 batches per call", "tf.data -> device"}
    fastest = results["input"]["fastest_step"]["images_per_s"]
    assert fastest == max(row["images_per_s"] for row in results["steps"])
    assert results["input"]["batch_size"] == rows["dcgan"]["data_batch_size"]  # the GAN's real half-batch
    assert "input path (images/s, batch 4) vs the fastest step's consumption" in printed
    if importlib.util.find_spec("tensorflow") is None:  # GPU/TPU hosts without TensorFlow: the row says why
        assert "TensorFlow not importable" in paths.pop("tf.data -> device")["skipped"]
    for row in paths.values():
        assert row["images_per_s"] > 0 and row["over_fastest_step"] > 0

    conv = results["conv_transpose"]
    assert conv["phase"]["ms"] > 0 and conv["dilated"]["ms"] > 0 and conv["dilated_over_phase"] > 0
    assert "targets" not in results  # the H100 targets are judged at the seed's size only


def test_bench_rejects_bad_arguments():
    with pytest.raises(SystemExit, match="fused-rows"):
        bench.main(TINY + ["--models", "dcgan", "--fused-rows", "vae/float32"])
    with pytest.raises(SystemExit, match="--fuse must be"):
        bench.main(TINY + ["--fuse", "0"])
    with pytest.raises(SystemExit):  # argparse names the bad model
        bench.main(TINY + ["--models", "gan"])


def test_peak_table_matches_device_kinds():
    assert bench.peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == ("NVIDIA H100 SXM", 989.0)
    assert bench.peak_tflops("NVIDIA H100 PCIe", "float32") == ("NVIDIA H100 PCIe", 378.0)
    assert bench.peak_tflops("NVIDIA A100-SXM4-80GB", "bfloat16") == ("NVIDIA A100", 312.0)
    assert bench.peak_tflops("TPU v5 lite", "bfloat16") == ("TPU v5e", 197.0)
    assert bench.peak_tflops("TPU v4", "float32") == ("TPU v4", 275.0)
    assert bench.peak_tflops("cpu", "float32") is None


def test_time_calls_takes_median_windows_after_warm_up():
    calls = []
    seconds = bench.time_calls(lambda i: calls.append(i) or jnp.zeros(()), windows=3, window_s=0.0)
    assert len(seconds) == 3 and all(s > 0 for s in seconds)
    assert calls == [0, 1, 2, 3, 4]  # warm-up, calibration, then one call per window


@pytest.mark.slow
def test_fast_path_trains_like_the_plain_path():
    """Phase convs fused 10 steps per donated scan vs dilated convs one jitted step per call: same losses."""
    size = tiny_size()
    fast = build_steps(bench.step_config("dcgan", "float32", size, "phase"))
    plain = build_steps(bench.step_config("dcgan", "float32", size, "dilated"))
    images, _ = render_faces(0, 0, 40, 10)
    batches = {"image": jnp.asarray(images.reshape(10, 4, 10, 10, 3))}
    rng = jax.random.key(3)
    initial = bench.initial_state(fast, 10)

    mesh = parallel.make_mesh(jax.devices()[:1])
    _, fast_metrics = parallel.compile_train_steps(fast.train_step, mesh)(
        parallel.put_replicated(initial, mesh), batches, rng)

    step = jax.jit(plain.train_step)
    state, plain_metrics = jax.device_put(initial), []
    for i in range(10):
        state, metrics = step(state, {"image": batches["image"][i]}, jax.random.fold_in(rng, state.step))
        plain_metrics.append(metrics)
    for name in ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake"):
        np.testing.assert_allclose(fast_metrics[name], [float(m[name]) for m in plain_metrics], rtol=1e-5, err_msg=name)
    # The run must actually have trained: the losses change from step to step.
    assert np.ptp(np.asarray(fast_metrics["g_loss"])) > 1e-3


@pytest.mark.slow
def test_bfloat16_training_moves_samples_toward_the_data():
    """400 bf16 steps on 10x10 synthetic faces: finite losses, and the Fréchet distance of 5x5
    thumbnails between samples and data at least halves."""
    size = dataclasses.replace(bench.SIZES["cpu"], image_size=10, width=32, batch_size=64)
    config = bench.step_config("dcgan", "bfloat16", size)
    config.optimizer.learning_rate = 1e-3  # a short run needs a brisker step than the seed's 2e-4
    steps = build_steps(config)
    images, _ = render_faces(0, 0, 1024, 10)

    def thumbnails(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32).reshape(len(x), 5, 2, 5, 2, 3).mean((2, 4)).reshape(len(x), -1)

    data_features = thumbnails(images[:512] / 127.5 - 1.0)
    z = jax.random.normal(jax.random.key(9), (512, 100))
    sample = jax.jit(lambda params: steps.generate(params, z))

    def distance(state) -> float:
        return frechet_distance(thumbnails(sample(state.params["generator"])), data_features)

    state = jax.device_put(bench.initial_state(steps, 10))
    before = distance(state)
    step = jax.jit(steps.train_step, donate_argnums=0)
    rng, history = jax.random.key(1), []
    for i in range(400):
        start = (i % 32) * 32
        state, metrics = step(state, {"image": images[start:start + 32]}, jax.random.fold_in(rng, i))
        history.append(metrics)
    for name in ("d_loss_real", "d_loss_fake", "g_loss"):
        assert np.all(np.isfinite([float(m[name]) for m in history])), name
    after = distance(state)
    assert after < 0.5 * before, (before, after)


def test_source_digest_names_the_code_measured(tmp_path, monkeypatch):
    # Same sources, same digest; one changed byte in any module, another digest.
    package = tmp_path / "gan_arith"
    shutil.copytree(Path(bench.__file__).parents[1], package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(bench, "__file__", str(package / "bench" / "measure.py"))
    copied = bench.source_digest()
    (package / "models" / "dcgan.py").write_text((package / "models" / "dcgan.py").read_text() + "\n")
    assert bench.source_digest() != copied
    monkeypatch.undo()
    assert bench.source_digest() == copied


@pytest.mark.slow
def test_abstract_step_inputs_compile_the_step_ahead_of_time():
    # What tools/gpu_traffic.py and tools/tpu_compile.py compile for absent devices: here for the CPU,
    # then run on concrete inputs, giving the same state as the jitted per-step function.
    size, mesh = tiny_size(), parallel.make_mesh()
    steps = build_steps(bench.step_config("dcgan", "float32", size), parallel.batch_sharding(mesh))
    abstract = bench.abstract_step_inputs(steps, mesh, size)
    compiled = bench.per_step_function(steps, mesh).lower(*abstract).compile()
    initial = bench.initial_state(steps, size.image_size)
    images = render_faces(0, 0, steps.data_batch_size(size.batch_size), size.image_size)[0]
    assert jax.tree.map(lambda a: (a.shape, a.dtype), abstract[0]) == jax.tree.map(lambda a: (a.shape, a.dtype), initial)
    assert abstract[1]["image"].shape == images.shape
    state, metrics = compiled(parallel.put_replicated(initial, mesh), {"image": images}, jax.random.key(1))
    expected, _ = bench.per_step_function(steps, mesh)(parallel.put_replicated(initial, mesh), {"image": images}, jax.random.key(1))
    assert int(state.step) == 1 and all(np.isfinite(float(v)) for v in metrics.values())
    for got, want in zip(jax.tree.leaves(state.params), jax.tree.leaves(expected.params)):
        np.testing.assert_array_equal(got, want)
