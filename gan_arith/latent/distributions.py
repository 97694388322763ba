"""Summaries of latent distributions, as JSON-serialisable dicts.

The VAE seed looked at (1) the histogram of each averaged concept vector's values and (2) the
distribution of the first few latent dimensions across 90 encodings, finding them "normal-ish
but not always mean 0". These functions put numbers on both: per-dimension mean and std, and a
Kolmogorov-Smirnov test of each dimension (and of all values pooled) against the prior N(0, 1).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy import stats


def _as_matrix(latents: np.ndarray) -> np.ndarray:
    latents = np.asarray(latents, dtype=np.float64)
    if latents.ndim != 2 or latents.shape[0] < 2 or latents.shape[1] < 1:
        raise ValueError(f"latents must have shape [N, D] with N >= 2, got {latents.shape}")
    if not np.all(np.isfinite(latents)):
        raise ValueError("latents contain NaN or infinite values")
    return latents


def dimension_summary(latents: np.ndarray) -> dict[str, Any]:
    """Per-dimension mean and std (ddof=1) across N latent vectors [N, D], plus the pooled values'."""
    latents = _as_matrix(latents)
    means, stds = latents.mean(axis=0), latents.std(axis=0, ddof=1)
    return {
        "num_vectors": int(latents.shape[0]),
        "latent_dim": int(latents.shape[1]),
        "mean": means.tolist(),
        "std": stds.tolist(),
        "pooled_mean": float(latents.mean()),
        "pooled_std": float(latents.std(ddof=1)),
        # How far the dimensions wander from the prior, in one number each.
        "max_abs_mean": float(np.abs(means).max()),
        "std_range": [float(stds.min()), float(stds.max())],
    }


def normality_test(latents: np.ndarray, significance: float = 0.05) -> dict[str, Any]:
    """Kolmogorov-Smirnov tests against N(0, 1): each dimension across N vectors, and all values pooled.

    `dimensions_rejected` counts dimensions with p < significance; `dimensions_rejected_bonferroni`
    uses significance / D, the honest count when asking "is any dimension off the prior?".
    The pooled test mixes dimensions, so it can pass when single dimensions are shifted or scaled
    in opposite ways; read it together with the per-dimension results.
    """
    latents = _as_matrix(latents)
    if not 0 < significance < 1:
        raise ValueError(f"significance must be in (0, 1), got {significance}")
    per_dimension = [stats.kstest(column, "norm") for column in latents.T]
    p_values = np.array([r.pvalue for r in per_dimension])
    pooled = stats.kstest(latents.reshape(-1), "norm")
    return {
        "reference": "N(0, 1)",
        "test": "kolmogorov-smirnov",
        "significance": significance,
        "statistic": [float(r.statistic) for r in per_dimension],
        "p_value": p_values.tolist(),
        "dimensions_rejected": int((p_values < significance).sum()),
        "dimensions_rejected_bonferroni": int((p_values < significance / latents.shape[1]).sum()),
        "pooled_statistic": float(pooled.statistic),
        "pooled_p_value": float(pooled.pvalue),
    }


def histogram_data(vectors: Mapping[str, np.ndarray], bins: int = 30) -> dict[str, dict[str, Any]]:
    """Histogram of each named vector's values (e.g. each averaged concept vector [D]).

    All histograms share one set of bin edges over the common value range, so they compare directly.
    Returns {name: {"counts", "edges", "mean", "std", "num_values"}}.
    """
    if not vectors:
        raise ValueError("vectors is empty: nothing to histogram")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    arrays = {}
    for name, vector in vectors.items():
        array = np.asarray(vector, dtype=np.float64).reshape(-1)
        if array.size == 0 or not np.all(np.isfinite(array)):
            raise ValueError(f"vector {name!r} is empty or has non-finite values")
        arrays[name] = array
    low = min(a.min() for a in arrays.values())
    high = max(a.max() for a in arrays.values())
    edges = np.histogram_bin_edges(np.array([low, high]), bins=bins)
    return {
        name: {
            "counts": np.histogram(array, bins=edges)[0].tolist(),
            "edges": edges.tolist(),
            "mean": float(array.mean()),
            "std": float(array.std()),
            "num_values": int(array.size),
        }
        for name, array in arrays.items()
    }
