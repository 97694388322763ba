"""The config system: overrides merge in place and name what changed; CPU scaling keeps the user's fields."""

import os
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest

from experiments import dcgan_celeba, evaluate
from gan_arith.config import (
    ADDED_FIELDS, REMOVED_FIELDS, apply_overrides, base_config, check_field_names, check_given_runs, check_train_config,
    command_line_fields,
    default_compilation_cache, field, scale_for_host, selected_kinds, with_added_fields,
)

REPO = Path(__file__).resolve().parents[1]


def test_apply_overrides_merges_nested_fields_and_reports_changes():
    config = base_config("dcgan")
    changes = apply_overrides(config, ml_collections.ConfigDict({"model": {"width": 32, "latent_dim": 100}, "seed": 3}))
    assert config.model.width == 32 and config.seed == 3
    assert changes == ["model.width: 128 -> 32", "seed: 0 -> 3"]  # latent_dim unchanged, so not reported


def test_unknown_override_is_a_clear_error():
    with pytest.raises(KeyError, match="model.depth"):
        apply_overrides(base_config("vae"), ml_collections.ConfigDict({"model": {"depth": 3}}))


def test_cpu_scaling_applies_only_on_cpu_and_keeps_command_line_fields():
    argv = ["prog", "--workdir=w", "--config.num_epochs=15", "--config.model.image_size", "20", "--config.cpu.batch_size=8"]
    keep = command_line_fields(argv)
    assert keep == {"num_epochs", "model.image_size", "cpu.batch_size"}
    config = dcgan_celeba.get_config()
    config.num_epochs, config.model.image_size = 15, 20
    assert scale_for_host(config, "gpu", keep) == [] and config.model.width == 128
    changes = scale_for_host(config, "cpu", keep)
    assert config.num_epochs == 15 and config.model.image_size == 20 and config.model.width == 32
    assert "model.width: 128 -> 32" in changes and not any(line.startswith("num_epochs") for line in changes)
    assert command_line_fields(["--config.train.num_epochs=2"], "config.train") == {"num_epochs"}


def test_scale_for_cpu_false_runs_the_seed_configuration():
    config = dcgan_celeba.get_config()
    config.scale_for_cpu = False
    assert scale_for_host(config, "cpu") == [] and config.model.image_size == 80 and config.batch_size == 128


def test_saved_configs_from_before_a_field_existed_get_the_value_they_were_trained_with():
    saved = base_config("dcgan")
    with saved.unlocked():
        del saved.model["discriminator_padding"]
        saved.model.width = 32
    restored = with_added_fields(saved)
    assert restored.model.discriminator_padding == "same" and restored.model.width == 32
    chosen = base_config("dcgan")
    chosen.model.discriminator_padding = "symmetric"
    assert with_added_fields(chosen).model.discriminator_padding == "symmetric"  # present fields are kept
    for *parents, name in ADDED_FIELDS:  # every added field is a real field of the current config
        node = base_config("dcgan")
        for key in parents:
            node = node[key]
        assert name in node
    with saved.unlocked():  # a run saved with the removed experimental field still resumes
        del saved["conv_fusion"]
        saved.model.fused_discriminator = True
    restored = with_added_fields(saved)
    assert "fused_discriminator" not in restored.model and restored.conv_fusion == "auto"
    for *parents, name in REMOVED_FIELDS:  # and no removed field is one
        assert name not in (field(base_config("dcgan"), ".".join(parents)) if parents else base_config("dcgan"))


# Compiles one function with the cache in argv[1] and prints the cache's hits and the directory JAX used.
CACHED_COMPILE = """
import sys
import jax
from gan_arith.config import use_compilation_cache
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


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", -4, "config.batch_size must be a positive integer, got -4"),
    ("num_epochs", 0, "config.num_epochs must be a positive integer, got 0"),
    ("model.latent_dim", 0, "config.model.latent_dim must be a positive integer, got 0"),
    ("eval_every_epochs", 0, "config.eval_every_epochs must be a positive integer, got 0"),
    ("optimizer.learning_rate", 0.0, "config.optimizer.learning_rate must be a positive number, got 0.0"),
])
def test_train_config_numbers_are_checked_by_name(field, value, message):
    config = base_config("dcgan")
    check_train_config(config)
    *parents, name = field.split(".")
    node = config
    for key in parents:
        node = node[key]
    with config.unlocked():
        node[name] = value
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        check_train_config(config)


def test_unknown_command_line_fields_are_named_with_the_closest_real_ones():
    config = dcgan_celeba.get_config()
    check_field_names(config, frozenset({"model.width", "cpu.batch_size", "optimizer"}))
    with pytest.raises(ValueError, match=r"--config\.batch_sise \(did you mean --config\.batch_size\?\), --config\.foo$"):
        check_field_names(config, frozenset({"foo", "batch_sise"}))


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


def test_selected_kinds_names_the_choices():
    config = ml_collections.ConfigDict({"kinds": "vae", "dcgan": {}, "vae": {}})
    assert selected_kinds(config) == ["vae"]
    config.kinds = "gan"
    with pytest.raises(ValueError, match="subset of dcgan,vae, got 'gan'"):
        selected_kinds(config)
