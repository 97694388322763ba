"""The contract between the two forms of the DCGAN: `models.fast.dcgan` computes `models.dcgan`'s
functions on the same parameter trees (run here on CPU, where the fast form is correct but slow)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_arith.config import base_config
from gan_arith.models import dcgan
from gan_arith.models.fast import IMPLS, dcgan as fast, dcgan_modules, uses_fast
from gan_arith.train.checkpoint import Checkpoints, abstract_state
from gan_arith.train.steps import build_steps


def _assert_close_trees(got, expected, rtol=1e-4, atol=1e-4):
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name,small,small_input,seed_input", [
    ("Generator", {"latent_dim": 16, "width": 8, "image_size": 20}, (1, 16), (1, 100)),
    ("Discriminator", {"width": 8, "image_size": 20}, (1, 20, 20, 3), (1, 80, 80, 3)),
])
def test_both_forms_initialise_the_same_parameters(name, small, small_input, seed_input):
    plain, ours = getattr(dcgan, name), getattr(fast, name)
    expected = jax.jit(plain(**small).init)(jax.random.key(1), jnp.zeros(small_input))
    got = jax.jit(ours(**small).init)(jax.random.key(1), jnp.zeros(small_input))
    jax.tree.map(np.testing.assert_array_equal, got, expected)
    seed_shapes = [jax.eval_shape(module().init, jax.random.key(1), jnp.zeros(seed_input)) for module in (plain, ours)]
    assert seed_shapes[0] == seed_shapes[1]


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("conv_transpose", ["phase", "dilated"])
def test_fast_generator_is_the_plain_one_in_value_and_gradient(conv_transpose):
    # Merged phase convolutions, per-phase bias and LeakyReLU, the RGB layer in the phase domain.
    z = jax.random.normal(jax.random.key(0), (3, 16))
    plain = dcgan.Generator(latent_dim=16, width=16, image_size=20, conv_transpose=conv_transpose)
    ours = fast.Generator(latent_dim=16, width=16, image_size=20, conv_transpose=conv_transpose)
    variables = jax.jit(plain.init)(jax.random.key(1), z)
    np.testing.assert_allclose(jax.jit(ours.apply)(variables, z), plain.apply(variables, z), atol=1e-5)

    def loss(module, variables):
        return jnp.sum(jnp.sin(3.0 * module.apply(variables, z)))

    grad = jax.jit(jax.grad(loss, argnums=1), static_argnums=0)
    _assert_close_trees(grad(ours, variables), grad(plain, variables))


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("padding", ["same", "symmetric"])
def test_fast_discriminator_is_the_plain_one_in_value_and_gradient(padding):
    # Mirrored with symmetric padding ('same'), the RGB layer column-unfolded: outputs, and the
    # gradients the D update needs (parameters) and the G update needs (images), dropout on.
    images = jax.random.uniform(jax.random.key(0), (3, 20, 20, 3), minval=-1, maxval=1)
    plain = dcgan.Discriminator(width=8, image_size=20, padding=padding)
    ours = fast.Discriminator(width=8, image_size=20, padding=padding)
    variables = jax.jit(plain.init)(jax.random.key(1), images)
    np.testing.assert_allclose(jax.jit(ours.apply)(variables, images), plain.apply(variables, images), atol=1e-5)

    def loss(module, variables, images):
        logits = module.apply(variables, images, train=True, rngs={"dropout": jax.random.key(2)})
        return jnp.sum(jnp.sin(3.0 * logits))

    grads = jax.jit(jax.grad(loss, argnums=(1, 2)), static_argnums=0)
    _assert_close_trees(grads(ours, variables, images), grads(plain, variables, images), rtol=1e-5, atol=1e-5)


def test_fast_discriminator_pads_every_layer_symmetrically():
    # What it exists for: no stride-2 layer keeps Keras' (1, 2) padding (cuDNN would need a padded
    # copy), the kernels mirrored behind a barrier, the RGB layer a 5×1 kernel over 16 channels.
    images = jnp.zeros((2, 20, 20, 3))
    discriminator = fast.Discriminator(width=8, image_size=20)
    variables = jax.jit(discriminator.init)(jax.random.key(1), images)
    hlo = jax.jit(discriminator.apply).lower(variables, images).as_text()
    assert "tensor<5x1x16x8xf32>" in hlo and "pad = [[1, 2], [1, 2]]" not in hlo
    assert hlo.count("pad = [[2, 2], [2, 2]]") == 2 and "stablehlo.reverse" in hlo and "optimization_barrier" in hlo


def test_impl_chooses_the_form_and_auto_is_plain_off_cuda():
    assert jax.default_backend() == "cpu"  # tests/conftest.py
    assert dcgan_modules("plain") == dcgan_modules("auto") == (dcgan.Generator, dcgan.Discriminator)
    assert dcgan_modules("fast") == (fast.Generator, fast.Discriminator)
    assert [uses_fast(impl) for impl in IMPLS] == [False, False, True]
    with pytest.raises(ValueError, match="impl must be one of auto, plain, fast, got 'gpu'"):
        uses_fast("gpu")


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("saved_impl,loaded_impl", [("plain", "fast"), ("fast", "plain")])
def test_a_checkpoint_of_one_form_restores_into_the_other(saved_impl, loaded_impl, tmp_path):
    config = base_config("dcgan")
    config.model.update(latent_dim=16, width=8, image_size=20, impl=saved_impl)
    steps = build_steps(config)
    state = jax.jit(steps.init, static_argnums=1)(jax.random.key(0), 20)
    batch = {"image": jax.random.randint(jax.random.key(1), (4, 20, 20, 3), 0, 256).astype(jnp.uint8)}
    state, _ = jax.jit(steps.train_step)(state, batch, jax.random.key(2))
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(state, {"loss": 0.0})
    checkpoints.close()

    config.model.impl = loaded_impl
    loaded = build_steps(config)
    assert type(loaded.generator) is not type(steps.generator)
    checkpoints = Checkpoints(tmp_path)
    restored = checkpoints.restore(abstract_state(loaded, 20, jax.sharding.SingleDeviceSharding(jax.devices()[0])))
    checkpoints.close()
    jax.tree.map(np.testing.assert_array_equal, restored.params, state.params)
    z = jax.random.normal(jax.random.key(3), (4, 16))
    g_params = {"params": restored.params["generator"]}
    images = jax.jit(loaded.generator.apply)(g_params, z)
    np.testing.assert_allclose(images, steps.generator.apply(g_params, z), atol=1e-5)
    d_params = {"params": restored.params["discriminator"]}
    np.testing.assert_allclose(
        jax.jit(loaded.discriminator.apply)(d_params, images), steps.discriminator.apply(d_params, images), atol=1e-5
    )
