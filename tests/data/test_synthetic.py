"""Tests for gan_arith.data.synthetic: the procedural faces and their store."""

import json

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from gan_arith.data import synthetic
from gan_arith.data.store import FaceStore, StoreWriter, attribute_mask
from gan_arith.data.synthetic import (
    SYNTHETIC_ATTRIBUTES,
    ensure_synthetic_store,
    render_faces,
    write_synthetic_store,
)


def column(attributes: np.ndarray, name: str) -> np.ndarray:
    return attributes[:, SYNTHETIC_ATTRIBUTES.index(name)] > 0


def test_face_depends_only_on_seed_and_index():
    # 40 faces at 80x80 span two render chunks (25 faces each); the slice 20..29 crosses the
    # boundary in the big render but not in the small one.
    images, attributes = render_faces(7, 0, 40, 80)
    part_images, part_attributes = render_faces(7, 20, 10, 80)
    np.testing.assert_array_equal(part_images, images[20:30])
    np.testing.assert_array_equal(part_attributes, attributes[20:30])
    other_images, other_attributes = render_faces(8, 0, 40, 80)
    assert (other_images != images).any(axis=(1, 2, 3)).all()
    assert (other_attributes != attributes).any()


def test_dtypes_ranges_and_names():
    assert {"Smiling", "Male", "Eyeglasses"} <= set(SYNTHETIC_ATTRIBUTES)
    images, attributes = render_faces(0, 5, 12, 40)
    assert images.dtype == np.uint8 and images.shape == (12, 40, 40, 3)
    assert attributes.dtype == np.int8 and attributes.shape == (12, len(SYNTHETIC_ATTRIBUTES))
    assert set(np.unique(attributes)) <= {-1, 1}
    # Real contrast in every face: dark features and bright regions.
    assert (images.reshape(12, -1).min(1) < 60).all() and (images.reshape(12, -1).max(1) > 150).all()
    empty_images, empty_attributes = render_faces(0, 0, 0, 32)
    assert empty_images.shape == (0, 32, 32, 3) and empty_attributes.shape == (0, len(SYNTHETIC_ATTRIBUTES))


def test_same_look_at_every_size():
    big, _ = render_faces(3, 0, 16, 128)
    small, _ = render_faces(3, 0, 16, 32)
    pooled = big.astype(np.float32).reshape(16, 32, 4, 32, 4, 3).mean((2, 4))
    other, _ = render_faces(4, 0, 16, 32)
    assert np.abs(pooled - small).mean() < 3  # same face: only anti-aliasing differs (~1 level)
    assert np.abs(pooled - other).mean() > 30  # while different faces differ a lot


def test_windows_only_skip_empty_pixels(monkeypatch):
    # Each layer is evaluated in a window around its bounding box; painting every layer over
    # the whole image instead must give the same faces, or a window clips a shape. One face per
    # chunk makes the windows as tight as they get.
    monkeypatch.setattr(synthetic, "_CHUNK_PIXELS", 1)
    images, _ = render_faces(0, 0, 120, 128)
    monkeypatch.setattr(synthetic._Frame, "_span", lambda self, centre, lo, hi: slice(0, self.size))
    full, _ = render_faces(0, 0, 120, 128)
    np.testing.assert_array_equal(images, full)


def test_attributes_balanced_and_independent():
    _, attributes = render_faces(0, 0, 400, 8)
    np.testing.assert_allclose((attributes > 0).mean(0), 0.5, atol=0.06)
    smiling, male = column(attributes, "Smiling"), column(attributes, "Male")
    for s in (False, True):
        for m in (False, True):
            assert 75 <= ((smiling == s) & (male == m)).sum() <= 125


def pooled_features(images: np.ndarray) -> np.ndarray:
    """Max, min and mean of each colour over 8x8 windows at stride 4: tolerant of face jitter."""
    windows = sliding_window_view(images.astype(np.float32) / 255, (8, 8), axis=(1, 2))[:, ::4, ::4]
    n = len(images)
    return np.concatenate([f(windows, axis=(-1, -2)).reshape(n, -1) for f in (np.max, np.min, np.mean)], 1)


def held_out_accuracy(x: np.ndarray, y: np.ndarray, num_train: int) -> float:
    """Logistic regression (gradient descent, small L2) on the first num_train rows."""
    mean, std = x[:num_train].mean(0), x[:num_train].std(0) + 1e-3
    x = np.concatenate([(x - mean) / std, np.ones((len(x), 1), np.float32)], 1)
    w = np.zeros(x.shape[1], np.float32)
    for _ in range(300):
        p = 1 / (1 + np.exp(-np.clip(x[:num_train] @ w, -30, 30)))
        w -= x[:num_train].T @ (p - y[:num_train]) / num_train + 1e-3 * w
    return float(((x[num_train:] @ w > 0) == y[num_train:]).mean())


def test_attributes_are_learnable_from_pixels():
    images, attributes = render_faces(0, 0, 600, 40)
    x = pooled_features(images)
    accuracy = {name: held_out_accuracy(x, column(attributes, name), 400) for name in SYNTHETIC_ATTRIBUTES}
    assert accuracy["Smiling"] > 0.95 and accuracy["Male"] > 0.93, accuracy
    assert accuracy["Eyeglasses"] > 0.85 and accuracy["Blond_Hair"] > 0.95, accuracy
    # Control: labels unrelated to the pixels are not learnable, so the above is not overfitting.
    shuffled = np.random.default_rng(0).permutation(column(attributes, "Smiling"))
    assert held_out_accuracy(x, shuffled, 400) < 0.65


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seed=-1, start=0, count=1, size=32), "seed"),
        (dict(seed=0, start=-1, count=1, size=32), "start"),
        (dict(seed=0, start=0, count=1.5, size=32), "count"),
        (dict(seed=0, start=0, count=1, size=4), "size"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render_faces(**kwargs)


def test_store_round_trip(tmp_path):
    store = write_synthetic_store(tmp_path / "s", num_faces=30, image_sizes=[40, 32], seed=5, shard_size=12)
    assert isinstance(store, FaceStore)
    assert store.num_faces == 30 and store.image_sizes == [32, 40]
    assert store.attribute_names == list(SYNTHETIC_ATTRIBUTES)
    assert store.manifest["source"] == "synthetic" and store.manifest["complete"]
    assert store.manifest["settings"]["seed"] == 5 and store.manifest["settings"]["num_faces"] == 30
    assert [s["num_faces"] for s in store.manifest["shards"]] == [12, 12, 6]
    for size in (32, 40):
        images, attributes = render_faces(5, 0, 30, size)
        np.testing.assert_array_equal(store.images(size), images)
    np.testing.assert_array_equal(store.attributes, attributes)
    np.testing.assert_array_equal(store.partition, [(0, 0, 0, 0, 0, 0, 0, 0, 1, 2)[i % 10] for i in range(30)])
    assert (store.boxes == -1).all() and (store.confidence == 1).all() and (store.keypoints == -1).all()
    assert len(set(store.file_names)) == 30
    wanted = np.flatnonzero(attribute_mask("Smiling & ~Male", SYNTHETIC_ATTRIBUTES, attributes))
    np.testing.assert_array_equal(store.select("Smiling & ~Male"), wanted)


def test_interrupted_write_resumes_to_the_same_store(tmp_path, monkeypatch):
    reference = write_synthetic_store(tmp_path / "a", num_faces=25, image_sizes=[32], seed=2, shard_size=10)
    calls = []

    def dies_on_second_shard(seed, start, count, size):
        calls.append(start)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return render_faces(seed, start, count, size)

    monkeypatch.setattr(synthetic, "render_faces", dies_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic_store(tmp_path / "b", num_faces=25, image_sizes=[32], seed=2, shard_size=10)
    assert not json.loads((tmp_path / "b" / "manifest.json").read_text())["complete"]
    with pytest.raises(ValueError, match="incomplete"):
        FaceStore(tmp_path / "b")
    calls.clear()
    monkeypatch.setattr(synthetic, "render_faces", lambda *a: calls.append(a[1]) or render_faces(*a))
    resumed = write_synthetic_store(tmp_path / "b", num_faces=25, image_sizes=[32], seed=2, shard_size=10)
    assert calls == [10, 20]  # shard 0 was kept
    np.testing.assert_array_equal(resumed.images(32), reference.images(32))
    np.testing.assert_array_equal(resumed.attributes, reference.attributes)
    np.testing.assert_array_equal(resumed.partition, reference.partition)
    np.testing.assert_array_equal(resumed.file_names, reference.file_names)
    for name in ("images-32-00000.npy", "images-32-00001.npy", "images-32-00002.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_ensure_reuses_rewrites_and_protects(tmp_path):
    root = tmp_path / "s"
    first = ensure_synthetic_store(root, num_faces=20, image_sizes=[32, 40], seed=1, shard_size=8)
    stamp = (root / "meta-00000.npz").stat().st_mtime_ns
    again = ensure_synthetic_store(root, num_faces=20, image_sizes=[32], seed=1, shard_size=8)
    assert (root / "meta-00000.npz").stat().st_mtime_ns == stamp  # reused, not rewritten
    assert again.image_sizes == [32, 40]
    np.testing.assert_array_equal(again.images(32), first.images(32))

    changed = ensure_synthetic_store(root, num_faces=12, image_sizes=[32], seed=4, shard_size=8)
    assert changed.num_faces == 12 and changed.image_sizes == [32]
    np.testing.assert_array_equal(changed.images(32), render_faces(4, 0, 12, 32)[0])
    assert sorted(p.name for p in root.iterdir()) == [
        "images-32-00000.npy", "images-32-00001.npy", "manifest.json", "meta-00000.npz", "meta-00001.npz"
    ]

    real = tmp_path / "real"
    StoreWriter(real, image_sizes=[32], attribute_names=[], source="folder", settings={}).finalize()
    before = (real / "manifest.json").read_text()
    with pytest.raises(ValueError, match="not synthetic"):
        ensure_synthetic_store(real, num_faces=10, image_sizes=[32], seed=0)
    assert (real / "manifest.json").read_text() == before
