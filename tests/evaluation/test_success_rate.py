"""Wilson intervals and attribute success rates against hand-computed values."""

import numpy as np
import pytest

from gan_arith.evaluation.success_rate import attribute_success, rate_of, success_vs_baseline, wilson_interval

NAMES = ("Male", "Smiling", "Eyeglasses")


@pytest.mark.parametrize(
    "successes, trials, expected",
    [
        (8, 10, (0.4901624, 0.9433178)),  # Wilson (1927) score interval, z = 1.959964
        (0, 10, (0.0, 0.2775328)),
        (10, 10, (0.7224672, 1.0)),
        (50, 100, (0.4038315, 0.5961685)),
    ],
)
def test_wilson_interval_matches_known_values(successes, trials, expected):
    assert wilson_interval(successes, trials) == pytest.approx(expected, abs=1e-6)


def test_wilson_interval_widens_with_confidence_and_rejects_bad_counts():
    low95, high95 = wilson_interval(30, 100)
    low99, high99 = wilson_interval(30, 100, confidence=0.99)
    assert low99 < low95 < 0.3 < high95 < high99
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson_interval(11, 10)


def test_attribute_success_thresholds_probabilities_and_applies_the_query():
    probabilities = np.array(
        [
            [0.9, 0.8, 0.1],  # smiling man
            [0.2, 0.9, 0.1],  # smiling woman
            [0.6, 0.4, 0.9],  # neutral man with glasses
            [0.7, 0.51, 0.7],  # smiling man with glasses
        ]
    )
    np.testing.assert_array_equal(attribute_success(probabilities, NAMES, "Smiling & Male"), [1, 0, 0, 1])
    np.testing.assert_array_equal(attribute_success(probabilities, NAMES, "Smiling & ~Eyeglasses"), [1, 1, 0, 0])
    strict = attribute_success(probabilities, NAMES, "Smiling & Male", threshold=0.6)
    np.testing.assert_array_equal(strict, [1, 0, 0, 0])
    with pytest.raises(ValueError, match=r"probabilities must be \[N, 3\]"):
        attribute_success(probabilities[:, :2], NAMES, "Smiling")


def test_success_vs_baseline_reports_both_rates_with_intervals():
    result = np.tile([[0.9, 0.9, 0.0]], (8, 1))
    result[6:, 1] = 0.1  # 6 of 8 results are smiling men
    baseline = np.tile([[0.9, 0.1, 0.0]], (10, 1))
    baseline[:2, 1] = 0.9  # 2 of 10 random faces are smiling men
    report = success_vs_baseline(result, baseline, NAMES, "Smiling & Male")
    assert report["result"]["rate"] == 0.75 and report["result"]["trials"] == 8
    assert report["baseline"]["rate"] == 0.2
    assert (report["baseline"]["ci_low"], report["baseline"]["ci_high"]) == pytest.approx(wilson_interval(2, 10))
    assert rate_of(np.array([True, False, True, True])).rate == 0.75


class _ChannelScorer:
    """P(Male) = mean red, P(Smiling) = mean green of uint8 images."""

    attribute_names = ("Male", "Smiling")

    def probabilities(self, images):
        return np.asarray(images, np.float64).mean(axis=(1, 2))[:, :2] / 255.0


def _faces(male_smiling_pairs):
    colours = np.array([[255 * m, 255 * s, 0] for m, s in male_smiling_pairs], np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (len(colours), 2, 2, 3))


class _StrictScorer(_ChannelScorer):
    """The same channels, read as present only above 0.6: a second reader that disagrees on borderline faces."""

    def probabilities(self, images):
        return np.where(super().probabilities(images) > 0.6, 0.9, 0.1)


def _readings(results, baseline, hit=(3, 4), confidence=0.95):
    from gan_arith.evaluation.success_rate import arithmetic_success, success_readings

    classifier, judge = (
        arithmetic_success(scorer, results, baseline, "Smiling & Male", confidence=confidence)
        for scorer in (_ChannelScorer(), _StrictScorer())
    )
    hit_rate = rate_of(np.arange(hit[1]) < hit[0], confidence).as_dict()
    return success_readings(classifier, judge, hit_rate, "scored")


def test_arithmetic_success_scores_results_against_baseline():
    from gan_arith.evaluation.success_rate import arithmetic_success

    results = _faces([(1, 1), (1, 1), (1, 0), (0, 1)])
    baseline = _faces([(1, 1), (0, 0), (0, 0), (0, 1), (1, 0)])
    success = arithmetic_success(_ChannelScorer(), results, baseline, "Smiling & Male")
    assert (success["result"]["successes"], success["result"]["trials"]) == (2, 4)
    assert (success["baseline"]["successes"], success["baseline"]["trials"]) == (1, 5)
    assert success["mean_probability"]["result"] == {"Male": 0.75, "Smiling": 0.75}
    narrower = arithmetic_success(_ChannelScorer(), results, baseline, "Smiling & Male", confidence=0.8)
    assert narrower["result"]["ci_high"] < success["result"]["ci_high"]


def test_both_readings_are_reported_side_by_side_with_the_hit_rate_and_the_source():
    from gan_arith.evaluation.success_rate import format_success, results_markdown, success_readings

    # Two results are smiling men in full colour; a third is one at 55%, which only the lenient
    # classifier counts.
    results = np.concatenate([_faces([(1, 1), (1, 1), (1, 0)]), np.full((1, 2, 2, 3), 140, np.uint8)])
    baseline = _faces([(1, 1), (0, 0), (0, 0), (0, 1), (1, 0)])
    success = _readings(results, baseline)
    assert success["source"] == "scored" and success["target"] == "Smiling & Male"
    assert success["classifier"]["result"]["successes"] == 3 and success["judge"]["result"]["successes"] == 2
    assert success["judge_hit_rate"]["rate"] == 0.75
    assert success["relative_to_hit_rate"] == pytest.approx(0.5 / 0.75)
    line = format_success(success)
    assert line.startswith("Smiling & Male (scored members): classifier 75% [")
    assert "; judge 50% [" in line and "vs random 20% [" in line
    assert "judge hits 75% [" in line and "of 4 real Smiling & Male faces (result = 67% of that)" in line
    assert line.endswith("(95% Wilson intervals)")
    assert format_success(_readings(results, baseline, confidence=0.8)).endswith("(80% Wilson intervals)")
    blind = _readings(results, baseline, hit=(0, 4))
    assert blind["relative_to_hit_rate"] is None and "(result = n/a of that)" in format_success(blind)
    with pytest.raises(ValueError, match="different targets"):
        success_readings(success["classifier"], {**success["judge"], "target": "Smiling"}, success["judge_hit_rate"], "x")
    table = results_markdown({
        "command": "python -m experiments.evaluate", "target": "Smiling & Male", "feature_network": "classifier features",
        "models": {"vae": {"classifier_accuracy": {"Male": 0.98}, "judge_accuracy": {"Male": 0.95}, "arithmetic": success,
                           "real_target_rate": rate_of(np.array([True, False])).as_dict(),
                           "distances": {"frechet": 1.5, "kid_mean": 0.01, "kid_std": 0.002}}},
    })
    assert "| vae | scored | Male 0.980 | Male 0.950 | 75% [" in table and "| 67% | 50% [" in table
    assert "| 1.50 | 0.0100 ± 0.0020 |" in table
    header, rule, row = table.splitlines()[2:5]
    assert header.count("|") == rule.count("|") == row.count("|")


def _distances_table(distances):
    from gan_arith.evaluation.success_rate import results_markdown

    rate = rate_of(np.array([True, False])).as_dict()
    reading = {"target": "Smiling", "confidence": 0.95, "result": rate, "baseline": rate}
    arithmetic = {"target": "Smiling", "source": "encoded", "confidence": 0.95, "classifier": reading, "judge": reading,
                  "judge_hit_rate": rate, "relative_to_hit_rate": 1.0}
    return results_markdown({
        "command": "c", "target": "Smiling", "feature_network": "f",
        "models": {"gan": {"classifier_accuracy": {}, "judge_accuracy": {}, "arithmetic": arithmetic,
                           "real_target_rate": rate, "distances": distances}},
    })


def test_results_markdown_keeps_significant_digits_and_shows_a_missing_kid_spread_as_na():
    table = _distances_table({"frechet": 14.0, "kid_mean": 0.1063, "kid_std": 0.0100})
    assert "| 14.0 | 0.106 ± 0.010 |" in table  # not "14" and "0.106 ± 0.01"
    assert "| 1.92 | 0.01904 ± 0.00040 |" in _distances_table({"frechet": 1.92, "kid_mean": 0.01904, "kid_std": 0.0004})
    # No estimate of the spread (subsets all alike): the value stands, the spread is n/a, not 0.
    assert "| 124 | 0.0500 ± n/a |" in _distances_table({"frechet": 124.2, "kid_mean": 0.05, "kid_std": None})
    assert "± n/a |" in _distances_table({"frechet": 3.0, "kid_mean": 0.05, "kid_std": float("nan")})


def test_wilson_bounds_are_exact_at_zero_and_all():
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
