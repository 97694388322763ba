"""The attribute classifier artifact: attribute choice, reuse, and clear errors for stores it cannot learn from."""

import shutil

import jax
import numpy as np
import pytest

from gan_arith.data.store import FaceStore
from gan_arith.data.synthetic import write_synthetic_store
from gan_arith.evaluation.scorer import CELEBA_CLASSIFIER_ATTRIBUTES, classifier_attributes, load_or_train_classifier


class _Store:
    """Just what the checks read: a labelled store with only a train partition (as `prepare --limit` makes)."""

    root = "stores/limited"
    num_faces = 10
    manifest = {"source": "celeba"}

    def __init__(self, attribute_names):
        self.attribute_names = attribute_names

    def content_key(self):
        return "limited"

    def select(self, query, partition):
        return np.arange(10) if partition == "train" else np.array([], np.int64)


def test_attributes_default_to_the_store_s_own_or_the_celeba_set():
    assert classifier_attributes(_Store(["Male", "Smiling"])) == ("Male", "Smiling")
    celeba = [f"A{i}" for i in range(30)] + list(CELEBA_CLASSIFIER_ATTRIBUTES)
    assert classifier_attributes(_Store(celeba)) == CELEBA_CLASSIFIER_ATTRIBUTES
    with pytest.raises(ValueError, match="has no attribute\\(s\\) Bald"):
        classifier_attributes(_Store(["Male"]), ["Male", "Bald"])
    with pytest.raises(ValueError, match="no attribute labels"):
        classifier_attributes(_Store([]))


def test_a_store_without_test_faces_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="5 train faces in its classifier half and 0 test faces.*--limit"):
        load_or_train_classifier(_Store(["Male", "Smiling"]), 32, tmp_path)


@pytest.mark.slow
def test_a_copied_store_reuses_the_classifier_trained_for_the_original(tmp_path, capsys):
    store = write_synthetic_store(tmp_path / "store", num_faces=40, image_sizes=[32], seed=3, shard_size=16)
    first = load_or_train_classifier(store, 32, tmp_path / "classifiers", width=4, steps=2)
    assert "Training the attribute classifier" in capsys.readouterr().err
    copy = FaceStore(shutil.copytree(store.root, tmp_path / "elsewhere" / "renamed"))
    again = load_or_train_classifier(copy, 32, tmp_path / "classifiers", width=4, steps=2)
    assert "Training" not in capsys.readouterr().err
    assert again.test_accuracy == first.test_accuracy
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(first.params)):
        np.testing.assert_array_equal(a, b)
