"""Tests for gan_arith/data/prepare.py: MTCNN on real photos, every bad-input kind, kill -9 and resume.

The detector is slow (TensorFlow start-up ~8 s, ~0.1 s per image), so the
module builds it once and keeps every test to a few small images.
"""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from gan_arith.data import prepare as prep
from gan_arith.data.store import FaceStore, meta_file

REPO = Path(__file__).resolve().parents[2]
SHARED_CELEBA = REPO.parent / "shared" / "data" / "celeba"
ASTRONAUT_BOX = np.array([182, 64, 83, 107])


@pytest.fixture(scope="module")
def detector():
    """The detector prepare's in-process mode uses (built once per process)."""
    settings = prep.PrepareSettings()
    return prep._cached_detector(settings.min_confidence, settings.max_detect_side)


def astronaut_head(size: int = 192) -> np.ndarray:
    """A size x size crop of skimage's astronaut around her face (face ~ 0.2 * size wide)."""
    return np.asarray(Image.fromarray(skimage.data.astronaut()[0:384, 32:416]).resize((size, size)))


def save(path: Path, array_or_image, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    image.save(path, fmt)


def test_astronaut_box(detector):
    [faces] = detector.detect([skimage.data.astronaut()])
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, ASTRONAUT_BOX, atol=3)
    assert faces[0].confidence > 0.99
    left_eye, right_eye, nose = faces[0].keypoints[:3]
    assert left_eye[0] < nose[0] < right_eye[0] and nose[1] > left_eye[1]


def test_square_crop():
    # A tall box is widened around its centre; a box at the border is shifted inside.
    assert prep.square_crop((40, 10, 20, 40), 100, 100) == (30.0, 10.0, 70.0, 50.0)
    assert prep.square_crop((0, 0, 20, 40), 100, 100) == (0.0, 0.0, 40.0, 40.0)
    assert prep.square_crop((90, 80, 10, 20), 100, 100, margin=1.5) == (70.0, 70.0, 100.0, 100.0)
    # Never larger than the image's shorter side.
    assert prep.square_crop((0, 0, 60, 90), 60, 100) == (0.0, 15.0, 60.0, 75.0)


def make_bad_folder(root: Path) -> dict:
    """A folder with every bad-input kind; returns the expected manifest counts."""
    head = astronaut_head()
    jpeg = io.BytesIO()
    Image.fromarray(head).save(jpeg, "JPEG", quality=90)
    jpeg = jpeg.getvalue()
    save(root / "good.jpg", head)
    save(root / "nested" / "deeper" / "good.webp", head)
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    scan = jpeg.find(b"\xff\xda")  # start of scan: a broken scan header is a corrupt JPEG
    (root / "corrupt.jpg").write_bytes(jpeg[: scan + 4] + b"\xff" * 36 + jpeg[scan + 40 :])
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(jpeg)  # hidden files are not part of the source
    save(root / "gray.png", Image.fromarray(head).convert("L"))
    save(root / "nested" / "cmyk.jpg", Image.fromarray(head).convert("CMYK"))
    save(root / "rgba.png", Image.fromarray(head).convert("RGBA"))
    save(root / "gray16.png", Image.fromarray(head[..., 1].astype(np.uint16) * 257))
    save(root / "tiny.png", head[::8, ::8])  # 24 x 24 < min_image_size
    save(root / "noise.png", np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    save(root / "two.jpg", np.concatenate([head, head[:, ::-1]], axis=1))
    return {
        "seen": 12,
        "kept": 7,
        "skipped": {"corrupt": 1, "truncated": 1, "not_image": 1, "too_small": 1, "no_face": 1},
        "handled": {
            "converted_L": 1, "converted_CMYK": 1, "converted_RGBA": 1, "converted_I;16": 1, "multiple_faces": 1
        },
    }


def test_bad_inputs_are_counted(tmp_path, detector):
    expected = make_bad_folder(tmp_path / "raw")
    settings = prep.PrepareSettings(sizes=(32, 16), shard_size=5)
    manifest = prep.prepare(prep.folder_source(tmp_path / "raw"), tmp_path / "store", settings, progress=False)
    assert manifest["counts"] == expected
    assert manifest["complete"] and manifest["num_faces"] == 7 and len(manifest["shards"]) == 3
    store = FaceStore(tmp_path / "store")
    assert sorted(store.file_names) == sorted(
        ["good.jpg", "nested/deeper/good.webp", "gray.png", "nested/cmyk.jpg", "rgba.png", "gray16.png", "two.jpg"]
    )
    by_name = {name: i for i, name in enumerate(store.file_names)}
    images = store.images(32)
    gray = images[by_name["gray.png"]].astype(int)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    # The two-face image keeps one face; its box lies in one half of the 384-wide image.
    x, _, w, _ = store.boxes[by_name["two.jpg"]]
    assert x + w <= 192 or x >= 192
    assert store.attributes.shape == (7, 0) and (store.partition == 0).all()
    assert (store.confidence >= 0.8).all()


def test_crops_are_centred_faces(tmp_path, detector):
    save(tmp_path / "raw" / "a.png", skimage.data.astronaut())
    settings = prep.PrepareSettings(sizes=(40,))
    prep.prepare(prep.folder_source(tmp_path / "raw"), tmp_path / "s", settings, progress=False)
    store = FaceStore(tmp_path / "s")
    np.testing.assert_allclose(store.boxes[0], ASTRONAUT_BOX, atol=3)
    # Keypoints mapped into the 40 x 40 crop: eyes in the upper half, nose near the middle.
    left, top, right, bottom = prep.square_crop(tuple(store.boxes[0]), 512, 512)
    kp = (store.keypoints[0] - [left, top]) * 40 / (right - left)
    assert (kp[:2, 1] < 20).all() and 14 < kp[2, 0] < 26 and 14 < kp[2, 1] < 30
    # The crop is the resized square of the photo (compare with an independent crop, then resize).
    square = Image.fromarray(skimage.data.astronaut()).crop(tuple(round(v) for v in (left, top, right, bottom)))
    expected = np.asarray(square.resize((40, 40), Image.Resampling.BICUBIC)).astype(int)
    assert np.abs(store.images(40)[0].astype(int) - expected).mean() < 3


@pytest.mark.skipif(not SHARED_CELEBA.is_dir(), reason=f"shared CelebA subset not found at {SHARED_CELEBA}")
def test_shared_celeba_handful(tmp_path, detector):
    settings = prep.PrepareSettings(sizes=(80,), limit=6, shard_size=4)
    source = prep.celeba_source(SHARED_CELEBA)
    manifest = prep.prepare(source, tmp_path / "s", settings, progress=False)
    assert manifest["counts"]["seen"] == 6 and manifest["counts"]["absent"] == source.extra_counts["absent"] > 0
    store = FaceStore(tmp_path / "s")
    assert store.num_faces >= 5 and store.attribute_names == list(source.attribute_names)
    rows = [source.files.index(name) for name in store.file_names]
    np.testing.assert_array_equal(store.attributes, source.attributes[rows])
    np.testing.assert_array_equal(store.partition, source.partition[rows])
    # Aligned CelebA faces sit near the centre of the 178 x 218 image.
    centres = store.boxes[:, :2] + store.boxes[:, 2:] / 2
    assert (np.abs(centres - [89, 120]) < 25).all(), centres
    assert ((store.boxes[:, 2] > 50) & (store.boxes[:, 2] < 130)).all()
    assert store.images(80).shape == (store.num_faces, 80, 80, 3)


def make_face_folder(root: Path, n: int = 12) -> None:
    """n distinct small face photos (shifted, flipped, re-lit astronaut heads)."""
    head = astronaut_head(224)
    for i in range(n):
        image = np.roll(head, (4 * i, -3 * i), axis=(0, 1))[16:208, 16:208]
        image = image[:, ::-1] if i % 2 else image
        save(root / f"face{i:02d}.png", np.clip(image * (0.8 + 0.04 * i), 0, 255).astype(np.uint8))


def store_files(root: Path) -> dict[str, object]:
    """Everything in a store, comparable: arrays of every .npy/.npz and the manifest."""
    out: dict[str, object] = {}
    for path in sorted(root.iterdir()):
        if path.suffix == ".npy":
            out[path.name] = np.load(path)
        elif path.suffix == ".npz":
            with np.load(path) as f:
                out.update({f"{path.name}:{k}": f[k] for k in f.files})
        else:
            out[path.name] = json.loads(path.read_text())
    return out


def test_kill_and_resume_gives_identical_store(tmp_path, detector):
    import tensorflow as tf

    # The killed run is a fresh process with one TF thread; the in-process runs must match it bit for bit.
    assert tf.config.threading.get_intra_op_parallelism_threads() == 1, "TF was initialised before this module"
    make_face_folder(tmp_path / "raw")
    killed = tmp_path / "killed"
    command = [
        sys.executable, "-m", "gan_arith.data.prepare", "--source", "folder", "--input", str(tmp_path / "raw"),
        "--output", str(killed), "--sizes", "24,16", "--shard-size", "3", "--processes", "1", "--quiet",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = {}

    def kill_after_first_shard() -> None:
        while child.poll() is None and not (killed / meta_file(0)).exists():
            time.sleep(0.01)
        state["alive"] = child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait()

    watcher = threading.Thread(target=kill_after_first_shard)
    watcher.start()
    settings = prep.PrepareSettings(sizes=(24, 16), shard_size=3)
    source = prep.folder_source(tmp_path / "raw")
    prep.prepare(source, tmp_path / "reference", settings, progress=False)  # meanwhile: the uninterrupted run
    watcher.join(timeout=120)
    assert state.get("alive"), f"the child ended before the kill: {child.stderr.read().decode()[-2000:]}"
    child.stderr.close()
    partial = json.loads((killed / "manifest.json").read_text())
    assert not partial["complete"] and len(list(killed.glob("meta-*.npz"))) < 4
    with pytest.raises(ValueError, match="incomplete"):
        FaceStore(killed)

    resumed = prep.prepare(source, killed, settings, progress=False)
    assert resumed["run"]["images"] < 12  # finished shards were skipped
    reference, result = store_files(tmp_path / "reference"), store_files(killed)
    assert reference.keys() == result.keys() and not any(k.startswith(".tmp") for k in result)
    for key, value in reference.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(result[key], value, err_msg=key)
        else:
            assert result[key] == value, key
    assert FaceStore(killed).num_faces == 12


def folder_command(raw: Path, output: Path, *args: str) -> list[str]:
    return ["--source", "folder", "--input", str(raw), "--output", str(output), "--quiet", *args]


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of a directory with its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.iterdir())}


def test_size_order_is_irrelevant_and_legacy_order_resumes(tmp_path, detector, capsys):
    make_face_folder(tmp_path / "raw", n=2)
    raw, store = tmp_path / "raw", tmp_path / "store"
    prep.main(folder_command(raw, store, "--sizes", "24,16", "--shard-size", "1", "--processes", "1"))
    assert json.loads((store / "manifest.json").read_text())["settings"]["sizes"] == [16, 24]
    before = snapshot(store)
    capsys.readouterr()

    # The same store in the other order: already complete, nothing rewritten, the real process count.
    manifest = prep.main(folder_command(raw, store, "--sizes", "16,24", "--shard-size", "1", "--processes", "2"))
    out = capsys.readouterr().out
    assert out.startswith("the store was already complete: nothing to do") and "this run" not in out
    assert manifest["run"]["already_complete"] and manifest["run"]["processes"] == 0
    assert manifest["run"]["processes_requested"] == 2
    assert snapshot(store) == before

    # A store prepared before sizes were sorted lists them as given; the same command resumes it.
    legacy = json.loads((store / "manifest.json").read_text())
    legacy["settings"]["sizes"], legacy["complete"] = [24, 16], False
    (store / "manifest.json").write_text(json.dumps(legacy))
    (store / meta_file(1)).unlink()
    manifest = prep.main(folder_command(raw, store, "--sizes", "24,16", "--shard-size", "1", "--processes", "2"))
    assert manifest["complete"] and manifest["settings"]["sizes"] == [24, 16]
    assert json.loads((store / "manifest.json").read_text())["settings"]["sizes"] == [24, 16]
    assert manifest["run"]["images"] == 1 and manifest["run"]["processes"] == 1  # one shard left: one process
    assert "with 1 process(es) (2 requested, 1 shard(s) to do)" in capsys.readouterr().out
    assert FaceStore(store).num_faces == 2


def test_cli_mistakes_are_one_line_errors(tmp_path, detector, capsys):
    make_face_folder(tmp_path / "raw", n=1)
    raw, store = tmp_path / "raw", tmp_path / "store"

    def fails(args: list[str], code: int) -> str:
        with pytest.raises(SystemExit) as exit_info:
            prep.main(args)
        assert exit_info.value.code == code
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return err.strip().splitlines()[-1]

    assert "error: sizes must be distinct, got [40, 40]" in fails(folder_command(raw, store, "--sizes", "40,40"), 2)
    assert "error: shard_size must be >= 1, got 0" in fails(folder_command(raw, store, "--shard-size", "0"), 2)
    assert "argument --processes: must be >= 1" in fails(folder_command(raw, store, "--processes", "0"), 2)
    assert "--input: image folder" in fails(folder_command(tmp_path / "missing", store), 1)
    with pytest.raises(prep.PrepareError, match="distinct"):
        prep.PrepareSettings(sizes=(40, 40))
    assert not store.exists()

    prep.main(folder_command(raw, store, "--sizes", "24,16", "--processes", "1"))
    (store / ".tmp-leftover").write_bytes(b"x")  # the refused command must not even clean up
    before = snapshot(store)
    capsys.readouterr()
    err = fails(folder_command(raw, store, "--sizes", "32", "--processes", "1"), 1)
    assert err == (
        f"python -m gan_arith.data.prepare: error: output {store} holds a store prepared with other settings: "
        "sizes [16, 24] (this command: [32]). Choose another output directory, or rerun with the store's "
        "settings to resume or reuse it"
    )
    assert snapshot(store) == before
    assert "not empty and holds no prepared-faces store" in fails(folder_command(raw, raw, "--processes", "1"), 1)


def test_ctrl_c_stops_workers_at_once_and_resumes(tmp_path, detector):
    make_face_folder(tmp_path / "raw", n=40)
    store = tmp_path / "store"
    command = [sys.executable, "-m", "gan_arith.data.prepare"] + folder_command(
        tmp_path / "raw", store, "--sizes", "24,16", "--shard-size", "2", "--processes", "2"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # Its own process group, which a terminal's Ctrl-C signals as a whole (parent and workers).
    child = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and not (store / meta_file(0)).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.poll() is None, f"the child ended before Ctrl-C: {child.stderr.read().decode()[-2000:]}"
        interrupted = time.monotonic()
        os.killpg(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=30)
        elapsed = time.monotonic() - interrupted
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    err = err.decode()
    assert child.returncode == 130 and elapsed < 5, (child.returncode, elapsed, err[-2000:])  # was 8 s: workers finished their shards
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        "python -m gan_arith.data.prepare: interrupted; finished shards are kept: rerun the same command to resume"
    )
    for _ in range(200):  # the workers went with it
        try:
            os.killpg(child.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    else:
        raise AssertionError("processes of the interrupted run are still alive")
    assert not json.loads((store / "manifest.json").read_text())["complete"]

    settings = prep.PrepareSettings(sizes=(16, 24), shard_size=2)
    source = prep.folder_source(tmp_path / "raw")
    resumed = prep.prepare(source, store, settings, progress=False)
    assert resumed["complete"] and 0 < resumed["run"]["images"] < 40 and resumed["counts"]["seen"] == 40
    prep.prepare(source, tmp_path / "reference", settings, progress=False)
    reference, result = store_files(tmp_path / "reference"), store_files(store)
    assert reference.keys() == result.keys()
    for key, value in reference.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(result[key], value, err_msg=key)
        else:
            assert result[key] == value, key
