"""Concepts: named sets of latent vectors, their averages, random draws and arithmetic over draws.

A concept is defined by candidate indices into a pool of latent vectors [N, D]:
- by hand, the seeds' way (`--config.concepts="smiling_woman=12,45,78; ..."` after looking at a
  numbered grid),
- by an attribute query over labelled faces (`smiling_woman=Smiling & ~Male`, the store's query
  language), e.g. real faces encoded by the VAE,
- by the same query scored softly on classifier probabilities of generated faces (top-n).
Draws pick k members per concept (k = 3 like the seeds); a concept vector is their mean. Draws are
distinct: a repeated draw would repeat a result, not add a trial.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import sys
from typing import Mapping, Sequence

import numpy as np

from gan_arith.data.store import attribute_mask
from gan_arith.latent import expression as expression_lib

DEFAULT_K = 3
# Soft scoring enumerates all 2^L truth assignments of the L attributes a query mentions.
_MAX_QUERY_ATTRIBUTES = 10
_CONCEPT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ATTRIBUTE_WORD = re.compile(r"[A-Za-z0-9_]+")


def concept_vector(latents: np.ndarray) -> np.ndarray:
    """Mean of k latent vectors: [..., k, D] -> [..., D] (e.g. [k, D] -> [D], [M, k, D] -> [M, D])."""
    latents = np.asarray(latents)
    if latents.ndim < 2:
        raise ValueError(f"latents must have shape [..., k, D], got shape {latents.shape}")
    if latents.shape[-2] == 0:
        raise ValueError(f"cannot average an empty concept: latents have shape {latents.shape} (k = 0)")
    return latents.mean(axis=-2)


def _split_assignment(item: str, what: str) -> tuple[str, str]:
    """Split `name=value` and check that name can be used in a concept expression."""
    name, sep, value = item.partition("=")
    name, value = name.strip(), value.strip()
    if not sep:
        raise ValueError(f"concept definition {item!r} has no '=': expected name={what}")
    if not _CONCEPT_NAME.fullmatch(name):
        raise ValueError(
            f"concept name {name!r} in {item!r} is not an identifier (letters, digits, '_'; not starting with a digit)"
        )
    if not value:
        raise ValueError(f"concept {name!r} in {item!r} has nothing after '=': expected name={what}")
    return name, value


def _check_unique(name: str, seen: Mapping[str, object], item: str) -> None:
    if name in seen:
        raise ValueError(f"concept {name!r} is defined twice (again in {item!r})")


def parse_concept_assignments(items: Sequence[str], num_candidates: int | None = None) -> dict[str, list[int]]:
    """Parse `["smiling_woman=12,45,78", ...]` (command-line `--concept` values) into {name: indices}.

    Args:
      items: one `name=i,j,k` string per concept; indices are non-negative integers, each at most once.
      num_candidates: if given, indices must be < num_candidates (the size of the numbered grid).
    """
    concepts: dict[str, list[int]] = {}
    for item in items:
        name, value = _split_assignment(item, "i,j,k (comma-separated indices)")
        _check_unique(name, concepts, item)
        indices = []
        for text in value.split(","):
            text = text.strip()
            if not re.fullmatch(r"\d+", text):
                raise ValueError(f"concept {name!r}: {text!r} in {item!r} is not a non-negative integer index")
            index = int(text)
            if num_candidates is not None and index >= num_candidates:
                raise ValueError(f"concept {name!r}: index {index} is out of range (there are {num_candidates} faces)")
            if index in indices:
                raise ValueError(f"concept {name!r}: index {index} is repeated in {item!r}")
            indices.append(index)
        concepts[name] = indices
    return concepts


def parse_concept_queries(items: Sequence[str]) -> dict[str, str]:
    """Parse `["smiling_woman=Smiling & ~Male", ...]` into {name: attribute query}."""
    queries: dict[str, str] = {}
    for item in items:
        name, query = _split_assignment(item, "an attribute query such as 'Smiling & ~Male'")
        _check_unique(name, queries, item)
        queries[name] = query
    return queries


def candidates_from_queries(
    queries: Mapping[str, str], attribute_names: Sequence[str], attributes: np.ndarray
) -> dict[str, np.ndarray]:
    """Indices of the rows of `attributes` (int8 [N, A] in {-1, +1}) that satisfy each concept's query.

    Raises ValueError naming the concept when its query matches no row (an empty concept).
    """
    attributes = np.asarray(attributes)
    candidates = {}
    for name, query in queries.items():
        indices = np.flatnonzero(attribute_mask(query, attribute_names, attributes))
        if indices.size == 0:
            raise ValueError(f"concept {name!r}: query {query!r} matches none of the {attributes.shape[0]} faces")
        candidates[name] = indices
    return candidates


def query_probability(query: str, attribute_names: Sequence[str], probabilities: np.ndarray) -> np.ndarray:
    """Soft score of an attribute query: its probability when attributes are independent.

    For a conjunction of literals (`Smiling & ~Male`) this is the product of the per-literal
    probabilities (p(Smiling) * (1 - p(Male))); `|` and parentheses follow from the same rule,
    computed exactly by summing over the satisfying truth assignments (the store's query parser
    decides which assignments satisfy the query, so both share one language).

    Args:
      probabilities: float [N, A] in [0, 1], column j = P(attribute_names[j]) (e.g. a classifier's
        sigmoid outputs on generated faces).

    Returns:
      float64 [N] scores in [0, 1].
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(attribute_names):
        raise ValueError(
            f"probabilities must have shape [N, {len(attribute_names)}] (one column per attribute name), "
            f"got {probabilities.shape}"
        )
    if not np.all((probabilities >= 0) & (probabilities <= 1)):
        raise ValueError("probabilities must lie in [0, 1] (apply a sigmoid to classifier logits first)")
    attribute_names = list(attribute_names)
    columns = sorted({attribute_names.index(w) for w in _ATTRIBUTE_WORD.findall(query) if w in attribute_names})
    if len(columns) > _MAX_QUERY_ATTRIBUTES:
        raise ValueError(
            f"query {query!r} mentions {len(columns)} attributes; at most {_MAX_QUERY_ATTRIBUTES} are supported"
        )
    assignments = np.array(list(itertools.product([False, True], repeat=len(columns))), dtype=bool)
    table = -np.ones((len(assignments), len(attribute_names)), dtype=np.int8)
    table[:, columns] = np.where(assignments, 1, -1)
    # attribute_mask also rejects unknown names (listing the known ones) and syntax errors.
    satisfied = attribute_mask(query, attribute_names, table)
    selected = probabilities[:, columns]
    scores = np.zeros(probabilities.shape[0])
    for assignment in assignments[satisfied]:
        scores += np.where(assignment, selected, 1.0 - selected).prod(axis=1)
    return scores


def top_scored_candidates(
    queries: Mapping[str, str], attribute_names: Sequence[str], probabilities: np.ndarray, top_n: int
) -> dict[str, np.ndarray]:
    """For each concept, the indices of the `top_n` samples with the highest query probability, best first.

    Used to define concepts over generated faces scored by an attribute classifier (ties are
    broken by index, so the result is deterministic).
    """
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    num = np.asarray(probabilities).shape[0]
    if top_n > num:
        raise ValueError(f"top_n={top_n} exceeds the number of scored samples ({num})")
    candidates = {}
    for name, query in queries.items():
        scores = query_probability(query, attribute_names, probabilities)
        candidates[name] = np.argsort(-scores, kind="stable")[:top_n]
    return candidates


def draw_concept_members(
    rng: np.random.Generator, candidates: Mapping[str, np.ndarray], k: int = DEFAULT_K, num_draws: int = 1
) -> dict[str, np.ndarray]:
    """Draw k distinct members per concept, num_draws distinct draws where they exist: {name: int64 [M, k]}.

    A draw is one member set per concept. No two draws share the same member sets for every concept:
    they would give the same latents, the same result and the same verdict, so a repeat is not
    another trial. Draws are made as always (per concept in turn, num_draws times `rng.choice`);
    only repeats are replaced, by draws that have not occurred, so with plenty of candidates (the
    defaults) the draws are those of the plain sampler. When fewer than num_draws distinct draws
    exist (the product over concepts of C(candidates, k)), all of them are returned, M < num_draws,
    and a warning line on stderr gives the counts; M is what summaries report as the draws.

    Raises ValueError naming the concept if it has fewer than k candidates or lists one twice.
    """
    if k < 1:
        raise ValueError(f"k (members per concept) must be >= 1, got {k}")
    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}")
    pools = {}
    for name, indices in candidates.items():
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size < k:
            raise ValueError(f"concept {name!r} has {indices.size} candidate(s), fewer than k={k}")
        if np.unique(indices).size != indices.size:
            raise ValueError(f"concept {name!r} lists a candidate more than once: {indices.tolist()}")
        pools[name] = indices
    names = list(pools)
    total = math.prod(math.comb(indices.size, k) for indices in pools.values())
    if total <= num_draws:  # every joint draw once, in random order
        every = list(itertools.product(*(itertools.combinations(pools[name].tolist(), k) for name in names)))
        order = rng.permutation(len(every))
        members = {name: np.array([every[i][j] for i in order], dtype=np.int64).reshape(-1, k)
                   for j, name in enumerate(names)}
    else:
        members = {name: np.stack([rng.choice(pools[name], size=k, replace=False) for _ in range(num_draws)])
                   for name in names}
        seen, keep, extra = set(), [], []
        for i in range(num_draws):
            key = tuple(tuple(sorted(members[name][i].tolist())) for name in names)
            if key not in seen:
                seen.add(key)
                keep.append(i)
        # Repeats are redrawn; more draws exist than are asked for, so new ones keep turning up.
        for _ in range(100 * (num_draws - len(keep))):
            if len(keep) + len(extra) == num_draws:
                break
            draw = [rng.choice(pools[name], size=k, replace=False) for name in names]
            key = tuple(tuple(sorted(rows.tolist())) for rows in draw)
            if key not in seen:
                seen.add(key)
                extra.append(draw)
        members = {name: np.concatenate([members[name][keep], np.array([draw[j] for draw in extra], np.int64).reshape(-1, k)])
                   for j, name in enumerate(names)}
    found = len(members[names[0]]) if names else num_draws
    if found < num_draws:
        counts = ", ".join(f"{name} {indices.size}" for name, indices in pools.items())
        why = (f"only {total} distinct draw(s) of k={k} members exist" if total <= num_draws
               else f"only {found} distinct draw(s) of k={k} members (of {total}) were found")
        print(f"warning: {why} (candidates per concept: {counts}), fewer than the {num_draws} requested: "
              f"using {found} draw(s); a repeated draw would not be another trial", file=sys.stderr)
    return members


@dataclasses.dataclass(frozen=True)
class ArithmeticResult:
    """Concept arithmetic over M draws.

    Attributes:
      coefficients: the parsed expression, {name: coefficient}.
      members: {name: int [M, k]} indices into the latent pool.
      concept_vectors: {name: [M, D]} the mean of each draw's members.
      results: [M, D] the expression evaluated on each draw's concept vectors.
    """

    coefficients: dict[str, float]
    members: dict[str, np.ndarray]
    concept_vectors: dict[str, np.ndarray]
    results: np.ndarray


def arithmetic_results(
    expression: str, latents: np.ndarray, members: Mapping[str, np.ndarray]
) -> ArithmeticResult:
    """Average each draw's members per concept and evaluate the expression on every draw.

    Args:
      expression: e.g. `smiling_woman - neutral_woman + neutral_man`.
      latents: the latent pool [N, D] that member indices point into.
      members: {name: int [M, k]} (from `draw_concept_members`, or one hand-picked draw as
        `{name: np.array([indices])}`); k may differ between concepts, M may not.
    """
    coefficients = expression_lib.parse(expression)
    latents = np.asarray(latents)
    if latents.ndim != 2:
        raise ValueError(f"latents must have shape [N, D], got {latents.shape}")
    members = {name: np.asarray(m) for name, m in members.items()}
    for name, m in members.items():
        if m.ndim != 2 or not np.issubdtype(m.dtype, np.integer):
            raise ValueError(f"members[{name!r}] must be an integer array [M, k], got {m.dtype} {m.shape}")
        if m.shape[1] == 0:
            raise ValueError(f"concept {name!r} is empty: it has no members to average")
        if m.size and (m.min() < 0 or m.max() >= latents.shape[0]):
            raise ValueError(f"members[{name!r}] has indices outside [0, {latents.shape[0]})")
    draws = {m.shape[0] for m in members.values()}
    if len(draws) > 1:
        counts = {n: m.shape[0] for n, m in members.items()}
        raise ValueError(f"all concepts need the same number of draws, got {counts}")
    concept_vectors = {name: concept_vector(latents[m]) for name, m in members.items()}
    results = expression_lib.evaluate(coefficients, concept_vectors)
    return ArithmeticResult(coefficients, members, concept_vectors, results)
