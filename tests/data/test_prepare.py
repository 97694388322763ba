"""Tests for gan_arith/data/prepare.py: counts over every bad-input kind, the tfds command, kill -9, Ctrl-C, resume.

The detector is slow (TensorFlow start-up ~8 s, ~0.1 s per image), so every test keeps to a few small
images and the in-process ones share one detector. Runs that must be stopped midway hold a worker on a
named pipe among the input files (reading it blocks until the test lets go), so they cannot finish first.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_arith.data import prepare as prep
from gan_arith.data import raw_images
from gan_arith.data.store import FaceStore, meta_file

REPO = Path(__file__).resolve().parents[2]
SHARED_CELEBA = REPO.parent / "shared" / "data" / "celeba"


def test_bad_inputs_are_counted(tmp_path, detector, bad_folder):
    raw, expected = bad_folder
    settings = prep.PrepareSettings(sizes=(32, 16), shard_size=5)
    manifest = prep.prepare(raw_images.folder_source(raw), tmp_path / "store", settings, progress=False)
    assert manifest["counts"] == expected
    assert manifest["complete"] and manifest["num_faces"] == 7 and len(manifest["shards"]) == 3
    store = FaceStore(tmp_path / "store")
    assert sorted(store.file_names) == sorted(
        ["good.jpg", "nested/deeper/good.webp", "gray.png", "nested/cmyk.jpg", "rgba.png", "gray16.png", "two.jpg"]
    )
    by_name = {name: i for i, name in enumerate(store.file_names)}
    # The two-face image keeps one face; its box lies in one half of the 384-wide image.
    x, _, w, _ = store.boxes[by_name["two.jpg"]]
    assert x + w <= 192 or x >= 192
    assert store.attributes.shape == (7, 0) and (store.partition == 0).all()
    assert (store.confidence >= 0.8).all()
    assert store.images(32).shape == (7, 32, 32, 3) and store.images(16).shape == (7, 16, 16, 3)


def test_tfds_command_prepares_celeb_a(tmp_path, detector, mock_celeb_a, capsys):
    """`python -m gan_arith.data.prepare --source tfds` over tensorflow-datasets' mock of celeb_a."""
    store = tmp_path / "store"
    manifest = prep.main(["--source", "tfds", "--output", str(store), "--sizes", "24", "--shard-size", "4",
                          "--processes", "1", "--quiet"])
    assert "store: 6 faces in 2 shards, sizes [24]" in capsys.readouterr().out
    assert manifest["complete"] and manifest["source"] == "tfds" and manifest["counts"]["seen"] == 6
    faces = FaceStore(store)
    splits = [(split, i) for split, n in mock_celeb_a.splits.items() for i in range(n)]
    assert list(faces.file_names) == [f"celeb_a-{split}.tfrecord-00000-of-00001__{i}" for split, i in splits]
    np.testing.assert_array_equal(faces.partition, [0, 0, 0, 1, 2, 2])
    smiling = faces.attribute_names.index("Smiling")
    np.testing.assert_array_equal(faces.attributes[:, smiling], [1 if i % 2 == 0 else -1 for _, i in splits])
    assert (np.delete(faces.attributes, smiling, axis=1) == -1).all()
    # Each example's face is where the astronaut's face lies in it (shifted with the example).
    for (split, i), box in zip(splits, faces.boxes):
        shift = 3 * i + 10 * list(mock_celeb_a.splits).index(split)
        np.testing.assert_allclose(box[:2], [182 - 120 - shift, 64 - shift], atol=4)


@pytest.mark.skipif(not SHARED_CELEBA.is_dir(), reason=f"shared CelebA subset not found at {SHARED_CELEBA}")
def test_shared_celeba_handful(tmp_path, detector):
    settings = prep.PrepareSettings(sizes=(80,), limit=6, shard_size=4)
    source = raw_images.celeba_source(SHARED_CELEBA)
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
    import skimage.data

    head = np.asarray(Image.fromarray(skimage.data.astronaut()[0:384, 32:416]).resize((224, 224)))
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = np.roll(head, (4 * i, -3 * i), axis=(0, 1))[16:208, 16:208]
        image = image[:, ::-1] if i % 2 else image
        Image.fromarray(np.clip(image * (0.8 + 0.04 * i), 0, 255).astype(np.uint8)).save(root / f"face{i:02d}.png")


def held_copy(raw: Path, held: Path) -> Path:
    """A copy of folder ``raw`` whose last file is a named pipe: a run over it blocks there until `let_go`."""
    held.mkdir()
    *files, last = sorted(raw.iterdir())
    for path in files:
        (held / path.name).write_bytes(path.read_bytes())
    os.mkfifo(held / last.name)
    return held / last.name


def let_go(pipe: Path, original: Path) -> None:
    """Replace the pipe by the file it stands for (a reader blocked on it stays blocked; none is left by then)."""
    pipe.unlink()
    pipe.write_bytes(original.read_bytes())


def as_from_a_terminal() -> None:
    """Ctrl-C as a shell gives it to a command: pytest-xdist's workers ignore SIGINT, and a child inherits that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def prepare_command(*args: str, **popen: object) -> subprocess.Popen:
    """`python -m gan_arith.data.prepare ARGS` in a fresh process (one TensorFlow thread, as in real runs)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "gan_arith.data.prepare", *args], cwd=REPO, env=env, **popen)


def finish(child: subprocess.Popen) -> dict:
    """Wait for a prepare command; its run record (the last stdout line)."""
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def assert_same_store(result: Path, reference: Path) -> None:
    reference_files, result_files = store_files(reference), store_files(result)
    assert reference_files.keys() == result_files.keys() and not any(k.startswith(".tmp") for k in result_files)
    for key, value in reference_files.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(result_files[key], value, err_msg=key)
        else:
            assert result_files[key] == value, key


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


@pytest.mark.slow
def test_kill_and_resume_gives_identical_store(tmp_path):
    make_face_folder(tmp_path / "raw")
    pipe = held_copy(tmp_path / "raw", tmp_path / "held")
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    args = ("--sizes", "24,16", "--shard-size", "3", "--processes", "1")
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    child = prepare_command(*folder_command(tmp_path / "held", killed, *args), **pipes)
    try:
        wait_for_file(killed / meta_file(0), child)
    finally:
        child.kill()  # SIGKILL: no clean-up of any kind
        child.communicate()
    partial = json.loads((killed / "manifest.json").read_text())
    assert not partial["complete"] and len(list(killed.glob("meta-*.npz"))) < 4
    with pytest.raises(ValueError, match="incomplete"):
        FaceStore(killed)

    let_go(pipe, tmp_path / "raw" / pipe.name)  # from here on the held folder is the input as it should be
    uninterrupted = prepare_command(*folder_command(tmp_path / "held", reference, *args), **pipes)
    resumed = finish(prepare_command(*folder_command(tmp_path / "held", killed, *args), **pipes))
    assert resumed["images"] < 12  # finished shards were skipped
    assert finish(uninterrupted)["images"] == 12
    assert_same_store(killed, reference)
    assert FaceStore(killed).num_faces == 12


def wait_for_file(path: Path, child: subprocess.Popen) -> None:
    """Until ``path`` exists; the child cannot end first (it is held on a pipe), only fail."""
    while not path.exists():
        assert child.poll() is None, f"the child ended: {child.stderr.read().decode()[-2000:]}"
        time.sleep(0.05)


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


@pytest.mark.slow
def test_ctrl_c_stops_workers_at_once_and_resumes(tmp_path):
    make_face_folder(tmp_path / "raw", n=5)
    pipe = held_copy(tmp_path / "raw", tmp_path / "held")
    store, reference = tmp_path / "store", tmp_path / "reference"
    args = ("--sizes", "24,16", "--shard-size", "2")
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    # Its own process group, which a terminal's Ctrl-C signals as a whole (parent and workers). Shard 2 holds
    # the pipe: one worker blocks on it for good, so the run ends only if Ctrl-C stops that worker.
    child = prepare_command(
        *folder_command(tmp_path / "held", store, *args, "--processes", "2"), start_new_session=True,
        preexec_fn=as_from_a_terminal, **pipes
    )
    try:
        wait_for_file(store / meta_file(0), child)
        os.killpg(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    err = err.decode()
    assert child.returncode == 130, (child.returncode, err[-2000:])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        "python -m gan_arith.data.prepare: interrupted; finished shards are kept: rerun the same command to resume"
    )
    for _ in range(200):  # the workers went with it, the held one included
        try:
            os.killpg(child.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    else:
        raise AssertionError("processes of the interrupted run are still alive")
    assert not json.loads((store / "manifest.json").read_text())["complete"]

    let_go(pipe, tmp_path / "raw" / pipe.name)
    uninterrupted = prepare_command(*folder_command(tmp_path / "held", reference, *args, "--processes", "1"), **pipes)
    resumed = finish(prepare_command(*folder_command(tmp_path / "held", store, *args, "--processes", "1"), **pipes))
    assert 0 < resumed["images"] < 5
    assert finish(uninterrupted)["images"] == 5
    assert_same_store(store, reference)
