"""The attribute classifier artifact: attribute choice, and clear errors for stores it cannot learn from."""

import numpy as np
import pytest

from gan_arith.evaluation.scorer import CELEBA_CLASSIFIER_ATTRIBUTES, classifier_attributes, load_or_train_classifier


class _Store:
    """Just what the checks read: a labelled store with only a train partition (as `prepare --limit` makes)."""

    root = "stores/limited"
    num_faces = 10

    def __init__(self, attribute_names):
        self.attribute_names = attribute_names

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
    with pytest.raises(ValueError, match="10 train and 0 test faces.*--limit"):
        load_or_train_classifier(_Store(["Male", "Smiling"]), 32, tmp_path)
