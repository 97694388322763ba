"""What the fast lowering's tests share: a convolution checked against `lax.conv_general_dilated`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def _conv_value_and_grads(conv, x, kernel, padding):
    """A scalar of the convolution's output and its gradients, jitted as in training (float32, exact products)."""
    cotangent = jax.random.normal(jax.random.key(9), jax.eval_shape(
        lambda: jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    ).shape)

    def loss(x, kernel):
        out = conv(x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest")
        return jnp.sum(out * cotangent), out

    (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(x, kernel)
    return out, grads


@pytest.fixture
def assert_same_conv():
    """`assert_same_conv(conv, x, kernel, padding)`: `conv` (lax.conv_general_dilated's signature)
    computes `lax.conv_general_dilated`, value and both gradients."""

    def check(conv, x, kernel, padding):
        out, grads = _conv_value_and_grads(conv, x, kernel, padding)
        expected_out, expected_grads = _conv_value_and_grads(jax.lax.conv_general_dilated, x, kernel, padding)
        np.testing.assert_allclose(out, expected_out, rtol=1e-5, atol=1e-4)
        for got, expected in zip(grads, expected_grads):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)

    return check
