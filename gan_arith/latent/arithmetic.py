"""Concept arithmetic on a trained model: draws from a pool, the faces of averages and results, figures.

`concept_arithmetic` evaluates an expression (`smiling_woman - neutral_woman + neutral_man`) on
each draw of k members per concept and generates (GAN) or decodes (VAE) the concept averages and
the results; `write_arithmetic_figures` draws the seeds' figure for the first draw (each concept's
faces and average, then the result) and a grid of results over several draws.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gan_arith import figures
from gan_arith.latent.concepts import ArithmeticResult, arithmetic_results
from gan_arith.latent.expression import format_combination
from gan_arith.latent.pools import ConceptPool, generate_images
from gan_arith.runs import TrainedRun


@dataclasses.dataclass(frozen=True)
class ArithmeticImages:
    """The arithmetic over M draws with uint8 faces of each draw's concept averages and result."""

    arithmetic: ArithmeticResult
    average_images: dict[str, np.ndarray]  # {concept: [M, S, S, 3]}
    result_images: np.ndarray  # [M, S, S, 3]


def concept_arithmetic(
    run: TrainedRun, pool: ConceptPool, expression: str, members: Mapping[str, np.ndarray]
) -> ArithmeticImages:
    """Evaluate `expression` on each draw of `members` ({concept: pool rows [M, k]}) and make the faces."""
    arithmetic = arithmetic_results(expression, pool.latents, members)
    averages = {name: generate_images(run, vectors) for name, vectors in arithmetic.concept_vectors.items()}
    return ArithmeticImages(arithmetic, averages, generate_images(run, arithmetic.results))


def write_arithmetic_figures(
    images: ArithmeticImages, pool: ConceptPool, directory: str | Path, prefix: str, *, draws_shown: int = 8
) -> dict[str, str]:
    """`<prefix>_arithmetic.png` (the seeds' figure, first draw) and, with several draws,
    `<prefix>_draws.png` (one row per draw: averages and result). Returns {figure: path}."""
    coefficients = images.arithmetic.coefficients
    title = f"{format_combination(coefficients)} ({pool.source} concepts)"
    first = {name: rows[0] for name, rows in images.arithmetic.members.items() if name in coefficients}
    directory = Path(directory)
    paths = {
        "arithmetic": figures.plot_concept_arithmetic(
            {name: pool.images[rows] for name, rows in first.items()},
            {name: faces[0] for name, faces in images.average_images.items() if name in coefficients},
            coefficients,
            images.result_images[0],
            directory / f"{prefix}_arithmetic.png",
            title=title,
        )
    }
    if len(images.result_images) > 1:
        shown = min(draws_shown, len(images.result_images))
        paths["draws"] = figures.plot_arithmetic_draws(
            {name: faces[:shown] for name, faces in images.average_images.items() if name in coefficients},
            coefficients,
            images.result_images[:shown],
            directory / f"{prefix}_draws.png",
            title=f"{pool.source} concepts, {shown} draws",  # the headers spell out the expression
        )
    return paths


def arithmetic_summary(images: ArithmeticImages, pool: ConceptPool) -> dict[str, Any]:
    """JSON-ready numbers: the expression, the pool, the first draw's members and the result norms."""
    arithmetic = images.arithmetic
    norms = np.linalg.norm(arithmetic.results, axis=1)
    return {
        "expression": format_combination(arithmetic.coefficients),
        "coefficients": arithmetic.coefficients,
        "pool": pool.summary(),
        "num_draws": int(len(arithmetic.results)),
        "k": {name: int(rows.shape[1]) for name, rows in arithmetic.members.items()},
        "first_draw_members": {name: rows[0].tolist() for name, rows in arithmetic.members.items()},
        "result_norm_mean": float(norms.mean()),
        "result_norm_std": float(norms.std()),
        "prior_typical_norm": float(np.sqrt(arithmetic.results.shape[1])),
    }
