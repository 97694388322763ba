"""Prepare a faces store: cut the face out of every image of a raw source, in parallel shards that resume.

Commands (see docs/data.md)::

    python -m gan_arith.data.prepare --source celeba --input /path/to/celeba \\
        --output data/celeba_store --sizes 80,128 --processes 2
    python -m gan_arith.data.prepare --source folder --input ~/photos --output data/photos_store
    python -m gan_arith.data.prepare --source tfds --output data/tfds_store [--tfds-data-dir D] [--tfds-manual-dir M]
    python -m gan_arith.data.prepare --bench --input /path/to/celeba --limit 200

What happens to every image:

1. The source decodes it (`gan_arith.data.raw_images`); unreadable input is skipped and counted by
   reason, converted modes and EXIF rotations are counted under ``handled``.
2. Images whose shorter side is below ``--min-image-size`` are skipped as ``too_small``.
3. MTCNN finds the faces (`gan_arith.data.faces`) in batches of up to ``--detect-batch`` images of one
   shape; no face of at least ``--min-confidence``: ``no_face``; more than one: the best is kept and the
   image counted as handled ``multiple_faces``.
4. The face's square crop is resized to every ``--sizes`` entry; box, confidence and five keypoints are
   recorded.

Work is split into shards of ``--shard-size`` consecutive images of the sorted
source list. Each shard is processed independently and deterministically (in
a worker process with its own detector), then written atomically by the
parent; rerunning the same command after a crash or ``kill -9`` skips finished
shards and yields exactly the store an uninterrupted run would have written.
Ctrl-C stops the workers at once and exits with status 130; the finished
shards are kept. Mistakes in the command (bad ``--sizes``, an ``--output``
holding a store made with other settings) are reported in one line, and such
a store is left untouched.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import os
import queue as queue_lib
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from gan_arith.data.faces import Face, FaceDetector, crop_face
from gan_arith.data.raw_images import Record, Source, celeba_source, folder_source, tfds_source
from gan_arith.data.store import MANIFEST, StoreWriter, meta_file, read_manifest, store_differences
from gan_arith.errors import InputError
from gan_arith.progress import Progress


class PrepareError(InputError):
    """A mistake in what prepare was asked to do (settings, output directory), not a bug: the CLI prints one line."""


@dataclass(frozen=True)
class PrepareSettings:
    """Everything that determines the store's content (stored in its manifest).

    ``sizes`` are kept sorted (their order changes nothing in the store) and must be distinct.
    """

    sizes: tuple[int, ...] = (80,)
    shard_size: int = 1000
    limit: int | None = None
    min_image_size: int = 40
    min_confidence: float = 0.8  # = mtcnn's own final (ONet) threshold; real CelebA faces go down to ~0.8
    margin: float = 1.0
    detect_batch: int = 16
    max_detect_side: int = 1024

    def __post_init__(self) -> None:
        sizes = tuple(int(s) for s in self.sizes)
        if not sizes or any(s < 1 for s in sizes):
            raise PrepareError(f"sizes must be positive, got {list(sizes)}")
        if len(set(sizes)) != len(sizes):
            raise PrepareError(f"sizes must be distinct, got {list(sizes)}")
        object.__setattr__(self, "sizes", tuple(sorted(sizes)))
        for name in ("shard_size", "min_image_size", "detect_batch", "max_detect_side"):
            if getattr(self, name) < 1:
                raise PrepareError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise PrepareError(f"limit must be >= 1, got {self.limit}")
        if not self.margin > 0:
            raise PrepareError(f"margin must be > 0, got {self.margin}")


# ----------------------------------------------------------------------------- shards


@dataclass
class ShardResult:
    index: int
    images: dict[int, np.ndarray]
    meta: dict[str, np.ndarray]
    counts: dict[str, Any]


def shard_range(index: int, shard_size: int, total: int) -> tuple[int, int]:
    """The [start, stop) slice of the source list that shard ``index`` covers."""
    return index * shard_size, min((index + 1) * shard_size, total)


def num_items(source: Source, settings: PrepareSettings) -> int:
    return len(source) if settings.limit is None else min(settings.limit, len(source))


def process_shard(
    source: Source,
    index: int,
    settings: PrepareSettings,
    detector: FaceDetector,
    report: Callable[[int], None] = lambda n: None,
) -> ShardResult:
    """Decode, detect and crop shard ``index``; a pure function of its inputs (batches are fixed slices)."""
    start, stop = shard_range(index, settings.shard_size, num_items(source, settings))
    counts: dict[str, Any] = {"seen": 0, "kept": 0, "skipped": {}, "handled": {}}
    kept: list[tuple[Record, Face, dict[int, np.ndarray]]] = []
    window: list[Record] = []
    unreported = 0

    def bump(group: str, reason: str) -> None:
        counts[group][reason] = counts[group].get(reason, 0) + 1

    def flush() -> None:
        nonlocal unreported
        detections = detector.detect([r.image for r in window]) if window else []
        for record, faces in zip(window, detections):
            if faces is None:
                bump("skipped", "detector_error")
            elif not faces:
                bump("skipped", "no_face")
            else:
                if len(faces) > 1:
                    bump("handled", "multiple_faces")
                kept.append((record, faces[0], crop_face(record.image, faces[0], settings.sizes, settings.margin)))
        window.clear()
        if unreported:
            report(unreported)
        unreported = 0

    for record in source.records(start, stop):
        counts["seen"] += 1
        unreported += 1
        for note in record.notes:
            bump("handled", note)
        if record.image is None:
            bump("skipped", record.reason or "corrupt")
        elif min(record.image.shape[:2]) < settings.min_image_size:
            bump("skipped", "too_small")
        else:
            window.append(record)
            if len(window) == settings.detect_batch:
                flush()
    flush()
    counts["kept"] = len(kept)
    num_attributes = len(source.attribute_names)
    images = {
        s: np.stack([crops[s] for _, _, crops in kept]) if kept else np.zeros((0, s, s, 3), np.uint8)
        for s in settings.sizes
    }
    meta = {
        "file_name": np.array([r.file_name for r, _, _ in kept], dtype=np.str_),
        "attributes": np.array([r.attributes for r, _, _ in kept], np.int8).reshape(len(kept), num_attributes),
        "partition": np.array([r.partition for r, _, _ in kept], np.int8),
        "box": np.array([f.box for _, f, _ in kept], np.int32).reshape(len(kept), 4),
        "confidence": np.array([f.confidence for _, f, _ in kept], np.float32),
        "keypoints": np.array([f.keypoints for _, f, _ in kept], np.int32).reshape(len(kept), 5, 2),
    }
    return ShardResult(index, images, meta, counts)


# Worker-process state: one source copy and one detector per process, built once.
_WORKER: dict[str, Any] = {}


def _watch_parent(parent: int) -> None:
    # A parent killed with -9 cannot stop its workers; they stop themselves.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _init_worker(source: Source, settings: PrepareSettings, events: Any) -> None:
    # Ctrl-C reaches the whole process group; the parent alone handles it (and terminates the workers).
    # The worker started with SIGINT blocked (see _run_pool): ignore it, then unblock (a pending one is dropped).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    _WORKER.update(
        source=source,
        settings=settings,
        events=events,
        detector=FaceDetector(settings.min_confidence, settings.max_detect_side),
    )
    events.put(("ready", 0))


def _worker_shard(index: int) -> ShardResult:
    events = _WORKER["events"]
    return process_shard(
        _WORKER["source"], index, _WORKER["settings"], _WORKER["detector"], lambda n: events.put(("images", n))
    )


# ----------------------------------------------------------------------------- orchestration


@dataclass
class _PrepareProgress:
    """Image progress plus finished shards (a resumed run starts with the shards already written)."""

    bar: Progress
    num_shards: int
    done_shards: int

    def images(self, count: int) -> None:
        self.bar.update(count, count)

    def shard(self) -> None:
        self.done_shards += 1
        self.bar.update(extra={"shards": f"{self.done_shards}/{self.num_shards}"})


def store_settings(source: Source, settings: PrepareSettings) -> dict[str, Any]:
    """The manifest's settings: all content-determining choices, the input and its size."""
    import importlib.metadata

    return {
        **asdict(settings),
        "input": source.describe(),
        "num_inputs": num_items(source, settings),
        "resample": "bicubic",
        "mtcnn_version": importlib.metadata.version("mtcnn"),
    }


def prepare(
    source: Source,
    output: str | os.PathLike,
    settings: PrepareSettings,
    *,
    processes: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Prepare (or resume) the store at ``output``; return its manifest plus a ``"run"`` entry with timings.

    ``processes == 1`` works in this process; more start that many spawned workers (at most one per
    shard left). An ``output`` that holds something else than this store (other settings, not a store)
    raises `PrepareError` before anything is written; a complete store is returned as it is.
    """
    if processes < 1:
        raise PrepareError(f"processes must be >= 1, got {processes}")
    total = num_items(source, settings)
    num_shards = math.ceil(total / settings.shard_size)
    manifest_settings = store_settings(source, settings)
    existing = _check_output(Path(output), source, settings, manifest_settings)
    if existing is not None and existing.get("complete") and _all_shards_written(Path(output), existing, num_shards):
        existing["run"] = {
            "already_complete": True,
            "processes": 0,
            "processes_requested": processes,
            "shards": 0,
            "images": 0,
            "wall_s": 0.0,
            "startup_s": 0.0,
            "images_per_s": 0.0,
            "steady_images_per_s": None,
        }
        return existing
    writer = StoreWriter(
        output,
        image_sizes=settings.sizes,
        attribute_names=source.attribute_names,
        source=source.kind,
        settings=manifest_settings,
    )
    todo = [i for i in range(num_shards) if i not in writer.completed_shards()]
    done_images = total - sum(len(range(*shard_range(i, settings.shard_size, total))) for i in todo)
    bar = Progress(total, label="prepare", unit="img", done=done_images, enabled=progress)
    tracker = _PrepareProgress(bar, num_shards, num_shards - len(todo))
    start = time.monotonic()
    workers = min(processes, len(todo))
    try:
        with _CtrlC() as ctrl_c:
            if workers <= 1:
                ready, steady_images = _run_inline(source, settings, writer, todo, tracker, ctrl_c)
            else:
                ready, steady_images = _run_pool(source, settings, writer, todo, tracker, workers, ctrl_c)
    finally:
        bar.close()  # also when interrupted: the progress line ends before any message
    end = time.monotonic()
    manifest = writer.finalize(source.extra_counts)
    steady = end - (ready if ready is not None else end)
    manifest["run"] = {
        "already_complete": False,
        "processes": workers,
        "processes_requested": processes,
        "shards": len(todo),
        "images": bar.units,
        "wall_s": round(end - start, 3),
        "startup_s": round((ready if ready is not None else end) - start, 3),
        "images_per_s": round(bar.units / max(end - start, 1e-9), 2),
        "steady_images_per_s": round(steady_images / steady, 2) if steady > 0 else None,
    }
    return manifest


def _check_output(
    root: Path, source: Source, settings: PrepareSettings, manifest_settings: dict[str, Any]
) -> dict[str, Any] | None:
    """The manifest of the store at ``root`` if it is this store (else `PrepareError`); None for a new store.

    Only reads. A store prepared before sizes were sorted lists them in the order given: if they are the
    same sizes, ``manifest_settings["sizes"]`` takes that order so that the store is resumed, not refused.
    """
    if not (root / MANIFEST).exists():
        if root.exists() and not root.is_dir():
            raise PrepareError(f"output {root} is not a directory; choose another output directory")
        if root.is_dir() and any(root.iterdir()):
            raise PrepareError(
                f"output {root} is not empty and holds no prepared-faces store (no {MANIFEST}); "
                "choose another output directory"
            )
        return None
    try:
        manifest = read_manifest(root)
    except ValueError as e:
        raise PrepareError(f"output {e}; choose another output directory") from None
    old_sizes = (manifest.get("settings") or {}).get("sizes")
    if isinstance(old_sizes, list) and sorted(old_sizes) == list(settings.sizes):
        manifest_settings["sizes"] = old_sizes  # same sizes, possibly in the (legacy) given order
    differ = store_differences(
        manifest, source=source.kind, image_sizes=settings.sizes, attribute_names=source.attribute_names,
        settings=manifest_settings,
    )
    if differ:
        raise PrepareError(
            f"output {root} holds a store prepared with other settings: {'; '.join(differ)}. "
            "Choose another output directory, or rerun with the store's settings to resume or reuse it"
        )
    return manifest


def _all_shards_written(root: Path, manifest: dict[str, Any], num_shards: int) -> bool:
    listed = sorted(shard.get("index") for shard in manifest.get("shards", []))
    return listed == list(range(num_shards)) and all((root / meta_file(i)).exists() for i in listed)


class _CtrlC:
    """Ctrl-C that cannot get lost: KeyboardInterrupt as usual, raised again by `check` if it was swallowed.

    Inside `only_at_checks` the handler only records the press and `check` raises it: a KeyboardInterrupt
    raised inside `concurrent.futures`' own code can leave a future's lock held, and the pool's shutdown
    then waits on it for ever.

    Python drops exceptions raised inside garbage-collector callbacks (TensorFlow's import brings jax,
    which installs one) with an "Exception ignored" traceback, so a Ctrl-C landing there would go
    unnoticed; that traceback is left out too. Only in the main thread, and only where Python's default
    handler is installed.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._raise_at_once = True
        self._previous: Any = None
        self._previous_hook: Any = None

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self._previous = signal.signal(signal.SIGINT, self._handle)
                self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            sys.unraisablehook = self._previous_hook

    def _unraisable(self, unraisable: Any) -> None:
        if not (self.pressed and unraisable.exc_type is KeyboardInterrupt):  # that one `check` raises again
            self._previous_hook(unraisable)

    def _handle(self, signum: int, frame: Any) -> None:
        self.pressed = True
        if self._raise_at_once:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def only_at_checks(self) -> Iterator[None]:
        """Within the block a Ctrl-C is raised by the next `check`, not wherever the main thread is."""
        self._raise_at_once = False
        try:
            yield
        finally:
            self._raise_at_once = True

    def check(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt


def _run_inline(
    source: Source,
    settings: PrepareSettings,
    writer: StoreWriter,
    todo: list[int],
    tracker: _PrepareProgress,
    ctrl_c: _CtrlC,
) -> tuple[float | None, int]:
    if not todo:
        return None, 0
    detector = _cached_detector(settings.min_confidence, settings.max_detect_side)
    ready = time.monotonic()

    def report(images: int) -> None:  # after every detection batch
        ctrl_c.check()
        tracker.images(images)

    for index in todo:
        ctrl_c.check()
        result = process_shard(source, index, settings, detector, report)
        writer.write_shard(result.index, result.images, result.meta, result.counts)
        tracker.shard()
    return ready, tracker.bar.units


_DETECTORS: dict[tuple[float, int], FaceDetector] = {}


def _cached_detector(min_confidence: float, max_detect_side: int) -> FaceDetector:
    key = (min_confidence, max_detect_side)
    if key not in _DETECTORS:
        _DETECTORS[key] = FaceDetector(min_confidence, max_detect_side)
    return _DETECTORS[key]


def _run_pool(
    source: Source,
    settings: PrepareSettings,
    writer: StoreWriter,
    todo: list[int],
    tracker: _PrepareProgress,
    workers: int,
    ctrl_c: _CtrlC,
) -> tuple[float | None, int]:
    context = multiprocessing.get_context("spawn")
    ready_workers, ready, steady_images = 0, None, 0
    pool = None
    try:
        # Workers start with SIGINT blocked (the mask is inherited through fork and exec), so a Ctrl-C
        # to the process group during their start-up cannot print their tracebacks; _init_worker then
        # ignores it. Here a Ctrl-C stays pending until the unblock, then raises KeyboardInterrupt.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            events = context.Queue()
            pool = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_worker, initargs=(source, settings, events)
            )
            pending = {pool.submit(_worker_shard, index) for index in todo}  # spawns the workers
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        # Ctrl-C is raised at the loop's check, never inside concurrent.futures (see _CtrlC).
        with ctrl_c.only_at_checks():
            while pending:
                ctrl_c.check()
                finished, pending = concurrent.futures.wait(
                    pending, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED
                )
                while True:
                    try:
                        kind, n = events.get_nowait()
                    except queue_lib.Empty:
                        break
                    if kind == "ready":
                        ready_workers += 1
                        if ready_workers == workers:
                            ready = time.monotonic()
                    else:
                        steady_images += n if ready is not None else 0
                        tracker.images(n)
                for future in finished:
                    result = future.result()
                    writer.write_shard(result.index, result.images, result.meta, result.counts)
                    tracker.shard()
    except BaseException:  # Ctrl-C or an error: stop the workers now, not after the shards they hold
        if pool is not None:
            _terminate_pool(pool)
        raise
    pool.shutdown()
    return ready, steady_images


def _terminate_pool(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Kill the pool's workers (their unfinished shards are lost; written ones stay) and let it go."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # a second Ctrl-C waits for the clean-up
    try:
        processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API before Python 3.14
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        # With the workers gone the pool's manager thread ends at once; waiting for it here keeps Python
        # 3.11's exit handler from waking it through a pipe it is closing ("Bad file descriptor", seen in CI).
        pool.shutdown(wait=True, cancel_futures=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


# ----------------------------------------------------------------------------- CLI


def summary(manifest: dict[str, Any]) -> str:
    """Human-readable counts and throughput of a prepare run."""
    counts = manifest["counts"]
    lines = [
        f"store: {manifest['num_faces']:,} faces in {len(manifest['shards'])} shards, sizes {manifest['image_sizes']}",
        f"seen {counts['seen']:,}, kept {counts['kept']:,}",
        "skipped: " + (", ".join(f"{k} {v:,}" for k, v in counts["skipped"].items()) or "none"),
        "handled: " + (", ".join(f"{k} {v:,}" for k, v in counts.get("handled", {}).items()) or "none"),
    ]
    other = {k: v for k, v in counts.items() if k not in ("seen", "kept", "skipped", "handled")}
    if other:
        lines.append("source: " + ", ".join(f"{k} {v:,}" for k, v in other.items()))
    run = manifest.get("run")
    if run and run.get("already_complete"):
        lines.insert(0, "the store was already complete: nothing to do (same settings; to prepare it anew, "
                     "delete it or choose another --output)")
    elif run:
        processes = f"{run['processes']} process(es)"
        if run["processes"] < run.get("processes_requested", run["processes"]):
            processes += f" ({run['processes_requested']} requested, {run['shards']} shard(s) to do)"
        lines.append(
            f"this run: {run['images']:,} images in {run['wall_s']:.1f} s with {processes}: "
            f"{run['images_per_s']:.1f} images/s overall, {run['steady_images_per_s'] or 0:.1f} after "
            f"{run['startup_s']:.1f} s start-up"
        )
    return "\n".join(lines)


def bench(source: Source, limit: int, process_counts: Sequence[int], settings: PrepareSettings) -> list[dict]:
    """Prepare the first ``limit`` images into temp stores with each process count; print images/s."""
    shard_size = max(1, math.ceil(limit / (2 * max(process_counts))))
    results = []
    for processes in process_counts:
        with tempfile.TemporaryDirectory(prefix="gan_arith-bench-") as tmp:
            run = prepare(
                source, tmp, replace(settings, limit=limit, shard_size=shard_size), processes=processes, progress=False
            )["run"]
        results.append(run)
        print(
            f"bench: {processes} process(es): {run['steady_images_per_s'] or 0:.1f} images/s after start-up "
            f"({run['images_per_s']:.1f} incl. {run['startup_s']:.1f} s start-up; {run['images']} images, "
            f"{run['wall_s']:.1f} s)",
            flush=True,
        )
    return results


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def make_source(kind: str, input_path: str | None, tfds_data_dir: str | None, tfds_manual_dir: str | None) -> Source:
    """Build the source named on the command line (`PrepareError` for a missing or unusable --input)."""
    if kind == "tfds":
        return tfds_source(tfds_data_dir, tfds_manual_dir)
    if input_path is None:
        raise PrepareError(f"--input is required for --source {kind}")
    try:
        return celeba_source(input_path) if kind == "celeba" else folder_source(input_path)
    except (OSError, ValueError) as e:  # missing folder or list files, malformed lists: all about --input
        raise PrepareError(f"--input: {e}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    """Comma-separated integers; `PrepareSettings` checks that they are positive and distinct."""
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 80,128, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | list[dict]:
    """The command line; mistakes exit with one line (status 2 for arguments, 1 for --input/--output), Ctrl-C with 130."""
    parser = argparse.ArgumentParser(prog="python -m gan_arith.data.prepare", description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=("celeba", "folder", "tfds"), default="celeba")
    parser.add_argument("--input", help="CelebA root (celeba) or image folder (folder)")
    parser.add_argument("--output", help="store directory (created, or resumed if incomplete)")
    parser.add_argument("--sizes", type=_sizes, default=(80,), help="comma-separated output sizes, e.g. 80,128")
    parser.add_argument(
        "--processes", type=_positive_int, default=_cpu_count(), help="worker processes (default: all cores)"
    )
    parser.add_argument(
        "--limit", type=int,
        help="only the first N images of the sorted source list (CelebA files are numbered in partition order, "
        "so a limited CelebA run holds train faces only)",
    )
    defaults = PrepareSettings()
    parser.add_argument(
        "--shard-size", type=int, default=defaults.shard_size, help="images per shard (unit of work)"
    )
    parser.add_argument("--min-image-size", type=int, default=defaults.min_image_size)
    parser.add_argument("--min-confidence", type=float, default=defaults.min_confidence)
    parser.add_argument("--margin", type=float, default=defaults.margin, help="square side = max(w, h) * margin")
    parser.add_argument("--detect-batch", type=int, default=defaults.detect_batch)
    parser.add_argument("--max-detect-side", type=int, default=defaults.max_detect_side)
    parser.add_argument("--tfds-data-dir", help="tensorflow-datasets data_dir (default ~/tensorflow_datasets)")
    parser.add_argument("--tfds-manual-dir", help="folder with the original CelebA files for an offline tfds build")
    parser.add_argument("--bench", action="store_true", help="print images/s with 1 and with all processes")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    try:
        settings = PrepareSettings(
            sizes=args.sizes,
            shard_size=args.shard_size,
            limit=args.limit,
            min_image_size=args.min_image_size,
            min_confidence=args.min_confidence,
            margin=args.margin,
            detect_batch=args.detect_batch,
            max_detect_side=args.max_detect_side,
        )
    except PrepareError as e:
        parser.error(str(e))
    if not args.bench and args.output is None:
        parser.error("--output is required")
    try:
        source = make_source(args.source, args.input, args.tfds_data_dir, args.tfds_manual_dir)
        if args.bench:
            counts = sorted({1, args.processes})
            return bench(source, args.limit or 200, counts, settings)
        manifest = prepare(source, args.output, settings, processes=args.processes, progress=not args.quiet)
    except PrepareError as e:
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    except KeyboardInterrupt:
        resume = "" if args.bench else "; finished shards are kept: rerun the same command to resume"
        parser.exit(130, f"{parser.prog}: interrupted{resume}\n")
    print(summary(manifest))
    print(json.dumps(manifest["run"]))
    return manifest


if __name__ == "__main__":
    main()
