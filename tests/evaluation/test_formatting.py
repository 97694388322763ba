import pytest

from gan_arith.evaluation.formatting import format_kid, significant


@pytest.mark.parametrize("value, text", [(14.0, "14.0"), (1.92, "1.92"), (0.106, "0.106"), (9.996, "10.0"),
                                         (-0.0021, "-0.00210"), (1234.5, "1230"), (0.0, "0.00")])
def test_significant_digits(value, text):
    assert significant(value) == text


@pytest.mark.parametrize("mean, std, text", [
    (0.1063, 0.0100, "0.106 ± 0.010"), (0.01904, 0.0004, "0.01904 ± 0.00040"), (0.05, None, "0.0500 ± n/a"),
    (0.05, float("nan"), "0.0500 ± n/a"), (0.25, 0.0, "0.250 ± 0.000"),
])
def test_kid_keeps_the_finer_decimal_place_of_mean_and_spread(mean, std, text):
    assert format_kid(mean, std) == text
