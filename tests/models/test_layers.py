import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_arith.models.layers import (
    Conv2x, ConvTranspose2x, as_model_range, count_parameters, from_model_range, num_doublings, to_model_range,
)


def _value_and_grads(apply, variables, x):
    """`apply(variables, x)` and the gradients of a non-linear scalar of it (parameters and input), jitted."""

    def loss(variables, x):
        y = apply(variables, x)
        return jnp.sum(jnp.sin(y)), y

    (_, y), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(variables, x)
    return y, grads


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("kernel_size,size,impl,activation", [
    (2, 5, "phase", None), (3, 5, "phase", None), (4, 5, "phase", None), (4, 6, "phase", "leaky"), (5, 6, "phase", None),
    (4, 5, "dilated", "leaky"),
])
def test_conv_transpose_2x_is_flax_conv_transpose_in_value_and_gradient(kernel_size, size, impl, activation):
    x = jax.random.normal(jax.random.key(0), (2, size, size + 1, 3))  # not square: paddings per axis
    reference = nn.ConvTranspose(7, (kernel_size, kernel_size), strides=(2, 2), padding="SAME")
    variables = jax.jit(reference.init)(jax.random.key(1), x)
    leaky = (lambda v: nn.leaky_relu(v, 0.2)) if activation else None
    ours = ConvTranspose2x(7, kernel_size, impl=impl, activation=leaky)
    assert jax.tree.map(jnp.shape, jax.jit(ours.init)(jax.random.key(1), x)) == jax.tree.map(jnp.shape, variables)

    def flax_layer_then_activation(variables, x):
        y = reference.apply(variables, x)
        return y if leaky is None else leaky(y)

    expected, expected_grads = _value_and_grads(flax_layer_then_activation, variables, x)
    got, grads = _value_and_grads(ours.apply, variables, x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for g, e in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads)):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_conv_transpose_2x_names_a_bad_impl():
    x = jnp.ones((1, 5, 5, 4))
    with pytest.raises(ValueError, match="impl must be one of phase, dilated"):
        ConvTranspose2x(2, 4, impl="bogus").init(jax.random.key(1), x)


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("kernel_size,size,padding,impl", [
    (5, 8, "SAME", "phase"), (5, 8, ((2, 2), (2, 2)), "phase"), (5, 7, "SAME", "phase"), (5, 9, ((2, 2), (2, 2)), "phase"),
    (3, 6, "SAME", "phase"), (4, 6, "SAME", "phase"), (4, 7, ((1, 2), (0, 1)), "phase"), (5, 8, ((0, 0), (3, 1)), "phase"),
    (5, 8, "SAME", "dilated"),
])
def test_conv_2x_is_flax_strided_conv_in_value_and_gradient(kernel_size, size, padding, impl):
    x = jax.random.normal(jax.random.key(0), (2, size, size + 1, 3))  # not square: paddings per axis
    reference = nn.Conv(7, (kernel_size, kernel_size), strides=(2, 2), padding=padding)
    variables = jax.jit(reference.init)(jax.random.key(1), x)
    ours = Conv2x(7, kernel_size, padding=padding, impl=impl)
    assert jax.tree.map(jnp.shape, jax.jit(ours.init)(jax.random.key(1), x)) == jax.tree.map(jnp.shape, variables)

    expected, expected_grads = _value_and_grads(reference.apply, variables, x)
    got, grads = _value_and_grads(ours.apply, variables, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for g, e in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("padding", ["SAME", ((2, 2), (2, 2))])
def test_conv_2x_second_order_is_flax_strided_conv(padding):
    # The R1 penalty differentiates an input gradient with respect to the parameters.
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    reference = nn.Conv(5, (5, 5), strides=(2, 2), padding=padding)
    variables = jax.jit(reference.init)(jax.random.key(1), x)

    def penalty_gradient(apply):
        def penalty(variables, x):
            input_gradient = jax.grad(lambda x: jnp.sum(jnp.sin(apply(variables, x))))(x)
            return jnp.sum(input_gradient**2)

        return jax.jit(jax.grad(penalty, argnums=(0, 1)))(variables, x)

    expected = penalty_gradient(reference.apply)
    got = penalty_gradient(Conv2x(5, 5, padding=padding).apply)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_conv_2x_names_a_bad_impl():
    with pytest.raises(ValueError, match="Conv2x impl must be one of phase, dilated"):
        Conv2x(2, 5, impl="bogus").init(jax.random.key(1), jnp.ones((1, 6, 6, 4)))


def test_range_round_trip_and_count():
    u8 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, -1)
    x = to_model_range(jnp.asarray(u8))
    # Exact on CPU; GPUs may divide through a reciprocal (seen on an H100: not exactly 1.0).
    np.testing.assert_allclose([float(x.min()), float(x.max())], [-1.0, 1.0], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(from_model_range(x), u8)
    assert count_parameters({"a": jnp.zeros((2, 3)), "b": {"c": jnp.zeros(4)}}) == 10


def test_num_doublings_rejects_bad_sizes():
    assert num_doublings(80) == 4 and num_doublings(10) == 1
    for bad in (64, 5, 3, 81):
        with pytest.raises(ValueError, match="image_size"):
            num_doublings(bad)


def test_as_model_range_scales_uint8_and_passes_floats_through():
    images_u8 = jnp.array([[[[0, 128, 255]]]], jnp.uint8)
    np.testing.assert_allclose(as_model_range(images_u8), [[[[-1.0, 128 / 127.5 - 1.0, 1.0]]]], atol=1e-6)
    generated = jnp.array([[[[-0.5, 0.0, 0.25]]]], jnp.bfloat16)
    scaled = as_model_range(generated)
    assert scaled.dtype == jnp.float32
    np.testing.assert_array_equal(scaled, [[[[-0.5, 0.0, 0.25]]]])
