"""ROC AUC by hand, score labelling, and a noise classifier that learns a planted good-noise rule."""

import itertools

import jax
import numpy as np
import pytest

from gan_arith.evaluation.noise_classifier import (
    NoiseMLP,
    evaluate_noise_classifier,
    fit_noise_classifier,
    label_by_score,
    noise_probabilities,
    roc_auc,
    roc_curve,
    sample_good_noise,
)


def _pairwise_auc(labels, scores):
    pairs = [(p, n) for p, n in itertools.product(scores[labels == 1], scores[labels == 0])]
    return np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])


def test_roc_auc_counts_ties_as_half():
    # Positive/negative pairs: (.8,.8) tie, (.8,.1) win, (.3,.8) loss, (.3,.1) win, (.5,.8) loss, (.5,.1) win.
    labels, scores = np.array([1, 0, 1, 0, 1]), np.array([0.8, 0.8, 0.3, 0.1, 0.5])
    assert roc_auc(labels, scores) == pytest.approx(3.5 / 6, abs=1e-12)
    assert roc_auc(labels, np.ones(5)) == 0.5
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([1, 2, 3, 4])) == 1.0
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([4, 3, 2, 1])) == 0.0


def test_roc_auc_matches_counting_all_pairs_on_heavily_tied_scores():
    rng = np.random.default_rng(0)
    labels, scores = rng.integers(0, 2, 200), rng.integers(0, 6, 200).astype(float)
    assert roc_auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores), abs=1e-12)
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.ones(3), np.arange(3.0))


def test_label_by_score_takes_the_extremes():
    scores = np.array([5.0, 1.0, 3.0, 0.0, 4.0, 2.0, 6.0, 7.0])
    indices, labels = label_by_score(scores, quantile=0.25)
    np.testing.assert_array_equal(indices, [3, 1, 6, 7])  # the two lowest, then the two highest
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])


def test_noise_classifier_learns_a_planted_rule_and_samples_good_noise():
    # "Good" noise is noise with z0 + z1 large: labelled from the top and bottom quarters of that score.
    latents = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (2000, 4)))
    indices, labels = label_by_score(latents[:, 0] + latents[:, 1], quantile=0.25)
    model = NoiseMLP((32,))
    state = fit_noise_classifier(latents[indices], labels, model=model, steps=300, batch_size=128, seed=0)
    held_out = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (1000, 4)))
    truth = (held_out[:, 0] + held_out[:, 1] > 0).astype(int)
    assert roc_auc(truth, noise_probabilities(model, state.params, held_out)) > 0.95
    good, stats = sample_good_noise(model, state.params, 4, 300, jax.random.PRNGKey(2), batch_size=256)
    assert good.shape == (300, 4)
    assert stats.acceptance_rate == pytest.approx(0.5, abs=0.1)
    assert np.mean(good[:, 0] + good[:, 1] > 0) > 0.9


def test_roc_curve_runs_from_origin_to_one_and_its_area_is_the_auc():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    scores = np.round(labels + rng.normal(size=60), 1)  # rounded: many ties
    false_positive, true_positive = roc_curve(labels, scores)
    assert (false_positive[0], true_positive[0], false_positive[-1], true_positive[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(false_positive) >= 0) and np.all(np.diff(true_positive) >= 0)
    # Trapezoids over the tie-aware curve give exactly the Mann-Whitney AUC.
    assert np.trapezoid(true_positive, false_positive) == pytest.approx(roc_auc(labels, scores), abs=1e-12)


def test_evaluate_noise_classifier_holds_out_latents_and_finds_a_planted_rule():
    latents = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (1000, 4)))
    evaluation = evaluate_noise_classifier(latents, latents[:, 1] - latents[:, 2], quantile=0.3, held_out_fraction=0.25,
                                           model=NoiseMLP((32,)), steps=300, batch_size=128)
    assert len(evaluation.held_out_labels) == 150  # a quarter of the 600 labelled extremes
    assert 0 < evaluation.held_out_labels.mean() < 1
    assert evaluation.held_out_auc > 0.97 and evaluation.held_out_accuracy > 0.9 and evaluation.train_accuracy > 0.9
    with pytest.raises(ValueError, match="held_out_fraction"):
        evaluate_noise_classifier(latents, latents[:, 0], held_out_fraction=1.0)
