"""What the experiments start from: a trained run of the right kind, finished first; a store the Fréchet metric can use."""

import json
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from experiments import dcgan_celeba, vae_celeba
from gan_arith import artifacts
from gan_arith.data.store import StoreWriter
from gan_arith.data.synthetic import SYNTHETIC_ATTRIBUTES, render_faces
from gan_arith.errors import InputError
from gan_arith.train import checkpoint


def tiny_vae(tmp_path, **changes):
    config = vae_celeba.get_config()
    config.scale_for_cpu = False
    config.model.update(image_size=20, width=8, latent_dim=4)
    config.data.update(default_store=str(tmp_path / "none"), synthetic_dir=str(tmp_path / "synthetic"), synthetic_faces=64)
    config.update(batch_size=16, num_epochs=1, eval_every_epochs=1, num_samples=4, tensorboard=False)
    config.update(changes)
    return config


def test_a_run_of_another_kind_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / checkpoint.CONFIG_FILE).write_text(tiny_vae(tmp_path).to_json())
    with pytest.raises(InputError, match=r"config\.dcgan\.run=.*run holds a vae run; this experiment needs a dcgan run"):
        artifacts.load_or_train(tmp_path / "run", dcgan_celeba.get_config(), "config.dcgan.train")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [checkpoint.CONFIG_FILE]


@pytest.mark.slow
def test_a_stopped_run_is_finished_with_its_own_config(tmp_path, capsys):
    config = tiny_vae(tmp_path, num_epochs=2)
    workdir = tmp_path / "run"
    artifacts.load_or_train(workdir, tiny_vae(tmp_path, num_epochs=1))  # trains one epoch: "stopped" after it
    assert "training a vae there first" in capsys.readouterr().err
    saved = json.loads((workdir / checkpoint.CONFIG_FILE).read_text())
    saved["num_epochs"] = 2  # as if it had been started for two epochs and killed after the first
    (workdir / checkpoint.CONFIG_FILE).write_text(json.dumps(saved))
    (workdir / "summary.json").unlink()

    run = artifacts.load_or_train(workdir, tiny_vae(tmp_path, num_epochs=5, seed=3))  # another recipe: not used
    assert "an unfinished training run; finishing it with its own config first" in capsys.readouterr().err
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["resumed_from"] == summary["total_steps"] // 2 and summary["steps"] == summary["total_steps"]
    assert run.config.num_epochs == config.num_epochs and run.config.seed == 0
    assert int(run.state.step) == summary["total_steps"]


@pytest.mark.slow
def test_the_sections_own_command_line_fields_win_over_the_cpu_scaling(tmp_path, monkeypatch):
    config = tiny_vae(tmp_path, scale_for_cpu=True)
    config.cpu = ml_collections.ConfigDict({"num_epochs": 3, "batch_size": 8})
    monkeypatch.setattr(sys, "argv", ["evaluate.py", "--config.vae.train.num_epochs=1"])  # as evaluate names it
    run = artifacts.load_or_train(tmp_path / "run", config, "config.vae.train")
    assert run.config.num_epochs == 1 and run.config.batch_size == 8


@pytest.mark.slow
def test_training_fields_given_for_an_existing_run_are_reported_as_ignored(tmp_path, monkeypatch, capsys):
    artifacts.load_or_train(tmp_path / "run", tiny_vae(tmp_path, num_epochs=1))
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["evaluate.py", "--config.vae.train.batch_size=4"])
    run = artifacts.load_or_train(tmp_path / "run", tiny_vae(tmp_path, num_epochs=1, batch_size=4), "config.vae.train")
    assert "holds a run already: ignoring --config.vae.train.batch_size (it keeps its own config)" in capsys.readouterr().err
    assert run.config.batch_size != 4


def _train_only_store(root: Path, num: int = 40, size: int = 40) -> Path:
    """A labelled store of synthetic faces that are all in the train partition (as `prepare --limit` makes)."""
    images, attributes = render_faces(0, 0, num, size)
    writer = StoreWriter(root, image_sizes=[size], attribute_names=SYNTHETIC_ATTRIBUTES, source="synthetic",
                         settings={"train_only": True})
    meta = {"file_name": np.array([f"{i}.png" for i in range(num)]), "attributes": attributes,
            "partition": np.zeros(num, np.int8), "box": np.full((num, 4), -1, np.int32),
            "confidence": np.ones(num, np.float32), "keypoints": np.full((num, 5, 2), -1, np.int32)}
    writer.write_shard(0, {size: images}, meta, {"seen": num, "kept": num, "skipped": {}})
    writer.finalize()
    return root


def test_the_frechet_metric_refuses_a_store_without_test_faces_before_anything_is_written(tmp_path):
    config = dcgan_celeba.get_config()
    config.scale_for_cpu = False
    config.model.update(image_size=40, width=8, latent_dim=8)
    config.update(batch_size=16, num_epochs=1, tensorboard=False)
    config.data.store = str(_train_only_store(tmp_path / "store"))
    with pytest.raises(ValueError, match="has 40 train and 0 test faces; use --config.best_metric=g_loss"):
        artifacts.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # not even the empty directory
