"""The command-line shell: overrides named on the command line, the compilation cache, and a user's
mistake ended as one line before anything is written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import evaluate
from gan_arith.cli import check_given_runs, command_line_fields, default_compilation_cache

REPO = Path(__file__).resolve().parents[1]


def test_command_line_fields_are_the_dotted_names_given_under_the_flag():
    argv = ["prog", "--workdir=w", "--config.num_epochs=15", "--config.model.image_size", "20", "--config.cpu.batch_size=8"]
    assert command_line_fields(argv) == {"num_epochs", "model.image_size", "cpu.batch_size"}
    assert command_line_fields(["--config.train.num_epochs=2"], "config.train") == {"num_epochs"}


# Compiles one function with the cache in argv[1] and prints the cache's hits and the directory JAX used.
CACHED_COMPILE = """
import sys
import jax
from gan_arith.cli import use_compilation_cache
hits = []
jax.monitoring.register_event_listener(lambda event, **_: hits.append(event) if event.endswith("/cache_hits") else None)
use_compilation_cache(sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.jit(lambda x: (x @ x.T).sum())(jax.numpy.ones((8, 8))).block_until_ready()
print(len(hits), jax.config.jax_compilation_cache_dir)
"""


def _cached_compile(directory: str, jax_cache_dir: str = "") -> tuple[int, str]:
    env = {key: value for key, value in os.environ.items() if key != "JAX_COMPILATION_CACHE_DIR"}
    if jax_cache_dir:
        env["JAX_COMPILATION_CACHE_DIR"] = jax_cache_dir
    result = subprocess.run([sys.executable, "-c", CACHED_COMPILE, directory], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    hits, used = result.stdout.split()
    return int(hits), used


def test_compilation_cache_is_reused_by_the_next_process(tmp_path):
    cache = tmp_path / "xla"
    assert _cached_compile(str(cache)) == (0, str(cache))
    assert any(cache.iterdir())
    hits, used = _cached_compile(str(cache))
    assert hits > 0 and used == str(cache)


def test_a_cache_directory_given_to_jax_wins(tmp_path):
    theirs = tmp_path / "theirs"
    assert _cached_compile(str(tmp_path / "ours"), jax_cache_dir=str(theirs)) == (0, str(theirs))
    assert any(theirs.iterdir()) and not (tmp_path / "ours").exists()


def test_default_compilation_cache_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("GAN_ARITH_COMPILATION_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_compilation_cache() == str(tmp_path / "gan_arith" / "xla")
    monkeypatch.setenv("GAN_ARITH_COMPILATION_CACHE", "")
    assert default_compilation_cache() == ""


@pytest.mark.slow
def test_an_unknown_field_on_the_command_line_is_one_clear_line():
    result = subprocess.run([sys.executable, "-m", "experiments.dcgan_celeba", "--config.model.widht=4"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "dcgan_celeba: unknown config field(s): --config.model.widht "
        "(did you mean --config.model.width?)"
    ]


def test_a_run_given_on_the_command_line_must_hold_a_training_run(tmp_path):
    defaults = evaluate.get_config()
    config = evaluate.get_config()
    config.dcgan.run, config.vae.run = str(tmp_path / "dcgan_typo"), str(tmp_path / "vae")
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text("{}")
    check_given_runs(config, frozenset({"vae.run", "kinds"}), defaults)
    check_given_runs(config, frozenset(), defaults)  # the defaults are trained on demand
    with pytest.raises(ValueError, match=rf"--config\.dcgan\.run={tmp_path / 'dcgan_typo'}: no training run there "
                                         rf".*the default {defaults.dcgan.run} "):
        check_given_runs(config, frozenset({"dcgan.run", "vae.run"}), defaults)


@pytest.mark.slow
def test_a_missing_run_on_the_command_line_is_refused_before_anything_is_written(tmp_path):
    workdir = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "experiments.inversion", f"--config.run={tmp_path / 'typo'}",
                             f"--workdir={workdir}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"inversion: --config.run={tmp_path / 'typo'}: no training run there")
    assert not workdir.exists() and not (tmp_path / "typo").exists()


@pytest.mark.slow
def test_a_mistake_found_by_the_experiment_itself_is_one_clear_line(tmp_path):
    # The experiment's own check (pools.check_arithmetic) runs before any model is loaded: this takes seconds.
    workdir = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "experiments.vector_arithmetic_gan", f"--workdir={workdir}",
                             "--config.expression=smiling_woman - neutral_wman + neutral_man"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "\nvector_arithmetic_gan: unknown concept(s) neutral_wman in the expression" in result.stderr
    assert not workdir.exists()
