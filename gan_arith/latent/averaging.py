"""How many members a concept average needs, and what to average: success rates per k and per way of averaging.

The VAE seed found its arithmetic poor and asked whether 3 members per concept are too few, whether
averaging the members' images (then encoding the average image) is the trouble, and whether a GAN
does better. Each question compares ways of making arithmetic results, read the same way:
- `Contender`: a model, its concept pool, how each concept's members are averaged ('latents':
  encode or invert each member, average the vectors; 'images': VAE only, the seed's way, average the
  members' faces pixel by pixel and encode that one image to its posterior mean), and the
  `SuccessReader` (project classifier and independent judge against the model's random samples).
- `success_by_k`: every contender's readings for every k its pool can draw. Contenders whose pools
  have the same candidates (the same real faces, inverted into the GAN or encoded by the VAE) get
  the same draws: one seed, one sampler.
- `write_question_figures`, `questions_markdown`: one figure and one table per question
  (`question_rows` picks each question's rows; `rate_curves`, `reference_rates`, `rate_bars` shape
  them for gan_arith.figures).
- `members_matching`: how well the faces a pool's latents stand for still carry their concept;
  `check_ks`: the k list checked for the user.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gan_arith import figures
from gan_arith.errors import InputError
from gan_arith.evaluation.judge import SuccessReader
from gan_arith.evaluation.success_rate import attribute_success, rate_of, readings_markdown
from gan_arith.latent.arithmetic import ArithmeticImages, concept_arithmetic
from gan_arith.latent.pools import ConceptPool, encode_means, generate_images
from gan_arith.models.layers import from_model_range, to_model_range
from gan_arith.runs import TrainedRun

K_VALUES = (1, 2, 3, 5, 10, 20, 50)
AVERAGING = ("latents", "images")
READERS = ("classifier", "judge")


def check_ks(ks: Sequence[int], name: str = "config.ks") -> list[int]:
    """The k values (members per concept) sorted and without repeats; an InputError for an empty list or
    a k that is not a positive integer."""
    ks = list(ks) if isinstance(ks, (list, tuple)) else [ks]
    if not ks:
        raise InputError(f"{name} must list at least one k (members averaged per concept), e.g. (1, 3, 10); got none")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"{name} must hold positive integers (members averaged per concept), got {k!r} in {tuple(ks)}")
    return sorted({int(k) for k in ks})


def image_average_arithmetic(
    run: TrainedRun, pool: ConceptPool, expression: str, members: Mapping[str, np.ndarray]
) -> ArithmeticImages:
    """The seed's arithmetic: per draw and concept, the members' faces (`pool.images`, real faces for an
    encoded pool) averaged pixel by pixel, that one image encoded to its VAE posterior mean, and the
    expression evaluated on those encodings. The averages' faces shown are the decoded encodings."""
    if run.kind != "vae":
        raise ValueError(f"averaging images needs an encoder: the run is a {run.kind!r} model, not a VAE")
    names = list(members)
    draws = {len(rows) for rows in members.values()}
    if len(draws) != 1:
        raise ValueError(f"all concepts need the same number of draws, got { {n: len(r) for n, r in members.items()} }")
    count = draws.pop()
    averages = np.concatenate([  # float32 means of uint8 faces, then [-1, 1]
        np.asarray(to_model_range(pool.images[np.asarray(members[name])].mean(axis=1, dtype=np.float32))) for name in names
    ])
    rows = {name: np.arange(i * count, (i + 1) * count) for i, name in enumerate(names)}
    average_pool = ConceptPool(encode_means(run, averages), from_model_range(averages), rows, f"{pool.source} image average")
    return concept_arithmetic(run, average_pool, expression, {name: r[:, None] for name, r in rows.items()})


@dataclasses.dataclass(frozen=True)
class Contender:
    """One way of making arithmetic results: `model` (its label, e.g. 'dcgan'), its run, the concept pool
    the members are drawn from, how they are averaged ('latents' or 'images') and who reads the results."""

    model: str
    run: TrainedRun
    pool: ConceptPool
    read: SuccessReader | Callable[..., dict[str, Any]]
    averaging: str = "latents"

    def __post_init__(self) -> None:
        if self.averaging not in AVERAGING:
            raise ValueError(f"averaging must be one of {', '.join(AVERAGING)}, got {self.averaging!r}")

    @property
    def keys(self) -> dict[str, str]:
        """What names it in a row: {model, members (the pool's source), averaging}."""
        return {"model": self.model, "members": self.pool.source, "averaging": self.averaging}

    @property
    def most_members(self) -> int:
        """The largest k the pool can draw: its smallest concept's candidate count."""
        return min(len(rows) for rows in self.pool.candidates.values())

    def arithmetic(self, expression: str, members: Mapping[str, np.ndarray]) -> ArithmeticImages:
        if self.averaging == "images":
            return image_average_arithmetic(self.run, self.pool, expression, members)
        return concept_arithmetic(self.run, self.pool, expression, members)


def success_by_k(
    contenders: Sequence[Contender], expression: str, ks: Sequence[int], *, num_draws: int, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, skipped) over every contender and k.

    rows: {model, members, averaging, k, draws, success} where `success` holds both readings
    (`success_readings`) of `num_draws` results, each from a draw of k members per concept
    (`ConceptPool.draw` with `seed`: pools with the same candidates get the same draws); `draws` is
    the number of distinct draws made, fewer than num_draws when fewer exist.
    skipped: {model, members, averaging, k, reason} for a k larger than the pool's smallest concept,
    also said on stderr.
    """
    rows, skipped = [], []
    for contender in contenders:
        keys = contender.keys
        for k in check_ks(ks, "ks"):
            if k > contender.most_members:
                counts = ", ".join(f"{name} {len(candidates)}" for name, candidates in contender.pool.candidates.items())
                reason = f"k={k} exceeds the candidates of the smallest concept ({counts})"
                print(f"warning: {row_label(keys)}: {reason}; k={k} left out", file=sys.stderr)
                skipped.append({**keys, "k": k, "reason": reason})
                continue
            images = contender.arithmetic(expression, contender.pool.draw(k, num_draws, seed))
            success = contender.read(images.result_images, source=contender.pool.source)
            rows.append({**keys, "k": k, "draws": int(len(images.result_images)), "success": success})
    return rows, skipped


def row_label(row: Mapping[str, Any]) -> str:
    """A row's (or `Contender.keys`') contender as figures and tables name it: `dcgan, inverted members`,
    `vae, encoded members, image average`."""
    return f"{row['model']}, {row['members']} members" + (", image average" if row["averaging"] == "images" else "")


def _triple(rate: Mapping[str, float]) -> tuple[float, float, float]:
    return rate["rate"], rate["ci_low"], rate["ci_high"]


def rate_curves(rows: Sequence[Mapping[str, Any]], reader: str) -> dict[str, np.ndarray]:
    """{contender label: [K, 4] (k, rate, low, high)} of the results as `reader` ('classifier' or 'judge')
    reads them, ordered by k (`figures.plot_rates_by_k`)."""
    if reader not in READERS:
        raise ValueError(f"reader must be one of {', '.join(READERS)}, got {reader!r}")
    curves: dict[str, list[tuple[float, ...]]] = {}
    for row in sorted(rows, key=lambda row: row["k"]):
        curves.setdefault(row_label(row), []).append((row["k"], *_triple(row["success"][reader]["result"])))
    return {label: np.asarray(points) for label, points in curves.items()}


def reference_rates(rows: Sequence[Mapping[str, Any]], reader: str) -> dict[str, tuple[float, float, float]]:
    """{label: (rate, low, high)} of what does not depend on k: each model's random samples as `reader`
    reads them, and for the judge its hit rate on real target faces (one per image size)."""
    references: dict[str, tuple[float, float, float]] = {}
    for row in rows:
        success = row["success"]
        references.setdefault(f"{row['model']} random samples", _triple(success[reader]["baseline"]))
        if reader == "judge":
            hit = _triple(success["judge_hit_rate"])
            if hit not in references.values():
                label = f"real {success['target']} faces"
                references[label if label not in references else f"{label} ({row['model']})"] = hit
    return references


def rate_bars(
    rows: Sequence[Mapping[str, Any]], reader: str, group: Callable[[Mapping[str, Any]], str],
    bar: Callable[[Mapping[str, Any]], str], *, baselines: bool = False,
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """{group: {bar: (rate, low, high)}} of the results read by `reader`, grouped and labelled by the
    given functions of a row (`figures.plot_rate_bars`); with `baselines`, each group also gets its
    model's random samples and, for the judge, its hit rate on real target faces."""
    bars: dict[str, dict[str, tuple[float, float, float]]] = {}
    for row in rows:
        values = bars.setdefault(group(row), {})
        values[bar(row)] = _triple(row["success"][reader]["result"])
        if baselines:
            values["random samples"] = _triple(row["success"][reader]["baseline"])
            if reader == "judge":
                values[f"real {row['success']['target']} faces"] = _triple(row["success"]["judge_hit_rate"])
    return bars


def members_matching(
    run: TrainedRun, scorer: Any, pool: ConceptPool, queries: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    """{concept: rate} of the faces the pool's candidate latents stand for (generated from inverted or
    scored latents, decoded from encodings) that `scorer` (e.g. the project classifier) reads as the
    concept's query: whether inversion or encoding kept what the labels say."""
    probabilities = scorer.probabilities(generate_images(run, pool.latents))
    return {
        name: rate_of(attribute_success(probabilities[rows], scorer.attribute_names, queries[name])).as_dict()
        for name, rows in pool.candidates.items()
    }


def _averaging_name(row: Mapping[str, Any]) -> str:
    return "image average" if row["averaging"] == "images" else "latent average"


def question_rows(rows: Sequence[Mapping[str, Any]], compare_k: int) -> dict[str, list[Mapping[str, Any]]]:
    """The rows each question reads: 'more_members' every latent-averaged row (rate against k),
    'image_average' the VAE's rows of both averagings, 'gan_or_vae' the latent-averaged rows at `compare_k`
    when more than one model has them (else none)."""
    latent = [row for row in rows if row["averaging"] == "latents"]
    compare = [row for row in latent if row["k"] == compare_k]
    vae = [row for row in rows if row["model"] == "vae"]
    return {
        "more_members": latent,
        "image_average": sorted(vae, key=lambda row: (row["k"], row["averaging"] != "latents")),  # latents first
        "gan_or_vae": compare if len({row["model"] for row in compare}) > 1 else [],
    }


def write_question_figures(
    rows: Sequence[Mapping[str, Any]], directory: str | os.PathLike, *, compare_k: int, expression: str
) -> dict[str, str]:
    """One figure per question with rows (`question_rows`): `rate_by_k.png` (rate against k, both readers,
    random samples and the judge's real-face hit rate as references), `image_vs_latent_average.png` and
    `gan_vs_vae.png` (bars with intervals). Returns {question: path}."""
    directory, questions = Path(directory), question_rows(rows, compare_k)
    paths = {}
    if questions["more_members"]:
        paths["more_members"] = figures.plot_rates_by_k(
            {reader: rate_curves(questions["more_members"], reader) for reader in READERS},
            directory / "rate_by_k.png",
            references={reader: reference_rates(questions["more_members"], reader) for reader in READERS},
            title=f"{expression}: success against members per concept",
        )
    if questions["image_average"]:
        paths["image_average"] = figures.plot_rate_bars(
            {reader: rate_bars(questions["image_average"], reader, lambda row: f"k = {row['k']}", _averaging_name)
             for reader in READERS},
            directory / "image_vs_latent_average.png", title="VAE: average the members' images, or their encodings",
        )
    if questions["gan_or_vae"]:
        paths["gan_or_vae"] = figures.plot_rate_bars(
            {reader: rate_bars(questions["gan_or_vae"], reader, row_label, lambda row: "results", baselines=True)
             for reader in READERS},
            directory / "gan_vs_vae.png", title=f"GAN or VAE: the same real faces and draws, k = {compare_k}",
        )
    return paths


def questions_markdown(results: Mapping[str, Any]) -> str:
    """The markdown of `experiments.open_questions`'s results: one table per question (`readings_markdown`),
    the k values left out, and how well each pool's faces carry their concept."""
    questions = question_rows(results["rows"], results["compare_k"])
    lines = [
        f"Command: `{results['command']}`", "",
        f"`{results['expression']}`, target {results['target']}; members: up to {results['per_concept']} labelled real "
        f"faces per concept from the {results['partition']} partition (the same faces for every model; inverted into "
        f"the GAN, encoded by the VAE) or the classifier's top-scored GAN samples ('scored'); up to "
        f"{results['num_draws']} draws per k; 95% Wilson intervals.", "",
    ]
    sections = [
        ("more_members", "1. \"Perhaps we need more than just 3 images to average?\" Success rate against k",
         ["model", "members", "k", "draws"]),
        ("image_average", "2. \"I think taking the average of the images is causing problems\": VAE, the members' "
         "images averaged then encoded (image average) against their encodings averaged (latent average)",
         ["averaging", "k", "draws"]),
        ("gan_or_vae", f"3. \"Perhaps a GAN would work better?\" k = {results['compare_k']}, the same real faces and draws",
         ["model", "members", "k", "draws"]),
    ]
    for key, heading, columns in sections:
        lines += [f"## {heading}", ""]
        lines.append(readings_markdown(questions[key], columns) if questions[key] else "No rows: it needs both models.\n")
        if key == "more_members" and results["skipped"]:
            lines += ["Left out (too few candidates): " + "; ".join(
                f"{row_label(row)} k={row['k']}" for row in results["skipped"]) + ".", ""]
    lines += ["## Members read as their concept (project classifier, the faces their latents stand for)", "",
              "| model | members | " + " | ".join(results["concepts"]) + " |", "|---|---|" + "---|" * len(results["concepts"])]
    for model, summary in results["models"].items():
        for source, pool in summary["pools"].items():
            lines.append(f"| {model} | {source} | " + " | ".join(
                f"{rate['rate']:.0%} of {rate['trials']}" for rate in pool["read_as_concept"].values()) + " |")
    return "\n".join(lines) + "\n"
