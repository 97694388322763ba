"""Tests for gan_arith/latent/plots.py: each figure writes a PNG of the expected size, tiles in place."""

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
