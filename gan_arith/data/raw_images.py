"""Raw image sources for face preparation: an official CelebA folder, any image folder, tfds ``celeb_a``.

A source is a deterministic, indexable list of images; ``records(start, stop)`` decodes a slice of it.
Decoding (PIL, EXIF rotation applied) never raises: unreadable input comes back as a `Record` without
an image and with the reason, counted by the runner:

- ``unreadable`` (I/O error), ``not_image``, ``truncated``, ``corrupt``, ``too_large`` (PIL
  decompression-bomb limit) are skipped;
- other modes are converted to RGB and kept, noted as ``converted_<mode>`` (grayscale ``L``, ``CMYK``,
  ``P``; ``RGBA``/``LA``/``PA`` are composited on white; 16-bit ``I;16``/``I`` scaled by 255/65535);
  rotated images are noted as ``exif_rotated``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gan_arith.data import celeba

TFDS_SPLITS = (("train", 0), ("validation", 1), ("test", 2))
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
# Signatures of JPEG, PNG, GIF, BMP, WebP (RIFF) and TIFF: such a file that PIL cannot identify is corrupt.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


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
