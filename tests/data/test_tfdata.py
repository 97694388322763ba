"""Tests for gan_arith/data/tfdata.py: order, per-host slices, agreement with the device-resident path."""

import numpy as np
import pytest

from gan_arith.data.device import DeviceFaces, epoch_permutation
from gan_arith.data.store import FaceStore, StoreWriter
from gan_arith.data.tfdata import host_batch_indices, make_tfdata_iterator

NAMES = ["Smiling", "Male"]
N, SIZE = 23, 6  # 23 faces over 3 shards (10, 0, 13): batches cross shard borders


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Face i has every pixel of its 6x6 image equal to i (and 2*i+1 at size 4): its index is readable."""
    root = tmp_path_factory.mktemp("store")
    writer = StoreWriter(root, image_sizes=[SIZE, 4], attribute_names=NAMES, source="synthetic", settings={})
    rng = np.random.default_rng(3)
    attributes = rng.choice(np.array([-1, 1], np.int8), (N, 2))
    start = 0
    for index, n in enumerate([10, 0, 13]):
        ids = np.arange(start, start + n)
        writer.write_shard(
            index,
            {
                SIZE: np.broadcast_to(ids[:, None, None, None], (n, SIZE, SIZE, 3)).astype(np.uint8),
                4: np.broadcast_to(2 * ids[:, None, None, None] + 1, (n, 4, 4, 3)).astype(np.uint8),
            },
            {
                "file_name": np.array([f"{i}.jpg" for i in ids], dtype=str),
                "attributes": attributes[ids],
                "partition": (ids % 3).astype(np.int8),
                "box": np.full((n, 4), -1, np.int32),
                "confidence": np.ones(n, np.float32),
                "keypoints": np.full((n, 5, 2), -1, np.int32),
            },
            {"seen": n, "kept": n, "skipped": {}},
        )
        start += n
    writer.finalize()
    return FaceStore(root)


def batches(store, **kwargs):
    args = dict(size=SIZE, batch_size=4, seed=7, epoch=0, process_index=0, process_count=1)
    return list(make_tfdata_iterator(store, **{**args, **kwargs}))


def test_batches_follow_the_epoch_permutation(store):
    out = batches(store, epoch=2)
    assert len(out) == N // 4
    expected = epoch_permutation(7, 2, N)[: 5 * 4].reshape(5, 4)
    for batch, ids in zip(out, expected):
        assert batch["image"].dtype == np.uint8 and batch["image"].shape == (4, SIZE, SIZE, 3)
        assert batch["attributes"].dtype == np.int8 and batch["attributes"].shape == (4, 2)
        np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], ids)
        assert (batch["image"] == ids[:, None, None, None]).all()
        np.testing.assert_array_equal(batch["attributes"], store.attributes[ids])
    other = batches(store, size=4, epoch=2)
    np.testing.assert_array_equal(other[0]["image"][:, 0, 0, 0], 2 * expected[0] + 1)


def test_deterministic_by_seed_and_epoch(store):
    first = [b["image"][:, 0, 0, 0] for b in batches(store)]
    again = [b["image"][:, 0, 0, 0] for b in batches(store)]
    np.testing.assert_array_equal(first, again)
    for other in (batches(store, seed=8), batches(store, epoch=1)):
        assert not np.array_equal(first, [b["image"][:, 0, 0, 0] for b in other])


def test_same_batches_as_the_device_resident_path(store):
    device = DeviceFaces(store.images(SIZE), store.attributes, batch_size=4, seed=7)
    for epoch in (0, 3):
        tf_batches = batches(store, epoch=epoch)
        dev_batches = list(device.epoch_batches(epoch))
        assert len(tf_batches) == len(dev_batches) == 5
        for a, b in zip(tf_batches, dev_batches):
            np.testing.assert_array_equal(a["image"], np.asarray(b["image"]))
            np.testing.assert_array_equal(a["attributes"], np.asarray(b["attributes"]))


def test_selection_matches_device_path_on_the_subset(store):
    chosen = store.select("Smiling | Male", partition="train")
    assert 4 <= len(chosen) < N
    device = DeviceFaces(store.images(SIZE)[chosen], store.attributes[chosen], batch_size=2, seed=1)
    tf_batches = batches(store, indices=chosen, batch_size=2, seed=1, epoch=1)
    assert len(tf_batches) == len(chosen) // 2
    for a, b in zip(tf_batches, device.epoch_batches(1)):
        np.testing.assert_array_equal(a["image"], np.asarray(b["image"]))
        assert set(a["image"][:, 0, 0, 0]) <= set(chosen)


def test_hosts_take_contiguous_slices_of_each_global_batch(store):
    full = batches(store, batch_size=6)
    halves = [batches(store, batch_size=6, process_index=p, process_count=2) for p in range(2)]
    for k, batch in enumerate(full):
        joined = np.concatenate([halves[0][k]["image"], halves[1][k]["image"]])
        np.testing.assert_array_equal(joined, batch["image"])
        assert halves[1][k]["image"].shape[0] == 3


def test_start_step_resumes_mid_epoch(store):
    full = batches(store)
    tail = batches(store, start_step=3)
    assert len(tail) == 2
    np.testing.assert_array_equal(tail[0]["image"], full[3]["image"])


def test_errors(store):
    with pytest.raises(ValueError, match="positive multiple of process_count 2"):
        batches(store, batch_size=5, process_count=2)
    with pytest.raises(ValueError, match="exceeds the 23 selected faces"):
        batches(store, batch_size=24)
    with pytest.raises(ValueError, match=r"no 80x80 images; the store has sizes \[4, 6\]"):
        batches(store, size=80)
    with pytest.raises(ValueError, match="process_index 2 not in"):
        host_batch_indices(0, 0, np.arange(8), 4, process_index=2, process_count=2)
