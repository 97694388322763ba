"""A prepared store's faces at one size as one compact file of JPEGs (a face pack), and back into a store.

    python -m gan_arith.data.export --store data/celeba_store --size 80 --output .pack/celeba_80.npz \\
        [--partitions train,valid,test] [--quality auto|N] [--max-mb 45] [--workers N]
    python -m gan_arith.data.export --unpack .pack/celeba_80.npz --output /tmp/store [--sizes 80,40] [--workers N]

Why: a lent GPU machine receives only the working tree and the carried paths, at most 64 MiB per
call with the code and the wheels, while a store keeps raw uint8 pixels (~19 KB per face at 80 px).
A pack keeps each face as a JPEG (~2 KB at 80 px), so the shared CelebA subset travels in one file;
the GPU host turns it back into a regular store (numpy and Pillow only: no TensorFlow, no MTCNN)
that every experiment reads with ``--config.data.store``.

The pack is one ``.npz`` (written atomically; zip-deflated, which shrinks the metadata, not the JPEGs):

- ``header``: JSON: ``format``, ``image_size``, the JPEG ``quality``/``subsampling``, ``num_faces``,
  the exported ``partitions``, the source store's ``source``, ``attribute_names``, ``settings``,
  ``num_faces``, ``counts`` and content key, and the ``psnr`` of decoded against original faces
  measured on a sample.
- ``jpeg``: uint8, every face's JPEG bytes one after the other; ``offsets``: int64 ``[N + 1]``, face
  ``i`` is ``jpeg[offsets[i]:offsets[i + 1]]``.
- the store's per-face metadata (``file_name``, ``attributes``, ``partition``, ``box``,
  ``confidence``, ``keypoints``), in the store's order.

``--quality auto`` picks the highest JPEG quality whose pack, predicted from a sample of faces, fits
``--max-mb``; faces are encoded and decoded by a thread pool (Pillow releases the GIL while coding).
The unpacked store holds the pack's faces at the pack's size (and any smaller ``--sizes``, resized
with bicubic filtering from the decoded faces); its settings name the pack, so artifacts keyed by
the store's content (the attribute classifier) are not mixed up with those of the original store.
Unpacking into the folder of an interrupted unpack resumes it; into a finished one does nothing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gan_arith.data.store import META_FIELDS, PARTITIONS, FaceStore, StoreWriter, _check_meta, partition_code
from gan_arith.errors import InputError
from gan_arith.files import atomic_write
from gan_arith.progress import Progress

PACK_FORMAT = "gan_arith-facepack/1"
SUBSAMPLING = "4:2:0"
MIN_AUTO_QUALITY, MAX_QUALITY = 50, 95  # Pillow advises against qualities above 95
DEFAULT_MAX_MB = 45.0
PSNR_SAMPLE = 512  # faces encoded at each tried quality to predict the pack's size, and to measure the PSNR
UNPACK_SHARD_SIZE = 4096
_CHUNK = 256  # faces per unit of work given to a coding thread
ALL_PARTITIONS = ("train", "valid", "test")
_PARTITION_NAMES = {code: name for name, code in PARTITIONS.items() if name != "validation"}


class PackError(InputError):
    """A mistake in what export or unpack was asked to do (missing store, bad size, not a pack): one line."""


def _workers(requested: int | None) -> int:
    if requested is not None:
        return max(1, requested)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _chunks(count: int, chunk: int = _CHUNK) -> list[range]:
    return [range(start, min(start + chunk, count)) for start in range(0, count, chunk)]


def encode_face(image: np.ndarray, quality: int) -> bytes:
    """One uint8 ``[S, S, 3]`` face as JPEG bytes (4:2:0 chroma, optimised Huffman tables, no metadata)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality, optimize=True, subsampling=SUBSAMPLING)
    return buffer.getvalue()


def decode_face(data: bytes, size: int, extra_sizes: Sequence[int] = ()) -> list[np.ndarray]:
    """The face in JPEG `data` (checked to be ``size`` x ``size`` RGB), then one bicubic resize per `extra_sizes`."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format != "JPEG" or image.size != (size, size):
            raise ValueError(f"expected a {size}x{size} JPEG, got {image.format} {image.size[0]}x{image.size[1]}")
        rgb = image.convert("RGB")
    return [np.asarray(rgb)] + [np.asarray(rgb.resize((s, s), Image.Resampling.BICUBIC)) for s in extra_sizes]


def psnr(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Per-image peak signal-to-noise ratio in dB of uint8 ``[N, ...]`` images (inf where identical)."""
    error = (original.astype(np.float64) - decoded.astype(np.float64)) ** 2
    mse = error.reshape(len(original), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0**2 / mse)


# ----------------------------------------------------------------------------- export


def _selected_rows(store: FaceStore, partitions: Sequence[str]) -> np.ndarray:
    codes = set()
    for name in partitions:
        try:
            codes.add(partition_code(name))
        except ValueError as error:
            raise PackError(f"--partitions: {error}") from None
    rows = np.flatnonzero(np.isin(store.partition, sorted(codes)))
    if len(rows) == 0:
        raise PackError(f"{store.root} has no faces in partition(s) {', '.join(partitions)}")
    return rows


def _encode_sample(sample: np.ndarray, quality: int) -> list[bytes]:
    return [encode_face(image, quality) for image in sample]


def _metadata_bytes(arrays: dict[str, np.ndarray]) -> int:
    """The compressed size of the pack's non-JPEG members (the header, a few KB of JSON, counted at 16 KB)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.tell() + 16384


def choose_quality(sample: np.ndarray, num_faces: int, max_bytes: int, fixed_bytes: int) -> int:
    """The highest quality in [MIN_AUTO_QUALITY, MAX_QUALITY] whose pack, predicted with a 2% margin from
    `sample` (faces drawn evenly from the export), holds `num_faces` in `max_bytes`. The prediction
    deflates the sample's JPEGs as the pack does: that takes ~10% off small faces' JPEGs, whose headers
    (JFIF, quantisation tables) repeat from face to face."""

    def fits(quality: int) -> bool:
        per_face = len(zlib.compress(b"".join(_encode_sample(sample, quality)))) / len(sample)
        return fixed_bytes + 1.02 * per_face * num_faces <= max_bytes

    if not fits(MIN_AUTO_QUALITY):
        raise PackError(
            f"{num_faces} faces do not fit in {max_bytes / 1e6:.1f} MB even at JPEG quality {MIN_AUTO_QUALITY}: "
            "export fewer --partitions, a smaller --size, or raise --max-mb"
        )
    low, high = MIN_AUTO_QUALITY, MAX_QUALITY  # fits(low) holds; the answer lies in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def _encode_all(
    store: FaceStore, size: int, rows: np.ndarray, quality: int, workers: int, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Every face of `rows` as JPEG: (the bytes one after the other, int64 offsets [N + 1])."""

    def encode_chunk(part: range) -> list[bytes]:
        return _encode_sample(store.gather(size, rows[part.start:part.stop]), quality)

    bar = Progress(len(rows), label=f"export q{quality}", unit="faces", enabled=progress)
    encoded: list[bytes] = []
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for faces in pool.map(encode_chunk, _chunks(len(rows))):
            encoded += faces
            bar.update(len(faces), len(faces))
    bar.close()
    offsets = np.concatenate([[0], np.cumsum([len(data) for data in encoded], dtype=np.int64)])
    return np.frombuffer(b"".join(encoded), np.uint8), offsets


def _psnr_summary(sample: np.ndarray, quality: int) -> dict[str, float]:
    """PSNR of `sample` decoded after encoding at `quality`: per face (mean, min) and pooled over the sample."""
    size = sample.shape[1]
    decoded = np.stack([decode_face(data, size)[0] for data in _encode_sample(sample, quality)])
    per_face = psnr(sample, decoded)
    return {
        "faces": len(sample), "mean_db": round(float(np.mean(per_face)), 3), "min_db": round(float(np.min(per_face)), 3),
        "pooled_db": round(float(psnr(sample[None], decoded[None])[0]), 3),
    }


def export_pack(
    store: FaceStore | str | os.PathLike,
    size: int,
    output: str | os.PathLike,
    *,
    partitions: Sequence[str] = ALL_PARTITIONS,
    quality: int | None = None,
    max_mb: float = DEFAULT_MAX_MB,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the faces of `partitions` at `size` as a pack at `output`; return its header plus ``bytes``.

    `quality` None picks the highest that fits `max_mb` (megabytes of 10^6 bytes; ``choose_quality``), and
    steps down while the pack still exceeds it; a given quality is used as it is (a warning if over).
    """
    if not isinstance(store, FaceStore):
        try:
            store = FaceStore(store)
        except (OSError, ValueError) as error:  # missing, incomplete, or not a store
            raise PackError(f"--store: {error}") from None
    if size not in store.image_sizes:
        raise PackError(f"--size {size}: {store.root} has sizes {store.image_sizes}")
    if quality is not None and not 1 <= quality <= MAX_QUALITY:
        raise PackError(f"--quality must be in [1, {MAX_QUALITY}] or auto, got {quality}")
    if not max_mb > 0:
        raise PackError(f"--max-mb must be positive, got {max_mb}")
    workers = _workers(workers)
    rows = _selected_rows(store, partitions)
    meta = {
        "file_name": store.file_names[rows], "attributes": store.attributes[rows], "partition": store.partition[rows],
        "box": store.boxes[rows], "confidence": store.confidence[rows], "keypoints": store.keypoints[rows],
    }
    max_bytes = int(max_mb * 1e6)
    sample = store.gather(size, rows[np.linspace(0, len(rows) - 1, min(PSNR_SAMPLE, len(rows))).astype(np.int64)])
    automatic = quality is None
    if automatic:
        quality = choose_quality(sample, len(rows), max_bytes, _metadata_bytes(meta))
    manifest = store.manifest
    header = {
        "format": PACK_FORMAT,
        "image_size": size,
        "subsampling": SUBSAMPLING,
        "num_faces": len(rows),
        "partitions": [_PARTITION_NAMES[code] for code in sorted({partition_code(p) for p in partitions})],
        "source": manifest["source"],
        "attribute_names": store.attribute_names,
        "source_settings": manifest.get("settings", {}),
        "source_num_faces": store.num_faces,
        "source_counts": manifest.get("counts", {}),
        "source_content_key": store.content_key(),
    }
    while True:
        jpeg, offsets = _encode_all(store, size, rows, quality, workers, progress)
        header.update(quality=quality, psnr=_psnr_summary(sample, quality))
        packed = io.BytesIO()
        np.savez_compressed(packed, header=np.array(json.dumps(header)), jpeg=jpeg, offsets=offsets, **meta)
        if not automatic or packed.tell() <= max_bytes or quality == MIN_AUTO_QUALITY:
            break
        quality -= 1  # the sample under-predicted: one step down, encoded again
    path = atomic_write(output, lambda f: f.write(packed.getbuffer()))
    if packed.tell() > max_bytes:
        print(f"warning: {path} is {packed.tell() / 1e6:.1f} MB, over --max-mb {max_mb:g}", file=sys.stderr)
    return {**header, "bytes": packed.tell()}


def export_summary(path: str | os.PathLike, info: dict[str, Any]) -> str:
    """One paragraph on a written pack: faces per partition, quality, size, PSNR."""
    faces = info["num_faces"]
    return (
        f"wrote {path}: {faces:,} faces ({', '.join(info['partitions'])}) at {info['image_size']} px, JPEG quality "
        f"{info['quality']} ({info['subsampling']}): {info['bytes'] / 1e6:.2f} MB ({info['bytes'] / 2**20:.2f} MiB, "
        f"{info['bytes'] / max(faces, 1):,.0f} bytes per face)\n"
        f"PSNR of decoded vs original faces ({info['psnr']['faces']} evenly spaced): mean {info['psnr']['mean_db']:.2f} "
        f"dB, min {info['psnr']['min_db']:.2f} dB, pooled {info['psnr']['pooled_db']:.2f} dB"
    )


# ----------------------------------------------------------------------------- reading and unpacking


@dataclass(frozen=True)
class FacePack:
    """A pack read into memory (`read_pack`): header, JPEG bytes and offsets, per-face metadata."""

    path: Path
    header: dict[str, Any]
    jpeg: np.ndarray
    offsets: np.ndarray
    meta: dict[str, np.ndarray]

    @property
    def image_size(self) -> int:
        return int(self.header["image_size"])

    @property
    def num_faces(self) -> int:
        return len(self.offsets) - 1

    @property
    def attribute_names(self) -> list[str]:
        return list(self.header["attribute_names"])

    def face_bytes(self, index: int) -> bytes:
        return self.jpeg[self.offsets[index]:self.offsets[index + 1]].tobytes()

    def decode(self, rows: range, extra_sizes: Sequence[int] = ()) -> list[np.ndarray]:
        """Faces `rows` decoded: uint8 ``[n, S, S, 3]`` at the pack's size, then at each of `extra_sizes`."""
        sizes = [self.image_size, *extra_sizes]
        out = [np.empty((len(rows), s, s, 3), np.uint8) for s in sizes]
        for k, row in enumerate(rows):
            try:
                faces = decode_face(self.face_bytes(row), self.image_size, extra_sizes)
            except Exception as error:  # Pillow raises many types on bad data
                raise PackError(f"{self.path}: face {row} ({self.meta['file_name'][row]}) does not decode: {error}") from None
            for target, face in zip(out, faces):
                target[k] = face
        return out


def read_pack(path: str | os.PathLike) -> FacePack:
    """Load and check the pack at `path` (PackError, naming the file, for anything that is not a valid pack)."""
    path = Path(path)
    if not path.is_file():
        raise PackError(f"{path}: no such pack file (write one with `python -m gan_arith.data.export --store ...`)")
    with open(path, "rb") as file:
        if file.read(4) != b"PK\x03\x04":
            raise PackError(f"{path}: not a face pack (not an .npz archive)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise PackError(f"{path}: not a face pack ({error})") from None
    with loaded:
        missing = sorted({"header", "jpeg", "offsets", *META_FIELDS} - set(loaded.files))
        if "header" in missing:
            raise PackError(f"{path}: not a face pack (no header)")
        try:
            header = json.loads(str(loaded["header"]))
            arrays = {name: loaded[name] for name in loaded.files if name != "header"}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
            raise PackError(f"{path}: corrupt face pack ({error})") from None
    if not isinstance(header, dict) or header.get("format") != PACK_FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise PackError(f"{path}: not a face pack (format {got!r}, expected {PACK_FORMAT!r})")
    if missing:
        raise PackError(f"{path}: corrupt face pack (no {', '.join(missing)})")
    jpeg, offsets = arrays.pop("jpeg"), arrays.pop("offsets")
    if jpeg.dtype != np.uint8 or jpeg.ndim != 1:
        raise PackError(f"{path}: corrupt face pack (jpeg must be 1-D uint8, got {jpeg.dtype} {jpeg.shape})")
    if (offsets.dtype.kind not in "iu" or offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0
            or offsets[-1] != jpeg.size or np.any(np.diff(offsets) <= 0)):
        raise PackError(f"{path}: corrupt face pack (offsets must rise from 0 to the {jpeg.size} JPEG bytes)")
    meta = {name: arrays[name] for name in META_FIELDS}
    try:
        count = _check_meta(meta, len(header.get("attribute_names", [])), str(path))
    except ValueError as error:
        raise PackError(f"corrupt face pack: {error}") from None
    if count != len(offsets) - 1 or count != header.get("num_faces"):
        raise PackError(
            f"{path}: corrupt face pack ({count} faces of metadata, {len(offsets) - 1} JPEGs, "
            f"header num_faces {header.get('num_faces')})"
        )
    return FacePack(path, header, jpeg, offsets.astype(np.int64), meta)


def unpacked_settings(pack: FacePack, sizes: Sequence[int], shard_size: int) -> dict[str, Any]:
    """The unpacked store's settings: the source store's, its layout, and what the pack changed (JPEG,
    partitions), so that its content key differs from the original store's."""
    header = pack.header
    return {
        **header.get("source_settings", {}),
        "sizes": sorted(int(s) for s in sizes),
        "shard_size": shard_size,
        "pack": {
            key: header[key]
            for key in ("format", "image_size", "quality", "subsampling", "num_faces", "partitions", "source_content_key")
        },
    }


def _check_sizes(pack: FacePack, sizes: Sequence[int] | None) -> list[int]:
    if not sizes:
        return [pack.image_size]
    sizes = sorted({int(s) for s in sizes})
    wrong = [s for s in sizes if not 8 <= s <= pack.image_size]
    if wrong:
        raise PackError(
            f"--sizes {','.join(map(str, sizes))}: {pack.path} holds {pack.image_size} px faces; unpacked sizes must "
            f"lie in [8, {pack.image_size}] (no upscaling)"
        )
    return sizes


def unpack(
    pack: FacePack | str | os.PathLike,
    output: str | os.PathLike,
    *,
    sizes: Sequence[int] | None = None,
    workers: int | None = None,
    shard_size: int = UNPACK_SHARD_SIZE,
    progress: bool = True,
) -> FaceStore:
    """Write the faces of `pack` into a regular store at `output` (sizes: the pack's, by default) and open it.

    Decoding runs on `workers` threads. A folder holding an interrupted unpack of the same pack and
    sizes is resumed, a finished one is returned as it is; any other store or file there is refused.
    """
    if not isinstance(pack, FacePack):
        pack = read_pack(pack)
    sizes = _check_sizes(pack, sizes)
    extra = [s for s in sizes if s != pack.image_size]
    try:
        writer = StoreWriter(
            output, image_sizes=sizes, attribute_names=pack.attribute_names, source=pack.header["source"],
            settings=unpacked_settings(pack, sizes, shard_size),
        )
    except (OSError, ValueError) as error:
        raise PackError(f"--output: {error}") from None
    shards = _chunks(pack.num_faces, shard_size)
    todo = [index for index in range(len(shards)) if index not in writer.completed_shards()]
    bar = Progress(sum(len(shards[i]) for i in todo), label="unpack", unit="faces", enabled=progress and bool(todo))

    def decode(part: range) -> list[np.ndarray]:
        return pack.decode(part, extra)

    with concurrent.futures.ThreadPoolExecutor(_workers(workers)) as pool:
        for index in todo:
            rows = shards[index]
            parts = [range(rows.start + p.start, rows.start + p.stop) for p in _chunks(len(rows))]
            decoded = list(pool.map(decode, parts))
            images = {size: np.concatenate([d[k] for d in decoded]) for k, size in enumerate([pack.image_size, *extra])}
            meta = {name: values[rows.start:rows.stop] for name, values in pack.meta.items()}
            writer.write_shard(index, images, meta, {"seen": len(rows), "kept": len(rows), "skipped": {}})
            bar.update(len(rows), len(rows))
    bar.close()
    writer.finalize()
    return FaceStore(output)


# ----------------------------------------------------------------------------- CLI


def _int_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 80,40, got {text!r}") from None


def _quality(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer, got {text!r}") from None


def _timed(action: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    return action(), time.monotonic() - start


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The command line; mistakes exit with one line (status 2 for arguments, 1 for stores and packs)."""
    parser = argparse.ArgumentParser(prog="python -m gan_arith.data.export", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--store", help="prepared store to export")
    mode.add_argument("--unpack", metavar="PACK", help="pack to turn back into a store")
    parser.add_argument("--output", required=True, help="pack file (export) or store directory (unpack)")
    parser.add_argument("--size", type=int, help="export: the face size to pack (one of the store's)")
    parser.add_argument(
        "--partitions", default=",".join(ALL_PARTITIONS),
        help="export: comma-separated partitions (default: all; train trains, valid/test judge)",
    )
    parser.add_argument("--quality", type=_quality, default=None, help="export: JPEG quality 1-95, or auto (default)")
    parser.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB, help="export: size budget for --quality auto")
    parser.add_argument("--sizes", type=_int_list, help="unpack: sizes to store (default: the pack's; smaller ones resized)")
    parser.add_argument("--workers", type=int, help="coding threads (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    try:
        if args.store is not None:
            if args.size is None:
                parser.error("--size is required with --store")
            partitions = [p.strip() for p in args.partitions.split(",") if p.strip()]
            info, seconds = _timed(lambda: export_pack(
                args.store, args.size, args.output, partitions=partitions, quality=args.quality, max_mb=args.max_mb,
                workers=args.workers, progress=not args.quiet,
            ))
            print(export_summary(args.output, info) + f"\n{seconds:.1f} s")
            return info
        store, seconds = _timed(lambda: unpack(
            args.unpack, args.output, sizes=args.sizes, workers=args.workers, progress=not args.quiet
        ))
    except PackError as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    counts = {_PARTITION_NAMES[c]: int(np.sum(store.partition == c)) for c in sorted(_PARTITION_NAMES)}
    print(f"unpacked {store.num_faces:,} faces ({', '.join(f'{k} {v:,}' for k, v in counts.items())}) into "
          f"{store.root}, sizes {store.image_sizes}, in {seconds:.1f} s")
    return {"store": str(store.root), "num_faces": store.num_faces, "partitions": counts, "seconds": round(seconds, 2)}


if __name__ == "__main__":
    main()
