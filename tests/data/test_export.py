"""Tests for gan_arith/data/export.py: a store's faces packed as JPEGs, and unpacked into a store again."""

import json

import numpy as np
import pytest

from gan_arith.data import export
from gan_arith.data.export import PackError, export_pack, psnr, read_pack, unpack
from gan_arith.data.store import StoreWriter
from gan_arith.data.synthetic import ensure_synthetic_store

META = ("file_names", "attributes", "partition", "boxes", "confidence", "keypoints")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """60 synthetic faces (48 train, 6 valid, 6 test) at 40 and 80 px, in three shards."""
    return ensure_synthetic_store(
        tmp_path_factory.mktemp("synthetic") / "faces", num_faces=60, image_sizes=(40, 80), shard_size=25
    )


@pytest.fixture(scope="module")
def pack_path(store, tmp_path_factory):
    path = tmp_path_factory.mktemp("pack") / "faces_80.npz"
    export_pack(store, 80, path, quality=90, workers=2, progress=False)
    return path


def test_pack_and_unpack_keep_every_label_and_the_faces_within_jpeg_error(store, pack_path, tmp_path):
    pack = read_pack(pack_path)
    assert pack.num_faces == 60 and pack.image_size == 80 and pack.attribute_names == store.attribute_names
    header = pack.header
    assert header["quality"] == 90 and header["partitions"] == ["train", "valid", "test"]
    assert header["source"] == "synthetic" and header["source_content_key"] == store.content_key()
    assert 28 < header["psnr"]["min_db"] <= header["psnr"]["mean_db"]

    unpacked = unpack(pack, tmp_path / "store", sizes=(80, 40), workers=2, shard_size=16, progress=False)
    assert unpacked.image_sizes == [40, 80] and unpacked.num_faces == 60
    assert [s["num_faces"] for s in unpacked.manifest["shards"]] == [16, 16, 16, 12]
    assert unpacked.manifest["source"] == "synthetic" and unpacked.attribute_names == store.attribute_names
    for name in META:
        np.testing.assert_array_equal(getattr(unpacked, name), getattr(store, name), err_msg=name)
    np.testing.assert_array_equal(unpacked.select("Smiling & ~Male", "test"), store.select("Smiling & ~Male", "test"))
    # JPEG at quality 90 (measured: min 30.9 dB at 80 px; 32.4 dB at 40 px, resized from the decoded
    # 80 px faces while the store renders 40 px directly).
    assert psnr(store.images(80), unpacked.images(80)).min() > 28
    assert psnr(store.images(40), unpacked.images(40)).min() > 28
    # Other pixels than the original's: artifacts keyed by the content (the classifier) are kept apart.
    assert unpacked.content_key() != store.content_key()

    again = unpack(pack_path, tmp_path / "store", sizes=(40, 80), shard_size=16, progress=False)  # finished: kept
    assert again.content_key() == unpacked.content_key()
    with pytest.raises(PackError, match="other settings"):
        unpack(pack, tmp_path / "store", progress=False)


def test_an_interrupted_unpack_resumes(store, pack_path, tmp_path):
    pack = read_pack(pack_path)
    complete = unpack(pack, tmp_path / "whole", shard_size=16, progress=False)
    (tmp_path / "part").mkdir()
    writer = StoreWriter(tmp_path / "part", image_sizes=[80], attribute_names=pack.attribute_names,
                         source="synthetic", settings=export.unpacked_settings(pack, [80], 16))
    rows = slice(16, 32)
    writer.write_shard(1, {80: complete.images(80)[rows]}, {k: v[rows] for k, v in pack.meta.items()},
                       {"seen": 16, "kept": 16, "skipped": {}})
    resumed = unpack(pack, tmp_path / "part", shard_size=16, progress=False)
    np.testing.assert_array_equal(resumed.images(80), complete.images(80))
    assert resumed.content_key() == complete.content_key()


def test_partitions_select_faces(store, tmp_path):
    info = export_pack(store, 40, tmp_path / "held_out.npz", partitions=["valid", "test"], quality=80, progress=False)
    pack = read_pack(tmp_path / "held_out.npz")
    assert info["partitions"] == ["valid", "test"] and pack.num_faces == 12
    assert set(pack.meta["partition"].tolist()) == {1, 2}
    np.testing.assert_array_equal(pack.meta["file_name"], store.file_names[store.partition > 0])


def test_automatic_quality_fits_the_budget(store, pack_path, tmp_path):
    budget = 0.8 * pack_path.stat().st_size  # below the quality-90 pack
    info = export_pack(store, 80, tmp_path / "fit.npz", max_mb=budget / 1e6, progress=False)
    assert info["bytes"] <= budget and info["bytes"] == (tmp_path / "fit.npz").stat().st_size
    assert export.MIN_AUTO_QUALITY <= info["quality"] < 90
    with pytest.raises(PackError, match="do not fit"):
        export_pack(store, 80, tmp_path / "tiny.npz", max_mb=0.01, progress=False)
    assert not (tmp_path / "tiny.npz").exists()


def _rewrite(source, target, **changes):
    """Copy the pack at `source` to `target` with members changed (None drops one)."""
    with np.load(source) as pack:
        arrays = {name: pack[name] for name in pack.files}
    for name, value in changes.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value
    np.savez(target, **arrays)
    return target


def test_bad_stores_and_options_are_refused_with_clear_errors(store, tmp_path):
    with pytest.raises(PackError, match="no prepared-faces store"):
        export_pack(tmp_path / "nowhere", 80, tmp_path / "p.npz")
    StoreWriter(tmp_path / "half", image_sizes=[80], attribute_names=["Smiling"], source="synthetic", settings={})
    with pytest.raises(PackError, match="incomplete"):
        export_pack(tmp_path / "half", 80, tmp_path / "p.npz")
    with pytest.raises(PackError, match=r"--size 64: .* has sizes \[40, 80\]"):
        export_pack(store, 64, tmp_path / "p.npz")
    with pytest.raises(PackError, match="--partitions: unknown partition 'training'"):
        export_pack(store, 80, tmp_path / "p.npz", partitions=["training"])
    with pytest.raises(PackError, match="--quality"):
        export_pack(store, 80, tmp_path / "p.npz", quality=100)
    assert not (tmp_path / "p.npz").exists()


def test_bad_packs_are_refused_with_clear_errors(pack_path, tmp_path):
    with pytest.raises(PackError, match="no such pack file"):
        read_pack(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a pack")
    with pytest.raises(PackError, match="not an .npz archive"):
        read_pack(tmp_path / "text.npz")
    with pytest.raises(PackError, match="no header"):
        read_pack(_rewrite(pack_path, tmp_path / "headless.npz", header=None))
    other = np.array(json.dumps({"format": "something/1"}))
    with pytest.raises(PackError, match="format 'something/1'"):
        read_pack(_rewrite(pack_path, tmp_path / "other.npz", header=other))
    with np.load(pack_path) as pack:
        offsets, jpeg, attributes = pack["offsets"].copy(), pack["jpeg"], pack["attributes"]
    offsets[3] = offsets[2]
    with pytest.raises(PackError, match="offsets must rise"):
        read_pack(_rewrite(pack_path, tmp_path / "offsets.npz", offsets=offsets))
    with pytest.raises(PackError, match="attributes must be"):
        read_pack(_rewrite(pack_path, tmp_path / "labels.npz", attributes=attributes[:, :2]))
    garbled = _rewrite(pack_path, tmp_path / "garbled.npz", jpeg=np.full_like(jpeg, 7))
    with pytest.raises(PackError, match=r"face 0 \(synthetic_00000000\) does not decode"):
        unpack(garbled, tmp_path / "garbled_store", progress=False)
    with pytest.raises(PackError, match=r"holds 80 px faces; unpacked sizes must lie in \[8, 80\]"):
        unpack(pack_path, tmp_path / "big", sizes=[80, 128], progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(PackError, match="--output: .* is not empty"):
        unpack(pack_path, tmp_path / "busy", progress=False)


def test_command_line_errors_are_one_line(pack_path, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        export.main(["--unpack", str(tmp_path / "missing.npz"), "--output", str(tmp_path / "s")])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().count("\n") == 0
    with pytest.raises(SystemExit) as exit_info:
        export.main(["--store", str(tmp_path), "--output", str(tmp_path / "p.npz")])
    assert exit_info.value.code == 2 and "--size is required" in capsys.readouterr().err
    result = export.main(["--unpack", str(pack_path), "--output", str(tmp_path / "s"), "--sizes", "80,40", "--quiet"])
    assert result["num_faces"] == 60 and result["partitions"] == {"train": 48, "valid": 6, "test": 6}
    assert "unpacked 60 faces (train 48, valid 6, test 6)" in capsys.readouterr().out
