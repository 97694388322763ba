"""Procedural synthetic faces with ground-truth attributes: the built-in dataset.

Each face is a stack of anti-aliased signed-distance shapes (background gradient, shoulders,
hair, neck, head, eyes, brows, nose, mouth, glasses) evaluated on a pixel grid with vectorised
numpy. All geometry lives in relative coordinates, so a face looks the same at 32 or 128 pixels.

Attributes (CelebA spelling, each an independent fair coin):
- ``Smiling``: a wide open crescent mouth showing teeth, versus a flat closed line.
- ``Male``: short hair cut above the ears, heavier brows, a beard or stubble for about
  two thirds of them, versus long hair falling past the jaw onto the shoulders.
- ``Eyeglasses``: dark frames with slightly tinted lenses.
- ``Blond_Hair``: golden hair, versus black/brown/auburn/grey.
Nuisance factors: skin tone, hair and clothing colour, background colours and gradient
direction, head position, scale and width, eye openness, mouth and eye placement.

Face ``i`` depends only on ``(seed, i)``: its random parameters come from a counter-based
hash (SplitMix64) of the seed, the face index and the parameter index, so any slice renders
identically and a store written in chunks, or resumed, is byte-identical.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gan_arith.data.store import MANIFEST, FaceStore, StoreWriter

SYNTHETIC_ATTRIBUTES: tuple[str, ...] = ("Blond_Hair", "Eyeglasses", "Male", "Smiling")

# Bump when the look of the faces changes, so stores written by an older renderer are
# rewritten by ensure_synthetic_store instead of silently reused.
RENDERER_VERSION = 1

# One uniform per name and face; the order is part of the format (changing it changes faces).
_PARAMS = (
    "blond", "eyeglasses", "male", "smiling",  # the attributes, in SYNTHETIC_ATTRIBUTES order
    "beard", "beard_density", "skin", "skin_hue", "hair_colour", "hair_shade",
    "bg0_r", "bg0_g", "bg0_b", "bg1_r", "bg1_g", "bg1_b", "bg_angle",
    "cloth_r", "cloth_g", "cloth_b", "frame_colour",
    "cx", "cy", "scale", "head_width", "eye_open", "eye_height", "eye_apart",
    "mouth_height", "smile_amount", "hair_length", "fringe",
)
_P = {name: k for k, name in enumerate(_PARAMS)}

_HAIR_COLOURS = np.array(  # non-blond palette: black, dark brown, brown, auburn, grey
    [[30, 26, 24], [62, 42, 30], [104, 70, 44], [126, 52, 32], [150, 148, 146]], np.float32
)
_BLOND = np.array([[222, 190, 112], [190, 150, 80]], np.float32)  # light and dark golden
_SKIN_LIGHT = np.array([250, 214, 186], np.float32)
_SKIN_DARK = np.array([112, 74, 52], np.float32)
_LIPS = np.array([150, 44, 52], np.float32)
_MOUTH_INSIDE = np.array([70, 16, 22], np.float32)
_TEETH = np.array([245, 242, 232], np.float32)
_EYE = np.array([28, 22, 24], np.float32)

# Pixels rendered together: small enough for the float32 temporaries to stay in cache, large
# enough to amortise numpy's per-call overhead (~25 faces at 80x80).
_CHUNK_PIXELS = 160_000

_PROGRESS_MIN_FACES = 10_000  # store writes at least this large print a line per shard

def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic is intended)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniforms(seed: int, indices: np.ndarray, num: int) -> np.ndarray:
    """float64 [len(indices), num] uniforms in [0, 1), a pure function of (seed, index, column)."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.array([seed], np.uint64))
        face = _splitmix64(key ^ indices.astype(np.uint64))
        bits = _splitmix64(face[:, None] * np.uint64(num) + np.arange(num, dtype=np.uint64)[None])
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def render_faces(seed: int, start: int, count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render faces ``start .. start+count-1`` of the synthetic dataset ``seed``.

    Returns uint8 images [count, size, size, 3] (RGB) and int8 attributes [count, A] in
    {-1, +1}, columns named by ``SYNTHETIC_ATTRIBUTES``. Face i depends only on (seed, i).
    """
    seed = _check_int("seed", seed, 0)
    if seed >= 2**63:
        raise ValueError(f"seed must be < 2**63, got {seed}")
    start = _check_int("start", start, 0)
    count = _check_int("count", count, 0)
    size = _check_int("size", size, 8)
    u = _uniforms(seed, np.arange(start, start + count, dtype=np.int64), len(_PARAMS))
    attributes = np.where(u[:, : len(SYNTHETIC_ATTRIBUTES)] < 0.5, 1, -1).astype(np.int8)
    images = np.empty((count, size, size, 3), np.uint8)
    chunk = max(1, _CHUNK_PIXELS // size**2)
    # Buffers reused across chunks: fresh large allocations cost page faults, not just time.
    planes = np.empty((3, min(chunk, count), size, size), np.float32)
    scratch = np.empty(planes[0].size, np.float32)
    for lo in range(0, count, chunk):
        n = min(chunk, count - lo)
        frame = _Frame(size, planes[:, :n], scratch)
        _render_chunk(frame, u[lo : lo + n], images[lo : lo + n])
    return images, attributes


def _store_settings(seed: int, num_faces: int, shard_size: int) -> dict:
    return {"seed": seed, "num_faces": num_faces, "shard_size": shard_size, "renderer_version": RENDERER_VERSION}


def write_synthetic_store(
    root: str | os.PathLike,
    *,
    num_faces: int,
    image_sizes: Sequence[int],
    seed: int = 0,
    shard_size: int = 4096,
) -> FaceStore:
    """Write faces 0..num_faces-1 of dataset ``seed`` as a prepared-faces store at ``root``.

    Shard i holds faces [i * shard_size, (i + 1) * shard_size); completed shards of an
    interrupted run with the same settings are kept, so resuming gives the same store.
    Partition by index: i % 10 < 8 train, 8 valid, 9 test. Raises ValueError if ``root``
    holds a different store (see ``ensure_synthetic_store`` to replace it).
    """
    num_faces = _check_int("num_faces", num_faces, 1)
    shard_size = _check_int("shard_size", shard_size, 1)
    seed = _check_int("seed", seed, 0)
    sizes = [_check_int("image_sizes[]", size, 8) for size in image_sizes]
    writer = StoreWriter(
        root,
        image_sizes=sizes,
        attribute_names=SYNTHETIC_ATTRIBUTES,
        source="synthetic",
        settings=_store_settings(seed, num_faces, shard_size),
    )
    todo = sorted(set(range(-(-num_faces // shard_size))) - writer.completed_shards())
    total = sum(min(shard_size, num_faces - i * shard_size) for i in todo)
    done, started = 0, time.perf_counter()
    for index in todo:
        start = index * shard_size
        count = min(shard_size, num_faces - start)
        images = {}
        for size in writer.image_sizes:
            images[size], attributes = render_faces(seed, start, count, size)
        ids = np.arange(start, start + count)
        meta = {
            "file_name": np.array([f"synthetic_{i:08d}" for i in ids]),
            "attributes": attributes,
            "partition": np.select([ids % 10 < 8, ids % 10 == 8], [0, 1], 2).astype(np.int8),
            "box": np.full((count, 4), -1, np.int32),
            "confidence": np.ones(count, np.float32),
            "keypoints": np.full((count, 5, 2), -1, np.int32),
        }
        writer.write_shard(index, images, meta, {"seen": count, "kept": count, "skipped": {}})
        done += count
        if total >= _PROGRESS_MIN_FACES:
            elapsed = time.perf_counter() - started
            print(
                f"synthetic faces -> {root}: {done}/{total} ({100 * done / total:.0f}%), "
                f"{done / elapsed:.0f} faces/s, ETA {(total - done) * elapsed / done:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    writer.finalize()
    return FaceStore(root)


def ensure_synthetic_store(
    root: str | os.PathLike,
    *,
    num_faces: int,
    image_sizes: Sequence[int],
    seed: int = 0,
    shard_size: int = 4096,
) -> FaceStore:
    """The synthetic store at ``root`` with these settings: reused if complete, else (re)written.

    A complete store with the same seed, face count, shard size and renderer version holding
    (at least) ``image_sizes`` is reused; an interrupted one is resumed; a synthetic store
    with other settings is deleted and rewritten. A store of real faces is never touched
    (ValueError).
    """
    root = Path(root)
    settings = _store_settings(seed, num_faces, shard_size)
    manifest_path = root / MANIFEST
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{manifest_path} is unreadable ({e}); refusing to overwrite {root}") from None
        if manifest.get("source") != "synthetic":
            raise ValueError(
                f"{root} holds a store that is not synthetic (source {manifest.get('source')!r}); "
                "refusing to replace it with synthetic faces: pass another directory"
            )
        stored_sizes = [int(s) for s in manifest.get("image_sizes", [])]
        if manifest.get("settings") == settings and set(image_sizes) <= set(stored_sizes):
            if manifest.get("complete"):
                return FaceStore(root)
            image_sizes = stored_sizes  # resume the interrupted run as it was started
        else:
            _remove_synthetic_store(root)
    return write_synthetic_store(root, num_faces=num_faces, image_sizes=image_sizes, seed=seed, shard_size=shard_size)


def _remove_synthetic_store(root: Path) -> None:
    """Delete a store's own files: shard metas (completion marks) first, the manifest last."""
    for path in root.glob("meta-*.npz"):
        path.unlink()
    for path in root.glob("images-*-*.npy"):
        path.unlink()
    (root / MANIFEST).unlink()


class _Frame:
    """Float32 RGB planes [n, S, S] of a chunk of faces, painted layer by layer.

    Each layer is evaluated only inside a window: the pixel rectangle that can hold the layer's
    face-coordinate bounding box for any face of the chunk (plus an anti-aliasing margin), which
    makes the small features (eyes, mouth, glasses) nearly free.
    """

    def __init__(self, size: int, planes: np.ndarray, scratch: np.ndarray):
        self.size = size
        self.grid = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
        self.planes = planes  # [3, n, S, S], uninitialised until background()
        self._scratch = scratch

    def place(self, cx: np.ndarray, cy: np.ndarray, scale: np.ndarray) -> None:
        """Set the face frames: head centre (image coordinates) and image units per face unit."""
        self.cx, self.cy, self.scale = cx, cy, scale
        self.inv_px = scale * (self.size / 2.0)  # face units -> pixels

    def background(self, angle: np.ndarray, rgb0: np.ndarray, rgb1: np.ndarray) -> None:
        """Fill with a linear gradient from rgb0 to rgb1 [n, 3] along direction angle [n]."""
        t = _col(np.cos(angle)) * self.grid[None, None, :] + _col(np.sin(angle)) * self.grid[None, :, None]
        t *= 0.35
        t += 0.5
        for c, plane in enumerate(self.planes):
            np.multiply(t, _col(rgb1[:, c] - rgb0[:, c]), out=plane)
            plane += _col(rgb0[:, c])

    def _span(self, centre: np.ndarray, lo, hi) -> slice:
        to_px = lambda f: (centre + self.scale * f + 1.0) * (self.size / 2.0) - 0.5  # noqa: E731
        first = int(np.floor(np.min(to_px(np.asarray(lo, np.float32))))) - 1
        last = int(np.ceil(np.max(to_px(np.asarray(hi, np.float32))))) + 2
        return slice(min(max(first, 0), self.size), min(max(last, 0), self.size))

    def window(self, u0, u1, v0, v1) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
        """Face coordinates of the window holding the box [u0, u1] x [v0, v1] (face units).

        Returns the row of u [n, 1, w] and the column of v [n, h, 1] (v points down; the head is
        (u / head_width)^2 + v^2 <= 1) and the window, to pass to paint().
        """
        rows, cols = self._span(self.cy, v0, v1), self._span(self.cx, u0, u1)
        fu = (self.grid[None, None, cols] - self.cx) / self.scale
        fv = (self.grid[None, rows, None] - self.cy) / self.scale
        return fu, fv, (rows, cols)

    def coverage(self, d: np.ndarray) -> np.ndarray:
        """Anti-aliased coverage in [0, 1] of a signed distance d (face units, < 0 inside), in place."""
        d *= -self.inv_px
        d += 0.5
        np.clip(d, 0.0, 1.0, out=d)
        return d

    def paint(self, window: tuple[slice, slice], alpha: np.ndarray, colour: np.ndarray) -> None:
        """Composite per-face colours [n, 3] with coverage alpha [n, h, w] over the window."""
        tmp = self._scratch[: alpha.size].reshape(alpha.shape)
        for c, plane in enumerate(self.planes):
            view = plane[:, window[0], window[1]]
            np.subtract(colour[:, c, None, None], view, out=tmp)
            tmp *= alpha
            view += tmp

    def to_uint8(self, out: np.ndarray) -> None:
        """Round the planes (in [0, 255]: every colour is clipped) into out [n, S, S, 3] uint8."""
        for c, plane in enumerate(self.planes):
            plane += 0.5
            out[..., c] = plane  # the cast truncates: round half up


def _ellipse(u: np.ndarray, v: np.ndarray, cu, cv, ru, rv) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (u: [n,1,w] row, v: [n,h,1] column).

    The squared terms are computed on the 1-D row/column vectors; only their sum is full size.
    """
    q = np.square((u - cu) / ru) + np.square((v - cv) / rv)
    np.sqrt(q, out=q)
    q -= 1.0
    q *= np.minimum(ru, rv)
    return q


def _box(u: np.ndarray, v: np.ndarray, cu, cv, hu, hv) -> np.ndarray:
    """Signed (Chebyshev) distance to the axis-aligned box centred (cu, cv), half-sizes (hu, hv)."""
    return np.maximum(np.abs(u - cu) - hu, np.abs(v - cv) - hv)


def _col(p: np.ndarray) -> np.ndarray:
    """Per-face parameter [n] as float32 [n, 1, 1] for broadcasting over the pixel grid."""
    return np.asarray(p, np.float32)[:, None, None]


def _rgb(*channels: np.ndarray) -> np.ndarray:
    return np.clip(np.stack(channels, axis=1), 0, 255).astype(np.float32)


def _render_chunk(frame: _Frame, u: np.ndarray, out: np.ndarray) -> None:
    """Render the faces whose parameters are the rows of u into out [n, S, S, 3] via frame."""
    n = u.shape[0]
    p = {name: u[:, k] for name, k in _P.items()}
    smiling, male, glasses, blond = (p[name] < 0.5 for name in ("smiling", "male", "eyeglasses", "blond"))
    lerp = lambda lo, hi, t: lo + (hi - lo) * t  # noqa: E731
    m = _col(male)

    # Colours [n, 3].
    skin = lerp(_SKIN_LIGHT, _SKIN_DARK, p["skin"][:, None] ** 1.3)
    hue = lerp(np.float32([0.98, 1.0, 1.03]), np.float32([1.03, 1.0, 0.95]), p["skin_hue"][:, None])  # cool..warm
    skin = np.clip(skin * hue, 0, 255)
    shadow = skin * 0.8
    which = np.minimum((p["hair_colour"] * len(_HAIR_COLOURS)).astype(int), len(_HAIR_COLOURS) - 1)
    hair = np.where(
        blond[:, None],
        lerp(_BLOND[0], _BLOND[1], p["hair_shade"][:, None]),
        np.clip(_HAIR_COLOURS[which] * lerp(0.85, 1.15, p["hair_shade"][:, None]), 0, 255),
    )
    bg0 = _rgb(*(40 + 200 * p[k] for k in ("bg0_r", "bg0_g", "bg0_b")))
    bg1 = _rgb(*(40 + 200 * p[k] for k in ("bg1_r", "bg1_g", "bg1_b")))
    cloth = _rgb(*(30 + 200 * p[k] for k in ("cloth_r", "cloth_g", "cloth_b")))
    frame_rgb = lerp(np.float32([20, 20, 24]), np.float32([110, 40, 30]), p["frame_colour"][:, None])
    mouth_rgb = np.where(smiling[:, None], _MOUTH_INSIDE, _LIPS)
    eye_rgb = np.broadcast_to(_EYE, (n, 3))
    teeth_rgb = np.broadcast_to(_TEETH, (n, 3))

    # Geometry [n, 1, 1], in face units (head half-height = 1) unless said otherwise.
    scale = _col(lerp(0.50, 0.60, p["scale"]))  # image half-widths per face unit
    cx = _col(lerp(-0.08, 0.08, p["cx"]))  # head centre in image coordinates [-1, 1]
    cy = _col(lerp(-0.16, -0.02, p["cy"]))
    hw = _col(lerp(0.70, 0.84, p["head_width"]))
    eye_u = hw * _col(lerp(0.36, 0.44, p["eye_apart"]))
    eye_v = _col(lerp(-0.12, -0.02, p["eye_height"]))
    eye_h = _col(lerp(0.035, 0.085, p["eye_open"]))

    frame.place(cx, cy, scale)
    frame.background(2 * np.pi * p["bg_angle"], bg0, bg1)

    # Shoulders in clothing colour at the bottom of the frame.
    fu, fv, win = frame.window(-1.9 * hw, 1.9 * hw, 1.4, 3.1)
    frame.paint(win, frame.coverage(_ellipse(fu, fv, 0.0, 2.25, 1.9 * hw, 0.85)), cloth)

    # Back hair, behind the head: long (past the jaw onto the shoulders) or a short cap.
    length = _col(np.where(male, 0.05, lerp(1.45, 1.9, p["hair_length"])))
    back_cv, back_ru, back_rv = lerp(0.35, -0.06, m), hw * lerp(1.32, 1.07, m), lerp(1.45, 1.08, m)
    fu, fv, win = frame.window(-back_ru, back_ru, back_cv - back_rv, length)
    back = _ellipse(fu, fv, 0.0, back_cv, back_ru, back_rv)
    np.maximum(back, fv - length, out=back)
    frame.paint(win, frame.coverage(back), hair)

    # Neck, in shadow, down to the bottom of the frame.
    fu, fv, win = frame.window(-0.42 * hw, 0.42 * hw, 0.3, 10.0)
    frame.paint(win, frame.coverage(np.maximum(np.abs(fu) - 0.42 * hw, 0.3 - fv)), shadow)

    # Head with ears (the window also holds the hair cap, whose top is at v = -1.09).
    fu, fv, win = frame.window(-hw - 0.12, hw + 0.12, -1.1, 1.0)
    head = _ellipse(fu, fv, 0.0, 0.0, hw, 1.0)
    ears = _ellipse(np.abs(fu), fv, hw - 0.02 - 0.2 * (1.0 - m), 0.05, 0.13, 0.2)  # women's: hidden
    frame.paint(win, frame.coverage(np.minimum(head, ears)), skin)

    # Hair in front (same window): a cap down to a hairline that is lower at the temples (over
    # the ears for women), brows (heavier for men) and, for most men, a beard or stubble.
    fringe = _col(lerp(-0.55, -0.35, p["fringe"]))
    cap = _ellipse(fu, fv, 0.0, -0.03, hw * 1.07, 1.06)
    np.maximum(cap, fv - (fringe + lerp(0.7, 0.3, m) * np.square(fu / hw)), out=cap)
    front = frame.coverage(cap)
    brows = _box(np.abs(fu), fv, eye_u, eye_v - 0.19, 0.16, lerp(0.032, 0.05, m))
    np.maximum(front, frame.coverage(brows), out=front)
    beard_density = _col(np.where(male & (p["beard"] < 2 / 3), lerp(0.55, 0.95, p["beard_density"]), 0.0))
    head += 0.01
    beard = frame.coverage(np.maximum(head, 0.25 + 0.25 * np.square(fu / hw) - fv))
    beard *= beard_density
    np.maximum(front, beard, out=front)
    frame.paint(win, front, hair)

    # Nose: a small shadow.
    fu, fv, win = frame.window(-0.09, 0.09, 0.24, 0.3)
    frame.paint(win, frame.coverage(_box(fu, fv, 0.0, 0.27, 0.09, 0.03)), shadow)

    # Eyes: dark almonds whose height is the eye openness.
    fu, fv, win = frame.window(-eye_u - 0.13, eye_u + 0.13, eye_v - eye_h, eye_v + eye_h)
    frame.paint(win, frame.coverage(_ellipse(np.abs(fu), fv, eye_u, eye_v, 0.13, eye_h)), eye_rgb)

    # Mouth: the band between an upper and a lower curve over |u| < half-width. A smile bends
    # both curves down in the middle (corners up) and opens the band into a crescent with teeth;
    # a neutral mouth is a flat thin line.
    s = _col(np.where(smiling, lerp(0.8, 1.0, p["smile_amount"]), lerp(-0.08, 0.08, p["smile_amount"])))
    half_w = hw * (0.36 + 0.12 * s)
    mouth_v = _col(lerp(0.52, 0.6, p["mouth_height"])) - 0.08 * s
    fu, fv, win = frame.window(-half_w, half_w, mouth_v - 0.04 - 0.06 * np.abs(s), mouth_v + 0.04 + 0.26 * np.abs(s))
    bend = 1.0 - np.square(fu / half_w)  # [n, 1, w]
    upper = mouth_v + s * 0.06 * bend - 0.03
    lower = mouth_v + s * 0.26 * bend + 0.03
    corner = -0.5 * half_w * bend  # ~ distance to the corners, closes the band there
    mouth = np.maximum(np.maximum(upper - fv, fv - lower), corner)
    frame.paint(win, frame.coverage(mouth), mouth_rgb)
    teeth = np.maximum(np.maximum(upper + 0.012 - fv, fv - (upper + 0.4 * (lower - upper))), corner + 0.03)
    teeth = frame.coverage(teeth)
    teeth *= _col(smiling)
    frame.paint(win, teeth, teeth_rgb)

    # Glasses: round frames around both eyes joined by a bridge, lenses lightly tinted.
    fu, fv, win = frame.window(-eye_u - 0.26, eye_u + 0.26, eye_v - 0.21, eye_v + 0.21)
    lens = _ellipse(np.abs(fu), fv, eye_u, eye_v, 0.22, 0.17)
    rim = np.abs(lens) - 0.035
    bridge = _box(fu, fv, 0.0, eye_v - 0.03, eye_u - 0.2, 0.03)
    glass = frame.coverage(np.minimum(rim, bridge))
    lens = frame.coverage(lens)
    lens *= 0.3
    np.maximum(glass, lens, out=glass)
    glass *= _col(glasses)
    frame.paint(win, glass, frame_rgb)
    frame.to_uint8(out)
