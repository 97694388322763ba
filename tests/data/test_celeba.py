"""Tests for gan_arith/data/celeba.py on tiny fake CelebA layouts built in tmp_path."""

import numpy as np
import pytest
from PIL import Image

from gan_arith.data.celeba import read_attributes, read_celeba, read_partition

NAMES = ["5_o_Clock_Shadow", "Male", "Smiling"]
ROWS = {  # file: (attributes, partition); rows for 000002 and 000005 have no image
    "000001.jpg": ([-1, 1, 1], 0),
    "000002.jpg": ([1, 1, -1], 0),
    "000003.jpg": ([-1, -1, 1], 1),
    "000004.jpg": ([-1, -1, -1], 2),
    "000005.jpg": ([1, -1, 1], 2),
}
PRESENT = ["000004.jpg", "000001.jpg", "000003.jpg"]


def write_layout(root, rows=ROWS, present=PRESENT, names=NAMES, count=None, drive=False):
    """A CelebA layout: flat, or the Google-Drive Img/Anno/Eval one."""
    images = root / ("Img" if drive else "") / "img_align_celeba"
    images.mkdir(parents=True)
    for name in present:
        Image.new("RGB", (4, 4)).save(images / name)
    attr = root / ("Anno" if drive else "") / "list_attr_celeba.txt"
    part = root / ("Eval" if drive else "") / "list_eval_partition.txt"
    attr.parent.mkdir(exist_ok=True)
    part.parent.mkdir(exist_ok=True)
    lines = [str(len(rows) if count is None else count), " ".join(names)]
    lines += [f"{f} " + " ".join(f"{v:2d}" for v in a) for f, (a, _) in rows.items()]
    attr.write_text("\n".join(lines) + "\n")
    part.write_text("".join(f"{f} {p}\n" for f, (_, p) in rows.items()))
    return attr, part


@pytest.mark.parametrize("drive", [False, True])
def test_read_celeba_tolerates_absent_rows(tmp_path, drive):
    write_layout(tmp_path, drive=drive)
    (tmp_path / ("Img" if drive else "") / "img_align_celeba" / "999999.jpg").write_bytes(b"unlisted")
    index = read_celeba(tmp_path)
    assert index.attribute_names == tuple(NAMES)
    assert index.file_names == ("000001.jpg", "000003.jpg", "000004.jpg")
    np.testing.assert_array_equal(index.attributes, [[-1, 1, 1], [-1, -1, 1], [-1, -1, -1]])
    assert index.attributes.dtype == np.int8
    np.testing.assert_array_equal(index.partition, [0, 1, 2])
    assert (index.num_rows, index.absent, index.unlisted) == (5, 2, 1)


def test_all_absent(tmp_path):
    write_layout(tmp_path, present=[])
    index = read_celeba(tmp_path)
    assert index.file_names == () and index.attributes.shape == (0, 3) and index.absent == 5


def test_read_attributes_and_partition(tmp_path):
    attr, part = write_layout(tmp_path)
    names, files, values = read_attributes(attr)
    assert names == tuple(NAMES) and files == list(ROWS)
    np.testing.assert_array_equal(values, [a for a, _ in ROWS.values()])
    assert read_partition(part) == {f: p for f, (_, p) in ROWS.items()}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda lines: ["5x"] + lines[1:], r"list_attr_celeba.txt line 1: expected the row count"),
        (lambda lines: lines[:4] + ["000003.jpg  1 -1"] + lines[5:], r"list_attr_celeba.txt line 5: expected 4 fields"),
        (lambda lines: lines[:3] + [lines[3].replace("-1", " 0", 1)] + lines[4:], r"line 4: .* must be 1 or -1, got '0'"),
        (lambda lines: lines[:3] + [lines[3].replace("-1", "-x", 1)] + lines[4:], r"line 4: .* must be 1 or -1, got '-x'"),
        (lambda lines: lines + [lines[2]], r"line 8: duplicate file name '000001.jpg'"),
        (lambda lines: ["6"] + lines[1:], r"line 1 declares 6 rows but the file has 5"),
        (lambda lines: lines[:1], r"expected a row count on line 1 and attribute names on line 2"),
    ],
)
def test_malformed_attribute_file(tmp_path, edit, message):
    attr, _ = write_layout(tmp_path)
    attr.write_text("\n".join(edit(attr.read_text().splitlines())) + "\n")
    with pytest.raises(ValueError, match=message):
        read_celeba(tmp_path)


def test_malformed_partition_file(tmp_path):
    _, part = write_layout(tmp_path)
    lines = part.read_text().splitlines()
    part.write_text("\n".join(lines[:2] + ["000003.jpg 3"] + lines[3:]) + "\n")
    with pytest.raises(ValueError, match=r"list_eval_partition.txt line 3: expected '<file> <0\|1\|2>'"):
        read_celeba(tmp_path)
    part.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"no partition for 1 files of list_attr_celeba.txt, e.g. '000005.jpg'"):
        read_celeba(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        read_celeba(tmp_path / "nowhere")
    _, part = write_layout(tmp_path)
    part.unlink()
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt not found"):
        read_celeba(tmp_path)
