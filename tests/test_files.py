"""Atomic writes: readable permissions, and a failed write leaves the old file and no temporary behind."""

import json
import os
import stat

import pytest

from gan_arith.files import atomic_write, write_json


def test_write_json_round_trips_with_normal_permissions(tmp_path):
    path = write_json({"fid": 1.5}, tmp_path / "sub" / "summary.json")
    assert json.loads(path.read_text()) == {"fid": 1.5}
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600


def test_failed_write_keeps_the_old_file(tmp_path):
    path = write_json({"version": 1}, tmp_path / "summary.json")

    def explode(file):
        file.write(b'{"version": 2, "trunc')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, explode)
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
