"""Every figure of the project, in one place (matplotlib, Agg; no pyplot state).

Each function takes arrays, labels and an output path, writes one PNG atomically and returns the
path. Images are uint8 [..., H, W, 3] or float in [-1, 1] (model range). Image figures are grids of
square tiles of TILE_INCHES drawn with nearest-neighbour interpolation; matplotlib's constrained
layout places the titles, column headers, row labels and captions around them, and the figure grows
to hold the text, so the tiles keep their size however long the labels are.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from gan_arith.files import atomic_write
from gan_arith.models.layers import from_model_range

DPI = 100
TILE_INCHES = 1.0  # one image tile
TILE_PAD_INCHES = 0.03  # white space around each tile
LABEL_INCHES = 2.5  # row labels wrap to this width (see _wrap)
MAX_STRIP_FRAMES = 32  # interpolation strips longer than this are thinned (see plot_interpolation)
PANEL_INCHES = (3.0, 2.4)  # one histogram panel
_FONT = 7


def to_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 images pass through; float images in [-1, 1] map to [0, 255] (clipped, rounded)."""
    images = np.asarray(images)
    if images.ndim < 3 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape [..., H, W, 3], got {images.shape}")
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be uint8 or float in [-1, 1], got dtype {images.dtype}")
    return from_model_range(images)


def _save(fig: Figure, path: str | os.PathLike) -> str:
    """Write the figure as PNG via a temporary file in the same directory, then rename it into place."""
    FigureCanvasAgg(fig)
    return os.fspath(atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=fig.dpi)))


def _wrap(text: str, fontsize: float, inches: float) -> str:
    """Lines of about `inches` (a glyph is about 0.6 em wide on average), broken after spaces or, inside
    long names, after '_'. Existing newlines are kept; a piece longer than a line stays whole."""
    width = max(4, int(inches * 72 / (0.6 * fontsize)))
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for piece in re.split(r"(?<=[ _])", paragraph):
            if line.strip() and len(line + piece.rstrip()) > width:
                lines.append(line.rstrip())
                line = piece
            else:
                line += piece
        lines.append(line.rstrip())
    return "\n".join(lines)


def _tiles(rows: int, columns: int) -> tuple[Figure, np.ndarray]:
    """A figure of rows x columns frameless tile axes [rows, columns] (blank until `_tile` fills one)."""
    fig = Figure(dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(w_pad=TILE_PAD_INCHES, h_pad=TILE_PAD_INCHES, wspace=0, hspace=0)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    return fig, axes


def _tile(axes: Axes, image: np.ndarray, caption: str | None = None) -> None:
    """One image, each of its pixels a flat block (nearest neighbour, no smoothing), captioned if asked."""
    axes.imshow(image, interpolation="nearest")
    if caption is not None:
        axes.set_xlabel(_wrap(caption, _FONT, TILE_INCHES - 2 * TILE_PAD_INCHES), fontsize=_FONT, labelpad=2)


def _header(axes: Axes, text: str) -> None:
    axes.set_title(_wrap(text, _FONT, TILE_INCHES - 2 * TILE_PAD_INCHES), fontsize=_FONT, pad=3)


def _row_label(axes: Axes, text: str) -> None:
    axes.set_ylabel(_wrap(text, _FONT + 1, LABEL_INCHES), fontsize=_FONT + 1, rotation=0, ha="right",
                    va="center", labelpad=4)


def _save_tiles(fig: Figure, axes: np.ndarray, path: str | os.PathLike, title: str | None) -> str:
    """Size the figure so each grid cell is TILE_INCHES square, in whole pixels, with the title wrapped
    to the figure's width, then save it. The text around the tiles takes about the same room at any
    figure size, so growing the figure by what the cells lack converges within a few rounds of
    constrained layout."""
    rows, columns = axes.shape
    width, height = columns * TILE_INCHES + 2 * LABEL_INCHES, rows * TILE_INCHES + 2  # room for any text
    for _ in range(8):
        fig.set_size_inches(width, height)
        if title is not None:
            # A title of more than three lines at full size takes a smaller size instead.
            lines = _wrap(title, _FONT + 3, width - 0.2).count("\n") + 1
            fontsize = _FONT + 3 if lines <= 3 else _FONT + 1
            fig.suptitle(_wrap(title, fontsize, width - 0.2), fontsize=fontsize)
        fig.draw_without_rendering()
        cell = axes[0, 0].get_position(original=True)
        missing = columns * (TILE_INCHES - cell.width * width), rows * (TILE_INCHES - cell.height * height)
        if max(abs(more) for more in missing) * DPI < 0.25:
            break
        width, height = (np.ceil((size + more) * DPI - 0.01) / DPI for size, more in zip((width, height), missing))
    return _save(fig, path)


def _grid_shape(count: int, columns: int | None) -> tuple[int, int]:
    if count < 1:
        raise ValueError("there are no images to plot")
    columns = columns or int(np.ceil(np.sqrt(count)))
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    columns = min(columns, count)
    return int(np.ceil(count / columns)), columns


def plot_image_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    *,
    captions: Sequence[str] | None = None,
    columns: int | None = None,
    title: str | None = None,
) -> str:
    """A grid of images [N, H, W, 3], row-major, with an optional caption under each (e.g. results of N draws)."""
    images = to_uint8(images)
    if images.ndim != 4:
        raise ValueError(f"images must have shape [N, H, W, 3], got {images.shape}")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"got {len(captions)} captions for {len(images)} images")
    rows, columns = _grid_shape(len(images), columns)
    fig, axes = _tiles(rows, columns)
    for index, image in enumerate(images):
        _tile(axes[index // columns, index % columns], image, None if captions is None else captions[index])
    return _save_tiles(fig, axes, path, title)


def plot_index_grid(
    images: np.ndarray,
    path: str | os.PathLike,
    *,
    first_index: int = 0,
    columns: int = 10,
    title: str | None = None,
) -> str:
    """A numbered grid of faces for picking concept members by eye (`--concept smiling_woman=12,45,78`)."""
    captions = [str(first_index + i) for i in range(len(images))]
    return plot_image_grid(images, path, captions=captions, columns=columns, title=title)


def _term_label(name: str, coefficient: float, first: bool, separator: str = " ") -> str:
    """`- 0.5 x name`: the sign (none for a leading +) and the coefficient unless it is 1, then the name."""
    sign = "\u2212" if coefficient < 0 else ("" if first else "+")
    magnitude = abs(coefficient)
    prefix = sign if magnitude == 1.0 else f"{sign} {magnitude:g} \u00d7".strip()
    return f"{prefix}{separator}{name}" if prefix else name


def plot_concept_arithmetic(
    member_images: Mapping[str, np.ndarray],
    average_images: Mapping[str, np.ndarray],
    coefficients: Mapping[str, float],
    result_images: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> str:
    """The seeds' figure: one row per concept (its k faces, then the face of their average latent),
    and a last row with the result(s), right-aligned under the averages.

    Args:
      member_images: {name: [k, H, W, 3]} faces of each concept's members (k may differ).
      average_images: {name: [H, W, 3]} the image decoded/generated from each concept vector.
      coefficients: {name: coefficient} (row order and signs), e.g. from `expression.parse`.
      result_images: [H, W, 3] or [R, H, W, 3], the result of the arithmetic (e.g. several
        samples around the result latent).
    """
    missing = [n for n in coefficients if n not in member_images or n not in average_images]
    if missing:
        raise ValueError(f"no member or average images for concept(s) {missing}")
    members = {n: to_uint8(member_images[n]) for n in coefficients}
    results = to_uint8(result_images)
    results = results[None] if results.ndim == 3 else results
    k_max = max(len(m) for m in members.values())
    columns = max(k_max + 1, len(results))
    fig, axes = _tiles(len(members) + 1, columns)
    for column in range(k_max):
        _header(axes[0, column], f"face {column + 1}")
    _header(axes[0, columns - 1], "average")
    for row, (name, faces) in enumerate(members.items()):
        _row_label(axes[row, 0], _term_label(name, coefficients[name], first=row == 0))
        for column, face in enumerate(faces):
            _tile(axes[row, column], face)
        _tile(axes[row, columns - 1], to_uint8(average_images[name]))
    _row_label(axes[-1, 0], "= result")
    for offset, image in enumerate(results):
        _tile(axes[-1, columns - len(results) + offset], image)
    return _save_tiles(fig, axes, path, title)


def plot_arithmetic_draws(
    average_images: Mapping[str, np.ndarray],
    coefficients: Mapping[str, float],
    result_images: np.ndarray,
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> str:
    """One row per random draw of the k faces: each concept's average, then the result.

    Args:
      average_images: {name: [M, H, W, 3]} images of each draw's concept vectors.
      coefficients: {name: coefficient}, the column order and the signs in the headers.
      result_images: [M, H, W, 3] the result of each draw.
    """
    results = to_uint8(result_images)
    if results.ndim != 4:
        raise ValueError(f"result_images must have shape [M, H, W, 3], got {results.shape}")
    averages = {}
    for name in coefficients:
        if name not in average_images:
            raise ValueError(f"no average images for concept {name!r}")
        averages[name] = to_uint8(average_images[name])
        if averages[name].shape != results.shape:
            raise ValueError(f"average_images[{name!r}] has shape {averages[name].shape}, expected {results.shape}")
    fig, axes = _tiles(len(results), len(averages) + 1)
    # Two header lines, sign and coefficient over the name, so long terms do not run into each other.
    for column, name in enumerate(averages):
        _header(axes[0, column], _term_label(name, coefficients[name], first=column == 0, separator="\n"))
    _header(axes[0, -1], "=\nresult")
    for row in range(len(results)):
        _row_label(axes[row, 0], f"draw {row + 1}")
        for column, images in enumerate(averages.values()):
            _tile(axes[row, column], images[row])
        _tile(axes[row, -1], results[row])
    return _save_tiles(fig, axes, path, title)


def _shown_frames(length: int, keys: Sequence[int], limit: int) -> np.ndarray:
    """At most `limit` (>= 2) of `length` frame indices, sorted: both ends and every key frame, then the
    rest spread evenly over the gaps between them (in proportion to each gap). With more keys than
    fit, the keys themselves are thinned evenly (ends kept)."""
    if length <= limit:
        return np.arange(length)
    anchors = np.unique(np.concatenate([[0, length - 1], np.asarray(keys, dtype=np.int64)]))
    if len(anchors) >= limit:
        return anchors[np.unique(np.round(np.linspace(0, len(anchors) - 1, limit)).astype(np.int64))]
    gaps = np.diff(anchors) - 1  # the frames strictly between consecutive anchors
    budget = limit - len(anchors)
    share = budget * gaps / gaps.sum()
    counts = np.minimum(np.floor(share).astype(np.int64), gaps)
    for gap in np.argsort(-(share - counts), kind="stable")[: budget - counts.sum()]:  # largest remainders
        counts[gap] += 1
    fill = [np.round(np.linspace(a, b, n + 2)[1:-1]).astype(np.int64)
            for a, b, n in zip(anchors[:-1], anchors[1:], counts)]
    return np.sort(np.concatenate([anchors, *fill]))


def _t_labels(ts: Sequence[float]) -> list[str]:
    """"t = 0.25" with the fewest decimals (2 to 6) that keep distinct values apart."""
    distinct = len(set(np.asarray(ts, dtype=np.float64).tolist()))
    for decimals in range(2, 7):
        labels = [f"t = {t:.{decimals}f}" for t in ts]
        if len(set(labels)) == distinct:
            break
    return labels


def plot_interpolation(
    strips: np.ndarray | Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    ts: Sequence[float] | None = None,
    keys: Sequence[int] = (),
    max_frames: int = MAX_STRIP_FRAMES,
    title: str | None = None,
) -> str:
    """Interpolation strip(s): one row of T images per path, e.g. {"lerp": [T, H, W, 3], "slerp": [...]}.

    A bare array [T, H, W, 3] is one unlabelled strip. With ts, each column is headed by its t.
    Strips longer than `max_frames` are thinned evenly to max_frames columns (so the PNG stays at
    most about (LABEL_INCHES + max_frames * TILE_INCHES) * DPI pixels wide), always keeping both ends
    and the key frames: the indices in `keys` and, with ts, every frame whose t is a whole number (the
    path's points, as experiments.interpolation numbers them). Then every column is headed by its t (or its
    frame index, without ts) and the title says how many frames are shown.
    """
    labelled = isinstance(strips, Mapping)
    rows = {n: to_uint8(s) for n, s in strips.items()} if labelled else {"": to_uint8(strips)}
    lengths = {s.shape[0] for s in rows.values()}
    if any(s.ndim != 4 for s in rows.values()) or len(lengths) != 1:
        raise ValueError(f"strips must all have shape [T, H, W, 3] with one T, got {[s.shape for s in rows.values()]}")
    (length,) = lengths
    if ts is not None and len(ts) != length:
        raise ValueError(f"got {len(ts)} values of t for strips of {length} images")
    if max_frames < 2:
        raise ValueError(f"max_frames must be >= 2, got {max_frames}")
    keys = [int(k) for k in keys]
    if any(not 0 <= k < length for k in keys):
        raise ValueError(f"keys must be frame indices in [0, {length}), got {keys}")
    if ts is not None:
        ts = np.asarray(ts, dtype=np.float64)
        keys += np.flatnonzero(np.isclose(ts, np.round(ts), rtol=0.0, atol=1e-6)).tolist()
    shown = _shown_frames(length, keys, max_frames)
    thinned = len(shown) < length
    headers = _t_labels(ts[shown]) if ts is not None else [f"frame {i}" for i in shown] if thinned else None
    if thinned:
        note = (f"{len(shown)} of {length} frames shown (ends and key points, the rest spread evenly between); "
                + ("t" if ts is not None else "frame") + " above each")
        title = note if title is None else f"{title}\n{note}"
    fig, axes = _tiles(len(rows), len(shown))
    for column, header in enumerate(headers or []):
        _header(axes[0, column], header)
    for row, (name, strip) in enumerate(rows.items()):
        if labelled:
            _row_label(axes[row, 0], name)
        for column, index in enumerate(shown):
            _tile(axes[row, column], strip[index])
    return _save_tiles(fig, axes, path, title)


def _histogram_figure(panels: int, columns: int) -> tuple[Figure, np.ndarray]:
    rows = int(np.ceil(panels / columns))
    fig = Figure(figsize=(columns * PANEL_INCHES[0], rows * PANEL_INCHES[1]), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False).reshape(-1))
    for extra in axes[panels:]:
        extra.set_axis_off()
    return fig, axes[:panels]


def _normal_overlay(axes, values: np.ndarray, edges: np.ndarray, prior: bool) -> None:
    """Dashed fitted normal, and the N(0, 1) prior when asked, on a density histogram."""
    grid = np.linspace(edges[0], edges[-1], 200)
    mean, std = values.mean(), values.std()
    if std > 0:
        axes.plot(grid, stats.norm.pdf(grid, mean, std), "k--", linewidth=1, label=f"N({mean:.2f}, {std:.2f}\u00b2)")
    if prior:
        axes.plot(grid, stats.norm.pdf(grid), color="tab:red", linewidth=1, label="N(0, 1)")
    axes.legend(fontsize=_FONT)
    axes.tick_params(labelsize=_FONT)
    axes.set_xlabel("latent value", fontsize=_FONT)
    axes.set_ylabel("density", fontsize=_FONT)


def plot_concept_histograms(
    vectors: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    bins: int = 30,
    columns: int = 4,
    title: str | None = None,
) -> str:
    """The VAE seed's latent_dist figure: a histogram of each averaged concept vector's D values.

    Shared bin edges, density scale, and the normal fitted to each vector (dashed). Size:
    (min(columns, n) * PANEL_INCHES[0], rows * PANEL_INCHES[1]) inches at DPI.
    """
    if not vectors:
        raise ValueError("vectors is empty: nothing to plot")
    values = {n: np.asarray(v, dtype=np.float64).reshape(-1) for n, v in vectors.items()}
    edges = np.histogram_bin_edges(np.concatenate(list(values.values())), bins=bins)
    fig, axes = _histogram_figure(len(values), min(columns, len(values)))
    for ax, (name, array) in zip(axes, values.items()):
        ax.hist(array, bins=edges, density=True, color="tab:blue", alpha=0.7)
        _normal_overlay(ax, array, edges, prior=False)
        ax.set_title(f"{name} (D = {array.size})", fontsize=_FONT + 1)
    if title is not None:
        fig.suptitle(title, fontsize=_FONT + 3)
    return _save(fig, path)


def plot_dimension_histograms(
    latents: np.ndarray,
    path: str | os.PathLike,
    *,
    dimensions: Sequence[int] = (0, 1, 2),
    bins: int = 20,
    columns: int = 3,
    title: str | None = None,
) -> str:
    """The VAE seed's 3_value_dist figure: each chosen dimension's values across N latents [N, D],
    against the N(0, 1) prior (red) and the fitted normal (dashed)."""
    latents = np.asarray(latents, dtype=np.float64)
    if latents.ndim != 2:
        raise ValueError(f"latents must have shape [N, D], got {latents.shape}")
    bad = [d for d in dimensions if not 0 <= d < latents.shape[1]]
    if bad or not dimensions:
        raise ValueError(f"dimensions must be a non-empty list in [0, {latents.shape[1]}), got {list(dimensions)}")
    fig, axes = _histogram_figure(len(dimensions), min(columns, len(dimensions)))
    for ax, dimension in zip(axes, dimensions):
        column = latents[:, dimension]
        edges = np.histogram_bin_edges(np.concatenate([column, [-3.0, 3.0]]), bins=bins)
        ax.hist(column, bins=edges, density=True, color="tab:blue", alpha=0.7)
        _normal_overlay(ax, column, edges, prior=True)
        ax.set_title(f"dimension {dimension} across N = {len(column)}", fontsize=_FONT + 1)
    if title is not None:
        fig.suptitle(title, fontsize=_FONT + 3)
    return _save(fig, path)


def plot_scored_faces(
    images: np.ndarray,
    scores: np.ndarray,
    path: str | os.PathLike,
    *,
    count: int = 8,
    title: str | None = None,
) -> str:
    """Two rows: the `count` highest-scored images (best first) and the `count` lowest (worst first), scores under each."""
    images, scores = to_uint8(images), np.asarray(scores, dtype=np.float64)
    if images.ndim != 4 or scores.shape != (images.shape[0],):
        raise ValueError(f"images must be [N, H, W, 3] and scores [N], got {images.shape} and {scores.shape}")
    count = min(count, images.shape[0])
    if count < 1:
        raise ValueError("there are no images to plot")
    order = np.argsort(-scores, kind="stable")
    fig, axes = _tiles(2, count)
    for row, (label, picks) in enumerate((("best", order[:count]), ("worst", order[::-1][:count]))):
        _row_label(axes[row, 0], label)
        for column, index in enumerate(picks):
            _tile(axes[row, column], images[index], f"{scores[index]:.2f}")
    return _save_tiles(fig, axes, path, title)


def plot_reconstructions(
    originals: np.ndarray,
    reconstructions: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    captions: Mapping[str, Sequence[str]] | None = None,
    count: int = 8,
    title: str | None = None,
) -> str:
    """A row of originals, then one row per method of its reconstructions of the same images.

    `captions` optionally maps a method to one string per image (e.g. per-image PSNR).
    """
    originals = to_uint8(originals)
    count = min(count, originals.shape[0])
    if originals.ndim != 4 or count < 1:
        raise ValueError(f"originals must be a non-empty [N, H, W, 3], got {originals.shape}")
    rows = {"original": originals}
    for method, images in reconstructions.items():
        images = to_uint8(images)
        if images.shape != originals.shape:
            raise ValueError(f"reconstructions[{method!r}] has shape {images.shape}, originals {originals.shape}")
        rows[method] = images
    captions = dict(captions or {})
    for method, texts in captions.items():
        if method not in rows or len(texts) < count:
            raise ValueError(f"captions[{method!r}] must name a method and give one string for each of {count} images")
    fig, axes = _tiles(len(rows), count)
    for row, (label, images) in enumerate(rows.items()):
        _row_label(axes[row, 0], label)
        for column in range(count):
            _tile(axes[row, column], images[column], captions[label][column] if label in captions else None)
    return _save_tiles(fig, axes, path, title)


def image_mosaic(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """Images [N, H, W, 3] tiled row-major into one uint8 [rows*H, columns*W, 3] array (for TensorBoard)."""
    images = to_uint8(images)
    rows = -(-len(images) // columns)
    padded = np.zeros((rows * columns, *images.shape[1:]), np.uint8)
    padded[: len(images)] = images
    h, w = images.shape[1:3]
    return padded.reshape(rows, columns, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * h, columns * w, 3)


def plot_edit_sweep(
    sweeps: Mapping[str, np.ndarray],
    alphas: Sequence[float],
    path: str | os.PathLike,
    *,
    faces: int = 3,
    title: str | None = None,
) -> str:
    """Attribute edits of growing strength: for each of the first `faces` faces, one row per direction,
    one column per alpha (headed "α = ...").

    Args:
      sweeps: {direction name: [A, N, H, W, 3]} faces of latent + alpha * direction (all one shape).
      alphas: the A edit strengths.
    """
    edited = {name: to_uint8(images) for name, images in sweeps.items()}
    shapes = {images.shape for images in edited.values()}
    if not edited or len(shapes) != 1 or next(iter(shapes))[:1] != (len(alphas),) or len(next(iter(shapes))) != 5:
        raise ValueError(f"sweeps must share one shape [A={len(alphas)}, N, H, W, 3], got {sorted(shapes)}")
    faces = min(faces, next(iter(shapes))[1])
    fig, axes = _tiles(faces * len(edited), len(alphas))
    for column, alpha in enumerate(alphas):
        _header(axes[0, column], f"\u03b1 = {alpha:g}")
    for face in range(faces):
        for offset, (name, images) in enumerate(edited.items()):
            row = face * len(edited) + offset
            _row_label(axes[row, 0], f"face {face + 1}: {name}")
            for column in range(len(alphas)):
                _tile(axes[row, column], images[column, face])
    return _save_tiles(fig, axes, path, title)


def plot_roc_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> str:
    """ROC curves on one panel: {label: (false-positive rates, true-positive rates)}, with the chance diagonal."""
    if not curves:
        raise ValueError("curves is empty: there is no ROC curve to plot")
    fig = Figure(figsize=PANEL_INCHES, dpi=DPI, layout="constrained")
    axes = fig.subplots()
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="chance")
    for label, (false_positive, true_positive) in curves.items():
        false_positive, true_positive = np.asarray(false_positive), np.asarray(true_positive)
        if false_positive.shape != true_positive.shape or false_positive.ndim != 1:
            raise ValueError(f"curves[{label!r}] must be two 1-D arrays of one length, got "
                             f"{false_positive.shape} and {true_positive.shape}")
        axes.plot(false_positive, true_positive, linewidth=1.5, label=label)
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="false-positive rate", ylabel="true-positive rate")
    axes.legend(fontsize=_FONT, loc="lower right")
    if title is not None:
        axes.set_title(title, fontsize=_FONT + 1)
    return _save(fig, path)


def _interval(value: Sequence[float], where: str) -> tuple[float, float, float]:
    """(rate, low, high) checked to be numbers with low <= rate <= high."""
    if len(value) != 3 or not value[1] <= value[0] <= value[2]:
        raise ValueError(f"{where} must be (rate, low, high) with low <= rate <= high, got {tuple(value)}")
    return float(value[0]), float(value[1]), float(value[2])


def _colours(labels: Sequence[str]) -> dict[str, str]:
    """One colour of matplotlib's cycle per distinct label, in order of first appearance."""
    distinct = list(dict.fromkeys(labels))
    return {label: f"C{index % 10}" for index, label in enumerate(distinct)}


def _rate_figure(panels: int, panel_inches: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A figure of `panels` side-by-side panels sharing one rate axis."""
    fig = Figure(figsize=(panel_inches[0] * panels, panel_inches[1]), dpi=DPI, layout="constrained")
    return fig, np.atleast_1d(fig.subplots(1, panels, sharey=True))


def _save_rate_figure(fig: Figure, axes_row: Sequence, titles: Sequence[str], path: str | os.PathLike,
                      title: str | None) -> str:
    """Panel titles, rates from 0 to 1, one legend under all panels (each label once: panels share their
    labels' colours) and the figure title; then the PNG."""
    entries: dict[str, object] = {}
    for axes, panel in zip(axes_row, titles):
        axes.set_ylim(0, 1)
        axes.set_title(panel, fontsize=_FONT + 1)
        for handle, label in zip(*axes.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    axes_row[0].set_ylabel("success rate (95% interval)")
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=min(3, len(entries)),
               fontsize=_FONT, frameon=False)
    if title is not None:
        fig.suptitle(title, fontsize=_FONT + 2)
    return _save(fig, path)


def plot_rates_by_k(
    panels: Mapping[str, Mapping[str, np.ndarray]],
    path: str | os.PathLike,
    *,
    references: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    title: str | None = None,
) -> str:
    """Rates against the number of members k, one panel per reader (e.g. classifier, judge), log-scaled k.

    Args:
      panels: {panel title: {curve label: [K, 4] rows (k, rate, interval low, interval high)}}, drawn as
        lines with shaded interval bands; a label keeps its colour across panels.
      references: {panel title: {label: (rate, low, high)}}, rates that do not depend on k (random
        samples, real faces), drawn as dashed horizontal lines with their bands.
    """
    if not panels or not all(panels.values()):
        raise ValueError("panels must name at least one panel, each with at least one curve")
    references = dict(references or {})
    unknown = set(references) - set(panels)
    if unknown:
        raise ValueError(f"references name panels that do not exist: {sorted(unknown)}")
    colours = _colours([label for curves in panels.values() for label in curves]
                       + [label for lines in references.values() for label in lines])
    fig, axes_row = _rate_figure(len(panels), (PANEL_INCHES[0] * 1.4, PANEL_INCHES[1] * 1.8))
    for axes, (panel, curves) in zip(axes_row, panels.items()):
        for label, curve in curves.items():
            curve = np.asarray(curve, dtype=np.float64)
            if curve.ndim != 2 or curve.shape[1] != 4 or not len(curve):
                raise ValueError(f"panels[{panel!r}][{label!r}] must be [K, 4] rows (k, rate, low, high), got {curve.shape}")
            for k, *rate in curve:
                _interval(rate, f"panels[{panel!r}][{label!r}] at k={k:g}")
            axes.plot(curve[:, 0], curve[:, 1], marker="o", markersize=3, linewidth=1.5, color=colours[label], label=label)
            axes.fill_between(curve[:, 0], curve[:, 2], curve[:, 3], color=colours[label], alpha=0.2, linewidth=0)
        for label, value in references.get(panel, {}).items():
            rate, low, high = _interval(value, f"references[{panel!r}][{label!r}]")
            axes.axhline(rate, color=colours[label], linestyle="--", linewidth=1, label=label)
            axes.axhspan(low, high, color=colours[label], alpha=0.1, linewidth=0)
        axes.set_xscale("log")
        ks = sorted({k for curve in curves.values() for k in np.asarray(curve)[:, 0]})
        axes.set_xticks(ks, [f"{k:g}" for k in ks])
        axes.minorticks_off()
        axes.set_xlabel("k (members averaged per concept)")
    return _save_rate_figure(fig, axes_row, list(panels), path, title)


def plot_rate_bars(
    panels: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> str:
    """Grouped bars of rates with interval whiskers, one panel per reader (e.g. classifier, judge).

    Args:
      panels: {panel title: {group: {bar label: (rate, low, high)}}}; a bar label keeps its colour
        across groups and panels, and a group may lack some bars.
    """
    if not panels or not all(panels.values()):
        raise ValueError("panels must name at least one panel, each with at least one group of bars")
    bars = list(dict.fromkeys(label for groups in panels.values() for group in groups.values() for label in group))
    if not bars:
        raise ValueError("the panels hold no bars")
    colours = _colours(bars)
    groups_most = max(len(groups) for groups in panels.values())
    group_inches = max(1.3, 0.3 * len(bars))  # room for a group's bars and its wrapped name
    fig, axes_row = _rate_figure(len(panels), (max(PANEL_INCHES[0], 0.6 + group_inches * groups_most), PANEL_INCHES[1] * 1.6))
    width = 0.8 / len(bars)
    for axes, (panel, groups) in zip(axes_row, panels.items()):
        labelled: set[str] = set()  # each bar label once in the legend
        for position, (group, values) in enumerate(groups.items()):
            for offset, label in enumerate(bars):
                if label not in values:
                    continue
                rate, low, high = _interval(values[label], f"panels[{panel!r}][{group!r}][{label!r}]")
                x = position - 0.4 + (offset + 0.5) * width
                axes.bar(x, rate, width * 0.9, color=colours[label], label=None if label in labelled else label)
                labelled.add(label)
                axes.errorbar(x, rate, yerr=[[rate - low], [high - rate]], color="0.2", linewidth=1, capsize=2)
        axes.set_xticks(range(len(groups)), [_wrap(str(group), _FONT, group_inches - 0.3) for group in groups], fontsize=_FONT)
    return _save_rate_figure(fig, axes_row, list(panels), path, title)
