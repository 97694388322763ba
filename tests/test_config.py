"""The config system: overrides merge in place and name what changed; CPU scaling keeps the user's fields."""

import ml_collections
import pytest

from experiments import dcgan_celeba
from gan_arith.config import ADDED_FIELDS, apply_overrides, base_config, command_line_fields, scale_for_host, with_added_fields


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
