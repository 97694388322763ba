"""Tests for gan_arith/data/store.py: round trip, atomic resume, validation, attribute queries."""

import json
import shutil

import numpy as np
import pytest

from gan_arith.data.store import FaceStore, StoreWriter, attribute_mask, check_query, image_file, meta_file

NAMES = ["Smiling", "Male", "Eyeglasses", "5_o_Clock_Shadow"]
SIZES = [8, 4]


def make_shard(index: int, n: int, seed: int = 0):
    """Deterministic fake shard content: images, meta and counts."""
    rng = np.random.default_rng([seed, index])
    images = {s: rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8) for s in SIZES}
    meta = {
        "file_name": np.array([f"{index:03d}_{i}.jpg" for i in range(n)]),
        "attributes": rng.choice(np.array([-1, 1], np.int8), (n, len(NAMES))),
        "partition": rng.integers(0, 3, n).astype(np.int8),
        "box": rng.integers(0, 100, (n, 4)).astype(np.int32),
        "confidence": rng.random(n).astype(np.float32),
        "keypoints": rng.integers(0, 100, (n, 5, 2)).astype(np.int32),
    }
    counts = {"seen": n + 2, "kept": n, "skipped": {"no_face": 1, "corrupt": 1}}
    return images, meta, counts


def writer(root, **overrides):
    kwargs = dict(image_sizes=SIZES, attribute_names=NAMES, source="synthetic", settings={"seed": 1, "sizes": (8, 4)})
    kwargs.update(overrides)
    return StoreWriter(root, **kwargs)


SHARD_SIZES = [5, 0, 3, 7]


def write_all(root, shards=range(len(SHARD_SIZES))):
    w = writer(root)
    for i in shards:
        w.write_shard(i, *make_shard(i, SHARD_SIZES[i]))
    return w


def test_round_trip(tmp_path):
    manifest = write_all(tmp_path / "s").finalize({"absent": 9})
    assert manifest["complete"] and manifest["num_faces"] == sum(SHARD_SIZES)
    assert manifest["counts"] == {
        "absent": 9, "kept": 15, "seen": 23, "skipped": {"corrupt": 4, "no_face": 4}
    }
    store = FaceStore(tmp_path / "s")
    assert store.num_faces == 15 and store.image_sizes == [4, 8] and store.attribute_names == NAMES
    parts = [make_shard(i, n) for i, n in enumerate(SHARD_SIZES)]
    for size in SIZES:
        expected = np.concatenate([p[0][size] for p in parts])
        np.testing.assert_array_equal(store.images(size), expected)
        shards = store.image_shards(size)
        assert all(isinstance(s, np.memmap) for s in shards if s.size)
        order = np.array([14, 0, 5, 7, 5, 13])
        np.testing.assert_array_equal(store.gather(size, order), expected[order])
    for key, attr in [("attributes", "attributes"), ("partition", "partition"), ("box", "boxes"),
                      ("confidence", "confidence"), ("keypoints", "keypoints"), ("file_name", "file_names")]:
        expected = np.concatenate([p[1][key] for p in parts])
        np.testing.assert_array_equal(getattr(store, attr), expected)
        assert getattr(store, attr).dtype == expected.dtype
    with pytest.raises(ValueError, match=r"no 16x16 images; the store has sizes \[4, 8\]"):
        store.images(16)
    with pytest.raises(IndexError):
        store.gather(4, [15])


def test_content_key_follows_the_faces_not_the_path_or_layout(tmp_path):
    def key(name, settings=None, flip_labels=False):
        w = writer(tmp_path / name, **({"settings": settings} if settings else {}))
        for i, n in enumerate(SHARD_SIZES):
            images, meta, counts = make_shard(i, n)
            w.write_shard(i, images, {**meta, "attributes": -meta["attributes"]} if flip_labels else meta, counts)
        w.finalize()
        return FaceStore(tmp_path / name).content_key()

    original = key("a")
    shutil.copytree(tmp_path / "a", tmp_path / "moved")
    assert FaceStore(tmp_path / "moved").content_key() == original
    assert key("relaid", {"seed": 1, "sizes": (4,), "shard_size": 99}) == original
    assert key("seed2", {"seed": 2, "sizes": (8, 4)}) != original
    assert key("relabelled", flip_labels=True) != original


def test_interrupted_writer_resumes_to_identical_store(tmp_path):
    write_all(tmp_path / "full").finalize()
    # Interrupt: shards 0 and 2 complete, shard 3 killed after its image files
    # but before its meta file, plus a stray temp file from a half-done write.
    partial = tmp_path / "partial"
    w = write_all(partial, shards=[2, 0])
    images, _, _ = make_shard(3, SHARD_SIZES[3], seed=99)  # different content: must be overwritten
    for size, array in images.items():
        np.save(partial / image_file(size, 3), array)
    (partial / ".tmp-abc123").write_bytes(b"half")
    del w
    with pytest.raises(ValueError, match="incomplete"):
        FaceStore(partial)
    w = writer(partial)
    assert w.completed_shards() == {0, 2}
    assert not (partial / ".tmp-abc123").exists()
    for i in sorted(set(range(len(SHARD_SIZES))) - w.completed_shards()):
        w.write_shard(i, *make_shard(i, SHARD_SIZES[i]))
    assert w.finalize() == json.loads((tmp_path / "full" / "manifest.json").read_text())
    full, resumed = FaceStore(tmp_path / "full"), FaceStore(partial)
    for size in SIZES:
        np.testing.assert_array_equal(full.images(size), resumed.images(size))
    np.testing.assert_array_equal(full.attributes, resumed.attributes)
    np.testing.assert_array_equal(full.file_names, resumed.file_names)


def test_completion_is_read_from_meta_files(tmp_path):
    # A kill between a shard's meta write and the manifest update loses nothing:
    # completion is read from the meta files on reopen.
    root = tmp_path / "s"
    w = write_all(root, shards=[0])
    manifest_before = (root / "manifest.json").read_text()
    w.write_shard(1, *make_shard(1, SHARD_SIZES[1]))
    (root / "manifest.json").write_text(manifest_before)
    assert writer(root).completed_shards() == {0, 1}


def test_settings_mismatch_is_refused(tmp_path):
    write_all(tmp_path / "s", shards=[0])
    (tmp_path / "s" / ".tmp-leftover").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"other settings: seed 1 \(this command: 2\); use another"):
        writer(tmp_path / "s", settings={"seed": 2, "sizes": (8, 4)})
    assert (tmp_path / "s" / ".tmp-leftover").exists()  # a refused writer touches nothing
    with pytest.raises(ValueError, match="image_sizes"):
        writer(tmp_path / "s", image_sizes=[8])
    with pytest.raises(ValueError, match="attribute_names"):
        writer(tmp_path / "s", attribute_names=NAMES[:2])
    with pytest.raises(ValueError, match="source"):
        writer(tmp_path / "s", source="folder")
    other = tmp_path / "other"
    other.mkdir()
    (other / "photo.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="not empty and has no manifest.json"):
        writer(other)


def test_write_shard_validates(tmp_path):
    w = writer(tmp_path / "s")
    images, meta, counts = make_shard(0, 3)
    with pytest.raises(ValueError, match=r"images\[8\] must be uint8"):
        w.write_shard(0, {**images, 8: images[8].astype(np.float32)}, meta, counts)
    with pytest.raises(ValueError, match="attributes must be int8"):
        w.write_shard(0, images, {**meta, "attributes": meta["attributes"][:, :2]}, counts)
    with pytest.raises(ValueError, match=r"lacks \['keypoints'\]"):
        w.write_shard(0, images, {k: v for k, v in meta.items() if k != "keypoints"}, counts)
    assert w.completed_shards() == set()


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json missing"):
        FaceStore(tmp_path / "nowhere")
    write_all(tmp_path / "s").finalize()
    (tmp_path / "s" / image_file(8, 2)).write_bytes(b"garbage")
    with pytest.raises(ValueError, match="images-8-00002.npy: unreadable image shard"):
        FaceStore(tmp_path / "s")
    write_all(tmp_path / "t").finalize()
    (tmp_path / "t" / meta_file(0)).unlink()
    with pytest.raises(ValueError, match="meta-00000.npz: unreadable"):
        FaceStore(tmp_path / "t")
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt manifest"):
        FaceStore(tmp_path / "u")


def test_select(tmp_path):
    write_all(tmp_path / "s").finalize()
    store = FaceStore(tmp_path / "s")
    smiling = store.attributes[:, 0] > 0
    male = store.attributes[:, 1] > 0
    np.testing.assert_array_equal(store.select("Smiling & ~Male"), np.flatnonzero(smiling & ~male))
    np.testing.assert_array_equal(store.select(partition="valid"), np.flatnonzero(store.partition == 1))
    np.testing.assert_array_equal(
        store.select("Male", partition=2), np.flatnonzero(male & (store.partition == 2))
    )
    np.testing.assert_array_equal(store.select(), np.arange(15))
    with pytest.raises(ValueError, match="unknown partition 'dev'"):
        store.select(partition="dev")


# Rows: every combination of the first three attributes; the 4th is all -1.
ATTRS = np.array(
    [[1 if (row >> bit) & 1 else -1 for bit in range(3)] + [-1] for row in range(8)], np.int8
)
S, M, E = (ATTRS[:, i] > 0 for i in range(3))


@pytest.mark.parametrize(
    "query, expected",
    [
        ("Smiling", S),
        ("~Male", ~M),
        ("~~Male", M),
        ("Smiling & ~Male", S & ~M),
        ("Smiling | Male & Eyeglasses", S | (M & E)),  # & binds tighter than |
        ("(Smiling | Male) & Eyeglasses", (S | M) & E),
        ("~Smiling | Male", ~S | M),  # ~ binds tighter than |
        ("~(Smiling | Male)", ~(S | M)),
        ("(Smiling | Eyeglasses) & ~Male", (S | E) & ~M),
        ("  Smiling&Male|Eyeglasses  ", (S & M) | E),
        ("5_o_Clock_Shadow | Smiling", S),
    ],
)
def test_attribute_mask(query, expected):
    np.testing.assert_array_equal(attribute_mask(query, NAMES, ATTRS), expected)


@pytest.mark.parametrize(
    "query, message",
    [
        ("Smiling & Beard", r"unknown attribute 'Beard'; known: Smiling, Male, Eyeglasses, 5_o_Clock_Shadow"),
        ("", r"expected an attribute name.*found end of query at 0"),
        ("Smiling &", r"expected an attribute name.*found end of query at 9"),
        ("(Smiling | Male", r"expected '\)', found end of query"),
        ("Smiling Male", r"expected '&', '\|' or end of query, found 'Male' at 8"),
        ("Smiling)", r"found '\)' at 7"),
        ("Smiling && Male", r"expected an attribute name.*found '&' at 9"),
        ("Smiling ! Male", r"unexpected character '!' at 7"),
    ],
)
def test_attribute_mask_errors(query, message):
    with pytest.raises(ValueError, match=message):
        attribute_mask(query, NAMES, ATTRS)
    with pytest.raises(ValueError, match=message):  # the same check, before any faces are at hand
        check_query(query, NAMES)
