"""Every figure of the project, in one place (matplotlib, Agg; no pyplot state).

Each function takes arrays, labels and an output path, writes one PNG atomically and returns the
path. Images are uint8 [..., H, W, 3] or float in [-1, 1] (model range). Image figures are laid
out on a fixed grid of square tiles, so their pixel size is known in advance:
width = (label column + columns * tile) * dpi,
height = (title + header lines * caption + rows * (tile + caption if captioned)) * dpi.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from gan_arith.files import atomic_write
from gan_arith.models.layers import from_model_range

DPI = 100
TILE_INCHES = 1.0  # one image tile
CAPTION_INCHES = 0.2  # a line of small text under or over a tile
TITLE_INCHES = 0.4
# Row-label columns: expression terms such as "- 0.5 x neutral_woman", strip names, "draw 12".
LABEL_INCHES = {"concept": 1.6, "strip": 1.0, "draw": 0.7}
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


class _TileLayout:
    """Axes placed on an exact grid in inches: optional title band, header band, label column, tiles."""

    def __init__(self, rows: int, columns: int, *, title: bool, header_lines: int, captions: bool, label_inches: float):
        self.rows, self.columns = rows, columns
        self.row_inches = TILE_INCHES + (CAPTION_INCHES if captions else 0.0)
        self.left = label_inches
        self.header_inches = header_lines * CAPTION_INCHES
        self.top = (TITLE_INCHES if title else 0.0) + self.header_inches
        self.width = self.left + columns * TILE_INCHES
        self.height = self.top + rows * self.row_inches
        self.figure = Figure(figsize=(self.width, self.height), dpi=DPI)

    def _rect(self, x: float, y_from_top: float, w: float, h: float) -> list[float]:
        return [x / self.width, 1.0 - (y_from_top + h) / self.height, w / self.width, h / self.height]

    def image(self, row: int, column: int, image: np.ndarray, caption: str | None = None):
        inset = 0.03  # a thin white gap between tiles
        y = self.top + row * self.row_inches
        x = self.left + column * TILE_INCHES
        axes = self.figure.add_axes(self._rect(x + inset, y + inset, TILE_INCHES - 2 * inset, TILE_INCHES - 2 * inset))
        axes.imshow(image, interpolation="nearest")
        axes.set_axis_off()
        if caption is not None:
            self.figure.text(*self._point(x + TILE_INCHES / 2, y + TILE_INCHES + CAPTION_INCHES / 2), caption,
                             ha="center", va="center", fontsize=_FONT)
        return axes

    def _point(self, x: float, y_from_top: float) -> tuple[float, float]:
        return x / self.width, 1.0 - y_from_top / self.height

    def header(self, column: int, text: str) -> None:
        # Bottom-aligned, so one-line and two-line headers end on the same baseline.
        y = self.top - 0.04
        self.figure.text(*self._point(self.left + (column + 0.5) * TILE_INCHES, y), text,
                         ha="center", va="bottom", fontsize=_FONT, multialignment="center")

    def row_label(self, row: int, text: str) -> None:
        y = self.top + row * self.row_inches + TILE_INCHES / 2
        self.figure.text(*self._point(0.1, y), text, ha="left", va="center", fontsize=_FONT + 1)

    def title(self, text: str) -> None:
        self.figure.text(*self._point(self.width / 2, TITLE_INCHES / 2), text, ha="center", va="center",
                         fontsize=_FONT + 3)


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
    layout = _TileLayout(rows, columns, title=title is not None, header_lines=0, captions=captions is not None,
                         label_inches=0.0)
    for index, image in enumerate(images):
        layout.image(index // columns, index % columns, image, None if captions is None else captions[index])
    if title is not None:
        layout.title(title)
    return _save(layout.figure, path)


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
    layout = _TileLayout(len(members) + 1, columns, title=title is not None, header_lines=1, captions=False,
                         label_inches=LABEL_INCHES["concept"])
    for column in range(k_max):
        layout.header(column, f"face {column + 1}")
    layout.header(columns - 1, "average")
    for row, (name, faces) in enumerate(members.items()):
        layout.row_label(row, _term_label(name, coefficients[name], first=row == 0))
        for column, face in enumerate(faces):
            layout.image(row, column, face)
        layout.image(row, columns - 1, to_uint8(average_images[name]))
    layout.row_label(len(members), "= result")
    for offset, image in enumerate(results):
        layout.image(len(members), columns - len(results) + offset, image)
    if title is not None:
        layout.title(title)
    return _save(layout.figure, path)


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
    # Two header lines, sign and coefficient over the name, so long terms do not run into each other.
    layout = _TileLayout(len(results), len(averages) + 1, title=title is not None, header_lines=2, captions=False,
                         label_inches=LABEL_INCHES["draw"])
    for column, name in enumerate(averages):
        layout.header(column, _term_label(name, coefficients[name], first=column == 0, separator="\n"))
    layout.header(len(averages), "=\nresult")
    for row in range(len(results)):
        layout.row_label(row, f"draw {row + 1}")
        for column, images in enumerate(averages.values()):
            layout.image(row, column, images[row])
        layout.image(row, len(averages), results[row])
    if title is not None:
        layout.title(title)
    return _save(layout.figure, path)


def plot_interpolation(
    strips: np.ndarray | Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    ts: Sequence[float] | None = None,
    title: str | None = None,
) -> str:
    """Interpolation strip(s): one row of T images per path, e.g. {"lerp": [T, H, W, 3], "slerp": [...]}.

    A bare array [T, H, W, 3] is one unlabelled strip. With ts, each column is headed by its t.
    """
    labelled = isinstance(strips, Mapping)
    rows = {n: to_uint8(s) for n, s in strips.items()} if labelled else {"": to_uint8(strips)}
    lengths = {s.shape[0] for s in rows.values()}
    if any(s.ndim != 4 for s in rows.values()) or len(lengths) != 1:
        raise ValueError(f"strips must all have shape [T, H, W, 3] with one T, got {[s.shape for s in rows.values()]}")
    (length,) = lengths
    if ts is not None and len(ts) != length:
        raise ValueError(f"got {len(ts)} values of t for strips of {length} images")
    layout = _TileLayout(len(rows), length, title=title is not None, header_lines=int(ts is not None), captions=False,
                         label_inches=LABEL_INCHES["strip"] if labelled else 0.0)
    if ts is not None:
        for column, t in enumerate(ts):
            layout.header(column, f"t = {t:.2f}")
    for row, (name, strip) in enumerate(rows.items()):
        if labelled:
            layout.row_label(row, name)
        for column, image in enumerate(strip):
            layout.image(row, column, image)
    if title is not None:
        layout.title(title)
    return _save(layout.figure, path)


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
    layout = _TileLayout(2, count, title=title is not None, header_lines=0, captions=True,
                         label_inches=LABEL_INCHES["strip"])
    for row, (label, picks) in enumerate((("best", order[:count]), ("worst", order[::-1][:count]))):
        layout.row_label(row, label)
        for column, index in enumerate(picks):
            layout.image(row, column, images[index], f"{scores[index]:.2f}")
    if title is not None:
        layout.title(title)
    return _save(layout.figure, path)


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
    layout = _TileLayout(len(rows), count, title=title is not None, header_lines=0, captions=bool(captions),
                         label_inches=LABEL_INCHES["strip"])
    for row, (label, images) in enumerate(rows.items()):
        layout.row_label(row, label)
        for column in range(count):
            layout.image(row, column, images[column], captions[label][column] if label in captions else None)
    if title is not None:
        layout.title(title)
    return _save(layout.figure, path)


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
    layout = _TileLayout(faces * len(edited), len(alphas), title=title is not None, header_lines=1, captions=False,
                         label_inches=LABEL_INCHES["concept"])
    for column, alpha in enumerate(alphas):
        layout.header(column, f"\u03b1 = {alpha:g}")
    for face in range(faces):
        for offset, (name, images) in enumerate(edited.items()):
            row = face * len(edited) + offset
            layout.row_label(row, f"face {face + 1}: {name}")
            for column in range(len(alphas)):
                layout.image(row, column, images[column, face])
    if title is not None:
        layout.title(title)
    return _save(layout.figure, path)


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
