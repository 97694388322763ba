"""The explorer's model side: a loaded run, its face grids, concepts, arithmetic, edits and strips.

Everything here is a call into the latent toolkit (pools, concepts, expression, directions,
interpolate, sweeps) on one loaded run; the web server (server.py) only turns JSON into these calls
and faces into PNGs. A face on a grid is `(seed, index)`: grid `seed` holds the same latents as the
numbered grid of `experiments.vector_arithmetic_gan --config.seed=seed` (GAN), or `grid_size` real
faces of the store's partition drawn with `seed`, encoded to posterior means (VAE). Every generator,
decoder and reader call takes one of a few fixed batch shapes (padded), so nothing compiles per request.
"""

from __future__ import annotations

import dataclasses
import shlex
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from gan_arith.artifacts import run_store
from gan_arith.data.store import FaceStore
from gan_arith.errors import InputError
from gan_arith.evaluation.classifier_train import predict_probabilities
from gan_arith.evaluation.judge import load_or_train_judge
from gan_arith.evaluation.sampling import normal_latents
from gan_arith.evaluation.scorer import AttributeScorer, load_or_train_classifier
from gan_arith.latent import concepts as concepts_lib
from gan_arith.latent import expression as expression_lib
from gan_arith.latent.directions import edit
from gan_arith.latent.interpolate import interpolate_path
from gan_arith.latent.pools import encode_means, format_assignments, generate_images
from gan_arith.latent.sweeps import DIRECTION_METHODS, attribute_directions, check_edit, encoded_faces
from gan_arith.runs import TrainedRun, load_run
from gan_arith.train.checkpoint import CONFIG_FILE, load_config

KINDS = ("dcgan", "vae")
EXPERIMENTS = {"dcgan": "experiments.vector_arithmetic_gan", "vae": "experiments.vector_arithmetic_vae"}
Members = Mapping[str, Sequence[tuple[int, int]]]  # {concept: [(grid seed, index), ...]}


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the explorer draws grids, fits directions and finds the run's classifier and judge.

    `classifier_steps`/`judge_steps` pick which saved classifier and judge to show (they are keyed by
    their training steps); none is trained here.
    """

    grid_size: int = 100
    first_grid: int = 0  # the seed of the grid the page opens with
    batches: tuple[int, ...] = (1, 4, 16)  # generator batch shapes: a call pads to the smallest that holds it
    partition: str = "test"  # VAE: the real faces of the grids
    direction_faces: int = 2000
    interpolation_steps: int = 8
    classifier_dir: str = "workdirs/attribute_classifier"
    classifier_steps: int = 1500
    judge_dir: str = "workdirs/attribute_judge"
    judge_steps: int = 1500

    def __post_init__(self) -> None:
        batches = self.batches
        if not batches or any(not isinstance(b, int) or b < 1 for b in batches) or list(batches) != sorted(set(batches)):
            raise InputError(f"config.batches must be increasing positive integers, e.g. (1, 4, 16), got {batches!r}")


@dataclasses.dataclass(frozen=True)
class Grid:
    """A grid of faces: latents [G, D], uint8 faces [G, S, S, 3], and each face's store row (VAE) or index (GAN)."""

    seed: int
    latents: np.ndarray
    images: np.ndarray
    ids: np.ndarray


@dataclasses.dataclass(frozen=True)
class Arithmetic:
    """The faces of an expression over clicked concepts: each concept's average and the result."""

    coefficients: dict[str, float]
    average_images: dict[str, np.ndarray]  # {concept: [S, S, 3]}
    result_latent: np.ndarray  # [D]
    result_image: np.ndarray  # [S, S, 3]


def open_run(path: str | Path) -> TrainedRun:
    """The trained run in `path` for the explorer; an InputError names what is wrong with a path that holds none,
    or a run of a kind without a latent space to explore."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise InputError(f"no training run in {path} ({CONFIG_FILE} missing): give the --workdir of a dcgan or vae training run")
    kind = load_config(path).model.kind
    if kind not in KINDS:
        raise InputError(f"{path} holds a {kind!r} run; the explorer needs a {' or '.join(KINDS)} run (one with latent vectors)")
    try:
        return load_run(path)
    except FileNotFoundError as error:  # a run that saved no checkpoint yet
        raise InputError(str(error)) from None


class Explorer:
    """One loaded run and what the page asks of it. Grids and directions are cached; faces render in fixed batches."""

    def __init__(self, run: TrainedRun, settings: Settings = Settings()):
        self.run = run
        self.settings = settings
        self._grids: dict[int, Grid] = {}
        self._directions: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}

    @classmethod
    def open(cls, path: str | Path, settings: Settings = Settings()) -> "Explorer":
        return cls(open_run(path), settings)

    @property
    def kind(self) -> str:
        return self.run.kind

    @cached_property
    def store(self) -> FaceStore:
        """The face store the run trained on."""
        return run_store(self.run)

    def _saved_scorer(self, load: Any, directory: str, steps: int) -> AttributeScorer | None:
        try:
            return load(self.store, self.run.image_size, directory, steps=steps, train_missing=False)
        except ValueError:  # a store without labels, or faces too small for the networks
            return None

    @cached_property
    def classifier(self) -> AttributeScorer | None:
        """The attribute classifier saved for the run's store and image size, or None."""
        return self._saved_scorer(load_or_train_classifier, self.settings.classifier_dir, self.settings.classifier_steps)

    @cached_property
    def judge(self) -> AttributeScorer | None:
        """The independent judge saved for the run's store and image size, or None."""
        return self._saved_scorer(load_or_train_judge, self.settings.judge_dir, self.settings.judge_steps)

    def info(self) -> dict[str, Any]:
        """What the page shows and offers: the run, the grid size, the attributes directions can be fitted for."""
        return {
            "run": str(self.run.workdir),
            "kind": self.kind,
            "latent_dim": self.run.latent_dim,
            "image_size": self.run.image_size,
            "grid_size": self.settings.grid_size,
            "first_grid": self.settings.first_grid,
            "attributes": list(self.direction_attributes()),
            "methods": list(DIRECTION_METHODS),
            "readers": [name for name, scorer in (("classifier", self.classifier), ("judge", self.judge)) if scorer],
        }

    # Faces.

    def _padded(self, rows: np.ndarray) -> tuple[np.ndarray, int]:
        """`rows` with copies of the last appended up to a multiple of the smallest of `settings.batches` that
        holds them (the largest, for more rows), and that batch size."""
        batch = next((size for size in self.settings.batches if size >= len(rows)), self.settings.batches[-1])
        return np.concatenate([rows, np.repeat(rows[-1:], -len(rows) % batch, axis=0)]), batch

    def render(self, latents: np.ndarray) -> np.ndarray:
        """uint8 faces [N, S, S, 3] of latents [N, D], generated in batches of one of `settings.batches` rows."""
        latents = np.asarray(latents, np.float32).reshape(-1, self.run.latent_dim)
        padded, batch = self._padded(latents)
        return generate_images(self.run, padded, batch)[: len(latents)]

    def warm_up(self) -> None:
        """Render the first grid and read a face at every batch size, so that requests find everything compiled."""
        grid = self.grid(self.settings.first_grid)
        for size in self.settings.batches:
            self.readings(self.render(grid.latents[:size]))

    def readings(self, images: np.ndarray) -> list[dict[str, dict[str, float]]]:
        """Per face, {reader: {attribute: probability}} of the saved classifier and judge (none: empty dicts)."""
        readings: list[dict[str, dict[str, float]]] = [{} for _ in images]
        for name, scorer in (("classifier", self.classifier), ("judge", self.judge)):
            if scorer is None or not len(images):
                continue
            padded, batch = self._padded(np.asarray(images))
            probabilities = predict_probabilities(scorer.model, scorer.params, padded, batch)[: len(images)]
            for reading, row in zip(readings, probabilities):
                reading[name] = dict(zip(scorer.attribute_names, row.tolist()))
        return readings

    def grid(self, seed: int) -> Grid:
        """Grid `seed`: the GAN's prior latents of the experiment's numbered grid, or encoded real faces (VAE)."""
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise InputError(f"a grid seed is a non-negative integer, got {seed!r}")
        if seed not in self._grids:
            size = self.settings.grid_size
            if self.kind == "vae":
                rows = self.store.select(None, self.settings.partition)
                if len(rows) == 0:
                    raise InputError(f"{self.store.root} has no faces in partition {self.settings.partition!r}")
                ids = np.sort(np.random.default_rng(seed).choice(rows, size=min(size, len(rows)), replace=False))
                images = self.store.gather(self.run.image_size, ids)
                latents = encode_means(self.run, images)
            else:  # what pools.saved_latents draws for the experiment's grid of this seed
                latents = np.asarray(normal_latents(jax.random.key(seed), size, self.run.latent_dim))
                images, ids = self.render(latents), np.arange(size)
            self._grids[seed] = Grid(seed, latents, images, ids)
        return self._grids[seed]

    def latent(self, face: tuple[int, int]) -> np.ndarray:
        """The latent [D] of grid face (seed, index)."""
        seed, index = face
        grid = self.grid(seed)
        if not isinstance(index, int) or not 0 <= index < len(grid.latents):
            raise InputError(f"grid {seed} has faces 0 to {len(grid.latents) - 1}, not {index!r}")
        return grid.latents[index]

    # Concepts and arithmetic.

    def _pool(self, members: Members) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The latents of the grids the members come from, stacked, and each concept's rows [1, k] into them."""
        for faces in members.values():
            for face in faces:
                self.latent(face)  # checks the face
        seeds = sorted({seed for faces in members.values() for seed, _ in faces})
        offsets = dict(zip(seeds, np.cumsum([0] + [len(self.grid(s).latents) for s in seeds])))
        rows = {name: np.array([[offsets[seed] + index for seed, index in faces]], np.int64) for name, faces in members.items()}
        latents = np.concatenate([self.grid(s).latents for s in seeds]) if seeds else np.zeros((0, self.run.latent_dim))
        return latents, rows

    def averages(self, members: Members) -> dict[str, np.ndarray]:
        """{concept: uint8 face of its members' mean latent}, for every concept with members."""
        filled = {name: faces for name, faces in members.items() if faces}
        if not filled:
            return {}
        latents, rows = self._pool(filled)
        vectors = [concepts_lib.concept_vector(latents[r[0]]) for r in rows.values()]
        return dict(zip(filled, self.render(np.stack(vectors))))

    def _check_complete(self, expression: str, members: Members) -> dict[str, float]:
        coefficients = expression_lib.parse(expression)
        for name in coefficients:
            if not members.get(name):
                raise InputError(f"concept {name!r} in the expression is empty: click faces to add members to it")
            for face in members[name]:
                self.latent(face)  # checks the face
        return coefficients

    def arithmetic(self, expression: str, members: Members) -> Arithmetic:
        """Each concept's average and the expression's result (the toolkit's `arithmetic_results`, one draw)."""
        coefficients = self._check_complete(expression, members)
        used = {name: members[name] for name in coefficients}
        latents, rows = self._pool(used)
        result = concepts_lib.arithmetic_results(expression, latents, rows)
        vectors = [result.concept_vectors[name][0] for name in used] + [result.results[0]]
        images = self.render(np.stack(vectors))
        return Arithmetic(coefficients, dict(zip(used, images[:-1])), result.results[0], images[-1])

    def command(self, expression: str, members: Members) -> str:
        """The command line that reproduces `expression` over the concepts' members: for the GAN, one grid's
        indices into the experiment's numbered grid of that seed; for the VAE, the faces' store rows."""
        coefficients = self._check_complete(expression, members)
        used = {name: members[name] for name in coefficients}
        words = ["python", "-m", EXPERIMENTS[self.kind]]
        if self.kind == "vae":
            picked = {name: [self.grid(seed).ids[index] for seed, index in faces] for name, faces in used.items()}
            options = {"run": str(self.run.workdir)}
        else:
            seeds = sorted({seed for faces in used.values() for seed, _ in faces})
            if len(seeds) > 1:
                raise InputError(
                    f"the members come from grids {', '.join(map(str, seeds))}; the command line takes the numbered "
                    f"grid of one seed: pick every member from one grid"
                )
            picked = {name: [index for _, index in faces] for name, faces in used.items()}
            # The experiment keeps its grid's latents in its workdir: one per seed, so the indices name these faces.
            words.append(f"--workdir=workdirs/vector_arithmetic_gan_seed{seeds[0]}")
            options = {"run": str(self.run.workdir), "seed": str(seeds[0]), "grid_size": str(self.settings.grid_size)}
        options.update(concepts=format_assignments(picked), expression=expression.strip())
        words += [f"--config.{key}={value}" for key, value in options.items()]
        return " ".join(shlex.quote(word) for word in words)

    # Directions, edits, interpolation.

    def direction_attributes(self) -> tuple[str, ...]:
        """Attributes directions can be fitted for: the store's labels (VAE: encoded labelled faces), or the
        classifier's (GAN: prior samples labelled by its readings); none for a GAN without a saved classifier."""
        if self.kind == "vae":
            return tuple(self.store.attribute_names)
        return tuple(self.classifier.attribute_names) if self.classifier else ()

    def directions(self, attribute: str, condition: str = "", method: str = "mean_difference") -> np.ndarray:
        """The edit direction [D] of `attribute` (toolkit `attribute_directions`), with `condition` projected out if given."""
        names = self.direction_attributes()
        if not names:
            raise InputError(
                f"no attribute classifier is saved for this GAN's store in {self.settings.classifier_dir} "
                f"(steps {self.settings.classifier_steps}): the GAN's directions are fitted on its readings of "
                "generated faces (run e.g. experiments.vector_arithmetic_gan once to train it)"
            )
        check_edit(names, attribute, condition=condition or None, method=method)
        key = (attribute, condition, method)
        if key not in self._directions:
            latents, labels = self._labelled_latents
            self._directions[key] = attribute_directions(
                latents, labels, names, attribute, condition=condition or None, method=method
            )
        return list(self._directions[key].values())[-1]  # the conditional direction comes last

    @cached_property
    def _labelled_latents(self) -> tuple[np.ndarray, np.ndarray]:
        """Latents [N, D] and int8 ±1 attributes [N, A]: encoded train faces (VAE), or prior samples read by the classifier."""
        count = self.settings.direction_faces
        if self.kind == "vae":
            rows, latents = encoded_faces(self.run, self.store, query=None, partition="train", count=count)
            return latents, self.store.attributes[rows]
        latents = np.asarray(normal_latents(jax.random.key(1), count, self.run.latent_dim))
        probabilities = self.classifier.probabilities(self.render(latents))
        return latents, np.where(probabilities >= 0.5, 1, -1).astype(np.int8)

    def edited(self, latent: np.ndarray, edits: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """`latent` [D] moved by alpha along each edit's direction in turn (toolkit `edit`);
        each edit is {"attribute", "condition" ('' for none), "method", "alpha"}."""
        latent = np.asarray(latent)
        for change in edits:
            direction = self.directions(change["attribute"], change.get("condition", ""), change.get("method", "mean_difference"))
            latent = edit(latent[None], direction, [float(change["alpha"])])[0, 0]
        return latent

    def strip(self, a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
        """Latents [T, D] from a to b (toolkit `interpolate_path`, 'lerp' or 'slerp')."""
        if method not in ("lerp", "slerp"):
            raise InputError(f"interpolation method must be 'lerp' or 'slerp', got {method!r}")
        try:
            return interpolate_path(np.stack([a, b]), self.settings.interpolation_steps, method)
        except ValueError as error:  # slerp between opposite or zero vectors
            raise InputError(str(error)) from None
