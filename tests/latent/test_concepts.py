"""Tests for gan_arith/latent/concepts.py: concept definitions, draws and arithmetic over draws."""

import numpy as np
import pytest

from gan_arith.latent import concepts

NAMES = ["Male", "Smiling", "Eyeglasses"]


def test_concept_vector_is_the_mean_over_k():
    latents = np.array([[1.0, 0.0], [2.0, 3.0], [6.0, 0.0]])
    np.testing.assert_array_equal(concepts.concept_vector(latents), [3.0, 1.0])
    batched = np.stack([latents, 2 * latents])  # [M=2, k=3, D=2]
    np.testing.assert_array_equal(concepts.concept_vector(batched), [[3.0, 1.0], [6.0, 2.0]])
    with pytest.raises(ValueError, match="empty concept"):
        concepts.concept_vector(np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"\[\.\.\., k, D\]"):
        concepts.concept_vector(np.zeros(4))


def test_parse_concept_assignments():
    parsed = concepts.parse_concept_assignments(["smiling_woman=12,45,78", " neutral_man = 3, 4 "], num_candidates=100)
    assert parsed == {"smiling_woman": [12, 45, 78], "neutral_man": [3, 4]}


@pytest.mark.parametrize(
    "items, fragment",
    [
        (["smiling_woman"], "has no '='"),
        (["smiling woman=1"], "not an identifier"),
        (["2nd=1"], "not an identifier"),
        (["a="], "nothing after '='"),
        (["a=1,,2"], "'' in 'a=1,,2' is not a non-negative integer"),
        (["a=1,-2"], "'-2'"),
        (["a=1,x"], "'x'"),
        (["a=3,3"], "index 3 is repeated"),
        (["a=1", "a=2"], "defined twice"),
        (["a=100"], "index 100 is out of range \\(there are 100 faces\\)"),
    ],
)
def test_parse_concept_assignments_errors(items, fragment):
    with pytest.raises(ValueError, match=fragment):
        concepts.parse_concept_assignments(items, num_candidates=100)


def test_parse_concept_queries():
    parsed = concepts.parse_concept_queries(["smiling_woman=Smiling & ~Male", "glasses = (Eyeglasses)"])
    assert parsed == {"smiling_woman": "Smiling & ~Male", "glasses": "(Eyeglasses)"}
    with pytest.raises(ValueError, match="has no '='"):
        concepts.parse_concept_queries(["Smiling & ~Male"])


def test_candidates_from_queries():
    attributes = np.array([[1, 1, -1], [-1, 1, -1], [-1, -1, 1], [-1, 1, 1]], np.int8)
    found = concepts.candidates_from_queries(
        {"smiling_woman": "Smiling & ~Male", "man": "Male"}, NAMES, attributes
    )
    np.testing.assert_array_equal(found["smiling_woman"], [1, 3])
    np.testing.assert_array_equal(found["man"], [0])
    with pytest.raises(ValueError, match="concept 'nobody'.*matches none of the 4 faces"):
        concepts.candidates_from_queries({"nobody": "Male & Eyeglasses"}, NAMES, attributes)
    with pytest.raises(ValueError, match="unknown attribute 'Smile'"):
        concepts.candidates_from_queries({"x": "Smile"}, NAMES, attributes)


def test_query_probability_soft_scores():
    probabilities = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.25]])
    # A conjunction of literals scores the product of per-literal probabilities.
    np.testing.assert_allclose(
        concepts.query_probability("Smiling & ~Male", NAMES, probabilities), [0.2 * 0.1, 0.8 * 0.9]
    )
    # Disjunction under independence: p + q - p q.
    np.testing.assert_allclose(
        concepts.query_probability("Smiling | Eyeglasses", NAMES, probabilities),
        [0.2 + 0.5 - 0.1, 0.8 + 0.25 - 0.2],
    )
    # On hard 0/1 probabilities the score is the store's boolean mask.
    hard = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]], float)
    np.testing.assert_array_equal(
        concepts.query_probability("(Smiling | Eyeglasses) & ~Male", NAMES, hard), [0, 1, 1, 1]
    )
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        concepts.query_probability("Male", NAMES, probabilities + 0.5)
    with pytest.raises(ValueError, match="shape"):
        concepts.query_probability("Male", NAMES, probabilities[:, :2])


def test_top_scored_candidates():
    probabilities = np.array([[0.9, 0.9, 0], [0.1, 0.9, 0], [0.2, 0.6, 0], [0.05, 0.1, 0], [0.0, 0.95, 0]])
    top = concepts.top_scored_candidates(
        {"smiling_woman": "Smiling & ~Male", "man": "Male"}, NAMES, probabilities, top_n=3
    )
    np.testing.assert_array_equal(top["smiling_woman"], [4, 1, 2])  # 0.95, 0.81, 0.48
    np.testing.assert_array_equal(top["man"], [0, 2, 1])
    with pytest.raises(ValueError, match="top_n=6 exceeds"):
        concepts.top_scored_candidates({"man": "Male"}, NAMES, probabilities, top_n=6)


def _joint(members, i):
    return tuple(tuple(sorted(rows[i])) for rows in members.values())


def test_draw_concept_members(capsys):
    candidates = {"a": np.array([10, 11, 12, 13, 14]), "b": np.array([20, 21, 22, 23])}
    members = concepts.draw_concept_members(np.random.default_rng(0), candidates, k=3, num_draws=30)
    assert members["a"].shape == (30, 3) and members["b"].shape == (30, 3)
    for name, drawn in members.items():
        assert np.isin(drawn, candidates[name]).all()
        assert all(len(set(row)) == 3 for row in drawn)  # distinct within a draw
    # 10 x 4 = 40 joint draws exist: 30 of them, no two alike (the plain sampler repeats some here).
    assert len({_joint(members, i) for i in range(30)}) == 30
    nearly_all = concepts.draw_concept_members(np.random.default_rng(1), candidates, k=3, num_draws=39)
    assert len({_joint(nearly_all, i) for i in range(39)}) == 39 == len(nearly_all["a"])  # repeats redrawn
    assert capsys.readouterr().err == ""
    again = concepts.draw_concept_members(np.random.default_rng(0), candidates, k=3, num_draws=30)
    np.testing.assert_array_equal(again["a"], members["a"])
    np.testing.assert_array_equal(again["b"], members["b"])
    with pytest.raises(ValueError, match="concept 'b' has 4 candidate\\(s\\), fewer than k=5"):
        concepts.draw_concept_members(np.random.default_rng(0), candidates, k=5)
    with pytest.raises(ValueError, match="concept 'a' lists a candidate more than once"):
        concepts.draw_concept_members(np.random.default_rng(0), {"a": np.array([1, 2, 2, 3])}, k=2)


def test_draws_are_the_plain_samplers_when_candidates_are_plenty():
    # The defaults (30 scored candidates per concept, k = 3, 100 draws): the same stream, the same draws.
    candidates = {name: np.random.default_rng(i).permutation(2000)[:30] for i, name in enumerate("xyz")}
    rng = np.random.default_rng(0)
    plain = {name: np.stack([rng.choice(rows, size=3, replace=False) for _ in range(100)])
             for name, rows in candidates.items()}
    members = concepts.draw_concept_members(np.random.default_rng(0), candidates, k=3, num_draws=100)
    for name in candidates:
        np.testing.assert_array_equal(members[name], plain[name])


def test_too_few_candidates_give_every_distinct_draw_once_and_say_so(capsys):
    # 3 candidates per concept and k = 3: one distinct draw, not 10 copies of it counted as 10 trials.
    candidates = {"a": np.array([5, 6, 7]), "b": np.array([1, 2, 3]), "c": np.array([8, 9, 0])}
    members = concepts.draw_concept_members(np.random.default_rng(0), candidates, k=3, num_draws=10)
    assert {name: sorted(rows[0]) for name, rows in members.items()} == {"a": [5, 6, 7], "b": [1, 2, 3], "c": [0, 8, 9]}
    assert all(rows.shape == (1, 3) for rows in members.values())
    err = capsys.readouterr().err
    assert "only 1 distinct draw(s) of k=3 members exist" in err and "a 3, b 3, c 3" in err
    assert "fewer than the 10 requested: using 1 draw(s)" in err and len(err.splitlines()) == 1
    # 4 x 1 joint draws: all four, each once, whatever the number asked for.
    members = concepts.draw_concept_members(np.random.default_rng(1), {"a": np.arange(4), "b": np.arange(4, 7)}, 3, 50)
    assert len(members["a"]) == len(members["b"]) == 4
    assert {tuple(sorted(row)) for row in members["a"]} == {(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)}
    assert "only 4 distinct draw(s)" in capsys.readouterr().err


def test_pool_draw_passes_distinct_draws_through():
    from gan_arith.latent.pools import ConceptPool

    pool = ConceptPool(np.zeros((6, 2)), np.zeros((6, 1, 1, 3), np.uint8), {"a": np.arange(3), "b": np.arange(3, 6)},
                       "scored")
    assert {name: rows.shape for name, rows in pool.draw(k=3, num_draws=10).items()} == {"a": (1, 3), "b": (1, 3)}


def test_arithmetic_results_exact():
    latents = np.arange(12, dtype=np.float64).reshape(6, 2)  # row i = [2i, 2i + 1]
    members = {
        "smiling_woman": np.array([[0, 1, 2], [3, 4, 5]]),
        "neutral_woman": np.array([[1, 2, 3], [0, 0, 0]]),
        "neutral_man": np.array([[5, 5, 2], [1, 1, 1]]),
    }
    result = concepts.arithmetic_results("smiling_woman - neutral_woman + neutral_man", latents, members)
    np.testing.assert_array_equal(result.concept_vectors["smiling_woman"], [[2, 3], [8, 9]])
    np.testing.assert_array_equal(result.concept_vectors["neutral_woman"], [[4, 5], [0, 1]])
    np.testing.assert_array_equal(result.concept_vectors["neutral_man"], [[8, 9], [2, 3]])
    np.testing.assert_array_equal(result.results, [[6, 7], [10, 11]])
    assert result.coefficients == {"smiling_woman": 1.0, "neutral_woman": -1.0, "neutral_man": 1.0}


def test_arithmetic_results_errors():
    latents = np.zeros((4, 2))
    with pytest.raises(ValueError, match="known concepts: a, b"):
        concepts.arithmetic_results("a - c", latents, {"a": np.zeros((1, 2), int), "b": np.zeros((1, 2), int)})
    with pytest.raises(ValueError, match="concept 'b' is empty"):
        concepts.arithmetic_results("a - b", latents, {"a": np.zeros((1, 2), int), "b": np.zeros((1, 0), int)})
    with pytest.raises(ValueError, match="outside"):
        concepts.arithmetic_results("a", latents, {"a": np.array([[4]])})
    with pytest.raises(ValueError, match="same number of draws"):
        concepts.arithmetic_results("a - b", latents, {"a": np.zeros((1, 2), int), "b": np.zeros((2, 2), int)})
