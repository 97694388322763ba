"""The attribute classifier learns the synthetic faces' attributes; loss and accuracy by hand."""

import numpy as np
import pytest

from gan_arith.data.synthetic import SYNTHETIC_ATTRIBUTES, render_faces
from gan_arith.evaluation.classifier_train import (
    accuracy_per_attribute,
    classifier_loss,
    fit_classifier,
    predict_probabilities,
)
from gan_arith.evaluation.classifier_network import AttributeClassifier


def test_loss_and_accuracy_by_hand():
    logits = np.array([[2.0, -1.0], [0.0, 3.0], [-0.5, -2.0]], np.float32)
    labels = np.array([[1, -1], [-1, 1], [1, -1]], np.int8)
    np.testing.assert_allclose(accuracy_per_attribute(logits, labels), [2 / 3, 1.0])  # a logit of 0 means -1
    expected = np.mean([np.log1p(np.exp(-2)), np.log1p(np.exp(-1)), np.log(2), np.log1p(np.exp(-3)),
                        np.log1p(np.exp(0.5)), np.log1p(np.exp(-2))])
    assert float(classifier_loss(logits, labels)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="must both be"):
        accuracy_per_attribute(logits, labels[:2])


@pytest.mark.slow
def test_classifier_learns_synthetic_attributes():
    images, attributes = render_faces(0, 0, 4096, 32)
    test_images, test_attributes = render_faces(1, 0, 512, 32)  # another seed: unseen faces
    model = AttributeClassifier(len(SYNTHETIC_ATTRIBUTES), width=8)
    state = fit_classifier(model, images, attributes, steps=300, batch_size=32, learning_rate=5e-3, seed=0)
    probabilities = predict_probabilities(model, state.params, test_images)
    accuracy = accuracy_per_attribute(probabilities - 0.5, test_attributes)
    assert np.all(accuracy > 0.95), dict(zip(SYNTHETIC_ATTRIBUTES, accuracy))


def test_fit_classifier_names_bad_inputs():
    model = AttributeClassifier(2, width=8)
    with pytest.raises(ValueError, match="uint8"):
        fit_classifier(model, np.zeros((4, 32, 32, 3), np.float32), np.ones((4, 2), np.int8), steps=1)
    with pytest.raises(ValueError, match=r"attributes must be \[N=4, A=2\]"):
        fit_classifier(model, np.zeros((4, 32, 32, 3), np.uint8), np.ones((4, 3), np.int8), steps=1)
