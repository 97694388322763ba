"""Every experiment refuses an out-of-range option before it loads (or trains) a model or writes a file."""

import pytest

from experiments import (
    discriminator_filter, evaluate, interpolation, inversion, latent_distributions, noise_classifier, open_questions,
    vector_arithmetic_gan, vector_arithmetic_vae,
)
from gan_arith import artifacts
from gan_arith.errors import InputError


@pytest.mark.parametrize("module,changes,message", [
    (vector_arithmetic_gan, {"k": 0}, r"config\.k must be a positive integer, got 0"),
    (vector_arithmetic_gan, {"grid_size": 0}, r"config\.grid_size must be a positive integer"),
    (vector_arithmetic_vae, {"partition": "foo"}, r"config\.partition must be one of train, valid, test"),
    (vector_arithmetic_vae, {"num_draws": -1}, r"config\.num_draws must be a positive integer"),
    (evaluate, {"num_draws": 0}, r"config\.num_draws must be a positive integer"),
    (evaluate, {"feature_network": "/nonexistent/features.bin"}, "config.feature_network=/nonexistent/features.bin: no such file"),
    (interpolation, {"num_points": 1}, r"config\.num_points must be an integer >= 2, got 1"),
    (vector_arithmetic_gan, {"concept_source": "encoded"}, r"config\.concept_source must be one of auto, scored, inversion"),
    (interpolation, {"steps_per_segment": 0}, r"config\.steps_per_segment must be a positive integer"),
    (latent_distributions, {"num_encodings": 0}, r"config\.num_encodings must be a positive integer"),
    (discriminator_filter, {"top_fraction": 1.5}, r"config\.top_fraction must be in \(0, 1\]"),
    (discriminator_filter, {"drs_acceptance": 0.0}, r"config\.drs_acceptance must be in \(0, 1\]"),
    (noise_classifier, {"quantile": 1.0}, r"config\.quantile must be in \(0, 1\)"),
    (noise_classifier, {"label_by": "realism"}, r"config\.label_by must be one of discriminator, confidence"),
    (inversion, {"restarts": 0}, r"config\.restarts must be a positive integer"),
    (open_questions, {"ks": ()}, r"config\.ks must list at least one k"),
    (open_questions, {"ks": (0, 3)}, r"config\.ks must hold positive integers .*got 0"),
    (open_questions, {"kinds": "dcgan,gan"}, r"config\.kinds must be a comma-separated subset of dcgan,vae, got 'dcgan,gan'"),
    (open_questions, {"gan_members": "inverted"}, r"config\.gan_members must be a comma-separated subset of inversion,scored"),
    (open_questions, {"compare_k": 4}, r"config\.compare_k=4 is not among config\.ks"),
])
def test_out_of_range_options_are_refused_first(module, changes, message, tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded (or trained) before the options were checked")

    monkeypatch.setattr(artifacts, "load_or_train", no_model)
    config = module.get_config()
    config.update(changes)
    with pytest.raises(InputError, match=message):
        module.main(config, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("module", [
    discriminator_filter, evaluate, interpolation, inversion, latent_distributions, noise_classifier, open_questions,
    vector_arithmetic_gan, vector_arithmetic_vae,
])
def test_default_options_pass_the_checks(module, tmp_path, monkeypatch):
    class Reached(Exception):
        pass

    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(artifacts, "load_or_train", reached)
    with pytest.raises(Reached):
        module.main(module.get_config(), str(tmp_path / "out"))
