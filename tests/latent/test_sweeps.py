"""Tests for gan_arith/latent/sweeps.py (interpolation strips, attribute edits)."""

import numpy as np
import pytest

from gan_arith.latent import pools, sweeps

NAMES = ("Smiling", "Male")


def _labelled(seed: int = 0, num: int = 3000, dim: int = 6):
    """Gaussian latents whose Smiling label follows dimension 0 and Male dimension 0 and 1 together."""
    rng = np.random.default_rng(seed)
    latents = rng.normal(size=(num, dim))
    smiling = latents[:, 0] + 0.2 * rng.normal(size=num) > 0
    male = latents[:, 0] + latents[:, 1] > 0
    return latents, np.where(np.stack([smiling, male], axis=1), 1, -1).astype(np.int8)


@pytest.mark.parametrize("method", ["mean_difference", "linear"])
def test_attribute_directions_recover_the_attribute_and_condition_it(method):
    latents, attributes = _labelled()
    found = sweeps.attribute_directions(latents, attributes, NAMES, "Smiling", condition="Male", method=method)
    plain, conditional = found["Smiling"], found["Smiling \u22a5 Male"]
    labels = attributes[:, 0] > 0
    difference = latents[labels].mean(0) - latents[~labels].mean(0)
    assert np.linalg.norm(plain) == pytest.approx(np.linalg.norm(difference))  # alpha = 1: the class-mean distance
    assert plain[0] / np.linalg.norm(plain) > 0.95
    male = sweeps.attribute_directions(latents, attributes, NAMES, "Male", method=method)["Male"]
    assert abs(conditional @ male) < 1e-8 * np.linalg.norm(male) * np.linalg.norm(conditional)
    assert np.linalg.norm(conditional) == pytest.approx(np.linalg.norm(plain))


def test_attribute_directions_errors():
    latents, attributes = _labelled(num=50)
    with pytest.raises(ValueError, match="unknown attribute 'Young'"):
        sweeps.attribute_directions(latents, attributes, NAMES, "Young")
    with pytest.raises(ValueError, match="method must be one of mean_difference, linear, got 'eyeballed'"):
        sweeps.attribute_directions(latents, attributes, NAMES, "Smiling", method="eyeballed")
    with pytest.raises(ValueError, match="unknown attribute 'Mael'"):
        sweeps.attribute_directions(latents, attributes, NAMES, "Smiling", condition="Mael")
    with pytest.raises(ValueError, match="condition 'Smiling' is the edited attribute itself"):
        sweeps.attribute_directions(latents, attributes, NAMES, "Smiling", condition="Smiling")
    sweeps.check_edit(NAMES, "Smiling", condition="", method="linear")  # no condition: fine


def test_edit_sweep_and_response(fake_run, fake_scorer):
    latents = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    directions = {"up": np.array([1.0, 0.0, 0.0, 0.0]), "down": np.array([0.0, -2.0, 0.0, 0.0])}
    edited = sweeps.edit_sweep(fake_run, latents, directions, [0.0, 1.0])
    assert edited["up"].shape == (2, 5, 4, 4, 3)
    np.testing.assert_array_equal(edited["down"][0], pools.generate_images(fake_run, latents))  # alpha 0: unchanged
    np.testing.assert_array_equal(edited["up"][1], pools.generate_images(fake_run, latents + directions["up"]))
    response = sweeps.edit_response(fake_scorer, edited)
    expected = fake_scorer.probabilities(edited["up"][1]).mean(0)[0]
    assert response["up"]["Smiling"][1] == pytest.approx(expected)
    lines = sweeps.describe_edit_response(response, [0.0, 1.0])
    assert len(lines) == 2 and lines[0].startswith("up: alpha 0 -> 1: P(Smiling)")


def test_interpolation_strips_pass_through_the_points(fake_run):
    points = np.random.default_rng(2).normal(size=(3, 4)) * 3
    strips = sweeps.interpolation_strips(fake_run, points, steps_per_segment=5)
    for method, strip in strips.items():
        assert strip["images"].shape == (11, 4, 4, 3)
        np.testing.assert_allclose(strip["latents"][[0, 5, 10]], points, rtol=1e-5)
        np.testing.assert_allclose(strip["norms"], np.linalg.norm(strip["latents"], axis=1))
    assert strips["lerp"]["norms"].min() < strips["slerp"]["norms"].min()


def test_endpoint_latents_need_two_points(fake_run):
    with pytest.raises(ValueError, match="at least 2"):
        sweeps.endpoint_latents(fake_run, None, 1)
