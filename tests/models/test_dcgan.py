import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

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
    # The seed's checkpoints name these (Conv2x computes the stride-2 layers under nn.Conv's names)
    assert {path: leaf.shape for path, leaf in flatten_dict(d_vars["params"], sep="/").items()} == {
        "Conv_0/kernel": (5, 5, 3, 128), "Conv_0/bias": (128,),
        **{f"Conv_{i}/{name}": shape for i in range(1, 5) for name, shape in (("kernel", (5, 5, 128, 128)), ("bias", (128,)))},
        "Dense_0/kernel": (3200, 1), "Dense_0/bias": (1,),
    }
    images = jax.eval_shape(generator.apply, g_vars, jnp.zeros((2, 100)))
    assert images.shape == (2, 80, 80, 3) and images.dtype == jnp.float32
    assert jax.eval_shape(discriminator.apply, d_vars, images).shape == (2,)


class _KerasStyleGenerator(nn.Module):
    """The seed's generator written layer by layer with flax's own layers, as the reference."""

    @nn.compact
    def __call__(self, z):
        x = nn.leaky_relu(nn.Dense(5 * 5 * 16)(z), 0.2).reshape(-1, 5, 5, 16)
        for index in range(2):
            x = nn.ConvTranspose(16, (4, 4), strides=(2, 2), padding="SAME", name=f"ConvTranspose2x_{index}")(x)
            x = nn.leaky_relu(x, 0.2)
        return jnp.tanh(nn.Conv(3, (5, 5), padding="SAME", name="Conv_0")(x))


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("conv_transpose", ["phase", "dilated"])
def test_generator_is_the_keras_layer_stack_in_value_and_gradient(conv_transpose):
    z = jax.random.normal(jax.random.key(0), (3, 16))
    reference = _KerasStyleGenerator()
    ours = Generator(latent_dim=16, width=16, image_size=20, conv_transpose=conv_transpose)
    variables = jax.jit(reference.init)(jax.random.key(1), z)
    assert jax.tree.map(jnp.shape, jax.jit(ours.init)(jax.random.key(1), z)) == jax.tree.map(jnp.shape, variables)
    np.testing.assert_allclose(jax.jit(ours.apply)(variables, z), reference.apply(variables, z), atol=1e-5)

    def loss(module, variables):
        return jnp.sum(jnp.sin(3.0 * module.apply(variables, z)))

    expected = jax.jit(jax.grad(loss, argnums=1), static_argnums=0)(reference, variables)
    got = jax.jit(jax.grad(loss, argnums=1), static_argnums=0)(ours, variables)
    for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("conv_2x", ["phase", "dilated"])
@pytest.mark.parametrize("padding,strided_padding", [("same", "SAME"), ("symmetric", ((2, 2), (2, 2)))])
def test_discriminator_padding_is_keras_same_or_symmetric(padding, strided_padding, conv_2x):
    # Both give the seed's table (80 -> 40 -> ... -> 5, same parameters); they differ in where each
    # stride-2 window sits, so on the same parameters they are different functions.
    class Reference(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.leaky_relu(nn.Conv(8, (5, 5), padding="SAME", name="Conv_0")(x), 0.2)
            for index in range(1, 3):
                x = nn.leaky_relu(nn.Conv(8, (5, 5), strides=(2, 2), padding=strided_padding, name=f"Conv_{index}")(x), 0.2)
            return nn.Dense(1, name="Dense_0")(x.reshape(x.shape[0], -1))[:, 0]

    images = jax.random.uniform(jax.random.key(0), (3, 20, 20, 3), minval=-1, maxval=1)
    ours = Discriminator(width=8, image_size=20, padding=padding, conv_2x=conv_2x)
    variables = jax.jit(ours.init)(jax.random.key(1), images)
    assert jax.tree.map(jnp.shape, jax.jit(Reference().init)(jax.random.key(1), images)) == jax.tree.map(jnp.shape, variables)
    np.testing.assert_allclose(jax.jit(ours.apply)(variables, images), Reference().apply(variables, images), atol=1e-5)

    def loss(module, variables, images):  # the D update needs parameter gradients, the G update image gradients
        return jnp.sum(jnp.sin(3.0 * module.apply(variables, images)))

    grads = jax.jit(jax.grad(loss, argnums=(1, 2)), static_argnums=0)
    for e, g in zip(jax.tree.leaves(grads(Reference(), variables, images)), jax.tree.leaves(grads(ours, variables, images))):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    other = Discriminator(width=8, image_size=20, padding="symmetric" if padding == "same" else "same")
    assert not np.allclose(other.apply(variables, images), ours.apply(variables, images), atol=1e-3)
    seed = Discriminator(padding=padding)
    assert count_parameters(jax.eval_shape(seed.init, jax.random.key(1), jnp.zeros((1, 80, 80, 3)))) == 1_651_841


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
    with pytest.raises(ValueError, match="padding must be 'same' or 'symmetric'"):
        jax.jit(Discriminator(width=8, image_size=10, padding="valid").init)(jax.random.key(0), jnp.zeros((1, 10, 10, 3)))
    with pytest.raises(ValueError, match="Discriminator expects"):
        jax.jit(Discriminator(width=8, image_size=10).init)(jax.random.key(0), jnp.zeros((1, 20, 20, 3)))
