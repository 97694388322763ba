"""The project's attribute classifier as a trained artifact: train once per store, save with orbax, reload.

`load_or_train_classifier(store, size, directory)` trains the classifier on one half of the store's
train partition (`train_half`; the judge of evaluation/judge.py learns from the other) the first
time and saves its weights with orbax, with its test-partition accuracy per attribute beside them in
`classifier.json`; later calls (any experiment, the training loop's Fréchet metric) load it. An
`AttributeScorer` gives attribute probabilities and Fréchet features; `load_or_train_scorer` does
the same for any classifier network of the same call signature.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp

from gan_arith.data.store import FaceStore
from gan_arith.evaluation.classifier_train import (
    accuracy_per_attribute, fit_classifier, predict_logits, predict_probabilities,
)
from gan_arith.evaluation.frechet import FeatureExtractor
from gan_arith.files import write_json
from gan_arith.evaluation.classifier_network import MIN_IMAGE_SIZE, AttributeClassifier

# The attributes the classifier learns on CelebA: the seeds' (Smiling, Male) and other visible ones.
CELEBA_CLASSIFIER_ATTRIBUTES = (
    "Smiling", "Male", "Eyeglasses", "Blond_Hair", "Black_Hair", "Young", "Wearing_Hat", "Mustache", "Heavy_Makeup",
)
CLASSIFIER_FILE = "classifier.json"


@dataclasses.dataclass(frozen=True)
class AttributeScorer:
    """A trained attribute classifier (the project's, or the judge): probabilities and Fréchet features for
    images (uint8 or [-1, 1])."""

    model: nn.Module
    params: Any
    attribute_names: tuple[str, ...]
    image_size: int
    test_accuracy: dict[str, float]

    def logits(self, images: Any) -> np.ndarray:
        return predict_logits(self.model, self.params, images)

    def logits_of(self, images: jax.Array) -> jax.Array:
        """Logits [B, A] of float images in [-1, 1], unbatched and jittable (for use inside other jitted code)."""
        return self.model.apply({"params": self.params}, images)

    def probabilities(self, images: Any) -> np.ndarray:
        """Per-attribute probabilities [N, A], in the order of `attribute_names`."""
        return predict_probabilities(self.model, self.params, images)

    @cached_property
    def features(self) -> FeatureExtractor:
        """Penultimate features: the space the Fréchet distance and KID are measured in."""
        return FeatureExtractor.from_classifier(self.model, self.params)

    def column(self, name: str) -> int:
        if name not in self.attribute_names:
            raise KeyError(f"the classifier knows no attribute {name!r}; it has {', '.join(self.attribute_names)}")
        return self.attribute_names.index(name)


def classifier_attributes(store: FaceStore, requested: Sequence[str] = ()) -> tuple[str, ...]:
    """`requested` (checked against the store), else the store's own if few, else the CelebA default set."""
    names = store.attribute_names
    if not names:
        raise ValueError(f"{store.root} has no attribute labels: an attribute classifier needs a labelled store")
    chosen = tuple(requested) or (tuple(names) if len(names) <= len(CELEBA_CLASSIFIER_ATTRIBUTES) else CELEBA_CLASSIFIER_ATTRIBUTES)
    missing = [name for name in chosen if name not in names]
    if missing:
        raise ValueError(f"{store.root} has no attribute(s) {', '.join(missing)}; it has {', '.join(names)}")
    return chosen


# The store's train partition is split in two disjoint halves by a fixed permutation: the project
# classifier learns from one, the judge (evaluation/judge.py) from the other, so the judge reads
# faces the classifier never saw.
TRAIN_HALVES = ("classifier", "judge")
_HALF_SPLIT_SEED = 0


def train_half(store: FaceStore, half: str) -> np.ndarray:
    """Store rows (ascending) of one half of the train partition: `half` is 'classifier' or 'judge'.

    A fixed permutation of the train rows, cut in the middle; the halves are disjoint, together they
    are the train partition, and they depend only on the store's train rows.
    """
    if half not in TRAIN_HALVES:
        raise ValueError(f"half must be one of {', '.join(TRAIN_HALVES)}, got {half!r}")
    rows = store.select(None, "train")
    order = np.random.default_rng(_HALF_SPLIT_SEED).permutation(len(rows))
    middle = len(rows) // 2
    return np.sort(rows[order[:middle] if half == TRAIN_HALVES[0] else order[middle:]])


def _scorer_dir(directory: Path, store: FaceStore, size: int, attributes: Sequence[str], architecture: str,
                steps: int, half: str, seed: int) -> Path:
    key = json.dumps([store.content_key(), size, list(attributes), architecture, steps, half, seed])
    # Named by what the faces are, not where they lie: a copied or moved store finds its classifier.
    return directory / f"{store.manifest['source']}-{size}px-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def load_or_train_scorer(
    model: nn.Module,
    store: FaceStore,
    image_size: int,
    directory: str | Path,
    *,
    attributes: Sequence[str],
    half: str,
    steps: int,
    max_train_faces: int,
    seed: int,
    role: str = "attribute classifier",
    train_missing: bool = True,
) -> AttributeScorer | None:
    """`model` (an attribute classifier of `AttributeClassifier`'s call signature, one logit per name in
    `attributes`) trained on up to `max_train_faces` faces of the store's train half `half` at
    `image_size`, saved under `directory` on first use and loaded after; its test-partition accuracy
    per attribute is kept beside the weights. `role` names it in messages and errors. With
    `train_missing=False`, None where none is saved yet (nothing is trained or written)."""
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"the {role} needs images of at least {MIN_IMAGE_SIZE}px, got {image_size}")
    names = tuple(attributes)
    columns = [store.attribute_names.index(name) for name in names]
    architecture = f"{type(model).__name__}(width={model.width})"
    path = _scorer_dir(Path(directory), store, image_size, names, architecture, steps, half, seed)
    if not train_missing and not (path / CLASSIFIER_FILE).exists():  # written last, once the weights are saved
        return None
    # In a multi-process job every process gets here together (orbax numbers its saves per process,
    # so a save by one process alone would put the job's later joint saves out of step): each trains
    # the same classifier, and they save it as one.
    manager = ocp.CheckpointManager(path.absolute() / "weights", options=ocp.CheckpointManagerOptions(create=True))
    try:
        if manager.latest_step() is not None and (path / CLASSIFIER_FILE).exists():
            params = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore())
            meta = json.loads((path / CLASSIFIER_FILE).read_text())
            return AttributeScorer(model, params, names, image_size, meta["test_accuracy"])
        train_rows = train_half(store, half)[:max_train_faces]
        test_rows = store.select(None, "test")
        if len(train_rows) == 0 or len(test_rows) == 0:
            raise ValueError(
                f"{store.root} has {len(train_rows)} train faces in its {half} half and {len(test_rows)} test faces: "
                f"the {role} needs both (a CelebA store prepared with --limit holds train faces only)"
            )
        print(
            f"Training the {role} ({architecture}; {', '.join(names)}) on {len(train_rows)} faces of the {half} half "
            f"of {store.root}'s train partition at {image_size}px, {steps} steps; saved in {path}",
            file=sys.stderr,
        )
        state = fit_classifier(
            model, store.gather(image_size, train_rows), store.attributes[np.ix_(train_rows, columns)],
            steps=steps, seed=seed, log_every=max(steps // 20, 1), name=role,
        )
        params = jax.device_get(state.params)
        accuracy = accuracy_per_attribute(
            predict_logits(model, params, store.gather(image_size, test_rows)), store.attributes[np.ix_(test_rows, columns)]
        )
        test_accuracy = {name: round(float(a), 4) for name, a in zip(names, accuracy)}
        manager.save(0, args=ocp.args.StandardSave(params))
        manager.wait_until_finished()
        meta = {
            "store": str(store.root), "image_size": image_size, "attributes": list(names), "architecture": architecture,
            "width": model.width, "steps": steps, "seed": seed, "train_half": half, "train_faces": len(train_rows),
            "test_faces": len(test_rows), "test_accuracy": test_accuracy,
        }
        write_json(meta, path / CLASSIFIER_FILE, indent=2)
        print(f"The {role}'s test accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in test_accuracy.items()),
              file=sys.stderr)
        return AttributeScorer(model, params, names, image_size, test_accuracy)
    finally:
        manager.close()


def load_or_train_classifier(
    store: FaceStore,
    image_size: int,
    directory: str | Path,
    *,
    attributes: Sequence[str] = (),
    width: int = 32,
    steps: int = 1500,
    max_train_faces: int = 20000,
    seed: int = 0,
    train_missing: bool = True,
) -> AttributeScorer | None:
    """The attribute classifier for `store` at `image_size`, trained on the 'classifier' half of the train
    partition and saved under `directory` on first use (`train_missing=False`: None until then)."""
    names = classifier_attributes(store, attributes)
    return load_or_train_scorer(
        AttributeClassifier(num_attributes=len(names), width=width), store, image_size, directory, attributes=names,
        half="classifier", steps=steps, max_train_faces=max_train_faces, seed=seed, train_missing=train_missing,
    )
