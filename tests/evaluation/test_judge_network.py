"""The judge network: shapes, its own parameters (not the classifier's trunk), size checks, per-image independence."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_arith.evaluation.classifier_train import create_classifier_state
from gan_arith.evaluation.judge_network import JudgeClassifier

MODEL = JudgeClassifier(num_attributes=3, width=4)


@jax.jit
def logits_and_features(params, images):
    return MODEL.apply({"params": params}, images, return_features=True)


@jax.jit
def features_only(params, images):
    return MODEL.apply({"params": params}, images, method=MODEL.features)


@pytest.fixture(scope="module")
def params():
    return create_classifier_state(MODEL, jax.random.PRNGKey(0), 32, optax.adam(1e-3)).params


def test_logits_and_features_have_the_classifier_s_shapes(params):
    images = jax.random.uniform(jax.random.PRNGKey(1), (4, 40, 40, 3), minval=-1, maxval=1)
    logits, features = logits_and_features(params, images)
    assert logits.shape == (4, 3) and features.shape == (4, 32) and logits.dtype == jnp.float32
    np.testing.assert_allclose(features_only(params, images), features, rtol=1e-6)
    assert np.min(np.linalg.norm(features[1:] - features[:1], axis=1)) > 1e-4  # not collapsed at initialisation
    # A VGG stack: unstrided 3×3 convolutions, two per stage, and no normalisation layer.
    trunk = params["trunk"]
    assert sorted(trunk) == [f"Conv_{i}" for i in range(8)]
    assert [trunk[f"Conv_{i}"]["kernel"].shape[:2] for i in range(8)] == [(3, 3)] * 8
    assert set(params) == {"trunk", "hidden", "head"}


def test_features_of_an_image_do_not_depend_on_its_batch(params):
    images = jax.random.uniform(jax.random.PRNGKey(2), (3, 48, 40, 3), minval=-1, maxval=1)
    np.testing.assert_allclose(features_only(params, images[1:2])[0], features_only(params, images)[1], rtol=1e-5, atol=1e-6)


def test_bad_images_and_settings_are_rejected(params):
    with pytest.raises(ValueError, match="at least 32"):
        features_only(params, jnp.zeros((1, 16, 32, 3)))
    with pytest.raises(ValueError, match="num_attributes"):
        jax.eval_shape(JudgeClassifier(num_attributes=0).init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match="width"):
        jax.eval_shape(JudgeClassifier(num_attributes=2, width=0).init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
