"""Reading the official CelebA layout (attributes, partitions, aligned images).

Accepted layouts, relative to the CelebA root:

- flat: ``img_align_celeba/``, ``list_attr_celeba.txt``, ``list_eval_partition.txt``
- as on the official Google Drive: ``Img/img_align_celeba/``,
  ``Anno/list_attr_celeba.txt``, ``Eval/list_eval_partition.txt``

``list_attr_celeba.txt`` has a row count on line 1, the 40 attribute names on
line 2, then ``<file> <±1 x 40>`` per line. ``list_eval_partition.txt`` has
``<file> <0|1|2>`` per line. Rows whose image is absent (partial downloads are
common) are dropped and counted as ``absent``; images without an attribute row
are ignored and counted as ``unlisted``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_DIR = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
_SUBDIRS = {IMAGE_DIR: "Img", ATTRIBUTE_FILE: "Anno", PARTITION_FILE: "Eval"}


@dataclass(frozen=True)
class CelebAIndex:
    """The present images of a CelebA folder with their attributes and partitions (sorted by file name)."""

    root: Path
    image_dir: Path
    attribute_names: tuple[str, ...]
    file_names: tuple[str, ...]
    attributes: np.ndarray  # int8 [N, A] in {-1, +1}
    partition: np.ndarray  # int8 [N]: 0 train, 1 valid, 2 test
    num_rows: int  # rows in the attribute file
    absent: int  # rows whose image file is missing
    unlisted: int  # image files without an attribute row


def find_file(root: Path, name: str) -> Path:
    """``root/name`` or its official-Drive location (``root/Img|Anno|Eval/name``)."""
    for path in (root / name, root / _SUBDIRS[name] / name):
        if path.exists():
            return path
    raise FileNotFoundError(
        f"{root}: CelebA {name} not found (looked for {root / name} and {root / _SUBDIRS[name] / name})"
    )


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file ({e})") from None


def read_attributes(path: str | os.PathLike) -> tuple[tuple[str, ...], list[str], np.ndarray]:
    """Parse ``list_attr_celeba.txt`` into (attribute names, file names, int8 [R, A] values in {-1, +1})."""
    path = Path(path)
    lines = _lines(path)
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a row count on line 1 and attribute names on line 2")
    try:
        declared = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{path} line 1: expected the row count, got {lines[0][:60]!r}") from None
    names = tuple(lines[1].split())
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{path} line 2: expected distinct attribute names, got {lines[1][:80]!r}")
    # Only the file name is split off in Python: the 8M values are parsed in C,
    # and a line-by-line diagnosis runs only when that parse finds a problem.
    body = [(number, line.split(None, 1)) for number, line in enumerate(lines[2:], start=3) if line.strip()]
    file_names = [fields[0] for _, fields in body]
    seen: set[str] = set()
    for number, fields in body:
        if fields[0] in seen:
            raise ValueError(f"{path} line {number}: duplicate file name {fields[0]!r}")
        seen.add(fields[0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            flat = np.fromstring(" ".join(f[1] if len(f) > 1 else "" for _, f in body), dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):
        flat = np.zeros(0, np.int64)
    if flat.size != len(body) * len(names) or not np.all(np.abs(flat) == 1):
        _diagnose_attribute_rows(path, body, len(names))
    array = flat.astype(np.int8).reshape(len(body), len(names))
    if len(file_names) != declared:
        raise ValueError(f"{path}: line 1 declares {declared} rows but the file has {len(file_names)}")
    return names, file_names, array


def _diagnose_attribute_rows(path: Path, body: list[tuple[int, list[str]]], num_names: int) -> None:
    """Raise a ValueError naming the first malformed attribute row."""
    for number, fields in body:
        values = fields[1].split() if len(fields) > 1 else []
        if len(values) != num_names:
            raise ValueError(
                f"{path} line {number}: expected {num_names + 1} fields "
                f"(file name + {num_names} attributes), got {len(values) + 1}"
            )
        bad = [v for v in values if v not in ("1", "-1")]
        if bad:
            raise ValueError(f"{path} line {number}: attribute values must be 1 or -1, got {bad[0]!r}")
    raise AssertionError(f"{path}: malformed attribute rows not located")


def read_partition(path: str | os.PathLike) -> dict[str, int]:
    """Parse ``list_eval_partition.txt`` into {file name: 0 train | 1 valid | 2 test}."""
    path = Path(path)
    partition: dict[str, int] = {}
    for number, line in enumerate(_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(f"{path} line {number}: expected '<file> <0|1|2>', got {line[:60]!r}")
        if fields[0] in partition:
            raise ValueError(f"{path} line {number}: duplicate file name {fields[0]!r}")
        partition[fields[0]] = int(fields[1])
    return partition


def read_celeba(root: str | os.PathLike) -> CelebAIndex:
    """Index a CelebA folder: the attribute rows whose image is present, sorted by file name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CelebA root {root} is not a directory")
    image_dir = find_file(root, IMAGE_DIR)
    attr_path = find_file(root, ATTRIBUTE_FILE)
    part_path = find_file(root, PARTITION_FILE)
    names, rows, values = read_attributes(attr_path)
    partition = read_partition(part_path)
    missing = [name for name in rows if name not in partition]
    if missing:
        raise ValueError(
            f"{part_path}: no partition for {len(missing)} files of {attr_path.name}, e.g. {missing[0]!r}"
        )
    with os.scandir(image_dir) as entries:
        present = {e.name for e in entries if e.is_file()}
    order = sorted((i for i, name in enumerate(rows) if name in present), key=rows.__getitem__)
    file_names = tuple(rows[i] for i in order)
    return CelebAIndex(
        root=root,
        image_dir=image_dir,
        attribute_names=names,
        file_names=file_names,
        attributes=values[order] if order else np.zeros((0, len(names)), np.int8),
        partition=np.array([partition[name] for name in file_names], dtype=np.int8),
        num_rows=len(rows),
        absent=len(rows) - len(order),
        unlisted=len(present - set(rows)),
    )
