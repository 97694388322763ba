"""Arithmetic success rate: how often the classifier sees the target attributes in arithmetic results.

The seeds judge "smiling woman − neutral woman + neutral man = smiling man" by eye. Here the
attribute classifier's probabilities are thresholded into ±1 labels, a query in the store's
language (`Smiling & Male`) marks successes, and the rate is set beside the same rate over random
samples (the baseline: how often a random face already is a smiling man), each with a Wilson
score interval. The project classifier may pick the concept members too, so its reading is set
beside an independent judge's (evaluation/judge.py) and the judge's hit rate on real target faces
(`success_readings`, `format_success`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from gan_arith.data.store import attribute_mask
from gan_arith.evaluation.formatting import format_kid, significant


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion: sensible at 0 %, 100 % and small `trials`."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denominator = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denominator
    # At 0 % and 100 % the bound is exactly 0 (or 1); rounding would leave it a hair inside.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return low, high


@dataclasses.dataclass(frozen=True)
class Rate:
    """successes / trials with its Wilson interval [low, high]."""

    successes: int
    trials: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.successes / self.trials

    def as_dict(self) -> dict[str, float]:
        return {
            "rate": self.rate, "successes": self.successes, "trials": self.trials, "ci_low": self.low, "ci_high": self.high
        }


def rate_of(mask: np.ndarray, confidence: float = 0.95) -> Rate:
    """The fraction of True in a boolean mask, with its Wilson interval."""
    mask = np.asarray(mask, dtype=bool).ravel()
    successes = int(mask.sum())
    return Rate(successes, mask.size, *wilson_interval(successes, mask.size, confidence))


def attribute_success(
    probabilities: np.ndarray, attribute_names: Sequence[str], query: str, threshold: float = 0.5
) -> np.ndarray:
    """Rows whose thresholded attribute probabilities [N, A] satisfy `query` (e.g. "Smiling & Male")."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(attribute_names):
        raise ValueError(
            f"probabilities must be [N, {len(attribute_names)}] for attributes {list(attribute_names)}, "
            f"got shape {probabilities.shape}"
        )
    labels = np.where(probabilities > threshold, 1, -1).astype(np.int8)
    return attribute_mask(query, attribute_names, labels)


def success_vs_baseline(
    result_probabilities: np.ndarray,
    baseline_probabilities: np.ndarray,
    attribute_names: Sequence[str],
    query: str,
    *,
    threshold: float = 0.5,
    confidence: float = 0.95,
) -> dict[str, dict[str, float]]:
    """{"result": rate, "baseline": rate} of `query` among arithmetic results and among random samples."""
    return {
        name: rate_of(attribute_success(probabilities, attribute_names, query, threshold), confidence).as_dict()
        for name, probabilities in (("result", result_probabilities), ("baseline", baseline_probabilities))
    }


def arithmetic_success(
    scorer: Any,
    result_images: np.ndarray,
    baseline_images: np.ndarray,
    query: str,
    *,
    threshold: float = 0.5,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """How often an attribute classifier sees `query` (e.g. "Smiling & Male") in arithmetic results,
    beside the rate among baseline images (random samples), with mean attribute probabilities of both.

    `scorer` is an `evaluation.scorer.AttributeScorer` (the project classifier or the judge); images
    are uint8 or [-1, 1] [N, S, S, 3].
    """
    return probability_success(
        scorer.probabilities(result_images), scorer.probabilities(baseline_images), scorer.attribute_names, query,
        threshold=threshold, confidence=confidence,
    )


def probability_success(
    result_probabilities: np.ndarray,
    baseline_probabilities: np.ndarray,
    attribute_names: Sequence[str],
    query: str,
    *,
    threshold: float = 0.5,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """`arithmetic_success` from attribute probabilities [N, A] already computed (a baseline scored once
    and read against many sets of results)."""
    probabilities = {"result": result_probabilities, "baseline": baseline_probabilities}
    rates = success_vs_baseline(
        result_probabilities, baseline_probabilities, attribute_names, query, threshold=threshold, confidence=confidence
    )
    mean_probability = {
        name: {attribute: float(p) for attribute, p in zip(attribute_names, np.asarray(values).mean(axis=0))}
        for name, values in probabilities.items()
    }
    return {"target": query, "confidence": confidence, **rates, "mean_probability": mean_probability}


def success_readings(
    classifier: dict[str, Any], judge: dict[str, Any], judge_hit_rate: dict[str, float], source: str
) -> dict[str, Any]:
    """The two readings of one set of arithmetic results, as the summaries keep them.

    `classifier` and `judge` are `arithmetic_success` results of the project classifier and of the
    independent judge (evaluation/judge.py); `judge_hit_rate` is the judge's rate on real faces that
    carry the target (its ceiling: a perfect result reads no better); `source` is where the concept
    members came from (`ConceptPool.source`). `relative_to_hit_rate` is the judge's result rate over
    its hit rate (None when the judge calls no real target face so).
    """
    if classifier["target"] != judge["target"]:
        raise ValueError(f"the readings are of different targets: {classifier['target']!r} and {judge['target']!r}")
    hit = judge_hit_rate["rate"]
    return {
        "target": classifier["target"], "source": source, "confidence": classifier["confidence"],
        "classifier": classifier, "judge": judge, "judge_hit_rate": judge_hit_rate,
        "relative_to_hit_rate": judge["result"]["rate"] / hit if hit > 0 else None,
    }


def _percent(rate: dict[str, float]) -> str:
    return f"{rate['rate']:.0%} [{rate['ci_low']:.0%}, {rate['ci_high']:.0%}] of {rate['trials']}"


def _reading(reading: dict[str, Any]) -> str:
    return f"{_percent(reading['result'])} vs random {_percent(reading['baseline'])}"


def _relative(success: dict[str, Any]) -> str:
    relative = success["relative_to_hit_rate"]
    return "n/a" if relative is None else f"{relative:.0%}"


def format_success(success: dict[str, Any]) -> str:
    """One line for the log from `success_readings`: `Smiling & Male (scored members): classifier 63% [53%, 72%]
    of 100 vs random 6% [...] of 1000; judge 58% [...] vs random 7% [...]; judge hits 83% [...] of 412 real
    Smiling & Male faces (result = 70% of that) (95% Wilson intervals)`."""
    return (
        f"{success['target']} ({success['source']} members): classifier {_reading(success['classifier'])}; "
        f"judge {_reading(success['judge'])}; judge hits {_percent(success['judge_hit_rate'])} real "
        f"{success['target']} faces (result = {_relative(success)} of that) "
        f"({success['confidence']:.0%} Wilson intervals)"
    )


def _accuracies(accuracy: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in accuracy.items())


def _reading_headers(target: str) -> list[str]:
    """The column headers of one `success_readings` in a markdown table (`_reading_cells`)."""
    return [f"{target}: results (classifier)", "random samples (classifier)", "results (judge)",
            "random samples (judge)", f"judge on real {target} faces", "judge: results / real"]


def _reading_cells(success: dict[str, Any]) -> list[str]:
    """The cells of one `success_readings` under `_reading_headers`."""
    return [_percent(success[reader][part]) for reader in ("classifier", "judge") for part in ("result", "baseline")] + [
        _percent(success["judge_hit_rate"]), _relative(success)]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + [
        "| " + " | ".join(cells) + " |" for cells in rows]


def results_markdown(results: dict[str, Any]) -> str:
    """A markdown table of `experiments.evaluate`'s results.json: one row per model kind, the classifier's
    and the judge's readings side by side."""
    headers = ["model", "members", "classifier test accuracy", "judge test accuracy", *_reading_headers(results["target"]),
               "real test faces", f"Fréchet distance ({results['feature_network']})", "KID (± std over subsets)"]
    rows = []
    for kind, row in results["models"].items():
        success, distances = row["arithmetic"], row["distances"]
        rows.append([kind, success["source"], _accuracies(row["classifier_accuracy"]), _accuracies(row["judge_accuracy"]),
                     *_reading_cells(success), _percent(row["real_target_rate"]), significant(distances["frechet"]),
                     format_kid(distances["kid_mean"], distances["kid_std"])])
    return "\n".join([f"Command: `{results['command']}`", "", *_table(headers, rows)]) + "\n"


def readings_markdown(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """A markdown table of success readings, one line per row: each row's `keys` (e.g. model, members, k),
    then its `success_readings` (under 'success') read by the classifier and the judge side by side."""
    if not rows:
        raise ValueError("there are no readings to tabulate")
    headers = [*keys, *_reading_headers(rows[0]["success"]["target"])]
    return "\n".join(_table(headers, [[str(row[key]) for key in keys] + _reading_cells(row["success"]) for row in rows])) + "\n"
