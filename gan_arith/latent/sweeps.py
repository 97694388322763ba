"""Faces along paths through latent space: interpolation between points, attribute edits of growing strength.

- `interpolation_strips`: lerp and slerp paths through 2+ latent points, their faces and their
  norms (slerp stays near the prior's typical norm sqrt(D); lerp dips between far-apart points).
- `attribute_directions` / `edit_sweep` / `edit_response`: directions fitted on encoded, labelled
  faces (optionally with another attribute projected out, e.g. add Smiling without changing Male),
  the faces of latent + alpha * direction, and the classifier's reading of them per alpha.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import numpy as np

from gan_arith.data.store import FaceStore
from gan_arith.errors import InputError
from gan_arith.evaluation.sampling import normal_latents
from gan_arith.latent.directions import edit, linear_direction, mean_difference_direction, project_out
from gan_arith.latent.interpolate import interpolate_path
from gan_arith.latent.pools import encode_means, generate_images
from gan_arith.runs import TrainedRun


def encoded_faces(
    run: TrainedRun, store: FaceStore, *, query: str | None, partition: str | None, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """(store rows, VAE posterior means) of the first `count` faces matching query and partition."""
    rows = store.select(query, partition)[:count]
    if rows.size == 0:
        raise ValueError(f"no face of partition {partition!r} in {store.root} matches query {query!r}")
    return rows, encode_means(run, store.gather(run.image_size, rows))


def endpoint_latents(run: TrainedRun, store: FaceStore, count: int, seed: int = 0) -> np.ndarray:
    """Points to interpolate between: prior draws for a GAN, encoded test faces for a VAE."""
    if count < 2:
        raise ValueError(f"interpolation needs at least 2 points, got {count}")
    if run.kind == "vae":
        return encoded_faces(run, store, query=None, partition="test", count=count)[1]
    return np.asarray(normal_latents(jax.random.key(seed), count, run.latent_dim))


def interpolation_strips(
    run: TrainedRun, points: np.ndarray, steps_per_segment: int, methods: Sequence[str] = ("lerp", "slerp")
) -> dict[str, dict[str, np.ndarray]]:
    """{method: {"latents" [T, D], "images" uint8 [T, S, S, 3], "norms" [T]}} along the path through points."""
    strips = {}
    for method in methods:
        path = interpolate_path(points, steps_per_segment, method)
        strips[method] = {"latents": path, "images": generate_images(run, path), "norms": np.linalg.norm(path, axis=1)}
    return strips


DIRECTION_METHODS = ("mean_difference", "linear")


def check_edit(attribute_names: Sequence[str], attribute: str, *, condition: str | None = None,
               method: str = "mean_difference") -> None:
    """Raise an InputError for an edit `attribute_directions` cannot fit: experiments call it before encoding."""
    for name in filter(None, (attribute, condition)):
        if name not in attribute_names:
            raise InputError(f"unknown attribute {name!r}; the labels have {', '.join(attribute_names)}")
    if condition == attribute:
        raise InputError(
            f"the edit's condition {condition!r} is the edited attribute itself: projecting it out of its own "
            f"direction leaves nothing (choose another condition, or none)"
        )
    if method not in DIRECTION_METHODS:
        raise InputError(f"direction method must be one of {', '.join(DIRECTION_METHODS)}, got {method!r}")


def attribute_directions(
    latents: np.ndarray,
    attributes: np.ndarray,
    attribute_names: Sequence[str],
    attribute: str,
    *,
    condition: str | None = None,
    method: str = "mean_difference",
) -> dict[str, np.ndarray]:
    """Edit directions [D] for `attribute` from latents [N, D] labelled with int8 ±1 attributes [N, A].

    Every direction has the length of the attribute's class-mean difference, so alpha = 1 moves a
    latent by the average with-minus-without distance. method: 'mean_difference' or 'linear'
    (logistic-regression normal). With `condition`, also `"<attribute> ⊥ <condition>"`: the same
    direction with the condition's direction projected out (conditional editing).
    """
    check_edit(attribute_names, attribute, condition=condition, method=method)

    def fit(name: str) -> np.ndarray:
        labels = np.asarray(attributes)[:, list(attribute_names).index(name)] > 0
        difference = mean_difference_direction(latents, labels, normalize=False)
        if method == "mean_difference":
            return difference
        return linear_direction(latents, labels) * np.linalg.norm(difference)

    directions = {attribute: fit(attribute)}
    if condition:
        directions[f"{attribute} \u22a5 {condition}"] = project_out(directions[attribute], fit(condition))
    return directions


def edit_sweep(
    run: TrainedRun, latents: np.ndarray, directions: Mapping[str, np.ndarray], alphas: Sequence[float]
) -> dict[str, np.ndarray]:
    """{direction: uint8 faces [A, N, S, S, 3]} of latents [N, D] + alpha * direction for each alpha."""
    sweeps = {}
    for name, direction in directions.items():
        edited = edit(latents, direction, np.asarray(alphas, dtype=np.float64))
        images = generate_images(run, edited.reshape(-1, edited.shape[-1]))
        sweeps[name] = images.reshape(edited.shape[:2] + images.shape[1:])
    return sweeps


def edit_response(scorer: Any, sweeps: Mapping[str, np.ndarray]) -> dict[str, dict[str, list[float]]]:
    """{direction: {attribute: mean classifier probability per alpha}} of the edited faces."""
    response = {}
    for name, faces in sweeps.items():
        probabilities = scorer.probabilities(faces.reshape((-1,) + faces.shape[2:])).reshape(faces.shape[:2] + (-1,))
        means = probabilities.mean(axis=1)  # [A, attributes]
        response[name] = {attribute: means[:, j].tolist() for j, attribute in enumerate(scorer.attribute_names)}
    return response


def describe_edit_response(response: Mapping[str, Mapping[str, Sequence[float]]], alphas: Sequence[float]) -> list[str]:
    """One log line per direction: each attribute's mean probability at the first and the last alpha."""
    return [
        f"{name}: alpha {alphas[0]:g} -> {alphas[-1]:g}: "
        + ", ".join(f"P({attribute}) {values[0]:.2f} -> {values[-1]:.2f}" for attribute, values in by_attribute.items())
        for name, by_attribute in response.items()
    ]
