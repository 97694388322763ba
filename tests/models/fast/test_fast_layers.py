import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_arith.models.fast.layers import leaky_relu, unfold_columns


def _column_unfolded_conv(lhs, rhs, window_strides, padding, dimension_numbers=None, precision=None):
    assert tuple(window_strides) == (1, 1) and dimension_numbers == ("NHWC", "HWIO", "NHWC")
    columns, kernel, rows_padding = unfold_columns(lhs, rhs, padding)
    return jax.lax.conv_general_dilated(
        columns, kernel, (1, 1), rows_padding, dimension_numbers=dimension_numbers, precision=precision
    )


# RGB at the seed's kernel (15 unfolded channels padded to 16); VALID and asymmetric explicit padding;
# 8 -> 3 with kw·C_in = 24 already aligned (no zero channels); a 1-channel input with an even kernel.
@pytest.mark.parametrize("c_in,c_out,kernel_size,padding", [
    (3, 16, 5, "SAME"), (3, 8, 3, "VALID"), (3, 6, 5, ((1, 2), (0, 3))), (8, 3, 3, "SAME"), (1, 4, 4, "SAME"),
])
def test_column_unfolded_convolution_equals_lax_conv_with_gradients(c_in, c_out, kernel_size, padding, assert_same_conv):
    x = jax.random.normal(jax.random.key(c_in), (2, 9, 11, c_in))
    kernel = jax.random.normal(jax.random.key(c_out), (kernel_size, kernel_size, c_in, c_out))
    assert_same_conv(_column_unfolded_conv, x, kernel, padding)
    columns, unfolded_kernel, _ = unfold_columns(x, kernel, padding)
    aligned = -(-kernel_size * c_in // 8) * 8
    assert columns.shape[-1] == unfolded_kernel.shape[2] == aligned and unfolded_kernel.shape[:2] == (kernel_size, 1)


def test_unfold_columns_rejects_an_unknown_padding():
    with pytest.raises(ValueError, match="padding must be"):
        unfold_columns(jnp.ones((1, 8, 8, 3)), jnp.ones((3, 3, 3, 4)), "CIRCULAR")


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_leaky_relu_equals_jax_leaky_relu_in_values_and_gradients(dtype):
    x = jnp.concatenate([
        jax.random.normal(jax.random.key(0), (4096,)) * 3,
        jnp.array([0.0, -0.0, 1e-30, -1e-30, 7.0, -7.0, jnp.inf, -jnp.inf]),
    ]).astype(dtype)
    cotangent = jax.random.normal(jax.random.key(1), x.shape).astype(dtype)

    def value_and_gradient(activation, x, cotangent):
        y, pullback = jax.vjp(activation, x)
        return y, pullback(cotangent)[0]

    # Arguments, not closed-over constants: XLA would fold the whole computation while compiling.
    ours = jax.jit(lambda x, c: value_and_gradient(lambda v: leaky_relu(v, 0.2), x, c))(x, cotangent)
    reference = jax.jit(lambda x, c: value_and_gradient(lambda v: jax.nn.leaky_relu(v, 0.2), x, c))(x, cotangent)
    for got, expected in zip(ours, reference):
        assert got.dtype == dtype
        np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(expected, np.float32))
    # At 0 the gradient is 1, as jax's (x >= 0 takes the identity branch); slope 0.2 below.
    np.testing.assert_array_equal(np.asarray(ours[1][-8:-6] / cotangent[-8:-6], np.float32), [1.0, 1.0])


def test_leaky_relu_is_a_maximum_and_its_gradient_needs_only_the_output():
    # The form XLA's GPU convolution fusion folds into a convolution's cuDNN graph: no compare/select.
    x = jnp.linspace(-2.0, 2.0, 16)
    forward = jax.jit(lambda v: leaky_relu(v, 0.2)).lower(x).as_text()
    assert "stablehlo.maximum" in forward and "select" not in forward and "compare" not in forward
    # The pullback's only residual is the output: the pre-activation can be freed after the forward pass.
    y, pullback = jax.vjp(lambda v: leaky_relu(v, 0.2), x)
    residuals = [leaf for leaf in jax.tree.leaves(pullback) if isinstance(leaf, jax.Array)]
    assert len(residuals) == 1 and np.array_equal(residuals[0], y)
    for bad_slope in (0.0, 1.5):  # at 0 the output's -0.0 would hide the sign the gradient needs
        with pytest.raises(ValueError, match="slope"):
            leaky_relu(x, bad_slope)
