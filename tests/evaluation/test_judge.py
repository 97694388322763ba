"""The independent judge: disjoint train halves, training on its own half, learning, and its hit rate."""

import json

import numpy as np
import pytest

from gan_arith.data.store import attribute_mask
from gan_arith.data.synthetic import write_synthetic_store
from gan_arith.evaluation import scorer as scorer_module
from gan_arith.evaluation.judge import (
    judge_hit_rate, judged_success, load_or_train_judge, reconstruction_hit_rates, sample_attribute_rates,
)
from gan_arith.evaluation.scorer import CLASSIFIER_FILE, load_or_train_classifier, train_half
from gan_arith.evaluation.classifier_network import AttributeClassifier
from gan_arith.evaluation.judge_network import JudgeClassifier

SIZE = 32


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """1,000 synthetic faces: 800 train (400 per half), 100 valid, 100 test."""
    return write_synthetic_store(tmp_path_factory.mktemp("store"), num_faces=1000, image_sizes=[SIZE], seed=5,
                                 shard_size=500)


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("judge")


@pytest.fixture(scope="module")
def trained_judge(store, judge_dir):
    return load_or_train_judge(store, SIZE, judge_dir, width=8, steps=200)


def test_the_train_halves_are_disjoint_and_make_up_the_train_partition(store):
    classifier, judge = train_half(store, "classifier"), train_half(store, "judge")
    assert np.intersect1d(classifier, judge).size == 0
    np.testing.assert_array_equal(np.union1d(classifier, judge), store.select(None, "train"))
    assert abs(len(classifier) - len(judge)) <= 1
    assert np.all(np.diff(classifier) > 0) and np.all(np.diff(judge) > 0)
    np.testing.assert_array_equal(train_half(store, "judge"), judge)  # the same split every time
    # A permutation, not a block: each half draws from the whole partition.
    assert classifier.min() < judge.max() and judge.min() < classifier.max()
    with pytest.raises(ValueError, match="half must be one of classifier, judge"):
        train_half(store, "test")


@pytest.mark.slow
def test_the_classifier_and_the_judge_train_on_different_halves(store, tmp_path, monkeypatch, capsys):
    trained = {}
    fit = scorer_module.fit_classifier

    def spy(model, images, attributes, **kwargs):
        trained[type(model)] = images
        return fit(model, images, attributes, **kwargs)

    monkeypatch.setattr(scorer_module, "fit_classifier", spy)
    classifier = load_or_train_classifier(store, SIZE, tmp_path / "classifier", width=4, steps=2)
    judge = load_or_train_judge(store, SIZE, tmp_path / "judge", width=4, steps=2)
    assert isinstance(classifier.model, AttributeClassifier) and isinstance(judge.model, JudgeClassifier)
    np.testing.assert_array_equal(trained[AttributeClassifier], store.gather(SIZE, train_half(store, "classifier")))
    np.testing.assert_array_equal(trained[JudgeClassifier], store.gather(SIZE, train_half(store, "judge")))
    assert classifier.attribute_names == judge.attribute_names
    (meta_file,) = (tmp_path / "judge").glob(f"*/{CLASSIFIER_FILE}")
    meta = json.loads(meta_file.read_text())
    assert meta["train_half"] == "judge" and meta["architecture"] == "JudgeClassifier(width=4)"
    assert meta["train_faces"] == len(train_half(store, "judge")) and meta["test_faces"] == 100
    assert "Training the attribute judge" in capsys.readouterr().err
    # Cached: the second call loads the weights, trains nothing, and reads the same accuracy.
    again = load_or_train_judge(store, SIZE, tmp_path / "judge", width=4, steps=2)
    assert "Training" not in capsys.readouterr().err and again.test_accuracy == judge.test_accuracy


@pytest.mark.slow
def test_the_judge_learns_the_synthetic_attributes(store, trained_judge):
    accuracy = trained_judge.test_accuracy
    assert set(accuracy) == {"Blond_Hair", "Eyeglasses", "Male", "Smiling"}
    # 100 test faces, each attribute about half +1: 80% right by chance has a probability below 1e-9.
    assert min(accuracy.values()) > 0.8, accuracy
    hit = judge_hit_rate(trained_judge, store, "Smiling & Male")
    target = attribute_mask("Smiling & Male", store.attribute_names, store.attributes[store.select(None, "test")])
    assert hit["trials"] == int(target.sum()) > 10 and hit["rate"] > 0.6, hit


class _LookupJudge:
    """A judge whose probabilities for each store face are a table it is given: it finds a face by its pixels."""

    attribute_names = ("Male", "Smiling")
    image_size = SIZE

    def __init__(self, store, table):
        faces = store.gather(SIZE, np.arange(len(store.partition)))
        self.rows = {face.tobytes(): row for row, face in enumerate(faces)}
        assert len(self.rows) == len(faces)  # every face its own pixels
        self.table = np.asarray(table, np.float64)

    def probabilities(self, images):
        return self.table[[self.rows[np.asarray(face).tobytes()] for face in images]]


def test_the_hit_rate_counts_the_target_faces_of_the_partition_only(store):
    labels = store.attributes[:, [store.attribute_names.index("Male"), store.attribute_names.index("Smiling")]]
    table = np.where(labels > 0, 0.9, 0.1)  # the judge agrees with the labels ...
    target = store.select("Smiling & Male", "test")
    missed = target[::3]
    table[missed, 1] = 0.2  # ... except that it misses the smile of every third test smiling man
    table[store.select("Smiling & Male", "train"), :] = 0.0  # train faces must not count, right or wrong
    judge = _LookupJudge(store, table)
    hit = judge_hit_rate(judge, store, "Smiling & Male")
    assert (hit["successes"], hit["trials"]) == (len(target) - len(missed), len(target))
    assert hit["ci_low"] < hit["rate"] < hit["ci_high"]
    assert judge_hit_rate(judge, store, "Smiling & Male", partition="valid")["rate"] == 1.0
    with pytest.raises(ValueError, match="no face of partition 'test'"):
        judge_hit_rate(judge, store, "Smiling & ~Smiling")


def test_reconstruction_hit_rates_compare_real_target_faces_with_their_reconstructions(store):
    labels = store.attributes[:, [store.attribute_names.index("Male"), store.attribute_names.index("Smiling")]]
    judge = _LookupJudge(store, np.where(labels > 0, 0.9, 0.1))  # reads every label right
    target = store.select("Smiling & Male", "test")
    neutral_man = store.gather(SIZE, store.select("~Smiling & Male", "test")[:1])[0]

    def lose_every_other_smile(faces):  # a "decoder" that turns every other smiling man into a neutral one
        faces = np.array(faces)
        faces[::2] = neutral_man
        return faces

    kept = reconstruction_hit_rates(judge, store, "Smiling & Male", lose_every_other_smile)
    assert kept["real"]["successes"] == kept["real"]["trials"] == len(target)
    assert kept["reconstructed"]["successes"] == len(target) // 2
    assert kept["kept"] == kept["reconstructed"]["rate"] / kept["real"]["rate"]
    assert reconstruction_hit_rates(judge, store, "Smiling & Male", lambda faces: faces)["kept"] == 1.0


def test_sample_attribute_rates_read_samples_and_real_faces_alike(store):
    labels = store.attributes[:, [store.attribute_names.index("Male"), store.attribute_names.index("Smiling")]]
    judge = _LookupJudge(store, np.where(labels > 0, 0.9, 0.1))
    men = store.gather(SIZE, store.select("Male & ~Smiling", "train")[:30])
    women = store.gather(SIZE, store.select("~Male & Smiling", "train")[:10])
    rates = sample_attribute_rates(judge, store, np.concatenate([men, women]))
    assert rates["Male"]["samples"] == 0.75 and rates["Smiling"]["samples"] == 0.25
    test_labels = labels[store.select(None, "test")] > 0
    for i, name in enumerate(("Male", "Smiling")):
        assert rates[name]["real"] == rates[name]["labels"] == test_labels[:, i].mean()


def test_judged_success_sets_both_readings_the_hit_rate_and_the_source_side_by_side(store):
    labels = store.attributes[:, [store.attribute_names.index("Male"), store.attribute_names.index("Smiling")]]
    truth = np.where(labels > 0, 0.9, 0.1)
    classifier = _LookupJudge(store, truth)  # reads every face as labelled
    blind = truth.copy()
    blind[store.select("Smiling & Male", None)[::2], 1] = 0.1  # misses every other smiling man's smile
    judge = _LookupJudge(store, blind)
    smiling_men = store.select("Smiling & Male", "train")[:8]
    others = store.select("~Smiling", "train")[:12]
    results = store.gather(SIZE, smiling_men)
    baseline = store.gather(SIZE, np.concatenate([smiling_men[:2], others]))
    success = judged_success(classifier, judge, store, results, baseline, "Smiling & Male", source="scored")
    assert success["source"] == "scored" and success["target"] == "Smiling & Male"
    assert success["classifier"]["result"]["rate"] == 1.0 and success["classifier"]["baseline"]["successes"] == 2
    judged = int(np.sum(blind[smiling_men, 1] > 0.5))
    assert success["judge"]["result"]["successes"] == judged < 8
    hit = judge_hit_rate(judge, store, "Smiling & Male")
    assert success["judge_hit_rate"] == hit
    assert success["relative_to_hit_rate"] == pytest.approx((judged / 8) / hit["rate"])
