"""The training loop end to end on tiny synthetic runs: files, resume after kill -9, fallback, NaN guard, devices.

Most runs go through `gan_arith.artifacts.train`, as the experiments call the loop.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments import accordion_ae_celeba, dcgan_celeba, vae_celeba
from gan_arith import artifacts
from gan_arith.data.stores import resolve_store
from gan_arith.errors import InputError
from gan_arith.runs import load_run
from gan_arith.train import checkpoint, loop, parallel
from gan_arith.train.steps import build_steps

REPO = Path(__file__).resolve().parents[2]


def tiny(module, tmp_path: Path, **changes) -> ml_collections.ConfigDict:
    config = module.get_config()
    config.scale_for_cpu = False
    config.model.update(image_size=20 if config.model.kind != "ae" else 16, width=8, latent_dim=8)
    config.data.update(default_store=str(tmp_path / "no_store"), synthetic_dir=str(tmp_path / "synthetic"), synthetic_faces=160)
    config.update(batch_size=16, num_epochs=2, eval_every_epochs=1, steps_per_dispatch=0, num_samples=8, tensorboard=False)
    if config.model.kind == "dcgan":
        config.best_metric = "g_loss"  # 20px is below the Fréchet metric's classifier minimum (32px)
    config.update(changes)
    return config


def metrics_lines(workdir: Path, split: str = "train") -> list[dict]:
    return [row for row in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines()) if row["split"] == split]


@pytest.mark.slow
@pytest.mark.parametrize(
    "module,figure", [(vae_celeba, "reconstructions_epoch0002.png"), (accordion_ae_celeba, "reconstructions_epoch0002.png")]
)
def test_reconstruction_experiments_write_their_files(module, figure, tmp_path):
    workdir = tmp_path / "run"
    summary = artifacts.train(tiny(module, tmp_path), workdir)
    assert summary["steps"] == summary["total_steps"] > 0
    assert (workdir / "figures" / figure).stat().st_size > 1000
    assert (workdir / "config.json").exists() and (workdir / "summary.json").exists()
    assert len(metrics_lines(workdir, "eval")) == 2
    run = load_run(workdir)
    faces = np.random.default_rng(0).integers(0, 256, (2, run.image_size, run.image_size, 3), dtype=np.uint8)
    images = faces / 127.5 - 1.0
    reconstructions = run.reconstruct(images)
    assert reconstructions.shape == images.shape
    np.testing.assert_allclose(run.reconstruct(faces), reconstructions, atol=1e-5)  # uint8 faces are taken as such
    if run.kind == "vae":
        mean, _ = run.encode(images)
        assert run.decode(mean).shape == images.shape
        with pytest.raises(ValueError, match=r"latents must be a batch \[B, 8\], got shape \(8,\)"):
            run.decode(mean[0])
    else:
        with pytest.raises(ValueError, match="'ae' model, which has no latent vectors"):
            run.latent_dim


@pytest.mark.slow
def test_dcgan_command_line_run_and_resume(tmp_path):
    """`python -m experiments.dcgan_celeba` with overrides and a compilation cache; a second identical command resumes."""
    workdir = tmp_path / "run"
    overrides = [
        "--config.scale_for_cpu=False", "--config.model.image_size=20", "--config.model.width=8",
        "--config.model.latent_dim=8", f"--config.data.default_store={tmp_path / 'none'}",
        f"--config.data.synthetic_dir={tmp_path / 'synthetic'}", "--config.data.synthetic_faces=160",
        "--config.batch_size=16", "--config.num_epochs=2", "--config.eval_every_epochs=1",
        "--config.num_samples=8", "--config.steps_per_dispatch=4", "--config.best_metric=g_loss",
        "--config.model.discriminator_padding=symmetric",
    ]
    cache = tmp_path / "xla"
    command = [sys.executable, "-m", "experiments.dcgan_celeba", f"--workdir={workdir}", f"--compilation_cache={cache}",
               *overrides]
    env = {**os.environ, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}  # tiny steps compile in under 1 s
    first = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert any(cache.iterdir())
    assert "synthetic faces" in first.stderr
    assert (workdir / "figures" / "samples_epoch0001.png").exists()
    assert (workdir / "figures" / "samples_epoch0002.png").exists()
    assert (workdir / "tensorboard").is_dir()
    summary = (workdir / "summary.json").read_text()
    total_steps = json.loads(summary)["total_steps"]
    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and f"already trained for {total_steps} steps" in second.stderr, second.stderr[-3000:]
    assert (workdir / "summary.json").read_text() == summary  # the finished run's summary stays
    run = load_run(workdir)
    assert int(run.state.step) == total_steps and run.config.model.discriminator_padding == "symmetric"
    assert run.steps.discriminator.padding == "symmetric"
    assert run.generate(jnp.zeros((2, 8))).shape == (2, 20, 20, 3)
    assert run.discriminate(jnp.zeros((2, 20, 20, 3))).shape == (2,)
    faces = np.random.default_rng(0).integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    np.testing.assert_allclose(run.discriminate(faces), run.discriminate(faces / 127.5 - 1.0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="latents must be a batch"):
        run.generate(jnp.zeros(8))
    with pytest.raises(ValueError, match="no .*encoder"):
        run.encode


@pytest.mark.parametrize("module,field,value,message", [
    (dcgan_celeba, "model.image_size", 37, "image_size must be 5·2"),
    (dcgan_celeba, "model.width", 0, "config.model.width"),
    (dcgan_celeba, "data.pipeline", "fast", "pipeline must be one of auto, device, tfdata, got 'fast'"),
    (dcgan_celeba, "steps_per_dispatch", -1, "steps_per_dispatch must be >= 0"),
    (dcgan_celeba, "conv_fusion", "yes", "config.conv_fusion must be one of auto, on, off, got 'yes'"),
    (dcgan_celeba, "data.partition", "tran", "config.data.partition: unknown partition 'tran'"),
    (dcgan_celeba, "data.max_faces", -5, "max_faces must be >= 0"),
    (dcgan_celeba, "best_mode", "lowest", "best_mode must be 'min' or 'max'"),
    (dcgan_celeba, "best_metric", "frechet", "needs best_mode='min' and images of at least 32px"),  # tiny: 20px
    (dcgan_celeba, "best_metric", "g_los", "'g_los' is not an eval metric of dcgan runs; they log d_acc.*g_loss.*frechet"),
    (vae_celeba, "best_metric", "los", "'los' is not an eval metric of vae runs; they log kl, loss, recon$"),
    (vae_celeba, "best_metric", "frechet", "'frechet' is not an eval metric of vae runs"),
])
def test_bad_settings_fail_before_anything_is_written(module, field, value, message, tmp_path):
    config = tiny(module, tmp_path)
    *parents, name = field.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[name] = value
    with pytest.raises(ValueError, match=message):
        artifacts.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists() and not (tmp_path / "synthetic").exists()


def test_the_loop_opens_its_store_after_its_checks_and_measures_the_added_metric_named_best(tmp_path):
    config = tiny(vae_celeba, tmp_path, best_metric="steps_trained", best_mode="max")
    opened = []

    def open_store():
        opened.append(True)
        return resolve_store(config.data, config.model.image_size, config.seed)

    with pytest.raises(InputError, match="'steps_trained' is not an eval metric of vae runs; they log kl, loss, recon$"):
        loop.train(config, tmp_path / "run", open_store)
    assert not opened and not (tmp_path / "run").exists()
    added = {"steps_trained": lambda store, steps: lambda state: float(state.step)}
    loop.train(config, tmp_path / "run", open_store, added)
    evals = metrics_lines(tmp_path / "run", "eval")
    assert opened == [True] and len(evals) == 2 and all(row["steps_trained"] == row["step"] for row in evals)
    best = [int(p.name) for p in (tmp_path / "run" / "checkpoints" / "best").iterdir() if p.name.isdigit()]
    assert best == [evals[-1]["step"]]


def test_a_selection_the_store_cannot_serve_is_refused_and_leaves_no_workdir(tmp_path):
    (tmp_path / "existing").mkdir()
    for workdir, changes, message in [
        (tmp_path / "run", {"query": "Smilng"}, r"config\.data\.query: .*unknown attribute 'Smilng'"),
        (tmp_path / "existing", {"query": "Smiling & ~Smiling"}, "no faces in .* match"),
    ]:
        config = tiny(dcgan_celeba, tmp_path)
        config.data.update(changes)
        with pytest.raises(InputError, match=message):
            artifacts.train(config, workdir)
    assert not (tmp_path / "run").exists() and (tmp_path / "existing").is_dir()  # a directory it did not make stays


@pytest.mark.slow
def test_a_finished_run_rerun_with_fewer_epochs_says_how_long_it_trained(tmp_path, capsys, monkeypatch):
    compiled_with = []  # XLA:CPU ignores the option; that the steps are compiled with it is checked here
    for name in ("compile_train_steps", "compile_eval_step"):
        def recording(step, mesh, compiler_options=None, _original=getattr(parallel, name)):
            compiled_with.append(compiler_options)
            return _original(step, mesh, compiler_options)
        monkeypatch.setattr(parallel, name, recording)
    first = artifacts.train(tiny(vae_celeba, tmp_path, num_epochs=2, conv_fusion="on"), tmp_path / "run")
    assert compiled_with == [{parallel.XLA_CONV_FUSION: True}] * 2
    assert "XLA fuses convolutions into cuDNN graphs (config.conv_fusion)" in capsys.readouterr().err
    # How the steps compile is not part of what the run computes: the rerun may change it.
    again = artifacts.train(tiny(vae_celeba, tmp_path, num_epochs=1), tmp_path / "run")
    assert again == first
    assert f"already trained for {first['steps']} steps (2 epochs)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_that_saved_no_checkpoint_does_not_pin_its_config(tmp_path):
    config = tiny(vae_celeba, tmp_path, num_epochs=1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(tiny(vae_celeba, tmp_path, seed=5).to_json())  # a run that died early
    assert artifacts.train(config, tmp_path / "run")["steps"] > 0


@pytest.mark.slow
def test_config_change_in_the_same_workdir_is_refused(tmp_path):
    config = tiny(vae_celeba, tmp_path, num_epochs=1)
    first = artifacts.train(config, tmp_path / "run")
    other = tiny(vae_celeba, tmp_path, num_epochs=1)
    other.optimizer.learning_rate = 0.5
    with pytest.raises(ValueError, match="optimizer"):
        artifacts.train(other, tmp_path / "run")

    # A new CPU recipe (e.g. a library update that lengthens the CPU default) is not a different run:
    # what it changes shows in the effective fields, so a longer run extends the finished one.
    longer = tiny(vae_celeba, tmp_path, num_epochs=2)
    longer.cpu.num_epochs = 99
    longer.model.impl = "fast"  # how the models are lowered: the same run
    # A run saved before a config field existed (config.ADDED_FIELDS), or with one since removed
    # (config.REMOVED_FIELDS), resumes under today's defaults.
    saved = json.loads((tmp_path / "run" / checkpoint.CONFIG_FILE).read_text())
    del saved["model"]["discriminator_padding"], saved["conv_fusion"]
    saved["model"]["fused_discriminator"] = True
    (tmp_path / "run" / checkpoint.CONFIG_FILE).write_text(json.dumps(saved))
    summary = artifacts.train(longer, tmp_path / "run")
    assert summary["steps"] == summary["total_steps"] == 2 * first["steps"]
    assert [row["epoch"] for row in metrics_lines(tmp_path / "run", "eval")] == [1, 2]


KILL_SCRIPT = """
import sys, ml_collections
from gan_arith import artifacts
config = ml_collections.ConfigDict(__import__("json").loads(open(sys.argv[1]).read()))
artifacts.train(config, sys.argv[2])
"""


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    config = tiny(dcgan_celeba, tmp_path, num_epochs=4, eval_every_epochs=1)
    reference = artifacts.train(config, tmp_path / "reference")
    config_file = tmp_path / "config.json"
    config_file.write_text(config.to_json())
    workdir = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(config_file), str(workdir)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = workdir / "checkpoints" / "latest"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (latest.is_dir() and any(p.name.isdigit() for p in latest.iterdir())):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    steps_done = [int(p.name) for p in latest.iterdir() if p.name.isdigit()]
    assert steps_done and max(steps_done) < reference["total_steps"], "the run finished before it could be killed"

    # What the killed run logged past its checkpoint, and a line the kill cut short, as after a real kill.
    with open(workdir / "metrics.jsonl", "a") as log:
        log.write(json.dumps({"step": max(steps_done) + 1, "split": "train", "g_loss": -1.0}) + '\n{"step": 9')

    resumed = artifacts.train(config, workdir)
    assert resumed["resumed_from"] is not None and resumed["steps"] == reference["steps"]
    # The log reads as if the run had never been interrupted: no step twice, no half line.
    assert (workdir / "metrics.jsonl").read_text() == (tmp_path / "reference" / "metrics.jsonl").read_text()
    final = load_run(workdir, "latest").state
    expected = load_run(tmp_path / "reference", "latest").state
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b)
    # The losses logged after the resume point equal the uninterrupted run's, step for step.
    after = {row["step"]: row for row in metrics_lines(workdir) if row["step"] > resumed["resumed_from"]}
    ref = {row["step"]: row for row in metrics_lines(tmp_path / "reference")}
    assert after and all(after[s]["g_loss"] == ref[s]["g_loss"] for s in after)


@pytest.mark.slow
def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path):
    config = tiny(vae_celeba, tmp_path, num_epochs=2, eval_every_epochs=1)
    artifacts.train(config, tmp_path / "run")
    latest = tmp_path / "run" / "checkpoints" / "latest"
    steps = sorted(int(p.name) for p in latest.iterdir() if p.name.isdigit())
    assert len(steps) == 2

    def damage(step: int) -> None:
        for path in (latest / str(step)).rglob("*"):
            if path.is_file() and path.stat().st_size > 0 and "ocdbt" in str(path):
                path.write_bytes(b"\0" * 7)  # truncated, garbage

    damage(steps[-1])
    target = checkpoint.abstract_state(build_steps(config), config.model.image_size,
                                       jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    manager = checkpoint.Checkpoints(latest.parent)
    with pytest.warns(UserWarning, match="unreadable"):
        state = manager.restore(target)
    assert int(state.step) == steps[0]
    # With every checkpoint unreadable, the newest one's error is raised: None would mean "nothing
    # saved", and training would start afresh over the run.
    damage(steps[0])
    with pytest.warns(UserWarning, match="unreadable"), pytest.raises(ValueError, match="no checkpoint in .* could be read"):
        manager.restore(target)
    manager.close()


@pytest.mark.slow
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    config = tiny(vae_celeba, tmp_path, num_epochs=3, eval_every_epochs=1)
    real_build = loop.build_steps

    class PoisonedSteps:
        """The real VAE steps, with the loss turned NaN after step 18 (128 train faces / 16 = 8 steps per epoch: epoch 3)."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def train_step(self, state, batch, rng):
            state, metrics = self.inner.train_step(state, batch, rng)
            poison = jnp.where(state.step > 18, jnp.nan, 0.0)
            return state, {**metrics, "loss": metrics["loss"] + poison}

    monkeypatch.setattr(loop, "build_steps", lambda *a, **k: PoisonedSteps(real_build(*a, **k)))
    # Read one dispatch late (the loop queues the next first), the error still names the bad step.
    with pytest.raises(loop.DivergenceError, match=r"non-finite loss in steps 19\.\.19 \(epoch 3\)"):
        artifacts.train(config, tmp_path / "run")
    latest = tmp_path / "run" / "checkpoints" / "latest"
    assert sorted(int(p.name) for p in latest.iterdir() if p.name.isdigit()) == [8, 16]


@pytest.mark.slow
def test_each_dispatch_s_metrics_are_read_after_the_next_dispatch_is_queued(tmp_path, monkeypatch):
    # Reading them at once left the GPU idle while the host fetched, logged and dispatched again.
    config = tiny(vae_celeba, tmp_path, num_epochs=2, steps_per_dispatch=3)  # 8 steps per epoch: 3 + 3 + 2
    dispatched, read_after = [], []
    real_compile, real_mean = parallel.compile_train_steps, loop._mean_metrics

    def counting_compile(*args, **kwargs):
        train_steps = real_compile(*args, **kwargs)

        def counted(*call_args):
            dispatched.append(1)
            return train_steps(*call_args)
        return counted

    def recording_mean(stacked):
        read_after.append(len(dispatched))
        return real_mean(stacked)

    monkeypatch.setattr(parallel, "compile_train_steps", counting_compile)
    monkeypatch.setattr(loop, "_mean_metrics", recording_mean)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        artifacts.train(config, tmp_path / "run")
    # Reads 1 and 2 of each epoch wait for the next dispatch; its last is read at the epoch's end.
    assert read_after == [2, 3, 3, 5, 6, 6]
    assert [row["step"] for row in metrics_lines(tmp_path / "run")] == [3, 6, 8, 11, 14, 16]


FOUR_DEVICES = """
import os, sys, json
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import ml_collections, jax
from gan_arith import artifacts
assert jax.device_count() == 4
config = ml_collections.ConfigDict(json.loads(open(sys.argv[1]).read()))
print("SUMMARY" + json.dumps(artifacts.train(config, sys.argv[2])))
"""


@pytest.mark.slow
def test_four_device_run_matches_one_device(tmp_path):
    config = tiny(vae_celeba, tmp_path, num_epochs=1)
    one = artifacts.train(config, tmp_path / "one")
    config_file = tmp_path / "config.json"
    config_file.write_text(config.to_json())
    result = subprocess.run([sys.executable, "-c", FOUR_DEVICES, str(config_file), str(tmp_path / "four")],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    four = json.loads(result.stdout.split("SUMMARY", 1)[1])
    assert one["devices"] == 1 and four["devices"] == 4
    for a, b in zip(metrics_lines(tmp_path / "one"), metrics_lines(tmp_path / "four")):
        assert a["step"] == b["step"]
        # Sharded reductions sum in another order: float32 rounding, compounded over the steps.
        np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-4)
    # The 4-device run loads in this 1-device process (a run trained on 4 GPUs, analysed on a laptop),
    # from its best checkpoint, not past it as if the checkpoints were unreadable.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = load_run(tmp_path / "four")
    assert jax.device_count() == 1 and int(run.state.step) == four["steps"]
    faces = np.zeros((2, run.image_size, run.image_size, 3), np.uint8)
    np.testing.assert_allclose(run.reconstruct(faces), load_run(tmp_path / "one").reconstruct(faces), atol=1e-3)


# One process of a two-process job (what each host of a TPU pod slice runs), two CPU devices each.
TWO_PROCESSES = """
import os, sys, json
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import ml_collections, jax
from gan_arith import artifacts
config = ml_collections.ConfigDict(json.loads(open(sys.argv[1]).read()))
summary = artifacts.train(config, sys.argv[2])
assert (jax.process_count(), jax.device_count(), summary["devices"]) == (2, 4, 4)
"""


def run_two_processes(config: ml_collections.ConfigDict, tmp_path: Path, *workdirs: Path) -> list[subprocess.CompletedProcess]:
    """Both processes of a job over localhost (jax.distributed from JAX_* variables); `workdirs` per process."""
    config_file = tmp_path / "two_processes.json"
    config_file.write_text(config.to_json())
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    processes, logs = [], [tmp_path / f"process{index}.log" for index in range(len(workdirs))]
    for index, (workdir, log) in enumerate(zip(workdirs, logs)):
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
               "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(index)}
        with open(log, "w") as output:  # files, not pipes: an undrained pipe would stall its process mid-run
            processes.append(subprocess.Popen([sys.executable, "-c", TWO_PROCESSES, str(config_file), str(workdir)],
                                              cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT))
    try:
        for process in processes:
            process.wait(timeout=400)
    finally:
        for process in processes:
            process.kill()
    return [subprocess.CompletedProcess(p.args, p.returncode, "", log.read_text()) for p, log in zip(processes, logs)]


def assert_same_metrics(workdir: Path, reference: Path) -> None:
    rows, expected = metrics_lines(workdir), metrics_lines(reference)
    assert [row["step"] for row in rows] == [row["step"] for row in expected] and rows
    for a, b in zip(rows, expected):
        for name in ("d_loss_real", "d_loss_fake", "g_loss"):
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4)


@pytest.mark.slow
def test_two_processes_train_resume_and_score_like_one(tmp_path):
    """A pod slice's path on CPU: device-resident data on every host, the face store and the Fréchet
    metric's classifier made once (process 0 first), one shared checkpoint, resumed by both."""
    config = tiny(dcgan_celeba, tmp_path, num_epochs=1, best_metric="frechet", num_fd_samples=16, classifier_steps=10,
                  classifier_dir=str(tmp_path / "classifier"))
    config.model.image_size = 40  # the Fréchet metric's classifier needs >= 32px
    config.data.pipeline = "device"
    workdir = tmp_path / "two"
    for epochs in (1, 2):
        config.num_epochs = epochs
        results = run_two_processes(config, tmp_path, workdir, workdir)
        for result in results:
            assert result.returncode == 0, result.stderr[-3000:]
    steps_per_epoch = metrics_lines(workdir, "eval")[0]["step"]
    assert f"resuming at step {steps_per_epoch}" in results[0].stderr
    assert "resuming" not in results[1].stderr  # process 0 alone prints and writes
    reference = tmp_path / "one"
    artifacts.train(config, reference)
    assert_same_metrics(workdir, reference)
    assert [row["epoch"] for row in metrics_lines(workdir, "eval")] == [1, 2]  # one writer: no duplicate lines
    frechet = [row["frechet"] for row in metrics_lines(workdir, "eval")]
    np.testing.assert_allclose(frechet, [row["frechet"] for row in metrics_lines(reference, "eval")], rtol=1e-3)


@pytest.mark.slow
def test_two_processes_feed_their_rows_through_tf_data(tmp_path):
    config = tiny(dcgan_celeba, tmp_path, num_epochs=1)
    config.data.pipeline = "tfdata"  # each host reads its half of every global batch
    for result in run_two_processes(config, tmp_path, tmp_path / "two", tmp_path / "two"):
        assert result.returncode == 0, result.stderr[-3000:]
    artifacts.train(config, tmp_path / "one")
    assert_same_metrics(tmp_path / "two", tmp_path / "one")


@pytest.mark.slow
def test_two_processes_refuse_a_workdir_they_do_not_share(tmp_path):
    results = run_two_processes(tiny(dcgan_celeba, tmp_path), tmp_path, tmp_path / "host0", tmp_path / "host1")
    for result in results:
        assert result.returncode != 0 and "is not one folder shared by all 2 processes" in result.stderr, result.stderr[-3000:]


def test_choose_pipeline():
    assert loop.choose_pipeline("auto", 1 << 20) == "device"
    assert loop.choose_pipeline("auto", 1 << 60) == "tfdata"  # does not fit
    assert loop.choose_pipeline("device", 1 << 60) == "device"  # an explicit choice is kept
