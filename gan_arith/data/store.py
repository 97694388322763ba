"""The prepared-faces store: sharded uint8 face crops plus per-face metadata.

A store is a directory (numpy + json only, no TensorFlow, so training hosts
without TF can read it):

- ``manifest.json``: format, source, image sizes, attribute names, face and
  shard counts, preparation counts and settings, ``complete`` flag. Rewritten
  atomically after every shard and at the end.
- ``images-{size}-{index:05d}.npy``: uint8 ``[n, size, size, 3]`` in ``np.save``
  format, so ``np.load(mmap_mode="r")`` memory-maps it.
- ``meta-{index:05d}.npz``: per-face ``file_name``, ``attributes`` (int8
  ``[n, A]`` in {-1, +1}), ``partition`` (int8, 0 train / 1 valid / 2 test),
  ``box`` (int32 ``[n, 4]`` x, y, w, h; -1 when not applicable),
  ``confidence`` (float32), ``keypoints`` (int32 ``[n, 5, 2]``: left eye,
  right eye, nose, mouth left, mouth right) and ``counts`` (the shard's
  preparation counts as a JSON string). Written last: its presence marks the
  shard complete, so image files without a meta file are leftovers of an
  interrupted write and get overwritten.

Shards are units of work: shard ``i`` covers a fixed slice of the sorted
source list, so an interrupted job resumes by skipping completed shards and
ends with exactly the same store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gan_arith.errors import InputError
from gan_arith.files import atomic_write

FORMAT = "gan_arith-faces/1"
MANIFEST = "manifest.json"
SOURCES = ("celeba", "folder", "tfds", "synthetic")
# Preparation settings that change how a store is laid out or computed, not which faces it holds.
_LAYOUT_SETTINGS = ("sizes", "shard_size", "detect_batch")
PARTITIONS = {"train": 0, "valid": 1, "validation": 1, "test": 2}
KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
_TMP_PREFIX = ".tmp-"
_META_RE = re.compile(r"^meta-(\d{5,})\.npz$")

# Per-face metadata arrays: dtype and the shape after the leading face axis
# (None stands for the number of attributes).
META_FIELDS: dict[str, tuple[np.dtype, tuple[int | None, ...]]] = {
    "file_name": (np.dtype(np.str_), ()),
    "attributes": (np.dtype(np.int8), (None,)),
    "partition": (np.dtype(np.int8), ()),
    "box": (np.dtype(np.int32), (4,)),
    "confidence": (np.dtype(np.float32), ()),
    "keypoints": (np.dtype(np.int32), (5, 2)),
}


def image_file(size: int, index: int) -> str:
    """File name of shard ``index``'s images at ``size``."""
    return f"images-{size}-{index:05d}.npy"


def meta_file(index: int) -> str:
    """File name of shard ``index``'s metadata (the shard's completion mark)."""
    return f"meta-{index:05d}.npz"


def merge_counts(total: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Sum two nested count dicts (ints at the leaves), keys sorted."""
    merged: dict[str, Any] = {key: _copy_counts(value) for key, value in total.items()}
    for key, value in extra.items():
        if key not in merged:
            merged[key] = _copy_counts(value)
        elif isinstance(value, Mapping) and isinstance(merged[key], Mapping):
            merged[key] = merge_counts(merged[key], value)
        elif isinstance(value, int) and isinstance(merged[key], int):
            merged[key] += value
        else:
            raise ValueError(f"cannot merge counts for {key!r}: {merged[key]!r} and {value!r}")
    return dict(sorted(merged.items()))


def _copy_counts(value: Any) -> Any:
    return merge_counts({}, value) if isinstance(value, Mapping) else value


def _jsonable(value: Any) -> Any:
    """Normalise through JSON so tuples/lists and int keys compare like stored ones."""
    return json.loads(json.dumps(value))


def _atomic_write(path: Path, write) -> None:
    atomic_write(path, write, temp_prefix=_TMP_PREFIX)


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda f: f.write((json.dumps(obj, indent=1) + "\n").encode()))


def read_manifest(root: Path) -> dict[str, Any]:
    """The store manifest at `root`, checked to be one (ValueError naming the file otherwise)."""
    path = root / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: corrupt manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{path}: not a prepared-faces store (format {got!r}, expected {FORMAT!r})")
    return manifest


def _read_shard_counts(path: Path) -> tuple[int, dict[str, Any]]:
    with np.load(path) as meta:
        return int(meta["partition"].shape[0]), json.loads(str(meta["counts"]))


def store_differences(
    manifest: Mapping[str, Any], *, source: str, image_sizes: Sequence[int], attribute_names: Sequence[str],
    settings: Mapping[str, Any],
) -> list[str]:
    """How the store of `manifest` differs from one made with these arguments, one "name old (this command:
    new)" each: settings key by key, then source and attribute names, and the image sizes where the
    settings do not already show them."""
    old_settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
    new_settings = _jsonable(settings)
    differ = [
        f"{key} {old_settings.get(key)!r} (this command: {new_settings.get(key)!r})"
        for key in sorted(set(old_settings) | set(new_settings))
        if old_settings.get(key) != new_settings.get(key)
    ]
    expected = {"source": source, "attribute_names": [str(a) for a in attribute_names]}
    if "sizes" not in old_settings or old_settings.get("sizes") == new_settings.get("sizes"):
        expected["image_sizes"] = sorted(int(s) for s in image_sizes)
    differ += [f"{key} {manifest.get(key)!r} (this command: {value!r})"
               for key, value in expected.items() if manifest.get(key) != value]
    return differ


class StoreWriter:
    """Creates a store, or reopens an incomplete one with the same settings to resume it."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        image_sizes: Sequence[int],
        attribute_names: Sequence[str],
        source: str,
        settings: dict,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
        sizes = [int(s) for s in image_sizes]
        if not sizes or any(s <= 0 for s in sizes) or len(set(sizes)) != len(sizes):
            raise ValueError(f"image_sizes must be distinct positive ints, got {list(image_sizes)}")
        self.root = Path(root)
        self.image_sizes = sorted(sizes)
        self.attribute_names = [str(a) for a in attribute_names]
        self.source = source
        self.settings = _jsonable(settings)
        self.root.mkdir(parents=True, exist_ok=True)
        # Refused before anything is touched (the leftovers of an interrupted write included).
        if (self.root / MANIFEST).exists():
            differ = store_differences(
                read_manifest(self.root), source=source, image_sizes=self.image_sizes,
                attribute_names=self.attribute_names, settings=self.settings,
            )
            if differ:
                raise ValueError(
                    f"{self.root} holds a store prepared with other settings: {'; '.join(differ)}; "
                    "use another output directory or delete this one"
                )
        elif any(not path.name.startswith(_TMP_PREFIX) for path in self.root.iterdir()):
            raise ValueError(
                f"{self.root} is not empty and has no {MANIFEST}; refusing to write a store into it"
            )
        for leftover in self.root.glob(_TMP_PREFIX + "*"):
            leftover.unlink()
        # Meta files are the source of truth for completion: a kill between a
        # shard's meta write and the manifest update loses nothing.
        self._shards: dict[int, tuple[int, dict[str, Any]]] = {}
        for path in self.root.iterdir():
            match = _META_RE.match(path.name)
            if match:
                self._shards[int(match.group(1))] = _read_shard_counts(path)
        self._write_manifest(complete=False)

    def completed_shards(self) -> set[int]:
        """Indices of shards whose meta file (written last) exists."""
        return set(self._shards)

    def write_shard(
        self,
        index: int,
        images: Mapping[int, np.ndarray],
        meta: Mapping[str, np.ndarray],
        counts: Mapping[str, Any],
    ) -> None:
        """Atomically write shard ``index``: image files, then meta (the completion mark), then manifest."""
        if sorted(int(s) for s in images) != self.image_sizes:
            raise ValueError(f"shard {index}: image sizes {sorted(images)} != store sizes {self.image_sizes}")
        n = _check_meta(meta, len(self.attribute_names), f"shard {index}")
        for size, array in images.items():
            if array.dtype != np.uint8 or array.shape != (n, size, size, 3):
                raise ValueError(
                    f"shard {index}: images[{size}] must be uint8 {(n, size, size, 3)}, "
                    f"got {array.dtype} {array.shape}"
                )
        for size, array in images.items():
            _atomic_write(self.root / image_file(int(size), index), lambda f, a=array: np.save(f, a))
        arrays = {key: np.asarray(meta[key], dtype=META_FIELDS[key][0]) for key in META_FIELDS}
        counts = _jsonable(dict(counts))
        _atomic_write(
            self.root / meta_file(index),
            lambda f: np.savez(f, counts=np.array(json.dumps(counts)), **arrays),
        )
        self._shards[index] = (n, counts)
        self._write_manifest(complete=False)

    def finalize(self, extra_counts: dict | None = None) -> dict:
        """Mark the store complete (manifest with ``complete: true``) and return the manifest."""
        return self._write_manifest(complete=True, extra_counts=extra_counts or {})

    def _write_manifest(self, *, complete: bool, extra_counts: Mapping[str, Any] = {}) -> dict:
        counts: dict[str, Any] = {"seen": 0, "kept": 0, "skipped": {}}
        for _, shard_counts in self._shards.values():
            counts = merge_counts(counts, shard_counts)
        manifest = {
            "format": FORMAT,
            "source": self.source,
            "image_sizes": self.image_sizes,
            "attribute_names": self.attribute_names,
            "num_faces": sum(n for n, _ in self._shards.values()),
            "shards": [{"index": i, "num_faces": self._shards[i][0]} for i in sorted(self._shards)],
            "counts": merge_counts(counts, extra_counts),
            "settings": self.settings,
            "complete": complete,
        }
        _write_json(self.root / MANIFEST, manifest)
        return manifest


def _check_meta(meta: Mapping[str, np.ndarray], num_attributes: int, where: str) -> int:
    """Validate per-face metadata arrays against META_FIELDS; return the face count."""
    missing = sorted(set(META_FIELDS) - set(meta))
    if missing:
        raise ValueError(f"{where}: metadata lacks {missing}")
    n = len(meta["file_name"])
    for key, (dtype, tail) in META_FIELDS.items():
        array = np.asarray(meta[key])
        shape = (n,) + tuple(num_attributes if d is None else d for d in tail)
        if dtype.kind == "U":
            kind_ok = array.dtype.kind == "U" or array.size == 0
        else:
            kind_ok = np.can_cast(array.dtype, dtype, "same_kind")
        if array.shape != shape or not kind_ok:
            want = "str" if dtype.kind == "U" else dtype
            raise ValueError(f"{where}: {key} must be {want} {shape}, got {array.dtype} {array.shape}")
    return n


class FaceStore:
    """A complete prepared-faces store opened for reading (images memory-mapped)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not (self.root / MANIFEST).is_file():
            raise FileNotFoundError(
                f"no prepared-faces store at {self.root} ({MANIFEST} missing); "
                "create one with `python -m gan_arith.data.prepare`"
            )
        manifest = read_manifest(self.root)
        if not manifest.get("complete"):
            raise ValueError(
                f"{self.root}: store is incomplete (preparation was interrupted); "
                "rerun the same prepare command to resume it"
            )
        self.manifest: dict[str, Any] = manifest
        self.image_sizes: list[int] = [int(s) for s in manifest["image_sizes"]]
        self.attribute_names: list[str] = list(manifest["attribute_names"])
        indices = [int(s["index"]) for s in manifest["shards"]]
        metas = [self._load_meta(i, int(s["num_faces"])) for i, s in zip(indices, manifest["shards"])]
        self._shards = {
            size: [self._load_images(size, i, len(m["partition"])) for i, m in zip(indices, metas)]
            for size in self.image_sizes
        }
        sizes = [len(m["partition"]) for m in metas]
        self._offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self.num_faces = int(self._offsets[-1])
        if self.num_faces != manifest["num_faces"]:
            raise ValueError(
                f"{self.root / MANIFEST}: num_faces {manifest['num_faces']} != {self.num_faces} in the shards"
            )

        def cat(key: str) -> np.ndarray:
            dtype, tail = META_FIELDS[key]
            shape = (0,) + tuple(len(self.attribute_names) if d is None else d for d in tail)
            return np.concatenate([m[key] for m in metas]) if metas else np.zeros(shape, dtype)

        self.file_names: np.ndarray = cat("file_name")
        self.attributes: np.ndarray = cat("attributes")
        self.partition: np.ndarray = cat("partition")
        self.boxes: np.ndarray = cat("box")
        self.confidence: np.ndarray = cat("confidence")
        self.keypoints: np.ndarray = cat("keypoints")

    def content_key(self) -> str:
        """A digest of the faces the store holds (source, preparation settings, per-face metadata), the
        same wherever the store is copied or moved and whatever sizes it has: artifacts derived from
        the faces (the attribute classifier) are keyed by it rather than by the store's path."""
        settings = {k: v for k, v in self.manifest.get("settings", {}).items() if k not in _LAYOUT_SETTINGS}
        digest = hashlib.sha1(json.dumps([self.manifest["source"], settings, self.attribute_names], sort_keys=True).encode())
        for array in (self.file_names, self.attributes, self.partition, self.boxes, self.confidence):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    def _load_meta(self, index: int, num_faces: int) -> dict[str, np.ndarray]:
        path = self.root / meta_file(index)
        try:
            with np.load(path) as f:
                meta = {key: f[key] for key in META_FIELDS if key in f}
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: unreadable shard metadata ({e})") from None
        n = _check_meta(meta, len(self.attribute_names), str(path))
        if n != num_faces:
            raise ValueError(f"{path}: {n} faces but the manifest says {num_faces}")
        return meta

    def _load_images(self, size: int, index: int, num_faces: int) -> np.ndarray:
        path = self.root / image_file(size, index)
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: unreadable image shard ({e})") from None
        if array.dtype != np.uint8 or array.shape != (num_faces, size, size, 3):
            raise ValueError(
                f"{path}: expected uint8 {(num_faces, size, size, 3)}, got {array.dtype} {array.shape}"
            )
        return array

    def _check_size(self, size: int) -> int:
        if size not in self._shards:
            raise ValueError(f"{self.root}: no {size}x{size} images; the store has sizes {self.image_sizes}")
        return size

    def image_shards(self, size: int) -> list[np.ndarray]:
        """The memory-mapped per-shard image arrays at ``size`` (no copy)."""
        return list(self._shards[self._check_size(size)])

    def images(self, size: int) -> np.ndarray:
        """All images at ``size`` as one in-memory uint8 ``[N, size, size, 3]`` array."""
        shards = self.image_shards(size)
        return np.concatenate(shards) if shards else np.zeros((0, size, size, 3), np.uint8)

    def gather(self, size: int, indices: np.ndarray) -> np.ndarray:
        """Images ``indices`` (global face indices, any order) at ``size``, read from the memory maps."""
        shards = self.image_shards(size)
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_faces):
            raise IndexError(f"face indices must lie in [0, {self.num_faces}), got {indices.min()}..{indices.max()}")
        shard_of = np.searchsorted(self._offsets, indices, side="right") - 1
        out = np.empty(indices.shape + (size, size, 3), np.uint8)
        for shard in np.unique(shard_of):
            here = shard_of == shard
            out[here] = shards[shard][indices[here] - self._offsets[shard]]
        return out

    def select(self, query: str | None = None, partition: str | int | None = None) -> np.ndarray:
        """Indices of faces matching an attribute ``query`` (see ``attribute_mask``) and ``partition``."""
        mask = np.ones(self.num_faces, bool)
        if query is not None:
            mask &= attribute_mask(query, self.attribute_names, self.attributes)
        if partition is not None:
            mask &= self.partition == partition_code(partition)
        return np.flatnonzero(mask)


def partition_code(partition: str | int) -> int:
    """0/1/2 for ``train``/``valid`` (or ``validation``)/``test`` or the code itself."""
    if isinstance(partition, str) and partition in PARTITIONS:
        return PARTITIONS[partition]
    if isinstance(partition, (int, np.integer)) and not isinstance(partition, bool) and 0 <= partition <= 2:
        return int(partition)
    raise ValueError(f"unknown partition {partition!r}; expected one of {sorted(PARTITIONS)} or 0, 1, 2")


_TOKEN_RE = re.compile(r"\s*(?:(?P<name>[A-Za-z0-9_]+)|(?P<op>[~&|()]))")


def check_query(query: str, attribute_names: Sequence[str], name: str = "query") -> None:
    """Raise, as an InputError prefixed with the option's `name`, what `attribute_mask` would (syntax,
    unknown attribute) without any faces to select."""
    try:
        attribute_mask(query, attribute_names, np.zeros((0, len(attribute_names)), np.int8))
    except ValueError as error:  # with no faces, only the query itself can be wrong
        raise InputError(f"{name}: {error}") from None


def attribute_mask(query: str, attribute_names: Sequence[str], attributes: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``attributes`` (int8 ±1) that satisfy ``query``.

    Grammar: names of attributes combined with ``~`` (not), ``&`` (and), ``|``
    (or) and parentheses; ``~`` binds tighter than ``&``, which binds tighter
    than ``|``. Example: ``(Smiling | Eyeglasses) & ~Male``.
    """
    names = list(attribute_names)
    attributes = np.asarray(attributes)
    if attributes.ndim != 2 or attributes.shape[1] != len(names):
        raise ValueError(f"attributes must be [N, {len(names)}], got shape {attributes.shape}")
    tokens: list[tuple[int, str]] = []
    pos = 0
    while pos < len(query):
        match = _TOKEN_RE.match(query, pos)
        if not match:
            if query[pos:].strip():
                raise ValueError(f"attribute query {query!r}: unexpected character {query[pos:].strip()[0]!r} at {pos}")
            break
        tokens.append((match.start(match.lastgroup), match.group(match.lastgroup)))
        pos = match.end()
    tokens.append((len(query), ""))
    cursor = 0

    def fail(message: str) -> ValueError:
        at, token = tokens[cursor]
        found = repr(token) if token else "end of query"
        return ValueError(f"attribute query {query!r}: {message}, found {found} at {at}")

    def take(token: str) -> bool:
        nonlocal cursor
        if tokens[cursor][1] == token:
            cursor += 1
            return True
        return False

    def parse_or() -> np.ndarray:
        mask = parse_and()
        while take("|"):
            mask = mask | parse_and()
        return mask

    def parse_and() -> np.ndarray:
        mask = parse_not()
        while take("&"):
            mask = mask & parse_not()
        return mask

    def parse_not() -> np.ndarray:
        return ~parse_not() if take("~") else parse_atom()

    def parse_atom() -> np.ndarray:
        nonlocal cursor
        if take("("):
            mask = parse_or()
            if not take(")"):
                raise fail("expected ')'")
            return mask
        token = tokens[cursor][1]
        if not token or token in "~&|()":
            raise fail("expected an attribute name, '~' or '('")
        if token not in names:
            raise ValueError(f"attribute query {query!r}: unknown attribute {token!r}; known: {', '.join(names)}")
        cursor += 1
        return attributes[:, names.index(token)] > 0

    mask = parse_or()
    if tokens[cursor][1]:
        raise fail("expected '&', '|' or end of query")
    return mask
