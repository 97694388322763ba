"""An independent judge of arithmetic results: a second attribute classifier the project classifier cannot sway.

The project classifier (scorer.py) picks scored concept members and reads the arithmetic results;
a rate it reads on faces it chose itself runs high. The judge differs in what it learnt from and
how: a VGG-style network (evaluation/judge_network.py, not the classifier's ConvTrunk), its own seed, trained
on the other half of the store's train partition (`scorer.train_half`), so it never saw a face
the classifier learnt from. It is cached with orbax like the classifier and has its interface
(`AttributeScorer`), so success-rate code takes either.

Its blind spots are measured, not assumed: `test_accuracy` per attribute on the test partition at
the run's image size, and `judge_hit_rate`, the fraction of real faces labelled with the target
that the judge reads so — the ceiling a perfect arithmetic result could reach in its eyes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gan_arith.data.store import FaceStore
from gan_arith.evaluation.scorer import AttributeScorer, classifier_attributes, load_or_train_scorer
from gan_arith.evaluation.success_rate import attribute_success, probability_success, rate_of, success_readings
from gan_arith.evaluation.judge_network import JudgeClassifier

JUDGE_SEED = 1  # the project classifier trains with seed 0


def load_or_train_judge(
    store: FaceStore,
    image_size: int,
    directory: str | Path,
    *,
    attributes: Sequence[str] = (),
    width: int = 16,
    steps: int = 1500,
    max_train_faces: int = 20000,
    seed: int = JUDGE_SEED,
    train_missing: bool = True,
) -> AttributeScorer | None:
    """The judge for `store` at `image_size` (the run's own), trained on the 'judge' half of the train
    partition and saved under `directory` on first use (`train_missing=False`: None until then); it reads
    the classifier's attributes by default."""
    names = classifier_attributes(store, attributes)
    return load_or_train_scorer(
        JudgeClassifier(num_attributes=len(names), width=width), store, image_size, directory, attributes=names,
        half="judge", steps=steps, max_train_faces=max_train_faces, seed=seed, role="attribute judge",
        train_missing=train_missing,
    )


def judge_hit_rate(
    judge: AttributeScorer,
    store: FaceStore,
    query: str,
    partition: str | None = "test",
    *,
    threshold: float = 0.5,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Of the real faces of `partition` labelled `query` (e.g. "Smiling & Male"), the fraction the judge reads
    as `query` too, with its Wilson interval (`Rate.as_dict`)."""
    return _hit_rate(judge, _target_faces(store, query, partition, judge.image_size), query, threshold, confidence)


def _target_faces(store: FaceStore, query: str, partition: str | None, image_size: int) -> np.ndarray:
    rows = store.select(query, partition)
    if rows.size == 0:
        raise ValueError(f"no face of partition {partition!r} in {store.root} is labelled {query!r}: no hit rate")
    return store.gather(image_size, rows)


def _hit_rate(judge: AttributeScorer, images: np.ndarray, query: str, threshold: float, confidence: float) -> dict[str, float]:
    probabilities = judge.probabilities(images)
    return rate_of(attribute_success(probabilities, judge.attribute_names, query, threshold), confidence).as_dict()


def reconstruction_hit_rates(
    judge: AttributeScorer,
    store: FaceStore,
    query: str,
    reconstruct: Callable[[np.ndarray], np.ndarray],
    partition: str | None = "test",
    *,
    threshold: float = 0.5,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """How much of `query` an autoencoder's reconstructions keep, in the judge's eyes: its hit rate on the real
    `query` faces of `partition` and on their reconstructions (`reconstruct`: uint8 faces -> uint8 faces),
    and their ratio (`kept`). Arithmetic on encodings cannot show what decoding already loses."""
    faces = _target_faces(store, query, partition, judge.image_size)
    real = _hit_rate(judge, faces, query, threshold, confidence)
    reconstructed = _hit_rate(judge, reconstruct(faces), query, threshold, confidence)
    kept = reconstructed["rate"] / real["rate"] if real["rate"] else None
    return {"target": query, "partition": partition, "real": real, "reconstructed": reconstructed, "kept": kept}


@dataclasses.dataclass(frozen=True)
class SuccessReader:
    """The classifier and the judge reading arithmetic results of one model against its random samples.

    The baseline's probabilities and the judge's hit rate are computed once (`success_reader`), so many
    sets of results (one per k, per way of averaging) cost only their own scoring. Calling it with
    result images and the members' source gives `success_readings`.
    """

    classifier: AttributeScorer
    judge: AttributeScorer
    query: str
    baseline_probabilities: tuple[np.ndarray, np.ndarray]  # (classifier's, judge's)
    hit_rate: dict[str, float]
    threshold: float = 0.5
    confidence: float = 0.95

    def __call__(self, result_images: np.ndarray, *, source: str) -> dict[str, Any]:
        classifier_reading, judge_reading = (
            probability_success(scorer.probabilities(result_images), baseline, scorer.attribute_names, self.query,
                                threshold=self.threshold, confidence=self.confidence)
            for scorer, baseline in zip((self.classifier, self.judge), self.baseline_probabilities)
        )
        return success_readings(classifier_reading, judge_reading, self.hit_rate, source)


def success_reader(
    classifier: AttributeScorer,
    judge: AttributeScorer,
    store: FaceStore,
    baseline_images: np.ndarray,
    query: str,
    *,
    partition: str | None = "test",
    threshold: float = 0.5,
    confidence: float = 0.95,
) -> SuccessReader:
    """A `SuccessReader` of `query` against `baseline_images` (random samples), with the judge's hit rate on
    real `query` faces of `partition`."""
    baseline = tuple(scorer.probabilities(baseline_images) for scorer in (classifier, judge))
    hit_rate = judge_hit_rate(judge, store, query, partition, threshold=threshold, confidence=confidence)
    return SuccessReader(classifier, judge, query, baseline, hit_rate, threshold, confidence)


def judged_success(
    classifier: AttributeScorer,
    judge: AttributeScorer,
    store: FaceStore,
    result_images: np.ndarray,
    baseline_images: np.ndarray,
    query: str,
    *,
    source: str,
    partition: str | None = "test",
    threshold: float = 0.5,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """`success_readings` of arithmetic results: the classifier's and the judge's `arithmetic_success`
    against the baseline images, the judge's hit rate on real `query` faces of `partition`, and `source`
    (where the concept members came from)."""
    reader = success_reader(classifier, judge, store, baseline_images, query, partition=partition,
                            threshold=threshold, confidence=confidence)
    return reader(result_images, source=source)


def sample_attribute_rates(
    judge: AttributeScorer, store: FaceStore, samples: np.ndarray, partition: str | None = "test", *, threshold: float = 0.5
) -> dict[str, dict[str, float]]:
    """Per attribute: the fraction of generated `samples` the judge labels with it, against the same reading of
    the store's real faces of `partition` and their labels. A generator that covers the faces' variety
    draws each attribute about as often as the faces carry it; comparing judge with judge cancels its bias."""
    real = store.gather(judge.image_size, store.select(None, partition))
    columns = [store.attribute_names.index(name) for name in judge.attribute_names]
    labels = store.attributes[store.select(None, partition)][:, columns] > 0
    read_samples, read_real = (judge.probabilities(images) > threshold for images in (samples, real))
    return {
        name: {"samples": float(read_samples[:, i].mean()), "real": float(read_real[:, i].mean()),
               "labels": float(labels[:, i].mean())}
        for i, name in enumerate(judge.attribute_names)
    }
