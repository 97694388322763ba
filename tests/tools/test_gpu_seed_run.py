"""Tests for tools/gpu_seed_run.sh and tools/seed_run.py: the one-call GPU run's plan, and its whole chain on
CPU at a tiny size (a pack of synthetic faces, 40 px, width 8, 2 short epochs)."""

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from gan_arith.data.export import export_pack
from gan_arith.data.synthetic import ensure_synthetic_store

REPO = Path(__file__).resolve().parents[2]


def _seed_run():
    spec = importlib.util.spec_from_file_location("seed_run", REPO / "tools" / "seed_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """160 synthetic faces (128 train, 16 valid, 16 test) at 80 px."""
    return ensure_synthetic_store(tmp_path_factory.mktemp("synthetic") / "faces", num_faces=160, image_sizes=(80,))


def test_plan_makes_the_seed_step_count_from_the_train_faces(synthetic):
    plan = _seed_run().plan
    seed = plan(synthetic, steps=39_000, epochs=0, evals=10, faces=0, batch_size=128, steps_per_dispatch=-1)
    # 128 train faces make 2 steps of 64 real faces per epoch.
    assert seed["train_faces"] == 128 and seed["steps_per_epoch"] == 2
    assert seed["epochs"] == 19_500 and seed["steps"] == 39_000 and seed["eval_every_epochs"] == 1950
    assert seed["steps_per_dispatch"] == 2  # a divisor of the epoch: one compiled dispatch length
    small = plan(synthetic, steps=100, epochs=0, evals=3, faces=96, batch_size=16, steps_per_dispatch=-1)
    assert small["faces_used"] == 96 and small["steps_per_epoch"] == 12 and small["epochs"] == 8
    assert small["steps"] == 96 and small["eval_every_epochs"] == 3 and small["steps_per_dispatch"] == 6
    fixed = plan(synthetic, steps=100, epochs=5, evals=10, faces=0, batch_size=16, steps_per_dispatch=0)
    assert fixed["epochs"] == 5 and fixed["steps"] == 80 and fixed["steps_per_dispatch"] == 0


@pytest.mark.slow
def test_the_whole_chain_runs_on_cpu_at_a_tiny_size(synthetic, tmp_path):
    export_pack(synthetic, 80, tmp_path / "pack.npz", quality=90, progress=False)
    arith_args = "--config.grid_size=12 --config.pool_size=48 --config.top_n=6 --config.num_draws=4 --config.num_baseline=16"
    from experiments import vector_arithmetic_gan

    if "judge_steps" in vector_arithmetic_gan.get_config():  # the independent judge, where the experiment has one
        arith_args += " --config.judge_steps=30"
    out = tmp_path / "out"
    env = {
        **os.environ, "PYTHON": sys.executable, "JAX_PLATFORMS": "cpu", "GAN_ARITH_COMPILATION_CACHE": "",
        "SEED_PACK": str(tmp_path / "pack.npz"), "SEED_WORK": str(tmp_path / "work"), "OUT": str(out),
        "SEED_SIZE": "40", "SEED_WIDTH": "8", "SEED_BATCH": "32", "SEED_STEPS": "16", "SEED_EVALS": "2",
        "SEED_FACES": "128", "SEED_DTYPE": "float32", "SEED_CLASSIFIER_STEPS": "30", "SEED_STEPS_PER_DISPATCH": "0",
        "SEED_TRAIN_ARGS": "--config.num_fd_samples=64 --config.model.latent_dim=8 --config.num_samples=8",
        "SEED_ARITH_ARGS": arith_args,
    }
    start = time.monotonic()
    result = subprocess.run(["bash", str(REPO / "tools" / "gpu_seed_run.sh")], env=env, capture_output=True, text=True,
                            timeout=900)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert sorted(path.name for path in out.iterdir()) == [
        "gan_scored_arithmetic.png", "gan_scored_draws.png", "samples_best.png", "samples_last.png",
        "seed_run.json", "seed_run.log", "seed_run_files.tar",
    ]
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    report = json.loads((out / "seed_run.json").read_text())
    assert report["ok"] and [stage["name"] for stage in report["stages"]] == ["unpack", "train", "arithmetic"]
    assert all(stage["returncode"] == 0 and stage["seconds"] > 0 for stage in report["stages"])
    assert report["wall_s"] <= seconds
    # 128 train faces at 16 real per step: 8 steps per epoch, 2 epochs for 16 steps, evaluated after each.
    assert {key: report["plan"][key] for key in ("steps_per_epoch", "epochs", "steps", "eval_every_epochs")} == {
        "steps_per_epoch": 8, "epochs": 2, "steps": 16, "eval_every_epochs": 1,
    }
    assert report["train"]["steps"] == 16 and [row["epoch"] for row in report["evals"]] == [1, 2]
    best = min(report["evals"], key=lambda row: row["frechet"])
    assert report["best"] == {"epoch": best["epoch"], "step": best["step"], "frechet": best["frechet"]}
    assert report["best"]["frechet"] >= 0
    assert report["arithmetic"]["num_draws"] == 4 and report["arithmetic"]["success"]["target"] == "Smiling & Male"
    with tarfile.open(out / "seed_run_files.tar") as tar:
        names = set(tar.getnames())
    assert {"run/figures/samples_epoch0001.png", "run/figures/samples_epoch0002.png", "run/metrics.jsonl",
            "run/summary.json", "arith/summary_scored.json", "arith/figures/index_grid.png"} <= names
    assert not any(name.startswith("store/") or "checkpoints" in name for name in names)
    log = (out / "seed_run.log").read_text()
    assert "=== train: exit 0" in log and "best checkpoint: epoch" in log
