"""The latent experiments run end to end on tiny trained models and write their figures and summaries."""

import json

import numpy as np
import pytest

from experiments import evaluate, interpolation, latent_distributions, vector_arithmetic_gan, vector_arithmetic_vae
from gan_arith import artifacts
from gan_arith.errors import InputError

pytestmark = pytest.mark.slow  # trains tiny runs end to end


def _read(path) -> dict:
    return json.loads(path.read_text())


def _assert_figures(paths) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n", path


def _assert_both_readings(summary, source, *, draws, baseline) -> None:
    """The summary's success rates: the classifier's and the judge's, the judge's hit rate, and the members' source."""
    success = summary["success"]
    assert summary["pool"]["source"] == success["source"] == source and summary["num_draws"] == draws
    for reader in ("classifier", "judge"):
        assert success[reader]["result"]["trials"] == draws and success[reader]["baseline"]["trials"] == baseline
    assert success["judge_hit_rate"]["trials"] >= 1
    hit = success["judge_hit_rate"]["rate"]
    assert success["relative_to_hit_rate"] == (success["judge"]["result"]["rate"] / hit if hit else None)
    assert set(summary["classifier_accuracy"]) == set(summary["judge_accuracy"]) == {
        "Blond_Hair", "Eyeglasses", "Male", "Smiling"}


def test_gan_arithmetic_label_defined_then_hand_picked(tiny_experiment_config, tmp_path, capsys):
    config = tiny_experiment_config(
        vector_arithmetic_gan, "dcgan", grid_size=12, pool_size=48, top_n=6, num_draws=4, num_baseline=16
    )
    vector_arithmetic_gan.main(config, str(tmp_path))
    assert "Smiling & Male (scored members): classifier " in capsys.readouterr().err
    summary = _read(tmp_path / "summary_scored.json")
    assert summary["pool"]["source"] == "scored" and summary["pool"]["candidates"] == {
        "smiling_woman": 6, "neutral_woman": 6, "neutral_man": 6
    }
    _assert_both_readings(summary, "scored", draws=4, baseline=16)
    _assert_figures([tmp_path / "figures" / "index_grid.png", *summary["figures"].values()])
    grid = np.load(tmp_path / "grid_latents.npy")
    assert grid.shape == (12, 8)

    # The seeds' way: indices into the saved grid, used as they are, in one draw; arithmetic exact.
    config.concepts = "a=0,1,2; b=3,4; c=5"
    config.expression = "a - b + 0.5 * c"
    vector_arithmetic_gan.main(config, str(tmp_path))
    assert "(hand-picked members): 1 draw(s)" in capsys.readouterr().err
    picked = _read(tmp_path / "summary_hand-picked.json")
    assert picked["first_draw_members"] == {"a": [0, 1, 2], "b": [3, 4], "c": [5]}
    assert picked["num_draws"] == 1 and "success" not in picked and picked["pool"]["source"] == "hand-picked"
    expected = grid[:3].mean(0) - grid[3:5].mean(0) + 0.5 * grid[5]
    assert picked["result_norm_mean"] == pytest.approx(np.linalg.norm(expected), rel=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "grid_latents.npy"), grid)  # the grid is reused, not redrawn
    _assert_figures(picked["figures"].values())


def test_gan_arithmetic_from_inverted_real_faces(tiny_experiment_config, tmp_path):
    config = tiny_experiment_config(
        vector_arithmetic_gan, "dcgan", grid_size=4, concept_source="inversion", per_concept=2, inversion_steps=3,
        k=1, num_draws=2, num_baseline=8,
    )
    vector_arithmetic_gan.main(config, str(tmp_path))
    summary = _read(tmp_path / "summary_inverted.json")
    assert summary["pool"] == {"source": "inverted", "pool_size": 6, "candidates": {
        "smiling_woman": 2, "neutral_woman": 2, "neutral_man": 2}}
    _assert_figures(summary["figures"].values())


def test_vae_arithmetic_and_conditional_edits(tiny_experiment_config, tmp_path):
    config = tiny_experiment_config(
        vector_arithmetic_vae, "vae", partition="train", per_concept=20, num_draws=4, num_baseline=16,
        direction_faces=128, edit_faces=4, edit_alphas=(0.0, 1.0, 2.0),
    )
    vector_arithmetic_vae.main(config, str(tmp_path))
    summary = _read(tmp_path / "summary.json")
    _assert_both_readings(summary, "encoded", draws=4, baseline=16)
    edits = summary["edits"]
    assert set(edits["mean_probability"]) == {"Smiling", "Smiling \u22a5 Male"}
    assert all(len(values) == 3 for values in edits["mean_probability"]["Smiling"].values())
    # Projecting out Male keeps the direction's length (conditional editing changes direction, not strength).
    assert edits["direction_norms"]["Smiling \u22a5 Male"] == pytest.approx(edits["direction_norms"]["Smiling"])
    _assert_figures(summary["figures"].values())
    assert set(summary["figures"]) == {"arithmetic", "draws", "edits"}


@pytest.mark.parametrize("changes,message", [
    ({"edit_condition": "Smiling"}, "is the edited attribute itself"),
    ({"edit_attribute": "Smilling"}, "unknown attribute 'Smilling'"),
    ({"target": "Smiling & Bald"}, "unknown attribute 'Bald'"),
])
def test_vae_edit_and_target_mistakes_are_refused_before_any_output(tiny_experiment_config, tmp_path, changes, message):
    config = tiny_experiment_config(vector_arithmetic_vae, "vae", **changes)
    with pytest.raises(ValueError, match=message):
        vector_arithmetic_vae.main(config, str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_interpolation_slerp_keeps_the_norm_lerp_dips(tiny_experiment_config, tmp_path):
    config = tiny_experiment_config(interpolation, num_points=3, steps_per_segment=4)
    interpolation.main(config, str(tmp_path))
    summary = _read(tmp_path / "summary.json")
    assert set(summary) == {"dcgan", "vae"}
    for kind, result in summary.items():
        lerp, slerp = np.array(result["norms"]["lerp"]), np.array(result["norms"]["slerp"])
        assert len(lerp) == len(slerp) == len(result["t"]) == 9
        ends = slerp[[0, 4, 8]]
        np.testing.assert_allclose(lerp[[0, 4, 8]], ends, rtol=1e-5)  # both paths pass through the points
        assert slerp.min() >= ends.min() - 1e-4 and lerp.min() < slerp.min(), kind
        _assert_figures([result["figure"]])
    # A rerun of one kind replaces its entry and keeps the other's, whose figure is still there.
    config.update(kinds="vae", steps_per_segment=2)
    interpolation.main(config, str(tmp_path))
    rerun = _read(tmp_path / "summary.json")
    assert rerun["dcgan"] == summary["dcgan"] and len(rerun["vae"]["t"]) == 5


def test_latent_distributions_summarises_concepts_and_dimensions(tiny_experiment_config, tmp_path):
    config = tiny_experiment_config(
        latent_distributions, "vae", partition="train", per_concept=10, num_encodings=12, dimensions=(0, 3)
    )
    latent_distributions.main(config, str(tmp_path))
    summary = _read(tmp_path / "summary.json")
    assert set(summary["concept_histograms"]) == {"smiling_woman", "neutral_woman", "neutral_man"}
    assert summary["dimensions"]["num_vectors"] == 12 and summary["dimensions"]["latent_dim"] == 8
    assert len(summary["normality"]["p_value"]) == 8
    assert all(0.0 <= p <= 1.0 for p in summary["normality"]["p_value"])
    _assert_figures(summary["figures"].values())
    config.update(dimensions=(0, 8))  # the tiny VAE's latent has 8 dimensions: 0..7
    with pytest.raises(InputError, match=r"config\.dimensions must be latent dimensions 0\.\.7, got \(0, 8\)"):
        latent_distributions.main(config, str(tmp_path / "again"))
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize("module,changes", [
    (vector_arithmetic_gan, {"expression": "smiling_woman - neutral_woman + neutral_mna"}),
    (vector_arithmetic_gan, {"concepts": "a=1,2; b=3", "expression": "a - c"}),
    (vector_arithmetic_vae, {"queries": "smiling_woman=Smiling; smiling_woman=Male"}),
    (evaluate, {"expression": "smiling_woman -"}),
])
def test_arithmetic_mistakes_are_refused_before_a_model_is_loaded_or_trained(module, changes, tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded (or trained) before the arithmetic was checked")

    monkeypatch.setattr(artifacts, "load_or_train", no_model)
    config = module.get_config()
    config.update(changes)
    with pytest.raises(ValueError, match="unknown concept|unexpected|defined twice"):
        module.main(config, str(tmp_path))
