"""Latent pools: the latent vectors concept arithmetic draws from, the face each stands for, and candidates.

Every way of defining a concept ends in the same `ConceptPool`: latents [N, D], one image per latent
(what the figures show as the concept's faces) and {concept: candidate rows}. The ways:
- hand-picked (the seeds'): a numbered grid of faces generated from saved latents; the user names
  the indices of each concept (`smiling_woman=12,45,78`), used as they are, in one draw;
- scored: generated faces scored by the attribute classifier, the top-n for each attribute query;
- encoded (VAE): real faces matching each query, encoded to their posterior means;
- inverted (GAN): real faces matching each query, mapped to latents by `evaluation.inversion.invert`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from gan_arith.data.store import FaceStore, check_query
from gan_arith.errors import InputError
from gan_arith.evaluation.inversion import invert
from gan_arith.evaluation.sampling import batched_apply, normal_latents
from gan_arith.files import atomic_write
from gan_arith.latent.concepts import (
    DEFAULT_K, draw_concept_members, parse_concept_assignments, parse_concept_queries, query_probability,
    top_scored_candidates,
)
from gan_arith.latent.expression import evaluate
from gan_arith.models.layers import as_model_range, from_model_range
from gan_arith.runs import TrainedRun

# The seeds' equation: smiling woman - neutral woman + neutral man, each concept an attribute query.
SEED_QUERIES = "smiling_woman=Smiling & ~Male; neutral_woman=~Smiling & ~Male; neutral_man=~Smiling & Male"
SEED_EXPRESSION = "smiling_woman - neutral_woman + neutral_man"
SEED_TARGET = "Smiling & Male"
_BATCH = 64


@dataclasses.dataclass(frozen=True)
class ConceptPool:
    """Latents [N, D], images uint8 [N, H, W, 3] (what each latent stands for), {concept: candidate rows}.

    `fixed_members`: the candidates are the members (hand-picked), not a set to draw k from.
    `candidate_scores`: for scored pools, the classifier's query probability of each candidate.
    """

    latents: np.ndarray
    images: np.ndarray
    candidates: dict[str, np.ndarray]
    source: str
    fixed_members: bool = False
    candidate_scores: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def draw(self, k: int = DEFAULT_K, num_draws: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
        """{concept: rows [M, k]}: num_draws random draws of k candidates, or the hand-picked rows as one draw."""
        if self.fixed_members:
            return {name: np.asarray(rows, dtype=np.int64)[None] for name, rows in self.candidates.items()}
        return draw_concept_members(np.random.default_rng(seed), self.candidates, k, num_draws)

    def summary(self) -> dict[str, Any]:
        summary = {
            "source": self.source,
            "pool_size": int(self.latents.shape[0]),
            "candidates": {name: int(len(rows)) for name, rows in self.candidates.items()},
        }
        if self.candidate_scores:
            summary["mean_candidate_score"] = {n: float(np.mean(s)) for n, s in self.candidate_scores.items()}
            summary["candidates_matching"] = {n: int(np.sum(s >= 0.5)) for n, s in self.candidate_scores.items()}
        return summary


def split_definitions(text: str) -> list[str]:
    """`"a=1,2; b=3"` -> `["a=1,2", "b=3"]`: concept definitions in one `--config` string, `;`-separated."""
    items = [item.strip() for item in text.split(";") if item.strip()]
    if not items:
        raise InputError(f"no concept definitions in {text!r}: expected 'name=value; name=value; ...'")
    return items


def format_assignments(members: Mapping[str, Sequence[int]]) -> str:
    """{concept: grid indices} -> `"smiling_woman=12,45,78; neutral_woman=3,9,41"`, the hand-picked
    definitions `hand_picked_pool` reads (`--config.concepts`)."""
    return "; ".join(f"{name}={','.join(str(int(i)) for i in rows)}" for name, rows in members.items())


def parse_queries(text: str) -> dict[str, str]:
    """`"smiling_woman=Smiling & ~Male; ..."` -> {concept: attribute query}."""
    return parse_concept_queries(split_definitions(text))


def check_queries(text: str, attribute_names: Sequence[str]) -> None:
    """Raise an InputError for a concept of `config.queries` whose query names an attribute not among
    `attribute_names` (the store's, or the classifier's where the classifier picks the members)."""
    for name, query in parse_queries(text).items():
        check_query(query, attribute_names, f"config.queries ({name})")


def check_arithmetic(expression: str, definitions: str, *, hand_picked: bool = False, num_candidates: int | None = None) -> None:
    """Raise an InputError for concept `definitions` (attribute queries, or grid indices when `hand_picked`,
    below `num_candidates` if given) that do not parse, or an `expression` that does not parse or names a
    concept they do not define: experiments call it first, before a model is loaded, trained or sampled."""
    try:
        items = split_definitions(definitions)
        names = parse_concept_assignments(items, num_candidates) if hand_picked else parse_concept_queries(items)
        evaluate(expression, {name: np.zeros(1) for name in names})  # the same checks as the real evaluation
    except InputError:
        raise  # ExpressionError keeps its type (and position)
    except ValueError as error:  # the parsers and `evaluate` check nothing here but these two strings
        raise InputError(str(error)) from None


def generate_images(run: TrainedRun, latents: Any, batch_size: int = _BATCH) -> np.ndarray:
    """uint8 faces [N, S, S, 3] generated (GAN) or decoded (VAE) from latents [N, D], batched."""
    return from_model_range(batched_apply(run.generate, np.asarray(latents, np.float32), batch_size))


def prior_samples(run: TrainedRun, count: int, seed: int) -> np.ndarray:
    """uint8 faces of `count` latents drawn from the prior N(0, I): random samples, the baseline."""
    return generate_images(run, normal_latents(jax.random.key(seed), count, run.latent_dim))


@functools.partial(jax.jit, static_argnums=0)
def _posterior_means(encode: Any, images: jax.Array) -> jax.Array:
    return encode(as_model_range(images))[0]


def encode_means(run: TrainedRun, faces: np.ndarray, batch_size: int = _BATCH) -> np.ndarray:
    """VAE posterior means float32 [N, D] of faces (uint8 or [-1, 1]) [N, S, S, 3]; compiled once per run's
    encoder and batch shape, however often it is called."""
    return batched_apply(functools.partial(_posterior_means, run.encode), faces, batch_size)


def saved_latents(path: str | os.PathLike, count: int, latent_dim: int, seed: int = 0) -> np.ndarray:
    """Prior latents [count, latent_dim] kept in `path` (.npy): drawn and saved on first use, loaded after,
    so indices picked from a numbered grid still refer to the same faces on the next invocation."""
    path = Path(path)
    if path.exists():
        latents = np.load(path)
        if latents.shape != (count, latent_dim):
            raise InputError(
                f"{path} holds latents of shape {latents.shape}, not ({count}, {latent_dim}); "
                "delete it to draw a new grid (its indices will change)"
            )
        return latents
    latents = np.asarray(normal_latents(jax.random.key(seed), count, latent_dim))
    atomic_write(path, lambda file: np.save(file, latents))
    return latents


def hand_picked_pool(run: TrainedRun, latents: np.ndarray, definitions: str) -> ConceptPool:
    """Concepts named by grid indices, `"smiling_woman=12,45,78; neutral_woman=3,9,41; ..."`."""
    picked = parse_concept_assignments(split_definitions(definitions), num_candidates=len(latents))
    candidates = {name: np.asarray(rows, dtype=np.int64) for name, rows in picked.items()}
    return ConceptPool(latents, generate_images(run, latents), candidates, "hand-picked", fixed_members=True)


def picked_faces_pool(run: TrainedRun, store: FaceStore, definitions: str) -> ConceptPool:
    """Concepts named by store rows of real faces, `"smiling_woman=9,19,29; neutral_woman=..."`, encoded to
    posterior means (VAE) and used as they are, in one draw; the images are the faces."""
    picked = parse_concept_assignments(split_definitions(definitions), num_candidates=store.num_faces)
    rows = np.concatenate([np.asarray(members, dtype=np.int64) for members in picked.values()])
    ends = np.cumsum([len(members) for members in picked.values()])
    candidates = {name: np.arange(end - len(members), end) for (name, members), end in zip(picked.items(), ends)}
    faces = store.gather(run.image_size, rows)
    return ConceptPool(encode_means(run, faces), faces, candidates, "hand-picked", fixed_members=True)


def scored_pool(
    run: TrainedRun, scorer: Any, queries: Mapping[str, str], *, count: int, top_n: int, seed: int = 0
) -> ConceptPool:
    """Generate `count` prior samples, score them with the attribute classifier, keep the top_n per query.

    `scorer` is an `evaluation.scorer.AttributeScorer` (probabilities(images), attribute_names).
    """
    latents = np.asarray(normal_latents(jax.random.key(seed), count, run.latent_dim))
    images = generate_images(run, latents)
    probabilities = scorer.probabilities(images)
    candidates = top_scored_candidates(queries, scorer.attribute_names, probabilities, top_n)
    scores = {
        name: query_probability(queries[name], scorer.attribute_names, probabilities)[rows]
        for name, rows in candidates.items()
    }
    for name, values in scores.items():
        # A rare concept's top_n is filled with faces that do not match it: its vector means something else.
        matching = int(np.sum(values >= 0.5))
        if matching < len(values):
            print(
                f"warning: concept {name!r} ({queries[name]}): only {matching} of its {len(values)} candidates are "
                f"classified as matching (P >= 0.5; mean P {np.mean(values):.2f}) among {count} samples; raise "
                f"--config.pool_size or lower --config.top_n",
                file=sys.stderr,
            )
    return ConceptPool(latents, images, candidates, "scored", candidate_scores=scores)


def real_faces_by_query(
    store: FaceStore, queries: Mapping[str, str], image_size: int, *, partition: str | None, per_concept: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Up to per_concept faces of `partition` matching each query, stacked: (uint8 faces, {concept: rows})."""
    if per_concept < 1:
        raise ValueError(f"per_concept must be >= 1, got {per_concept}")
    store_rows, candidates, start = [], {}, 0
    for name, query in queries.items():
        rows = store.select(query, partition)[:per_concept]
        if rows.size == 0:
            raise ValueError(
                f"concept {name!r}: no face of partition {partition!r} in {store.root} matches {query!r}"
            )
        store_rows.append(rows)
        candidates[name] = np.arange(start, start + rows.size)
        start += rows.size
    return store.gather(image_size, np.concatenate(store_rows)), candidates


def encoded_pool(
    run: TrainedRun, store: FaceStore, queries: Mapping[str, str], *, per_concept: int, partition: str | None = "test"
) -> ConceptPool:
    """Real faces matching each query, encoded by the VAE to posterior means; the images are the faces."""
    faces, candidates = real_faces_by_query(store, queries, run.image_size, partition=partition, per_concept=per_concept)
    return ConceptPool(encode_means(run, faces), faces, candidates, "encoded")


def inverted_pool(
    run: TrainedRun,
    store: FaceStore,
    queries: Mapping[str, str],
    *,
    per_concept: int,
    partition: str | None = "test",
    seed: int = 0,
    steps: int = 300,
    restarts: int = 4,
) -> ConceptPool:
    """Real faces matching each query, inverted into the GAN's latent space; the images are G(z)."""
    faces, candidates = real_faces_by_query(store, queries, run.image_size, partition=partition, per_concept=per_concept)
    result = invert(faces, run.generate, run.latent_dim, jax.random.key(seed), steps=steps, restarts=restarts)
    return ConceptPool(
        np.asarray(result.latents), from_model_range(result.reconstructions), candidates, "inverted"
    )


def label_defined_pool(
    run: TrainedRun,
    store: FaceStore,
    scorer: Any,
    queries: Mapping[str, str],
    *,
    source: str = "auto",
    pool_size: int = 2000,
    top_n: int = 30,
    per_concept: int = 200,
    partition: str | None = "test",
    seed: int = 0,
    inversion_steps: int = 300,
    inversion_restarts: int = 4,
) -> ConceptPool:
    """Concepts from attribute queries, the default way for the run's kind.

    source: 'scored' (generated faces, classifier top_n of pool_size), 'inversion' (GAN: real faces
    inverted, `inversion_steps` Adam steps from `inversion_restarts` starts each) or 'encoded' (VAE:
    real faces encoded); 'auto' is 'encoded' for a VAE, else 'scored'.
    """
    if source == "auto":
        source = "encoded" if run.kind == "vae" else "scored"
    if source == "scored":
        return scored_pool(run, scorer, queries, count=pool_size, top_n=top_n, seed=seed)
    if source == "encoded":
        return encoded_pool(run, store, queries, per_concept=per_concept, partition=partition)
    if source == "inversion":
        return inverted_pool(
            run, store, queries, per_concept=per_concept, partition=partition, seed=seed, steps=inversion_steps,
            restarts=inversion_restarts,
        )
    raise ValueError(f"concept source must be 'auto', 'scored', 'encoded' or 'inversion', got {source!r}")
