"""The attribute classifier: shapes, its feature/logit split, size checks, per-image independence."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_arith.evaluation.classifier_train import create_classifier_state
from gan_arith.evaluation.classifier_network import AttributeClassifier

MODEL = AttributeClassifier(num_attributes=3, width=8)


# Jitted: applying op by op compiles every op separately, which is slower than one compile on CPU.
@partial(jax.jit, static_argnames="model")
def logits_and_features(params, images, model=MODEL):
    return model.apply({"params": params}, images, return_features=True)


@jax.jit
def features_only(params, images):
    return MODEL.apply({"params": params}, images, method=MODEL.features)


@pytest.fixture(scope="module")
def params():
    return create_classifier_state(MODEL, jax.random.PRNGKey(0), 32, optax.adam(1e-3)).params


def test_logits_are_a_dense_layer_of_the_features(params):
    images = jax.random.uniform(jax.random.PRNGKey(1), (4, 32, 32, 3), minval=-1, maxval=1)
    logits, features = logits_and_features(params, images)
    assert logits.shape == (4, 3) and features.shape == (4, 64) and logits.dtype == jnp.float32
    np.testing.assert_allclose(features_only(params, images), features, rtol=1e-6)
    head = params["head"]
    np.testing.assert_allclose(features @ head["kernel"] + head["bias"], logits, rtol=1e-5, atol=1e-5)
    # Different images give different features (the trunk is not collapsed at initialisation).
    assert np.min(np.linalg.norm(features[1:] - features[:1], axis=1)) > 1e-3


def test_features_of_an_image_do_not_depend_on_its_batch(params):
    # GroupNorm normalises within each image, so a face's features are the same in any batch;
    # 48×40 also checks that non-square sizes other than 32 work.
    images = jax.random.uniform(jax.random.PRNGKey(2), (3, 48, 40, 3), minval=-1, maxval=1)
    together = features_only(params, images)
    alone = features_only(params, images[1:2])
    np.testing.assert_allclose(alone[0], together[1], rtol=1e-5, atol=1e-6)


def test_bad_images_and_settings_are_rejected(params):
    with pytest.raises(ValueError, match="at least 32"):
        features_only(params, jnp.zeros((1, 16, 32, 3)))
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        features_only(params, jnp.zeros((1, 32, 32, 1)))
    with pytest.raises(ValueError, match="num_attributes"):
        jax.eval_shape(AttributeClassifier(num_attributes=0).init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))


def test_bfloat16_compute_returns_float32_close_to_float32(params):
    images = jax.random.uniform(jax.random.PRNGKey(3), (2, 32, 32, 3), minval=-1, maxval=1)
    low, _ = logits_and_features(params, images, AttributeClassifier(num_attributes=3, width=8, dtype=jnp.bfloat16))
    assert low.dtype == jnp.float32
    np.testing.assert_allclose(low, logits_and_features(params, images)[0], atol=0.1)
