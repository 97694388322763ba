import jax
import jax.numpy as jnp
import pytest

from gan_arith.models.autoencoder import AccordionAE
from gan_arith.models.layers import count_parameters


def test_seed_parameter_counts_and_shapes():
    variables = jax.eval_shape(AccordionAE().init, jax.random.key(1), jnp.zeros((1, 128, 128, 3)))
    assert count_parameters(variables) == 1_635_846
    assert count_parameters(variables["params"]) == 1_634_822


def test_reconstruction_is_an_image():
    model = AccordionAE(image_size=16)
    images = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3), minval=-1, maxval=1)
    variables = jax.jit(model.init)(jax.random.key(1), images)
    out = jax.jit(model.apply)(variables, images)
    assert out.shape == images.shape and float(jnp.abs(out).max()) <= 1.0 and float(out.std()) > 0


def test_rejects_sizes_not_divisible_by_8():
    with pytest.raises(ValueError, match="divisible"):
        jax.jit(AccordionAE(image_size=20).init)(jax.random.key(0), jnp.zeros((1, 20, 20, 3)))
