"""Tests for gan_arith/latent/expression.py: parsing concept arithmetic and evaluating it."""

import numpy as np
import pytest

from gan_arith.latent import expression


@pytest.mark.parametrize(
    "text, expected",
    [
        ("smiling_woman - neutral_woman + neutral_man", {"smiling_woman": 1, "neutral_woman": -1, "neutral_man": 1}),
        ("a - (b - c)", {"a": 1, "b": -1, "c": 1}),
        ("-(a + -b) - -c", {"a": -1, "b": 1, "c": 1}),
        ("0.5*smiling_man + 2 * a", {"smiling_man": 0.5, "a": 2}),
        # * binds tighter than + and -: 2*a + b is not 2*(a + b).
        ("2 * a + b", {"a": 2, "b": 1}),
        ("a - 2 * b * 3", {"a": 1, "b": -6}),
        ("(a + b) * .5 - c / 4", {"a": 0.5, "b": 0.5, "c": -0.25}),
        ("3 * (a - 2 * (b + c))", {"a": 3, "b": -6, "c": -6}),
        ("1e-1 * a + a", {"a": 1.1}),
        ("a - a + b", {"a": 0, "b": 1}),
    ],
)
def test_parse_linear_combinations(text, expected):
    parsed = expression.parse(text)
    assert list(parsed) == list(expected)  # order of first appearance
    for name, coefficient in expected.items():
        assert parsed[name] == pytest.approx(coefficient)


@pytest.mark.parametrize(
    "text, position, fragment",
    [
        ("a +", 3, "unexpected end"),
        ("a + * b", 4, "unexpected '*'"),
        ("(a - b", 6, "unclosed '('"),
        ("a - b)", 5, "unexpected ')'"),
        ("a b", 2, "unexpected 'b'"),
        ("a $ b", 2, "unexpected character '$'"),
        ("a * b", 2, "cannot multiply two concepts"),
        ("2 / a", 2, "cannot divide by a concept"),
        ("a / 0", 2, "division by zero"),
        ("a + 1", 2, "cannot add a constant"),
        ("2 * 3", 0, "names no concept"),
        ("   ", 0, "empty expression"),
    ],
)
def test_syntax_errors_name_the_position(text, position, fragment):
    with pytest.raises(expression.ExpressionError) as info:
        expression.parse(text)
    assert info.value.position == position
    assert fragment in str(info.value)
    assert f"at position {position}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_format_combination_round_trips():
    coefficients = expression.parse("a - 0.5 * b + 2 * c")
    text = expression.format_combination(coefficients)
    assert text == "a - 0.5*b + 2*c"
    assert expression.parse(text) == coefficients


def test_evaluate_exact_on_known_vectors():
    concepts = {
        "smiling_woman": np.array([1.0, 2.0, 3.0], np.float32),
        "neutral_woman": np.array([0.5, 0.5, 0.5], np.float32),
        "neutral_man": np.array([-1.0, 0.0, 4.0], np.float32),
        "unused": np.array([100.0, 100.0, 100.0], np.float32),
    }
    result = expression.evaluate("smiling_woman - neutral_woman + neutral_man", concepts)
    np.testing.assert_array_equal(result, np.array([-0.5, 1.5, 6.5], np.float32))
    assert result.dtype == np.float32
    result = expression.evaluate("0.5 * (smiling_woman - neutral_man)", concepts)
    np.testing.assert_array_equal(result, np.array([1.0, 1.0, -0.5], np.float32))


def test_evaluate_batched_draws_and_parsed_input():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 5, 4))  # 5 draws of 4-d concept vectors
    np.testing.assert_allclose(expression.evaluate({"a": 2.0, "b": -1.0}, {"a": a, "b": b}), 2 * a - b)


def test_unknown_concept_lists_known_ones():
    message = r"unknown concept\(s\) smiling_man.*known concepts: neutral_man, neutral_woman"
    with pytest.raises(ValueError, match=message):
        expression.evaluate("smiling_man - neutral_woman", {"neutral_woman": np.zeros(2), "neutral_man": np.zeros(2)})


def test_empty_concept_is_a_clear_error():
    with pytest.raises(ValueError, match="concept 'b' is empty"):
        expression.evaluate("a - b", {"a": np.zeros(3), "b": np.zeros((0,))})


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        expression.evaluate("a - b", {"a": np.zeros(3), "b": np.zeros(4)})
