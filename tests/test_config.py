"""The config system: overrides merge in place and name what changed; CPU scaling keeps the user's fields."""

import ml_collections
import pytest

from experiments import dcgan_celeba
from gan_arith.config import (
    ADDED_FIELDS, REMOVED_FIELDS, apply_overrides, base_config, check_field_names, check_model_config, check_train_config,
    field, scale_for_host, selected_kinds, with_added_fields,
)


def test_apply_overrides_merges_nested_fields_and_reports_changes():
    config = base_config("dcgan")
    changes = apply_overrides(config, ml_collections.ConfigDict({"model": {"width": 32, "latent_dim": 100}, "seed": 3}))
    assert config.model.width == 32 and config.seed == 3
    assert changes == ["model.width: 128 -> 32", "seed: 0 -> 3"]  # latent_dim unchanged, so not reported


def test_unknown_override_is_a_clear_error():
    with pytest.raises(KeyError, match="model.depth"):
        apply_overrides(base_config("vae"), ml_collections.ConfigDict({"model": {"depth": 3}}))


def test_cpu_scaling_applies_only_on_cpu_and_keeps_command_line_fields():
    keep = frozenset({"num_epochs", "model.image_size", "cpu.batch_size"})
    config = dcgan_celeba.get_config()
    config.num_epochs, config.model.image_size = 15, 20
    assert scale_for_host(config, "gpu", keep) == [] and config.model.width == 128
    changes = scale_for_host(config, "cpu", keep)
    assert config.num_epochs == 15 and config.model.image_size == 20 and config.model.width == 32
    assert "model.width: 128 -> 32" in changes and not any(line.startswith("num_epochs") for line in changes)


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


def test_selected_kinds_names_the_choices():
    config = ml_collections.ConfigDict({"kinds": "vae", "dcgan": {}, "vae": {}})
    assert selected_kinds(config) == ["vae"]
    config.kinds = "gan"
    with pytest.raises(ValueError, match="subset of dcgan,vae, got 'gan'"):
        selected_kinds(config)


def test_vae_filters_are_checked_and_absent_in_old_runs_means_the_seeds():
    config = base_config("vae")
    with config.unlocked():
        del config.model["vae_filters"]  # a VAE saved before the field existed
    assert with_added_fields(config).model.vae_filters == ()
    config.model.image_size = 40
    config.model.vae_filters = (32, 64, 128)
    check_model_config(config)
    for bad in ((32, 64), (32, 0, 128), (32, 64, 128.0)):
        config.model.vae_filters = bad
        with pytest.raises(ValueError, match=r"config\.model\.vae_filters must be 3 positive integers at image_size 40"):
            check_model_config(config)
