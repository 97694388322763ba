"""Tests for gan_arith/data/raw_images.py: every bad-input kind named, folder listing, tfds celeb_a by index ranges."""

import pickle

import numpy as np
import pytest
from gan_arith.data import raw_images


def test_every_bad_input_kind_is_named(bad_folder):
    root, _ = bad_folder
    source = raw_images.folder_source(root)
    assert source.files == (  # sorted by relative path, nested folders included, hidden files left out
        "corrupt.jpg", "good.jpg", "gray.png", "gray16.png", "nested/cmyk.jpg", "nested/deeper/good.webp",
        "noise.png", "notes.txt", "rgba.png", "tiny.png", "truncated.jpg", "two.jpg",
    )
    records = {r.file_name: r for r in source.records(0, len(source))}
    reasons = {name: r.reason for name, r in records.items() if r.image is None}
    assert reasons == {"corrupt.jpg": "corrupt", "truncated.jpg": "truncated", "notes.txt": "not_image"}
    notes = {name: r.notes for name, r in records.items() if r.notes}
    assert notes == {
        "gray.png": ("converted_L",), "nested/cmyk.jpg": ("converted_CMYK",), "rgba.png": ("converted_RGBA",),
        "gray16.png": ("converted_I;16",),
    }
    for name in ("gray.png", "gray16.png"):  # gray stays gray; 16-bit values are scaled to 8 bits
        image = records[name].image.astype(int)
        assert (image == image[..., :1]).all() and image.max() > 200, name
    good = records["good.jpg"].image
    assert good.shape == (192, 192, 3) and good.dtype == np.uint8
    assert all(r.partition == 0 and r.attributes.shape == (0,) for r in records.values())


def test_folder_mistakes_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        raw_images.folder_source(tmp_path / "missing")
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no files"):
        raw_images.folder_source(tmp_path / "empty")


def test_rgba_is_composited_on_white():
    from PIL import Image

    transparent = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    transparent.putpixel((1, 0), (10, 20, 30, 255))
    rgb, notes = raw_images.to_rgb(transparent)
    np.testing.assert_array_equal(rgb, [[[255, 255, 255], [10, 20, 30]]])
    assert notes == ("converted_RGBA",)


def test_tfds_celeb_a_is_read_in_split_order_by_index(mock_celeb_a):
    source = raw_images.tfds_source()
    assert len(source) == sum(mock_celeb_a.splits.values()) and source.split_sizes == tuple(mock_celeb_a.splits.items())
    assert len(source.attribute_names) == 40 and "Smiling" in source.attribute_names
    source = pickle.loads(pickle.dumps(source))  # worker processes get a copy
    records = list(source.records(2, 5))  # crosses both split borders
    assert [r.file_name for r in records] == [
        "celeb_a-train.tfrecord-00000-of-00001__2",
        "celeb_a-validation.tfrecord-00000-of-00001__0",
        "celeb_a-test.tfrecord-00000-of-00001__0",
    ]
    assert [r.partition for r in records] == [0, 1, 2]
    smiling = source.attribute_names.index("Smiling")
    for record, (split, index) in zip(records, [("train", 2), ("validation", 0), ("test", 0)]):
        np.testing.assert_array_equal(record.image, mock_celeb_a.image(split, index))
        expected = np.full(len(source.attribute_names), -1, np.int8)
        expected[smiling] = 1 if index % 2 == 0 else -1
        np.testing.assert_array_equal(record.attributes, expected)
