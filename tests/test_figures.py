"""Tests for gan_arith/figures.py: each figure writes its PNG atomically, with every image tile in place,
pixel for pixel, and every text inside the figure, clear of the tiles and of other text."""

import os

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from gan_arith import figures as plots

TILE = plots.TILE_INCHES * plots.DPI  # a tile's side in pixels

LONG_COEFFICIENTS = {"smiling_woman_with_eyeglasses": 2.0, "neutral_woman": -0.5, "blond_young_woman": -0.5,
                     "neutral_man": 1.0}
LONG_TITLE = ("2*smiling_woman_with_eyeglasses - (neutral_woman + blond_young_woman)/2 + neutral_man - neutral_man"
              " (synthetic concepts)")


@pytest.fixture
def rendered(monkeypatch):
    """The (Figure, PNG path) pairs the plot functions save, in call order (the PNGs are still written)."""
    saved, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: saved.append((fig, path)) or save(fig, path))
    return saved


def _solid(colors) -> np.ndarray:
    """One flat 12x12 tile per RGB colour, so a tile's pixels identify it."""
    colors = np.asarray(colors, np.uint8)
    return np.broadcast_to(colors[:, None, None, :], (len(colors), 12, 12, 3)).copy()


def _distinct(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 3), dtype=np.uint8)


def _grey(values) -> np.ndarray:
    """One flat-grey 8x8 tile per value."""
    return np.broadcast_to(np.asarray(values, np.uint8)[:, None, None, None], (len(values), 8, 8, 3)).copy()


def _no_temporaries(directory):
    assert not [name for name in os.listdir(directory) if name.startswith(".tmp-")]


def _overlap(a, b, tolerance=0.5) -> bool:
    """Whether two display-space boxes share more than `tolerance` pixels in both directions."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tolerance and min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance


def _squeezed(text: str) -> str:
    return "".join(text.split())


def _assert_clear(fig: Figure) -> dict[str, object]:
    """Every text inside the figure and clear of every tile and every other text; tiles apart.
    Returns {text without line breaks or spaces: its box}."""
    fig.canvas.draw()
    renderer, frame = fig.canvas.get_renderer(), fig.bbox
    tiles = [image.get_window_extent(renderer) for axes in fig.axes for image in axes.images]
    texts = {text.get_text(): text.get_window_extent(renderer)
             for text in fig.findobj(Text) if text.get_visible() and text.get_text()}
    for text, box in texts.items():
        assert (frame.x0 - 0.5 <= box.x0 and box.x1 <= frame.x1 + 0.5
                and frame.y0 - 0.5 <= box.y0 and box.y1 <= frame.y1 + 0.5), f"{text!r} {box} outside {frame}"
        assert not any(_overlap(box, tile) for tile in tiles), f"{text!r} overlaps a tile"
    boxes = list(texts.items())
    for i, (text, box) in enumerate(boxes):
        for other, other_box in boxes[i + 1:]:
            assert not _overlap(box, other_box), f"{text!r} overlaps {other!r}"
    for i, tile in enumerate(tiles):
        assert not any(_overlap(tile, other) for other in tiles[i + 1:])
    return {_squeezed(text): box for text, box in texts.items()}


def _tiles(fig: Figure, path) -> list[list[np.ndarray]]:
    """The tiles as the PNG shows them, in rows from the top, left to right, each tile checked to be
    TILE pixels square, drawn nearest-neighbour, and each of its pixels to appear unchanged in the PNG."""
    png = np.asarray(Image.open(path).convert("RGB"))
    assert abs(png.shape[0] - fig.bbox.height) <= 1 and abs(png.shape[1] - fig.bbox.width) <= 1
    fig.canvas.draw()
    placed = []
    for axes in fig.axes:
        for image in axes.images:
            data, box = np.asarray(image.get_array()), image.get_window_extent()
            assert image.get_interpolation() == "nearest"
            assert abs(box.width - TILE) < 1.5 and abs(box.height - TILE) < 1.5  # whole-pixel figure sizes aside
            h, w = data.shape[:2]
            ys = (png.shape[0] - box.y1 + (np.arange(h) + 0.5) * box.height / h).astype(int)
            xs = (box.x0 + (np.arange(w) + 0.5) * box.width / w).astype(int)
            np.testing.assert_array_equal(png[np.ix_(ys, xs)], data)  # each source pixel's block centre
            placed.append((round(png.shape[0] - box.y1), round(box.x0), data))
    rows: dict[int, list] = {}
    for top, left, data in sorted(placed, key=lambda t: (t[0], t[1])):
        rows.setdefault(top, []).append((left, data))
    return [[data for _, data in row] for row in rows.values()]


def _colours(rows: list[list[np.ndarray]]) -> list[list[tuple[int, ...]]]:
    """Each (flat) tile's colour."""
    return [[tuple(int(c) for c in tile[0, 0]) for tile in row] for row in rows]


def test_to_uint8():
    floats = np.array([-1.0, 0.0, 1.0, 1.5]).reshape(1, 1, 4, 1).repeat(3, axis=-1)
    np.testing.assert_array_equal(plots.to_uint8(floats)[0, 0, :, 0], [0, 128, 255, 255])
    with pytest.raises(ValueError, match="H, W, 3"):
        plots.to_uint8(np.zeros((2, 8, 8)))


def test_image_grid_keeps_each_pixel_of_each_face(tmp_path, rendered):
    faces = np.random.default_rng(0).integers(0, 256, size=(7, 5, 5, 3), dtype=np.uint8)
    path = plots.plot_image_grid(faces / 127.5 - 1.0, tmp_path / "grid.png",
                                 captions=[f"draw {i}" for i in range(7)], columns=3)
    rows = _tiles(*rendered[-1])
    assert [len(row) for row in rows] == [3, 3, 1]
    np.testing.assert_array_equal(np.stack([tile for row in rows for tile in row]), faces)
    assert {f"draw{i}" for i in range(7)} <= set(_assert_clear(rendered[-1][0]))
    assert os.fspath(path) == os.fspath(tmp_path / "grid.png")
    _no_temporaries(tmp_path)


def test_figures_are_written_atomically(tmp_path, monkeypatch):
    plots.plot_image_grid(_grey([10]), tmp_path / "g.png")
    before = (tmp_path / "g.png").read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", fail)
    with pytest.raises(OSError, match="disk full"):
        plots.plot_image_grid(_grey([10, 20]), tmp_path / "g.png", title="new")
    assert (tmp_path / "g.png").read_bytes() == before  # the old file, whole
    _no_temporaries(tmp_path)


def test_index_grid(tmp_path, rendered):
    colors = _distinct(12, 1)
    plots.plot_index_grid(_solid(colors), tmp_path / "index.png", first_index=40, columns=5, title="pick faces")
    rows = _colours(_tiles(*rendered[-1]))
    assert rows == [[tuple(c) for c in colors[i:i + 5]] for i in (0, 5, 10)]
    texts = _assert_clear(rendered[-1][0])
    assert {"pickfaces", *(str(40 + i) for i in range(12))} <= set(texts)
    assert texts["45"].y1 < texts["40"].y0 and texts["41"].x0 > texts["40"].x1  # numbered row-major


def test_concept_arithmetic(tmp_path, rendered):
    colors = _distinct(3 + 2 + 3 + 3 + 2, 2)
    members = {"smiling_woman": _solid(colors[0:3]), "neutral_woman": _solid(colors[3:5]),
               "neutral_man": _solid(colors[5:8])}
    averages = {name: _solid(colors[8 + i: 9 + i])[0] for i, name in enumerate(members)}
    results = _solid(colors[11:13])
    coefficients = {"smiling_woman": 1.0, "neutral_woman": -1.0, "neutral_man": 0.5}
    plots.plot_concept_arithmetic(members, averages, coefficients, results, tmp_path / "c.png", title="t")
    fig, path = rendered[-1]
    c = [tuple(colour) for colour in colors]
    assert _colours(_tiles(fig, path)) == [[c[0], c[1], c[2], c[8]], [c[3], c[4], c[9]], [c[5], c[6], c[7], c[10]],
                                           [c[11], c[12]]]
    x = sorted({round(image.get_window_extent().x0) for axes in fig.axes for image in axes.images})
    results_x = sorted(round(axes.images[0].get_window_extent().x0) for axes in fig.axes[-4:] if axes.images)
    assert len(x) == 4 and results_x == x[2:]  # results right-aligned under the averages
    texts = _assert_clear(fig)
    labels = {"smiling_woman", "\u2212neutral_woman", "+0.5\u00d7neutral_man", "=result", "face1", "average"}
    assert labels <= set(texts)
    with pytest.raises(ValueError, match="neutral_man"):
        plots.plot_concept_arithmetic(members, {}, coefficients, results, tmp_path / "bad.png")


def test_arithmetic_draws(tmp_path, rendered):
    colors = _distinct(4 * 3, 3).reshape(3, 4, 3)  # [concept or result, draw, rgb]
    averages = {"a": _solid(colors[0]), "b": _solid(colors[1])}
    plots.plot_arithmetic_draws(averages, {"a": 1.0, "b": -1.0}, _solid(colors[2]), tmp_path / "d.png")
    rows = _colours(_tiles(*rendered[-1]))
    assert rows == [[tuple(colors[column, draw]) for column in range(3)] for draw in range(4)]
    assert {"a", "\u2212b", "=result", "draw4"} <= set(_assert_clear(rendered[-1][0]))


def test_interpolation(tmp_path, rendered):
    colors = _distinct(16, 4)
    strips = {"lerp": _solid(colors[:8]), "slerp": _solid(colors[8:])}
    plots.plot_interpolation(strips, tmp_path / "i.png", ts=np.linspace(0, 1, 8))
    assert _colours(_tiles(*rendered[-1])) == [[tuple(c) for c in colors[:8]], [tuple(c) for c in colors[8:]]]
    assert {"lerp", "slerp", "t=0.00", "t=1.00"} <= set(_assert_clear(rendered[-1][0]))
    plots.plot_interpolation(strips["lerp"], tmp_path / "one.png")
    assert [len(row) for row in _tiles(*rendered[-1])] == [8]
    assert not _assert_clear(rendered[-1][0])  # a bare strip: no labels, no headers
    with pytest.raises(ValueError, match="one T"):
        plots.plot_interpolation({"a": strips["lerp"], "b": strips["slerp"][:5]}, tmp_path / "bad.png")


def test_histograms(tmp_path):
    rng = np.random.default_rng(5)
    width, height = (inches * plots.DPI for inches in plots.PANEL_INCHES)
    vectors = {name: rng.normal(size=(3, 100)).mean(axis=0) for name in ("a", "b", "c")}
    png = np.asarray(Image.open(plots.plot_concept_histograms(vectors, tmp_path / "h.png", title="concept vectors")))
    assert png.shape[:2] == (height, 3 * width)
    assert (png[..., :3] < 250).any(axis=-1).mean() > 0.02  # something was drawn
    png = np.asarray(Image.open(plots.plot_dimension_histograms(rng.normal(size=(90, 10)), tmp_path / "d.png",
                                                                dimensions=[0, 1, 2, 9])))
    assert png.shape[:2] == (2 * height, 3 * width)
    with pytest.raises(ValueError, match="dimensions"):
        plots.plot_dimension_histograms(rng.normal(size=(90, 10)), tmp_path / "bad.png", dimensions=[10])
    _no_temporaries(tmp_path)


def test_scored_faces_put_the_best_first_and_the_worst_in_the_second_row(tmp_path, rendered):
    values = np.arange(0, 250, 25)  # 10 faces whose brightness is their index
    scores = np.array([0.3, 2.0, -1.0, 5.0, 0.0, 1.0, -3.0, 4.0, 3.0, -2.0])
    plots.plot_scored_faces(_grey(values), scores, tmp_path / "scored.png", count=3, title="D(G(z))")
    best, worst = [[colour[0] for colour in row] for row in _colours(_tiles(*rendered[-1]))]
    assert best == [values[3], values[7], values[8]]  # scores 5, 4, 3
    assert worst == [values[6], values[9], values[2]]  # scores -3, -2, -1
    texts = _assert_clear(rendered[-1][0])
    assert {"best", "worst", "5.00", "-3.00", "D(G(z))"} <= set(texts)
    assert texts["worst"].y1 < texts["5.00"].y0 and texts["5.00"].y1 < texts["best"].y0  # scores under their faces


def test_reconstructions_stack_originals_over_each_method(tmp_path, rendered):
    originals = _grey([10, 20, 30, 40])
    methods = {"optimisation": _grey([50, 60, 70, 80]), "encoder": _grey([90, 100, 110, 120])}
    captions = {"optimisation": ["31.0 dB", "30.5 dB", "29.9 dB", "33.2 dB"]}
    plots.plot_reconstructions(originals, methods, tmp_path / "recon.png", captions=captions, count=4)
    rows = [[colour[0] for colour in row] for row in _colours(_tiles(*rendered[-1]))]
    assert rows == [[10, 20, 30, 40], [50, 60, 70, 80], [90, 100, 110, 120]]
    assert {"original", "optimisation", "encoder", "33.2dB"} <= set(_assert_clear(rendered[-1][0]))
    with pytest.raises(ValueError, match=r"reconstructions\['encoder'\] has shape"):
        plots.plot_reconstructions(originals, {"encoder": originals[:2]}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"captions\['decoder'\]"):
        plots.plot_reconstructions(originals, methods, tmp_path / "bad.png", captions={"decoder": ["x"] * 4})


def test_edit_sweep_places_each_face_and_direction(tmp_path, rendered):
    colours = np.arange(2 * 3 * 2 * 3).reshape(2, 3, 2, 3).astype(np.uint8) * 5  # [directions, alphas, faces, rgb]
    sweeps = {name: np.broadcast_to(colours[i][:, :, None, None, :], (3, 2, 12, 12, 3)) for i, name in enumerate("ab")}
    plots.plot_edit_sweep(sweeps, [0.0, 1.0, 2.0], tmp_path / "edits.png", faces=2)
    rows = _colours(_tiles(*rendered[-1]))
    assert rows == [[tuple(colours[d, alpha, face]) for alpha in range(3)] for face in range(2) for d in range(2)]
    assert {"face1:a", "face2:b", "\u03b1=0", "\u03b1=2"} <= set(_assert_clear(rendered[-1][0]))
    with pytest.raises(ValueError, match="share one shape"):
        plots.plot_edit_sweep(sweeps, [0.0, 1.0], tmp_path / "bad.png")


def test_roc_curves(tmp_path):
    path = plots.plot_roc_curves({"held out (AUC 0.75)": (np.array([0, 0.5, 1]), np.array([0, 1, 1]))},
                                 tmp_path / "roc.png", title="good vs bad noise")
    png = np.asarray(Image.open(path).convert("RGB"))
    assert png.shape[:2] == (plots.PANEL_INCHES[1] * plots.DPI, plots.PANEL_INCHES[0] * plots.DPI)
    assert (png != 255).any(axis=-1).mean() > 0.02  # axes, curve and labels drawn, not a blank canvas
    _no_temporaries(tmp_path)
    with pytest.raises(ValueError, match="one length"):
        plots.plot_roc_curves({"bad": (np.zeros(3), np.zeros(4))}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="empty"):
        plots.plot_roc_curves({}, tmp_path / "none.png")


# --- Long text never overlaps a tile or other text and is never clipped; the tiles keep their size ---

def test_arithmetic_figure_fits_long_names_and_a_long_title(tmp_path, rendered):
    faces = _grey(range(0, 120, 10))
    members = {name: faces[:3] for name in LONG_COEFFICIENTS}
    averages = {name: faces[3] for name in LONG_COEFFICIENTS}
    plots.plot_concept_arithmetic(members, averages, LONG_COEFFICIENTS, faces[4:6], tmp_path / "a.png",
                                  title=LONG_TITLE)
    assert [len(row) for row in _tiles(*rendered[-1])] == [4, 4, 4, 4, 2]
    texts = _assert_clear(rendered[-1][0])
    assert _squeezed(LONG_TITLE) in texts  # nothing cut: the whole title and every row label
    assert _squeezed(plots._term_label("smiling_woman_with_eyeglasses", 2.0, first=True)) in texts
    assert Image.open(tmp_path / "a.png").size[0] <= 1000  # widened for the labels, not blown up


def test_draws_headers_fit_their_columns(tmp_path, rendered):
    faces = _grey([10, 20, 30])
    averages = {name: faces for name in LONG_COEFFICIENTS}
    plots.plot_arithmetic_draws(averages, LONG_COEFFICIENTS, faces, tmp_path / "d.png", title=LONG_TITLE)
    assert [len(row) for row in _tiles(*rendered[-1])] == [5, 5, 5]
    texts = _assert_clear(rendered[-1][0])
    header = _squeezed(plots._term_label("smiling_woman_with_eyeglasses", 2.0, first=True, separator="\n"))
    assert header in texts
    assert texts[header].width <= TILE  # wrapped to its column


@pytest.mark.parametrize("plot", ["grid", "scored", "edits", "reconstructions"])
def test_other_tile_figures_keep_long_text_clear(tmp_path, rendered, plot):
    faces = _grey(range(0, 60, 10))
    if plot == "grid":  # a narrow figure: the title wraps to two tiles' width
        plots.plot_image_grid(faces[:2], tmp_path / "g.png", captions=["draw_with_a_long_caption_0", "1"],
                              title=LONG_TITLE)
    elif plot == "scored":
        plots.plot_scored_faces(faces, np.arange(6.0), tmp_path / "s.png", count=3, title=LONG_TITLE)
    elif plot == "edits":
        sweep = np.broadcast_to(faces[:2][None], (3, 2, 8, 8, 3))
        plots.plot_edit_sweep({"smiling_woman_with_eyeglasses_minus_neutral": sweep, "b": sweep}, [0.0, 1.5, 3.0],
                              tmp_path / "e.png", faces=2, title=LONG_TITLE)
    else:  # experiments.inversion's own method names
        methods = {name: faces for name in ("optimisation", "encoder", "encoder+optimisation")}
        plots.plot_reconstructions(faces, methods, tmp_path / "r.png", captions={m: ["31.0 dB"] * 6 for m in methods},
                                   count=4, title=LONG_TITLE)
    _tiles(*rendered[-1])
    assert _squeezed(LONG_TITLE) in _assert_clear(rendered[-1][0])


# --- Interpolation strips of any length give a PNG of bounded width ---

def _frame_faces(length: int) -> np.ndarray:
    """Frame i is a flat tile whose red and green channels spell i, so a shown tile names its frame."""
    index = np.arange(length)
    colours = np.stack([index % 256, index // 256, np.zeros_like(index)], axis=1).astype(np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (length, 8, 8, 3)).copy()


def _shown(rows: list[list[np.ndarray]]) -> list[int]:
    """The frame index of each tile of the first row, left to right."""
    return [int(tile[0, 0, 0]) + 256 * int(tile[0, 0, 1]) for tile in rows[0]]


def test_long_interpolation_is_thinned_to_a_bounded_width(tmp_path, rendered):
    points, steps = 20, 40  # `interpolation --config.num_points=20 --config.steps_per_segment=40`
    length = (points - 1) * steps + 1
    ts = np.linspace(0, points - 1, length)
    strips = {"lerp": _frame_faces(length), "slerp": _frame_faces(length)}
    path = plots.plot_interpolation(strips, tmp_path / "i.png", ts=ts, title="dcgan: lerp vs slerp through 20 points")
    width, height = Image.open(path).size
    assert width <= 4000 and height <= 400
    rows = _tiles(*rendered[-1])
    shown = _shown(rows)
    assert len(rows) == 2 and _shown(rows[1:]) == shown
    assert len(shown) == plots.MAX_STRIP_FRAMES and shown == sorted(set(shown))
    assert set(range(0, length, steps)) <= set(shown)  # both ends and every key point
    texts = _assert_clear(rendered[-1][0])
    headers = sorted((box.x0, float(text[2:])) for text, box in texts.items() if text.startswith("t="))
    np.testing.assert_allclose([t for _, t in headers], ts[shown], atol=0.005)  # each column headed by its own t
    assert any(f"{len(shown)}of{length}frames" in text for text in texts)  # the title says frames were left out


def test_interpolation_thinning_without_ts_heads_frames(tmp_path, rendered):
    plots.plot_interpolation(_frame_faces(300), tmp_path / "i.png", max_frames=10)
    shown = _shown(_tiles(*rendered[-1]))
    assert shown[0] == 0 and shown[-1] == 299 and len(shown) == 10
    assert {f"frame{i}" for i in shown} <= set(_assert_clear(rendered[-1][0]))


def test_shown_frames():
    np.testing.assert_array_equal(plots._shown_frames(5, [], 8), np.arange(5))
    frames = plots._shown_frames(761, range(0, 761, 40), 32)
    assert len(frames) == 32 and len(set(frames)) == 32 and set(range(0, 761, 40)) <= set(frames)
    frames = plots._shown_frames(101, [], 6)
    np.testing.assert_array_equal(frames, [0, 20, 40, 60, 80, 100])
    frames = plots._shown_frames(1000, range(0, 1000, 10), 8)  # more keys than columns: thin the keys, keep the ends
    assert len(frames) == 8 and frames[0] == 0 and frames[-1] == 999
    with pytest.raises(ValueError, match="max_frames"):
        plots.plot_interpolation(_frame_faces(3), "unused.png", max_frames=1)


def test_rates_by_k_and_rate_bars(tmp_path):
    curve = np.array([[1, 0.2, 0.1, 0.3], [3, 0.4, 0.3, 0.5], [10, 0.5, 0.4, 0.6]])
    panels = {"classifier": {"gan": curve, "vae": curve * [1, 0.5, 0.5, 0.5]}, "judge": {"gan": curve}}
    path = plots.plot_rates_by_k(panels, tmp_path / "k.png", references={"judge": {"random": (0.1, 0.05, 0.15)}},
                                 title="rate against k")
    width, height = Image.open(path).size
    assert width > height  # two panels side by side
    bars = {"classifier": {"k = 3": {"latent": (0.4, 0.3, 0.5), "image": (0.2, 0.1, 0.3)}, "k = 10": {"latent": (0.5, 0.4, 0.6)}}}
    assert np.asarray(Image.open(plots.plot_rate_bars(bars, tmp_path / "bars.png"))).ndim == 3
    _no_temporaries(tmp_path)
    with pytest.raises(ValueError, match=r"low <= rate <= high"):
        plots.plot_rate_bars({"judge": {"k = 3": {"latent": (0.4, 0.5, 0.6)}}}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        plots.plot_rates_by_k({"judge": {"gan": curve[:, :3]}}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="references name panels that do not exist"):
        plots.plot_rates_by_k(panels, tmp_path / "bad.png", references={"jury": {}})
