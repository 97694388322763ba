"""The seed's DCGAN on real faces in one lent-GPU call: unpack a face pack, train, judge. Usage: tools/gpu_seed_run.sh.

Stages, each a child process under its own timeout (cut to what is left of SEED_BUDGET_S), with its wall
time printed and recorded:

1. unpack: SEED_PACK (`python -m gan_arith.data.export`) into a store under SEED_WORK, at the pack's
   size and SEED_SIZE.
2. train: `python -m experiments.dcgan_celeba` on that store's train partition, the seed configuration
   (`--config.scale_for_cpu=False`) in SEED_DTYPE, for the epochs that make SEED_STEPS updates (the
   seed's 100 epochs of 390 steps: 39,000; one epoch here is train faces // (batch / 2) steps),
   evaluated SEED_EVALS times: sample grid, Fréchet distance of samples to the valid faces in the
   attribute classifier's features (the classifier is trained first, on train, tested on test).
3. arithmetic: `python -m experiments.vector_arithmetic_gan` on the best checkpoint (the lowest Fréchet
   distance), with the same classifier: success rate of smiling woman - neutral woman + neutral man.
   Skipped when training did not finish (it would train on first).

$OUT receives seven flat files (the device tool returns at most eight): seed_run.json (the plan, each
stage's wall time and status, every eval row, the best checkpoint's Fréchet distance, the training and
arithmetic summaries), seed_run.log (every stage's output), samples_best.png and samples_last.png,
gan_scored_arithmetic.png and gan_scored_draws.png, and seed_run_files.tar with every grid and JSON of
the run (all epochs' samples, metrics.jsonl, configs, the classifier's test accuracy). The exit status
is 0 when every stage succeeded.

Environment (defaults in brackets): SEED_PACK [.pack/celeba_80.npz], SEED_WORK [/tmp/seed_run], OUT
[SEED_WORK/out], SEED_BUDGET_S [540], SEED_ARITH_S [120: kept back from training for the arithmetic],
SEED_STEPS [39000], SEED_EPOCHS [from SEED_STEPS], SEED_EVALS [10], SEED_FACES [0: every train face],
SEED_SIZE [the pack's], SEED_WIDTH [128], SEED_BATCH [128], SEED_DTYPE [bfloat16],
SEED_STEPS_PER_DISPATCH [-1: the largest divisor of an epoch's steps up to 10; 0: the loop's own choice],
SEED_CLASSIFIER_STEPS [1500], SEED_TRAIN_ARGS and SEED_ARITH_ARGS (more --config.* flags for each).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gan_arith.data.export import read_pack  # noqa: E402  (after the repository is on the path)
from gan_arith.data.store import FaceStore  # noqa: E402
from gan_arith.files import write_json  # noqa: E402

SEED_STEPS = 100 * 390  # the Keras tutorial's 100 epochs of int(50,000 / 128) steps of 64 real faces
OUT_FIGURES = ("gan_scored_arithmetic.png", "gan_scored_draws.png")


def env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    try:
        return int(text) if text else default
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {text!r}") from None


class Log:
    """Lines to stdout and to seed_run.log in $OUT at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file: TextIO = open(path, "w", buffering=1)

    def write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        self.file.write(text)

    def say(self, line: str) -> None:
        self.write(line + "\n")


def run_stage(log: Log, name: str, command: list[str], timeout: float, cwd: Path) -> dict[str, Any]:
    """Run `command` in `cwd` (output to the log), stopped after `timeout` s (SIGTERM, SIGKILL 15 s later).

    Run in the work folder, so that what an experiment keeps in a default relative folder (workdirs/...)
    stays there and out of the repository."""
    if timeout < 1:
        log.say(f"=== {name}: skipped, no time left in the budget")
        return {"name": name, "seconds": 0.0, "returncode": None, "timed_out": False, "skipped": True}
    log.say(f"=== {name} (timeout {timeout:.0f} s): {shlex.join(command)}")
    start = time.monotonic()
    cwd.mkdir(parents=True, exist_ok=True)
    path = os.environ.get("PYTHONPATH")
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)},
        start_new_session=True,  # its own process group: a timeout stops its helpers too
    )
    pump = threading.Thread(target=lambda: [log.write(line) for line in process.stdout], daemon=True)
    pump.start()
    timed_out = False
    try:
        returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGTERM)
        try:
            returncode = process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            returncode = process.wait()
    pump.join(5)
    seconds = round(time.monotonic() - start, 1)
    log.say(f"=== {name}: exit {returncode}, {seconds} s wall" + (" (timed out)" if timed_out else ""))
    return {"name": name, "seconds": seconds, "returncode": returncode, "timed_out": timed_out, "skipped": False}


def plan(
    store: FaceStore, *, steps: int, epochs: int, evals: int, faces: int, batch_size: int, steps_per_dispatch: int
) -> dict[str, Any]:
    """Epochs and eval interval for `steps` updates (or `epochs` when given) on the store's train faces, and
    the steps fused per dispatch: `steps_per_dispatch`, or for -1 the largest divisor of an epoch's steps up
    to 10 (a shorter last dispatch of an epoch would compile the train steps a second time)."""
    train_faces = int(len(store.select(None, "train")))
    used = min(train_faces, faces) if faces else train_faces
    steps_per_epoch = used // (batch_size // 2)  # the GAN reads batch / 2 real faces per step
    if steps_per_epoch < 1:
        raise SystemExit(f"{used} train faces make no step of {batch_size // 2} real faces")
    epochs = epochs or max(1, round(steps / steps_per_epoch))
    if steps_per_dispatch < 0:
        steps_per_dispatch = max(k for k in range(1, 11) if steps_per_epoch % k == 0)
    return {
        "train_faces": train_faces, "faces_used": used, "batch_size": batch_size, "steps_per_epoch": steps_per_epoch,
        "epochs": epochs, "steps": epochs * steps_per_epoch, "target_steps": steps,
        "eval_every_epochs": max(1, round(epochs / max(evals, 1))), "steps_per_dispatch": steps_per_dispatch,
    }


def eval_rows(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a line cut short by a kill
            continue
        if row.get("split") == "eval":
            rows.append(row)
    return rows


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def copy(source: Path, target: Path) -> str | None:
    if not source.is_file():
        return None
    target.write_bytes(source.read_bytes())
    return target.name


def bundle(out: Path, work: Path) -> list[str]:
    """Every grid and JSON under the work folder (not the store, checkpoints or weights, nor $OUT) in one tar:
    the device tool returns few files."""
    names = []
    with tarfile.open(out / "seed_run_files.tar", "w") as tar:
        for path in sorted(work.rglob("*")):
            parts = path.relative_to(work).parts
            if (path.suffix in (".png", ".json", ".jsonl") and path.is_file() and parts[0] != "store"
                    and not {"checkpoints", "weights"} & set(parts) and not path.is_relative_to(out)):
                tar.add(path, arcname="/".join(parts))
                names.append("/".join(parts))
    return names


def main() -> int:
    start = time.monotonic()
    pack = Path(os.environ.get("SEED_PACK", ".pack/celeba_80.npz"))
    pack = pack if pack.is_absolute() else REPO / pack
    work = Path(os.environ.get("SEED_WORK", "/tmp/seed_run")).absolute()
    out = Path(os.environ.get("OUT") or work / "out").absolute()
    budget = env_int("SEED_BUDGET_S", 540)
    arith_reserve = env_int("SEED_ARITH_S", 120)
    log = Log(out / "seed_run.log")

    def left() -> float:
        return budget - (time.monotonic() - start)

    report: dict[str, Any] = {"pack": str(pack), "work": str(work), "budget_s": budget, "stages": []}
    stages = report["stages"]
    store_dir, run, arith, classifier = work / "store", work / "run", work / "arith", work / "classifier"
    python = sys.executable

    header = read_pack(pack).header
    report["pack_header"] = {key: header[key] for key in ("image_size", "quality", "num_faces", "partitions", "psnr")}
    report["pack_bytes"] = pack.stat().st_size
    size = env_int("SEED_SIZE", header["image_size"])
    sizes = sorted({header["image_size"], size})
    stages.append(run_stage(log, "unpack", [
        python, "-m", "gan_arith.data.export", "--unpack", str(pack), "--output", str(store_dir),
        "--sizes", ",".join(map(str, sizes)), "--quiet",
    ], min(120, left()), work))
    if stages[-1]["returncode"] != 0:
        return finish(log, report, out, work, start)

    batch_size = env_int("SEED_BATCH", 128)
    report["plan"] = plan(
        FaceStore(store_dir), steps=env_int("SEED_STEPS", SEED_STEPS), epochs=env_int("SEED_EPOCHS", 0),
        evals=env_int("SEED_EVALS", 10), faces=env_int("SEED_FACES", 0), batch_size=batch_size,
        steps_per_dispatch=env_int("SEED_STEPS_PER_DISPATCH", -1),
    )
    settings = {
        "image_size": size, "width": env_int("SEED_WIDTH", 128), "dtype": os.environ.get("SEED_DTYPE", "bfloat16"),
        "classifier_steps": env_int("SEED_CLASSIFIER_STEPS", 1500),
    }
    report["plan"].update(settings)
    log.say("plan: " + json.dumps(report["plan"]))
    shared = [f"--config.classifier_dir={classifier}", f"--config.classifier_steps={settings['classifier_steps']}",
              "--config.scale_for_cpu=False"]
    train = [
        python, "-m", "experiments.dcgan_celeba", f"--workdir={run}", f"--config.data.store={store_dir}",
        f"--config.model.dtype={settings['dtype']}", f"--config.model.image_size={size}",
        f"--config.model.width={settings['width']}", f"--config.batch_size={batch_size}",
        f"--config.num_epochs={report['plan']['epochs']}", f"--config.eval_every_epochs={report['plan']['eval_every_epochs']}",
        f"--config.steps_per_dispatch={report['plan']['steps_per_dispatch']}",
        f"--config.data.max_faces={env_int('SEED_FACES', 0)}", "--config.tensorboard=False", *shared,
        *shlex.split(os.environ.get("SEED_TRAIN_ARGS", "")),
    ]
    stages.append(run_stage(log, "train", train, left() - arith_reserve - 10, work))
    if stages[-1]["returncode"] == 0 and (run / "summary.json").exists():
        stages.append(run_stage(log, "arithmetic", [
            python, "-m", "experiments.vector_arithmetic_gan", f"--workdir={arith}", f"--config.run={run}", *shared,
            *shlex.split(os.environ.get("SEED_ARITH_ARGS", "")),
        ], left() - 10, work))
    else:
        log.say("=== arithmetic: skipped, training did not finish (the experiment would train first)")
    return finish(log, report, out, work, start)


def finish(log: Log, report: dict[str, Any], out: Path, work: Path, start: float) -> int:
    """Gather the numbers and figures into $OUT; the exit status: 0 when every stage succeeded."""
    run, arith = work / "run", work / "arith"
    evals = eval_rows(run)
    report["evals"] = evals
    report["train"] = read_json(run / "summary.json")
    scored = [row for row in evals if isinstance(row.get("frechet"), (int, float)) and math.isfinite(row["frechet"])]
    best = min(scored, key=lambda row: row["frechet"]) if scored else None
    report["best"] = {key: best[key] for key in ("epoch", "step", "frechet")} if best else None
    files = {}
    if evals:
        last = max(row["epoch"] for row in evals)
        for name, epoch in (("samples_best.png", best["epoch"] if best else None), ("samples_last.png", last)):
            if epoch is not None:
                files[name] = copy(run / "figures" / f"samples_epoch{epoch:04d}.png", out / name)
    summary = read_json(arith / "summary_scored.json")
    report["arithmetic"] = summary
    for name in OUT_FIGURES:
        files[name] = copy(arith / "figures" / name, out / name)
    report["files"] = files
    report["bundled"] = bundle(out, work)
    stages = report["stages"]
    report["ok"] = bool(stages) and all(stage["returncode"] == 0 for stage in stages) and len(stages) == 3
    report["wall_s"] = round(time.monotonic() - start, 1)
    write_json(report, out / "seed_run.json", indent=2)
    if best:
        log.say(f"best checkpoint: epoch {best['epoch']} (step {best['step']}), Fréchet distance {best['frechet']:.3f}")
    log.say("stages: " + ", ".join(f"{s['name']} {s['seconds']} s (exit {s['returncode']})" for s in stages)
            + f"; wall {report['wall_s']} s; outputs in {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
