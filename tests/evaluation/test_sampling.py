"""Batched scoring, top-fraction filtering and discriminator rejection sampling with toy score functions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_arith.evaluation.sampling import (
    _sigmoid,
    batched_apply,
    classifier_confidence,
    draw_until,
    drs_base_score,
    drs_gamma,
    image_scorer,
    rejection_sample,
    top_fraction,
    top_fraction_sample,
    through_generator,
)

# A stand-in for z -> D(G(z)): the logit grows with the first latent coordinate.
score_fn = jax.jit(lambda z: 3.0 * z[:, 0])


def test_batched_apply_pads_the_last_batch_and_compiles_once():
    traces = []

    @jax.jit
    def fn(chunk):
        traces.append(chunk[0].shape)
        return {"double": 2 * chunk[0], "sum": chunk[0].sum(axis=1) + chunk[1]}

    inputs = (np.arange(30, dtype=np.float32).reshape(10, 3), jnp.arange(10.0))
    out = batched_apply(fn, inputs, batch_size=4)
    np.testing.assert_array_equal(out["double"], 2 * inputs[0])
    np.testing.assert_array_equal(out["sum"], inputs[0].sum(axis=1) + np.arange(10.0))
    assert traces == [(4, 3)]
    with pytest.raises(ValueError, match="empty"):
        batched_apply(fn, (np.zeros((0, 3)), np.zeros(0)), 4)
    with pytest.raises(ValueError, match="same number of rows"):
        batched_apply(fn, (np.zeros((3, 3)), np.zeros(2)), 4)


def test_top_fraction_keeps_the_best_scores_first():
    scores = np.array([0.1, 5.0, -2.0, 3.0, 3.0, 0.0, 9.0, 1.0])
    np.testing.assert_array_equal(top_fraction(scores, 0.5), [6, 1, 3, 4])
    np.testing.assert_array_equal(top_fraction(scores, 0.01), [6])  # at least one
    with pytest.raises(ValueError, match="fraction"):
        top_fraction(scores, 0.0)


def test_drs_base_score_grows_with_the_logit_and_gamma_hits_the_target_rate():
    logits = np.linspace(-4.0, 2.0, 50)
    base = drs_base_score(logits, max_logit=2.0)
    assert np.all(np.diff(base) > 0)
    # At the max logit: D - log(1 - exp(-eps)) ~= D - log(eps).
    assert base[-1] == pytest.approx(2.0 - np.log(1e-6), rel=1e-5)
    for target in (0.1, 0.5, 0.9):
        gamma = drs_gamma(base, target)
        assert _sigmoid(base - gamma).mean() == pytest.approx(target, abs=1e-9)


def test_rejection_sampling_keeps_the_requested_fraction_and_prefers_high_scores():
    key = jax.random.PRNGKey(0)
    latents, stats = rejection_sample(score_fn, 4, 600, key, target_acceptance=0.3, burn_in=4096, batch_size=256)
    assert latents.shape == (600, 4)
    assert stats.acceptance_rate == pytest.approx(0.3, abs=0.05)
    assert stats.proposed % 256 == 0 and stats.accepted >= 600
    # Unfiltered z[:, 0] has mean 0; accepted samples lean to high logits.
    assert np.mean(latents[:, 0]) > 0.5
    assert stats.as_dict()["gamma"] == stats.settings["gamma"]


def test_draw_until_gives_up_after_max_batches():
    never = lambda key: (jnp.zeros((8, 2)), jnp.zeros(8, bool))  # noqa: E731
    with pytest.raises(RuntimeError, match="only 0 of 5 samples accepted after max_batches=3"):
        draw_until(never, 5, jax.random.PRNGKey(0), max_batches=3)


def test_top_fraction_sample_keeps_the_highest_scored_latents():
    latents, scores, stats = top_fraction_sample(score_fn, 3, 50, 0.25, jax.random.PRNGKey(1), batch_size=64)
    assert latents.shape == (50, 3) and stats.proposed == 200 and stats.acceptance_rate == 0.25
    np.testing.assert_allclose(scores, 3.0 * latents[:, 0], rtol=1e-6)
    assert np.all(np.diff(scores) <= 0)
    # The kept 25 % are the upper quartile of a standard normal (> ~0.67 sd before scaling).
    assert scores.min() > 3.0 * 0.5


def test_classifier_confidence_is_half_when_undecided_and_near_one_when_certain():
    logits = np.array([[0.0, 0.0], [8.0, -8.0], [np.log(3.0), 0.0]])
    # sigmoid(log 3) = 0.75, so the third row averages 0.75 and 0.5.
    np.testing.assert_allclose(classifier_confidence(logits), [0.5, 1 / (1 + np.exp(-8.0)), 0.625], rtol=1e-6)
    with pytest.raises(ValueError, match="logits must be"):
        classifier_confidence(np.zeros(3))


def test_image_scorer_picks_the_named_score_and_composes_with_the_generator():
    generate = lambda z: jnp.tile(z[:, :1, None, None], (1, 4, 4, 3))  # noqa: E731  (image value = z[0])
    discriminate = lambda images: images.mean(axis=(1, 2, 3))  # noqa: E731
    logits = lambda images: jnp.stack([4.0 * images.mean(axis=(1, 2, 3))], axis=1)  # noqa: E731
    z = jnp.array([[0.0, 1.0], [0.5, 1.0], [-2.0, 0.0]])
    np.testing.assert_allclose(through_generator(generate, image_scorer("discriminator", discriminate))(z), [0.0, 0.5, -2.0])
    np.testing.assert_allclose(
        through_generator(generate, image_scorer("confidence", classifier_logits=logits))(z),
        1 / (1 + np.exp(-np.abs(4.0 * np.array([0.0, 0.5, -2.0])))), rtol=1e-6,
    )
    with pytest.raises(ValueError, match="'confidence' needs classifier_logits"):
        image_scorer("confidence", discriminate)
    with pytest.raises(ValueError, match="unknown"):
        image_scorer("beauty", discriminate, logits)
