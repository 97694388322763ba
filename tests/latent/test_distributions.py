"""Tests for gan_arith/latent/distributions.py: per-dimension summaries, normality tests, histograms."""

import json

import numpy as np
import pytest

from gan_arith.latent import distributions


def test_dimension_summary_on_a_known_gaussian():
    rng = np.random.default_rng(0)
    shift = np.array([0.0, 2.0, -1.0])
    scale = np.array([1.0, 0.5, 3.0])
    latents = shift + scale * rng.normal(size=(20000, 3))
    summary = distributions.dimension_summary(latents)
    json.dumps(summary)
    assert summary["num_vectors"] == 20000 and summary["latent_dim"] == 3
    assert np.all(np.abs(np.array(summary["mean"]) - shift) < 4 * scale / np.sqrt(20000))  # 4 standard errors
    np.testing.assert_allclose(summary["std"], scale, rtol=0.03)
    np.testing.assert_allclose(summary["mean"], latents.mean(axis=0))
    np.testing.assert_allclose(summary["std"], latents.std(axis=0, ddof=1))
    assert summary["max_abs_mean"] == pytest.approx(2.0, abs=0.02)
    assert summary["pooled_mean"] == pytest.approx(latents.mean())


def test_normality_test_accepts_the_prior_and_rejects_a_shift():
    rng = np.random.default_rng(1)
    prior = rng.normal(size=(2000, 4))
    result = distributions.normality_test(prior)
    json.dumps(result)
    assert result["dimensions_rejected_bonferroni"] == 0
    assert result["pooled_p_value"] > 0.01
    assert len(result["p_value"]) == 4
    shifted = prior.copy()
    shifted[:, 2] += 0.5  # one dimension off the prior, as the seed saw ("not always mean 0")
    result = distributions.normality_test(shifted)
    assert result["p_value"][2] < 1e-10
    assert result["dimensions_rejected_bonferroni"] == 1
    assert result["statistic"][2] == pytest.approx(0.19, abs=0.03)  # KS distance Phi(0.25) - Phi(-0.25) ~ 0.197


def test_histogram_data_shares_edges_and_counts_everything():
    rng = np.random.default_rng(2)
    vectors = {"a": rng.normal(size=100), "b": rng.normal(loc=1.0, size=256)}
    histograms = distributions.histogram_data(vectors, bins=12)
    json.dumps(histograms)
    assert histograms["a"]["edges"] == histograms["b"]["edges"]
    assert len(histograms["a"]["edges"]) == 13
    assert sum(histograms["a"]["counts"]) == 100 and sum(histograms["b"]["counts"]) == 256
    assert histograms["b"]["mean"] == pytest.approx(vectors["b"].mean())
    edges = histograms["a"]["edges"]
    assert edges[0] == pytest.approx(min(vectors["a"].min(), vectors["b"].min()))


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        distributions.dimension_summary(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        distributions.normality_test(np.array([[0.0], [np.nan]]))
    with pytest.raises(ValueError, match="empty"):
        distributions.histogram_data({})
