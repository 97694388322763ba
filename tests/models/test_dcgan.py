import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_arith.models.dcgan import Discriminator, Generator
from gan_arith.models.layers import count_parameters


def test_seed_parameter_counts_and_shapes():
    # Shapes only (eval_shape): the seed's sizes cost seconds to run on CPU, and counts need no values.
    generator, discriminator = Generator(), Discriminator()
    g_vars = jax.eval_shape(generator.init, jax.random.key(0), jnp.zeros((1, 100)))
    d_vars = jax.eval_shape(discriminator.init, jax.random.key(1), jnp.zeros((1, 80, 80, 3)))
    assert count_parameters(g_vars) == 1_381_891
    assert count_parameters(d_vars) == 1_651_841
    assert count_parameters(g_vars) + count_parameters(d_vars) == 3_033_732
    images = jax.eval_shape(generator.apply, g_vars, jnp.zeros((2, 100)))
    assert images.shape == (2, 80, 80, 3) and images.dtype == jnp.float32
    assert jax.eval_shape(discriminator.apply, d_vars, images).shape == (2,)


def test_outputs_are_images_and_logits():
    generator, discriminator = Generator(latent_dim=16, width=16, image_size=20), Discriminator(width=16, image_size=20)
    g_vars = jax.jit(generator.init)(jax.random.key(0), jnp.zeros((1, 16)))
    d_vars = jax.jit(discriminator.init)(jax.random.key(1), jnp.zeros((1, 20, 20, 3)))
    z = jax.random.normal(jax.random.key(2), (2, 16))
    images = jax.jit(generator.apply)(g_vars, z)
    assert float(jnp.abs(images).max()) <= 1.0 and float(images.std()) > 0
    assert not np.allclose(images[0], images[1])  # different latents, different faces
    logits = jax.jit(discriminator.apply)(d_vars, images)
    assert logits.shape == (2,) and bool(jnp.all(jnp.isfinite(logits))) and float(logits[0]) != float(logits[1])


def test_dropout_only_in_train_mode():
    discriminator = Discriminator(width=8, image_size=10)
    images = jax.random.uniform(jax.random.key(0), (4, 10, 10, 3), minval=-1, maxval=1)
    variables = jax.jit(discriminator.init)(jax.random.key(1), images)
    eval_a = discriminator.apply(variables, images)
    np.testing.assert_array_equal(eval_a, discriminator.apply(variables, images))
    train_a = discriminator.apply(variables, images, train=True, rngs={"dropout": jax.random.key(2)})
    train_b = discriminator.apply(variables, images, train=True, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(train_a, train_b)


def test_bfloat16_compute_keeps_float32_params_and_close_outputs():
    z = jax.random.normal(jax.random.key(0), (2, 16))
    g32 = Generator(latent_dim=16, width=8, image_size=20)
    g16 = Generator(latent_dim=16, width=8, image_size=20, dtype=jnp.bfloat16)
    variables = jax.jit(g32.init)(jax.random.key(1), z)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(jax.jit(g16.init)(jax.random.key(1), z)))
    out32, out16 = g32.apply(variables, z), g16.apply(variables, z)
    assert out16.dtype == jnp.float32
    np.testing.assert_allclose(out16, out32, atol=0.05)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="latents of shape"):
        jax.jit(Generator(latent_dim=16, width=8, image_size=10).init)(jax.random.key(0), jnp.zeros((1, 15)))
    with pytest.raises(ValueError, match="Discriminator expects"):
        jax.jit(Discriminator(width=8, image_size=10).init)(jax.random.key(0), jnp.zeros((1, 20, 20, 3)))
