"""Tests for gan_arith/figures.py: each figure writes a PNG of the expected size, tiles in place, text clear."""

import os

import numpy as np
import pytest
from PIL import Image

from gan_arith import figures as plots

TILE = plots.TILE_INCHES * plots.DPI
CAPTION = plots.CAPTION_INCHES * plots.DPI
TITLE = plots.TITLE_INCHES * plots.DPI


def _solid(colors) -> np.ndarray:
    """One flat 12x12 tile per RGB colour, so a tile's centre pixel identifies it."""
    colors = np.asarray(colors, np.uint8)
    return np.broadcast_to(colors[:, None, None, :], (len(colors), 12, 12, 3)).copy()


def _distinct(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 3), dtype=np.uint8)


def _read(path) -> np.ndarray:
    assert os.path.getsize(path) > 0
    return np.asarray(Image.open(path).convert("RGB"))


def _centre(png: np.ndarray, left: float, top: float, row: int, column: int, row_height: float = TILE):
    return png[int(top + row * row_height + TILE / 2), int(left + (column + 0.5) * TILE)]


def _no_temporaries(directory):
    assert not [name for name in os.listdir(directory) if name.startswith(".tmp-")]


def test_to_uint8():
    floats = np.array([-1.0, 0.0, 1.0, 1.5]).reshape(1, 1, 4, 1).repeat(3, axis=-1)
    np.testing.assert_array_equal(plots.to_uint8(floats)[0, 0, :, 0], [0, 128, 255, 255])
    with pytest.raises(ValueError, match="H, W, 3"):
        plots.to_uint8(np.zeros((2, 8, 8)))


def test_image_grid_with_captions(tmp_path):
    colors = _distinct(7, 0)
    path = plots.plot_image_grid(_solid(colors) / 127.5 - 1.0, tmp_path / "grid.png",
                                 captions=[f"draw {i}" for i in range(7)], columns=3)
    png = _read(path)
    assert png.shape == (3 * (TILE + CAPTION), 3 * TILE, 3)  # 3 rows of 3, captions under each
    for index, color in enumerate(colors):
        np.testing.assert_allclose(_centre(png, 0, 0, index // 3, index % 3, TILE + CAPTION), color, atol=1)
    _no_temporaries(tmp_path)


def test_index_grid(tmp_path):
    colors = _distinct(12, 1)
    png = _read(plots.plot_index_grid(_solid(colors), tmp_path / "index.png", columns=5, title="pick faces"))
    assert png.shape == (TITLE + 3 * (TILE + CAPTION), 5 * TILE, 3)
    np.testing.assert_array_equal(_centre(png, 0, TITLE, 2, 1, TILE + CAPTION), colors[11])


def test_concept_arithmetic(tmp_path):
    colors = _distinct(3 + 2 + 3 + 3 + 2, 2)
    members = {"smiling_woman": _solid(colors[0:3]), "neutral_woman": _solid(colors[3:5]),
               "neutral_man": _solid(colors[5:8])}
    averages = {name: _solid(colors[8 + i: 9 + i])[0] for i, name in enumerate(members)}
    results = _solid(colors[11:13])
    coefficients = {"smiling_woman": 1.0, "neutral_woman": -1.0, "neutral_man": 0.5}
    path = plots.plot_concept_arithmetic(members, averages, coefficients, results, tmp_path / "c.png", title="t")
    png = _read(path)
    left, top = plots.LABEL_INCHES["concept"] * plots.DPI, TITLE + CAPTION
    assert png.shape == (top + 4 * TILE, left + 4 * TILE, 3)  # 3 concepts + result row; k=3 faces + average
    np.testing.assert_array_equal(_centre(png, left, top, 1, 1), colors[4])  # neutral_woman's 2nd face
    np.testing.assert_array_equal(_centre(png, left, top, 2, 3), colors[10])  # neutral_man's average
    np.testing.assert_array_equal(_centre(png, left, top, 3, 2), colors[11])  # results right-aligned
    np.testing.assert_array_equal(_centre(png, left, top, 3, 3), colors[12])
    with pytest.raises(ValueError, match="neutral_man"):
        plots.plot_concept_arithmetic(members, {}, coefficients, results, tmp_path / "bad.png")


def test_arithmetic_draws(tmp_path):
    colors = _distinct(4 * 3, 3).reshape(3, 4, 3)  # [concept or result, draw, rgb]
    averages = {"a": _solid(colors[0]), "b": _solid(colors[1])}
    png = _read(plots.plot_arithmetic_draws(averages, {"a": 1.0, "b": -1.0}, _solid(colors[2]), tmp_path / "d.png"))
    left = plots.LABEL_INCHES["draw"] * plots.DPI
    top = 2 * CAPTION  # two header lines: sign and coefficient over the name
    assert png.shape == (top + 4 * TILE, left + 3 * TILE, 3)
    np.testing.assert_array_equal(_centre(png, left, top, 2, 1), colors[1, 2])
    np.testing.assert_array_equal(_centre(png, left, top, 3, 2), colors[2, 3])


def test_interpolation(tmp_path):
    colors = _distinct(16, 4)
    strips = {"lerp": _solid(colors[:8]), "slerp": _solid(colors[8:])}
    png = _read(plots.plot_interpolation(strips, tmp_path / "i.png", ts=np.linspace(0, 1, 8)))
    left = plots.LABEL_INCHES["strip"] * plots.DPI
    assert png.shape == (CAPTION + 2 * TILE, left + 8 * TILE, 3)
    np.testing.assert_array_equal(_centre(png, left, CAPTION, 1, 7), colors[15])
    png = _read(plots.plot_interpolation(strips["lerp"], tmp_path / "one.png"))
    assert png.shape == (TILE, 8 * TILE, 3)
    with pytest.raises(ValueError, match="one T"):
        plots.plot_interpolation({"a": strips["lerp"], "b": strips["slerp"][:5]}, tmp_path / "bad.png")


def test_histograms(tmp_path):
    rng = np.random.default_rng(5)
    width, height = (inches * plots.DPI for inches in plots.PANEL_INCHES)
    vectors = {name: rng.normal(size=(3, 100)).mean(axis=0) for name in ("a", "b", "c")}
    png = _read(plots.plot_concept_histograms(vectors, tmp_path / "h.png", title="concept vectors"))
    assert png.shape == (height, 3 * width, 3)
    assert (png < 250).any(axis=-1).mean() > 0.02  # something was drawn
    png = _read(plots.plot_dimension_histograms(rng.normal(size=(90, 10)), tmp_path / "d.png", dimensions=[0, 1, 2, 9]))
    assert png.shape == (2 * height, 3 * width, 3)
    with pytest.raises(ValueError, match="dimensions"):
        plots.plot_dimension_histograms(rng.normal(size=(90, 10)), tmp_path / "bad.png", dimensions=[10])
    _no_temporaries(tmp_path)


def _solid_faces(values):
    """One flat-coloured 8×8 image per value, so a tile's colour identifies the face."""
    return np.broadcast_to(np.asarray(values, np.uint8)[:, None, None, None], (len(values), 8, 8, 3)).copy()


def _tile_centre(png, row, column, *, top, row_inches, left, dpi=100):
    """The pixel at the centre of tile (row, column) of a figure laid out in inches (see gan_arith.figures)."""
    y = int((top + row * row_inches + 0.5) * dpi)
    x = int((left + column + 0.5) * dpi)
    return png[y, x, 0]


def test_scored_faces_put_the_best_first_and_the_worst_in_the_second_row(tmp_path):
    values = np.arange(0, 250, 25)  # 10 faces whose brightness is their index
    scores = np.array([0.3, 2.0, -1.0, 5.0, 0.0, 1.0, -3.0, 4.0, 3.0, -2.0])
    path = plots.plot_scored_faces(_solid_faces(values), scores, tmp_path / "scored.png", count=3, title="D(G(z))")
    png = np.asarray(Image.open(path).convert("RGB"))
    # Title 0.4 in, rows of 1 in tile + 0.2 in caption, 1.0 in label column, 3 columns.
    assert png.shape == (round((0.4 + 2 * 1.2) * 100), round((1.0 + 3) * 100), 3)
    best = [_tile_centre(png, 0, c, top=0.4, row_inches=1.2, left=1.0) for c in range(3)]
    worst = [_tile_centre(png, 1, c, top=0.4, row_inches=1.2, left=1.0) for c in range(3)]
    assert best == [values[3], values[7], values[8]]  # scores 5, 4, 3
    assert worst == [values[6], values[9], values[2]]  # scores -3, -2, -1


def test_reconstructions_stack_originals_over_each_method(tmp_path):
    originals = _solid_faces([10, 20, 30, 40])
    methods = {"optimisation": _solid_faces([50, 60, 70, 80]), "encoder": _solid_faces([90, 100, 110, 120])}
    captions = {"optimisation": ["31.0 dB", "30.5 dB", "29.9 dB", "33.2 dB"]}
    path = plots.plot_reconstructions(originals, methods, tmp_path / "recon.png", captions=captions, count=4)
    png = np.asarray(Image.open(path).convert("RGB"))
    assert png.shape == (round(3 * 1.2 * 100), round((1.0 + 4) * 100), 3)
    for row, expected in enumerate([[10, 20, 30, 40], [50, 60, 70, 80], [90, 100, 110, 120]]):
        assert [_tile_centre(png, row, c, top=0.0, row_inches=1.2, left=1.0) for c in range(4)] == expected
    with pytest.raises(ValueError, match=r"reconstructions\['encoder'\] has shape"):
        plots.plot_reconstructions(originals, {"encoder": originals[:2]}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"captions\['decoder'\]"):
        plots.plot_reconstructions(originals, methods, tmp_path / "bad.png", captions={"decoder": ["x"] * 4})


def test_roc_curves(tmp_path):
    path = plots.plot_roc_curves({"held out (AUC 0.75)": (np.array([0, 0.5, 1]), np.array([0, 1, 1]))},
                                 tmp_path / "roc.png", title="good vs bad noise")
    png = _read(path)
    assert png.shape[:2] == (plots.PANEL_INCHES[1] * plots.DPI, plots.PANEL_INCHES[0] * plots.DPI)
    assert (png != 255).any(axis=-1).mean() > 0.02  # axes, curve and labels drawn, not a blank canvas
    _no_temporaries(tmp_path)
    with pytest.raises(ValueError, match="one length"):
        plots.plot_roc_curves({"bad": (np.zeros(3), np.zeros(4))}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="empty"):
        plots.plot_roc_curves({}, tmp_path / "none.png")


# --- Text never overlaps a tile or other text, and is never clipped, however long the labels ---

LONG_COEFFICIENTS = {"smiling_woman_with_eyeglasses": 2.0, "neutral_woman": -0.5, "blond_young_woman": -0.5,
                     "neutral_man": 1.0}
LONG_TITLE = ("2*smiling_woman_with_eyeglasses - (neutral_woman + blond_young_woman)/2 + neutral_man - neutral_man"
              " (synthetic concepts)")


@pytest.fixture
def rendered(monkeypatch):
    """The Figure objects the plot functions save, in call order (the PNGs are still written)."""
    figures, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or save(fig, path))
    return figures


def _overlap(a, b, tolerance=0.5) -> bool:
    """Whether two display-space boxes share more than `tolerance` pixels in both directions."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tolerance and min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance


def _assert_clear(fig) -> dict[str, object]:
    """Every text inside the figure and clear of every tile and every other text; tiles apart. Returns
    {text without line breaks or spaces: its box}."""
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    tiles = [axes.get_window_extent(renderer) for axes in fig.axes]
    texts = {text.get_text(): text.get_window_extent(renderer) for text in fig.texts if text.get_text()}
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
    return {"".join(text.split()): box for text, box in texts.items()}


def _squeezed(text: str) -> str:
    return "".join(text.split())


def test_arithmetic_figure_fits_long_names_and_a_long_title(tmp_path, rendered):
    faces = _solid_faces(range(0, 120, 10))
    members = {name: faces[:3] for name in LONG_COEFFICIENTS}
    averages = {name: faces[3] for name in LONG_COEFFICIENTS}
    plots.plot_concept_arithmetic(members, averages, LONG_COEFFICIENTS, faces[4:6], tmp_path / "a.png",
                                  title=LONG_TITLE)
    texts = _assert_clear(rendered[-1])
    # Nothing was cut: every row label and the whole title are there (line breaks aside).
    assert _squeezed(LONG_TITLE) in texts
    assert _squeezed(plots._term_label("smiling_woman_with_eyeglasses", 2.0, first=True)) in texts
    assert "=result" in texts
    assert Image.open(tmp_path / "a.png").size[0] <= 1000  # widened for the labels, not blown up


def test_draws_headers_fit_their_columns(tmp_path, rendered):
    faces = _solid_faces([10, 20, 30])
    averages = {name: faces for name in LONG_COEFFICIENTS}
    plots.plot_arithmetic_draws(averages, LONG_COEFFICIENTS, faces, tmp_path / "d.png", title=LONG_TITLE)
    texts = _assert_clear(rendered[-1])
    header = _squeezed(plots._term_label("smiling_woman_with_eyeglasses", 2.0, first=True, separator="\n"))
    assert header in texts
    assert texts[header].width <= plots.TILE_INCHES * plots.DPI  # wrapped to its column


def test_default_inversion_labels_clear_the_first_column(tmp_path, rendered):
    """experiments.inversion's own method names: "encoder+optimisation" ran over the first image."""
    originals = _solid_faces([10, 20, 30, 40])
    methods = {name: originals for name in ("optimisation", "encoder", "encoder+optimisation")}
    captions = {name: ["31.0 dB"] * 4 for name in methods}
    path = plots.plot_reconstructions(originals, methods, tmp_path / "r.png", captions=captions,
                                      title="inverting 4 test faces")
    texts = _assert_clear(rendered[-1])
    assert "encoder+optimisation" in texts
    assert Image.open(path).size[0] < 700  # the label column grew only as much as the label needs


@pytest.mark.parametrize("plot", ["grid", "scored", "edits"])
def test_other_tile_figures_keep_long_text_clear(tmp_path, rendered, plot):
    faces = _solid_faces(range(0, 60, 10))
    if plot == "grid":  # a narrow figure: the title wraps to two tiles' width
        plots.plot_image_grid(faces[:2], tmp_path / "g.png", captions=["draw_with_a_long_caption_0", "1"],
                              title=LONG_TITLE)
    elif plot == "scored":
        plots.plot_scored_faces(faces, np.arange(6.0), tmp_path / "s.png", count=3, title=LONG_TITLE)
    else:
        sweep = np.broadcast_to(faces[:2][None], (3, 2, 8, 8, 3))
        plots.plot_edit_sweep({"smiling_woman_with_eyeglasses_minus_neutral": sweep, "b": sweep}, [0.0, 1.5, 3.0],
                              tmp_path / "e.png", faces=2, title=LONG_TITLE)
    texts = _assert_clear(rendered[-1])
    assert _squeezed(LONG_TITLE) in texts


def test_short_labels_keep_the_default_layout(tmp_path):
    """The least sizes stay what the pixel-exact tests above assume: nothing grows for short text."""
    faces = _solid_faces([10, 20])
    png = _read(plots.plot_arithmetic_draws({"a": faces, "b": faces}, {"a": 1.0, "b": -0.5}, faces, tmp_path / "d.png",
                                            title="synthetic concepts, 2 draws"))
    assert png.shape == (TITLE + 2 * CAPTION + 2 * TILE, plots.LABEL_INCHES["draw"] * plots.DPI + 3 * TILE, 3)


# --- Interpolation strips of any length give a PNG of bounded width ---

def _frame_faces(length: int) -> np.ndarray:
    """Frame i is a flat tile whose red and green channels spell i, so a shown tile names its frame."""
    index = np.arange(length)
    colours = np.stack([index % 256, index // 256, np.zeros_like(index)], axis=1).astype(np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (length, 8, 8, 3)).copy()


def _shown(fig, rows: int) -> list[int]:
    """The frame index of each tile of the first row, left to right."""
    tiles = sorted(fig.axes, key=lambda axes: (-round(axes.get_position().y0, 6), axes.get_position().x0))
    first_row = tiles[: len(tiles) // rows]
    return [int(a.images[0].get_array()[0, 0, 0]) + 256 * int(a.images[0].get_array()[0, 0, 1]) for a in first_row]


def test_long_interpolation_is_thinned_to_a_bounded_width(tmp_path, rendered):
    points, steps = 20, 40  # `interpolation --config.num_points=20 --config.steps_per_segment=40`
    length = (points - 1) * steps + 1
    ts = np.linspace(0, points - 1, length)
    strips = {"lerp": _frame_faces(length), "slerp": _frame_faces(length)}
    path = plots.plot_interpolation(strips, tmp_path / "i.png", ts=ts, title="dcgan: lerp vs slerp through 20 points")
    width, height = Image.open(path).size
    assert width <= 4000 and height <= 400
    fig = rendered[-1]
    texts = _assert_clear(fig)
    shown = _shown(fig, rows=2)
    assert len(shown) == plots.MAX_STRIP_FRAMES and shown == sorted(set(shown))
    assert set(range(0, length, steps)) <= set(shown)  # both ends and every key point
    headers = sorted((box.x0, float(text[2:])) for text, box in texts.items() if text.startswith("t="))
    np.testing.assert_allclose([t for _, t in headers], ts[shown], atol=0.005)  # each column headed by its own t
    assert any(f"{len(shown)}of{length}frames" in text for text in texts)  # the title says frames were left out


def test_interpolation_thinning_without_ts_heads_frames(tmp_path, rendered):
    path = plots.plot_interpolation(_frame_faces(300), tmp_path / "i.png", max_frames=10)
    assert Image.open(path).size[0] == 10 * TILE
    shown = _shown(rendered[-1], rows=1)
    assert shown[0] == 0 and shown[-1] == 299 and len(shown) == 10
    texts = _assert_clear(rendered[-1])
    assert {f"frame{i}" for i in shown} <= set(texts)


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
    assert _read(path).shape[1] > _read(path).shape[0]  # two panels side by side
    bars = {"classifier": {"k = 3": {"latent": (0.4, 0.3, 0.5), "image": (0.2, 0.1, 0.3)}, "k = 10": {"latent": (0.5, 0.4, 0.6)}}}
    assert _read(plots.plot_rate_bars(bars, tmp_path / "bars.png")).ndim == 3
    _no_temporaries(tmp_path)
    with pytest.raises(ValueError, match=r"low <= rate <= high"):
        plots.plot_rate_bars({"judge": {"k = 3": {"latent": (0.4, 0.5, 0.6)}}}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        plots.plot_rates_by_k({"judge": {"gan": curve[:, :3]}}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="references name panels that do not exist"):
        plots.plot_rates_by_k(panels, tmp_path / "bad.png", references={"jury": {}})
