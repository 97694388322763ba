"""Numbers as the experiments print and tabulate them: significant digits, KID with its spread."""

from __future__ import annotations

import math


def significant(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits, trailing zeros kept and no exponent: 14.0, 1.92, 0.106, 124."""
    if value == 0 or not math.isfinite(value):
        return f"{value:.{digits - 1}f}" if value == 0 else str(value)
    rounded = float(f"{value:.{digits - 1}e}")  # rounding first: 9.996 -> 10.0, not 10.00
    return f"{rounded:.{max(digits - 1 - math.floor(math.log10(abs(rounded))), 0)}f}"


def format_kid(mean: float, std: float | None) -> str:
    """KID as `mean ± std`: the std to 2 significant digits and the mean to 3, both to the finer decimal
    place (0.106 ± 0.012, 0.0190 ± 0.0004 -> 0.01904 ± 0.00040); "± n/a" where there is no std."""
    if std is None or not math.isfinite(std):
        return f"{significant(mean)} ± n/a"
    places = max(len(significant(mean, 3).partition(".")[2]), len(significant(std, 2).partition(".")[2]) if std > 0 else 0)
    return f"{mean:.{places}f} ± {std:.{places}f}"
