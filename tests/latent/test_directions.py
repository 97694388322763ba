"""Tests for gan_arith/latent/directions.py: attribute directions, conditional projection, edits."""

import numpy as np
import pytest

from gan_arith.latent import directions


def _planted(seed: int, num: int = 2000, dim: int = 32, threshold: float = 0.5):
    """Gaussian latents labelled by a noisy threshold along a random unit direction."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=dim)
    truth /= np.linalg.norm(truth)
    latents = rng.normal(size=(num, dim)).astype(np.float32)
    labels = latents @ truth + 0.3 * rng.normal(size=num) > threshold
    return latents, labels, truth


@pytest.mark.parametrize("method", [directions.mean_difference_direction, directions.linear_direction])
def test_planted_direction_is_recovered(method):
    latents, labels, truth = _planted(0)
    found = method(latents, labels)
    assert np.linalg.norm(found) == pytest.approx(1.0)
    assert found @ truth > 0.95  # and it points towards the attribute


def test_linear_direction_beats_mean_difference_on_correlated_latents():
    # With anisotropic latents the class-mean difference is skewed by the covariance,
    # while the separating plane's normal is not: the InterFaceGAN reason to fit a classifier.
    rng = np.random.default_rng(1)
    mixing = np.eye(8) + 0.9 * rng.normal(size=(8, 8))
    latents = rng.normal(size=(3000, 8)) @ mixing
    truth = np.zeros(8)
    truth[0] = 1.0
    labels = latents @ truth > 0
    linear = directions.linear_direction(latents, labels, l2=1e-6)
    mean_difference = directions.mean_difference_direction(latents, labels)
    assert linear @ truth > 0.99
    assert linear @ truth > mean_difference @ truth + 0.05


def test_mean_difference_unnormalised_is_the_class_mean_difference():
    latents = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 6.0]])
    labels = np.array([False, False, True, True])
    np.testing.assert_allclose(directions.mean_difference_direction(latents, labels, normalize=False), [0.0, 5.0])


def test_labels_are_validated():
    latents = np.zeros((4, 2))
    with pytest.raises(ValueError, match="bool"):
        directions.mean_difference_direction(latents, np.array([1, -1, 1, -1], np.int8))
    with pytest.raises(ValueError, match="both classes"):
        directions.linear_direction(latents, np.ones(4, bool))
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        directions.linear_direction(latents, np.ones(3, bool))


def test_project_out_is_orthogonal_and_keeps_norm():
    rng = np.random.default_rng(2)
    smiling, male, young = rng.normal(size=(3, 16))
    conditioned = directions.project_out(3.0 * smiling / np.linalg.norm(smiling), male, young, male + young)
    assert abs(conditioned @ male) < 1e-10 * np.linalg.norm(male)
    assert abs(conditioned @ young) < 1e-10 * np.linalg.norm(young)
    assert np.linalg.norm(conditioned) == pytest.approx(3.0)
    # Only the part along the others is removed: what was orthogonal to them is untouched.
    basis, _ = np.linalg.qr(np.stack([male, young], axis=1))
    expected = smiling - basis @ (basis.T @ smiling)
    np.testing.assert_allclose(conditioned / np.linalg.norm(conditioned), expected / np.linalg.norm(expected))
    with pytest.raises(ValueError, match="span"):
        directions.project_out(male + 2 * young, male, young)


def test_edit_sweep_is_linear_in_alpha():
    rng = np.random.default_rng(3)
    latents = rng.normal(size=(5, 6)).astype(np.float32)
    direction = rng.normal(size=6)
    alphas = np.array([-2.0, 0.0, 1.0, 3.0])
    edited = directions.edit(latents, direction, alphas)
    assert edited.shape == (4, 5, 6) and edited.dtype == np.float32
    np.testing.assert_array_equal(edited[1], latents)
    for edited_at_alpha, alpha in zip(edited, alphas):
        np.testing.assert_allclose(edited_at_alpha, latents + alpha * direction, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="direction has shape"):
        directions.edit(latents, direction[:5], alphas)
