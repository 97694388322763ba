"""Tests for gan_arith.data.device: the device-resident input pipeline."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from gan_arith.data import device
from gan_arith.data.device import DeviceFaces, epoch_permutation, fits_on_device

REPO_ROOT = Path(__file__).resolve().parents[2]

N, SIZE, BATCH = 37, 4, 8


def indexed_faces(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Image i is filled with the value i, so a batch's pixels say which faces it holds."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, SIZE, SIZE, 3)).copy()
    attributes = np.where(np.random.default_rng(0).random((n, 3)) < 0.5, 1, -1).astype(np.int8)
    return images, attributes


def faces_of(batch: dict) -> np.ndarray:
    return np.asarray(batch["image"])[..., 0, 0, 0].astype(np.int64)


def test_batch_contents_shapes_and_dtypes():
    images, attributes = indexed_faces()
    data = DeviceFaces(images, attributes, batch_size=BATCH, seed=3)
    assert data.steps_per_epoch == N // BATCH == 4
    order = epoch_permutation(3, 1, N)
    batch = data.batch(1, 2)
    assert batch["image"].dtype == np.uint8 and batch["image"].shape == (BATCH, SIZE, SIZE, 3)
    assert batch["attributes"].dtype == np.int8 and batch["attributes"].shape == (BATCH, 3)
    np.testing.assert_array_equal(np.asarray(batch["image"]), images[order[16:24]])
    np.testing.assert_array_equal(np.asarray(batch["attributes"]), attributes[order[16:24]])
    no_attributes = DeviceFaces(images, batch_size=BATCH, seed=3).batch(1, 2)
    assert set(no_attributes) == {"image"}
    np.testing.assert_array_equal(np.asarray(no_attributes["image"]), images[order[16:24]])


def test_each_epoch_is_a_permutation_and_epochs_differ():
    images, attributes = indexed_faces()
    data = DeviceFaces(images, attributes, batch_size=BATCH, seed=3)
    orders = []
    for epoch in range(3):
        seen = np.concatenate([faces_of(b) for b in data.epoch_batches(epoch)])
        assert len(seen) == data.steps_per_epoch * BATCH and len(set(seen)) == len(seen)
        np.testing.assert_array_equal(seen, epoch_permutation(3, epoch, N)[: len(seen)])
        orders.append(seen)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])


def test_same_seed_same_batches_other_seed_other_batches():
    images, attributes = indexed_faces()
    a = DeviceFaces(images, attributes, batch_size=BATCH, seed=11)
    b = DeviceFaces(images, attributes, batch_size=BATCH, seed=11)
    c = DeviceFaces(images, attributes, batch_size=BATCH, seed=12)
    for step in range(a.steps_per_epoch):
        np.testing.assert_array_equal(faces_of(a.batch(2, step)), faces_of(b.batch(2, step)))
    assert not np.array_equal(faces_of(a.batch(2, 0)), faces_of(c.batch(2, 0)))


def test_host_permutation_equals_device_permutation():
    images, _ = indexed_faces()
    data = DeviceFaces(images, batch_size=BATCH, seed=5)
    for epoch in (0, 1, 7):
        host = epoch_permutation(5, epoch, N)
        assert host.dtype == np.int32 and sorted(host) == list(range(N))
        np.testing.assert_array_equal(np.asarray(data.permutation(epoch)), host)
    expected = jax.random.permutation(jax.random.fold_in(jax.random.key(5), 7), N)
    np.testing.assert_array_equal(epoch_permutation(5, 7, N), np.asarray(expected))


def test_stacked_batches_and_resume_match_single_batches():
    images, attributes = indexed_faces()
    data = DeviceFaces(images, attributes, batch_size=BATCH, seed=3)
    stacked = data.stacked_batches(4, 1, 3)
    assert stacked["image"].shape == (3, BATCH, SIZE, SIZE, 3) and stacked["attributes"].shape == (3, BATCH, 3)
    for k in range(3):
        single = data.batch(4, 1 + k)
        for name in ("image", "attributes"):
            np.testing.assert_array_equal(np.asarray(stacked[name][k]), np.asarray(single[name]))
    tail = [faces_of(b) for b in data.epoch_batches(4, start_step=2)]
    assert len(tail) == 2
    np.testing.assert_array_equal(np.stack(tail), faces_of(data.stacked_batches(4, 2, 2)))
    assert list(data.epoch_batches(4, start_step=data.steps_per_epoch)) == []


def test_compiles_once_for_all_steps_epochs_and_seeds():
    images, _ = indexed_faces()
    DeviceFaces(images, batch_size=BATCH, seed=3).batch(0, 0)
    compiled = device._gather._cache_size(), device._device_permutation._cache_size()
    for seed in (3, 4):
        data = DeviceFaces(images, batch_size=BATCH, seed=seed)
        for epoch in range(2):
            for step in range(data.steps_per_epoch):
                data.batch(epoch, step)
    assert (device._gather._cache_size(), device._device_permutation._cache_size()) == compiled


def test_bad_arguments():
    images, attributes = indexed_faces()
    with pytest.raises(ValueError, match="uint8"):
        DeviceFaces(images.astype(np.float32), batch_size=BATCH, seed=0)
    with pytest.raises(ValueError, match="attributes"):
        DeviceFaces(images, attributes[:5], batch_size=BATCH, seed=0)
    with pytest.raises(ValueError, match="exceeds"):
        DeviceFaces(images, batch_size=N + 1, seed=0)
    data = DeviceFaces(images, batch_size=BATCH, seed=0)
    with pytest.raises(ValueError, match="exceed the epoch's 4 steps"):
        data.batch(0, 4)
    with pytest.raises(ValueError, match="exceed"):
        data.stacked_batches(0, 2, 3)
    with pytest.raises(ValueError, match="epoch"):
        data.batch(-1, 0)


def test_fits_on_device():
    assert fits_on_device(1 << 20)
    assert not fits_on_device(1 << 60)
    cpu = jax.local_devices()[0]
    assert fits_on_device(1 << 20, [cpu] * 4)
    with pytest.raises(ValueError, match="num_bytes"):
        fits_on_device(-1)


FOUR_DEVICES = textwrap.dedent(
    """
    import jax, numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    from gan_arith.data.device import DeviceFaces
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 6, 6, 3), dtype=np.uint8)
    attributes = np.where(rng.random((30, 2)) < 0.5, 1, -1).astype(np.int8)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharded = DeviceFaces(images, attributes, batch_size=8, seed=9, mesh=mesh)
    single = DeviceFaces(images, attributes, batch_size=8, seed=9)
    for epoch, step in [(0, 0), (1, 2)]:
        a, b = sharded.batch(epoch, step), single.batch(epoch, step)
        for name in ("image", "attributes"):
            assert a[name].sharding.spec == P("data"), a[name].sharding
            assert len(a[name].sharding.device_set) == 4
            assert sorted(s.data.shape[0] for s in a[name].addressable_shards) == [2, 2, 2, 2]
            np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))
    stacked = sharded.stacked_batches(1, 0, 3)
    assert stacked["image"].sharding.spec == P(None, "data")
    assert {s.data.shape[:2] for s in stacked["image"].addressable_shards} == {(3, 2)}
    np.testing.assert_array_equal(np.asarray(stacked["image"][2]), np.asarray(single.batch(1, 2)["image"]))
    try:
        DeviceFaces(images, batch_size=6, seed=9, mesh=mesh)
    except ValueError as e:
        assert "not divisible by the 4 devices" in str(e), e
    else:
        raise AssertionError("batch_size 6 on 4 devices was accepted")
    print("four devices ok")
    """
)


@pytest.mark.slow
def test_four_devices_shard_the_batch_and_match_one_device():
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "four devices ok" in result.stdout
