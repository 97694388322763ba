"""The evaluation figures of gan_arith.figures: pixel size as laid out, the right faces in the right rows.

(Belongs in tests/test_figures.py now that the functions live in figures.py.)
"""

import numpy as np
import pytest
from PIL import Image

from gan_arith.figures import plot_reconstructions, plot_scored_faces


def _solid_faces(values):
    """One flat-coloured 8×8 image per value, so a tile's colour identifies the face."""
    return np.broadcast_to(np.asarray(values, np.uint8)[:, None, None, None], (len(values), 8, 8, 3)).copy()


def _tile_centre(png, row, column, *, top, row_inches, left, dpi=100):
    """The pixel at the centre of tile (row, column) of a figure laid out in inches (see latent.plots)."""
    y = int((top + row * row_inches + 0.5) * dpi)
    x = int((left + column + 0.5) * dpi)
    return png[y, x, 0]


def test_scored_faces_put_the_best_first_and_the_worst_in_the_second_row(tmp_path):
    values = np.arange(0, 250, 25)  # 10 faces whose brightness is their index
    scores = np.array([0.3, 2.0, -1.0, 5.0, 0.0, 1.0, -3.0, 4.0, 3.0, -2.0])
    path = plot_scored_faces(_solid_faces(values), scores, tmp_path / "scored.png", count=3, title="D(G(z))")
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
    path = plot_reconstructions(originals, methods, tmp_path / "recon.png", captions=captions, count=4)
    png = np.asarray(Image.open(path).convert("RGB"))
    assert png.shape == (round(3 * 1.2 * 100), round((1.0 + 4) * 100), 3)
    for row, expected in enumerate([[10, 20, 30, 40], [50, 60, 70, 80], [90, 100, 110, 120]]):
        assert [_tile_centre(png, row, c, top=0.0, row_inches=1.2, left=1.0) for c in range(4)] == expected
    with pytest.raises(ValueError, match=r"reconstructions\['encoder'\] has shape"):
        plot_reconstructions(originals, {"encoder": originals[:2]}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"captions\['decoder'\]"):
        plot_reconstructions(originals, methods, tmp_path / "bad.png", captions={"decoder": ["x"] * 4})
