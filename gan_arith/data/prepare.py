"""Cut faces out of images with MTCNN and write them into a prepared-faces store.

Commands (see docs/data.md)::

    python -m gan_arith.data.prepare --source celeba --input /path/to/celeba \\
        --output data/celeba_store --sizes 80,128 --processes 2
    python -m gan_arith.data.prepare --source folder --input ~/photos --output data/photos_store
    python -m gan_arith.data.prepare --source tfds --output data/tfds_store [--tfds-data-dir D] [--tfds-manual-dir M]
    python -m gan_arith.data.prepare --bench --input /path/to/celeba --limit 200

What happens to every image:

1. Decode with PIL (EXIF rotation applied). Unreadable input is skipped and
   counted by reason: ``unreadable`` (I/O error), ``not_image``, ``truncated``,
   ``corrupt``, ``too_large`` (PIL decompression-bomb limit). Other modes are
   converted to RGB and kept, counted under ``handled`` as
   ``converted_<mode>`` (grayscale ``L``, ``CMYK``, ``P``; ``RGBA``/``LA``/``PA`` are
   composited on white; 16-bit ``I;16``/``I`` scaled by 255/65535); rotated
   images count as ``exif_rotated``.
2. Images whose shorter side is below ``--min-image-size`` are skipped as ``too_small``.
3. MTCNN (``mtcnn`` 1.0, TensorFlow, one thread per process) runs on batches of
   up to ``--detect-batch`` images of one shape (batching is ~4x faster than one
   image at a time on CelebA); images longer than ``--max-detect-side`` are
   detected on a downscaled copy and the box mapped back. Faces below
   ``--min-confidence`` are ignored; no face left: ``no_face``. The face with the
   highest confidence (ties: the largest box) is kept; more than one face:
   counted as handled ``multiple_faces``.
4. The box is clamped to the image, made square (side ``max(w, h) * margin``,
   centred on the box, at most the image's shorter side, shifted inside the
   image: no stretching, no padding) and resized with bicubic filtering to
   every ``--sizes`` entry. Box, confidence and five keypoints are recorded.

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
import io
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gan_arith.data import celeba
from gan_arith.data.store import KEYPOINT_NAMES, MANIFEST, StoreWriter, meta_file, read_manifest, store_differences
from gan_arith.errors import InputError
from gan_arith.progress import Progress

TFDS_SPLITS = (("train", 0), ("validation", 1), ("test", 2))
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
# Signatures of JPEG, PNG, GIF, BMP, WebP (RIFF) and TIFF: such a file that PIL cannot identify is corrupt.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


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


# ----------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class Record:
    """One source image: decoded RGB uint8 ``[H, W, 3]``, or the reason it could not be."""

    file_name: str
    attributes: np.ndarray  # int8 [A]
    partition: int
    image: np.ndarray | None
    reason: str | None = None  # skip reason when image is None
    notes: tuple[str, ...] = ()  # how the image was handled on the way to RGB


def to_rgb(img: Image.Image) -> tuple[np.ndarray, tuple[str, ...]]:
    """Convert a loaded PIL image of any mode to RGB uint8; note the conversion if any."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img), ()
    if mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(img, dtype=np.float64) * (255.0 / 65535.0)
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2), (f"converted_{mode}",)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB")), (f"converted_{mode}",)
    return np.asarray(img.convert("RGB")), (f"converted_{mode}",)


def decode_image(data: bytes) -> tuple[np.ndarray | None, str | None, tuple[str, ...]]:
    """Decode encoded image bytes to RGB uint8: (image, None, notes) or (None, skip reason, ())."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            notes: tuple[str, ...] = ()
            if img.getexif().get(0x0112, 1) != 1:  # EXIF orientation
                img = ImageOps.exif_transpose(img)
                notes = ("exif_rotated",)
            rgb, converted = to_rgb(img)
            return rgb, None, notes + converted
    except Image.DecompressionBombError:
        return None, "too_large", ()
    except UnidentifiedImageError:
        return None, "corrupt" if data.startswith(_IMAGE_MAGIC) else "not_image", ()
    except Exception as e:  # PIL raises many types on malformed data; none may stop the run
        return None, "truncated" if "truncated" in str(e) else "corrupt", ()


# ----------------------------------------------------------------------------- sources


class Source(Protocol):
    """A deterministic, indexable list of source images (picklable: workers get a copy)."""

    kind: str
    attribute_names: tuple[str, ...]
    extra_counts: dict[str, int]

    def __len__(self) -> int: ...

    def describe(self) -> str: ...

    def records(self, start: int, stop: int) -> Iterator[Record]: ...


@dataclass(frozen=True)
class FileSource:
    """Image files under ``root`` (CelebA's image folder or any folder), sorted by relative path."""

    kind: str
    root: Path
    files: tuple[str, ...]
    attribute_names: tuple[str, ...]
    attributes: np.ndarray  # int8 [N, A]
    partition: np.ndarray  # int8 [N]
    extra_counts: dict[str, int]

    def __len__(self) -> int:
        return len(self.files)

    def describe(self) -> str:
        return str(self.root.resolve())

    def records(self, start: int, stop: int) -> Iterator[Record]:
        for i in range(start, stop):
            try:
                data = (self.root / self.files[i]).read_bytes()
            except OSError:
                yield Record(self.files[i], self.attributes[i], int(self.partition[i]), None, "unreadable")
                continue
            image, reason, notes = decode_image(data)
            yield Record(self.files[i], self.attributes[i], int(self.partition[i]), image, reason, notes)


def celeba_source(root: str | os.PathLike) -> FileSource:
    """The present images of an official CelebA folder, with attributes and partitions."""
    index = celeba.read_celeba(root)
    return FileSource(
        kind="celeba",
        root=index.image_dir,
        files=index.file_names,
        attribute_names=index.attribute_names,
        attributes=index.attributes,
        partition=index.partition,
        extra_counts={"absent": index.absent, "unlisted": index.unlisted},
    )


def folder_source(root: str | os.PathLike) -> FileSource:
    """Every non-hidden file under ``root`` (nested), no attributes, all in the train partition.

    Non-image files are not filtered by extension: they are counted as ``not_image``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} is not a directory")
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        rel = Path(directory).relative_to(root)
        files += [(rel / name).as_posix() for name in names if not name.startswith(".")]
    if not files:
        raise ValueError(f"image folder {root} holds no files")
    files.sort()
    return FileSource(
        kind="folder",
        root=root,
        files=tuple(files),
        attribute_names=(),
        attributes=np.zeros((len(files), 0), np.int8),
        partition=np.zeros(len(files), np.int8),
        extra_counts={},
    )


@dataclass(frozen=True)
class TfdsSource:
    """tensorflow-datasets ``celeb_a`` (train, validation, test in order), read by index ranges."""

    data_dir: str | None
    split_sizes: tuple[tuple[str, int], ...]
    attribute_names: tuple[str, ...]
    kind: str = "tfds"
    extra_counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(n for _, n in self.split_sizes)

    def describe(self) -> str:
        return f"tfds:celeb_a@{self.data_dir or 'default'}"

    def records(self, start: int, stop: int) -> Iterator[Record]:
        import tensorflow_datasets as tfds

        builder = tfds.builder("celeb_a", data_dir=self.data_dir)
        codes = dict(TFDS_SPLITS)
        offset = 0
        for split, n in self.split_sizes:
            lo, hi = max(start - offset, 0), min(stop - offset, n)
            offset += n
            if lo >= hi:
                continue
            # shuffle_files=False + an index slice gives the same examples in the same order every time.
            ds = builder.as_dataset(
                split=f"{split}[{lo}:{hi}]",
                shuffle_files=False,
                read_config=tfds.ReadConfig(add_tfds_id=True),
            )
            for example in tfds.as_numpy(ds):
                attributes = np.array(
                    [1 if example["attributes"][a] else -1 for a in self.attribute_names], np.int8
                )
                yield Record(example["tfds_id"].decode(), attributes, codes[split], example["image"])


def tfds_source(data_dir: str | None = None, manual_dir: str | None = None) -> TfdsSource:
    """Prepare (download, or build from ``manual_dir`` offline) tfds ``celeb_a`` and index it."""
    import tensorflow_datasets as tfds

    builder = tfds.builder("celeb_a", data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return TfdsSource(
        data_dir=data_dir,
        split_sizes=tuple((split, builder.info.splits[split].num_examples) for split, _ in TFDS_SPLITS),
        attribute_names=tuple(builder.info.features["attributes"].keys()),
    )


# ----------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class Face:
    """One detection in image pixels: box (x, y, w, h) clamped to the image, confidence, int32 [5, 2] keypoints."""

    box: tuple[int, int, int, int]
    confidence: float
    keypoints: np.ndarray


def limit_tf_threads() -> None:
    """One TF thread per process (N processes use N cores) and no GPU; call before TF starts."""
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TF already initialised in this process (e.g. a test): keep its settings
        pass


class FaceDetector:
    """The ``mtcnn`` detector with batching by image shape, confidence filtering and sorting."""

    def __init__(self, min_confidence: float = 0.8, max_detect_side: int = 1024) -> None:
        limit_tf_threads()
        from mtcnn import MTCNN

        self.min_confidence = min_confidence
        self.max_detect_side = max_detect_side
        self._mtcnn = MTCNN()

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face] | None]:
        """Faces per image (best first: confidence, then box area), or None where the detector failed."""
        scaled = [self._detection_input(image) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (array, _) in enumerate(scaled):
            groups.setdefault(array.shape, []).append(i)
        results: list[list[Face] | None] = [None] * len(images)
        for members in groups.values():
            # One call per shape: MTCNN pads mixed shapes to one tensor, which would change detections.
            raw = self._run([scaled[i][0] for i in members])
            for i, faces in zip(members, raw):
                if faces is not None:
                    height, width = images[i].shape[:2]
                    results[i] = self._faces(faces, scaled[i][1], width, height)
        return results

    def _detection_input(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        height, width = image.shape[:2]
        scale = min(1.0, self.max_detect_side / max(height, width))
        if scale == 1.0:
            return image, 1.0
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)), scale

    def _run(self, batch: list[np.ndarray]) -> list[list[dict] | None]:
        try:
            # float32 input keeps mtcnn's normalisation and resizing out of float64 (~15% faster).
            return self._mtcnn.detect_faces([image.astype(np.float32) for image in batch])
        except Exception:  # one bad image must not cost the batch: retry one by one
            if len(batch) == 1:
                return [None]
            return [self._run([image])[0] for image in batch]

    def _faces(self, raw: list[dict], scale: float, width: int, height: int) -> list[Face]:
        faces = []
        for face in raw:
            confidence = float(face["confidence"])
            if confidence < self.min_confidence:
                continue
            x, y, w, h = (float(v) / scale for v in face["box"])
            x0, y0 = max(0, round(x)), max(0, round(y))
            x1, y1 = min(width, round(x + w)), min(height, round(y + h))
            if x1 <= x0 or y1 <= y0:
                continue
            keypoints = np.array([face["keypoints"][k] for k in KEYPOINT_NAMES], np.float64) / scale
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), confidence, np.rint(keypoints).astype(np.int32)))
        # Stable sort: equal confidence and area keep MTCNN's order.
        return sorted(faces, key=lambda f: (-f.confidence, -f.box[2] * f.box[3]))


def square_crop(box: tuple[int, int, int, int], width: int, height: int, margin: float = 1.0) -> tuple[float, ...]:
    """A square (left, top, right, bottom) around the box centre, side max(w, h) * margin, inside the image.

    The side is capped at the image's shorter side and the square shifted (not
    shrunk) to stay inside, so faces are never stretched and never padded.
    """
    x, y, w, h = box
    side = min(max(w, h) * margin, width, height)
    left = min(max(x + w / 2 - side / 2, 0.0), width - side)
    top = min(max(y + h / 2 - side / 2, 0.0), height - side)
    return (left, top, left + side, top + side)


def crop_face(image: np.ndarray, face: Face, sizes: Sequence[int], margin: float) -> dict[int, np.ndarray]:
    """The square crop of ``face`` resized (bicubic, antialiased) to each size: {size: uint8 [S, S, 3]}."""
    height, width = image.shape[:2]
    box = square_crop(face.box, width, height, margin)
    pil = Image.fromarray(image)
    return {s: np.asarray(pil.resize((s, s), Image.Resampling.BICUBIC, box=box)) for s in sizes}


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

    Python drops exceptions raised inside garbage-collector callbacks (TensorFlow's import brings jax,
    which installs one) with an "Exception ignored" traceback, so a Ctrl-C landing there would go
    unnoticed; that traceback is left out too. Only in the main thread, and only where Python's default
    handler is installed.
    """

    def __init__(self) -> None:
        self.pressed = False
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
        raise KeyboardInterrupt

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
