import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_arith.models.layers import (
    ConvFromPhases, ConvTranspose2x, Phases, _conv_in_phase_domain, _inside_phases, _interleave,
    _merged_phase_convolution, _phase_convolutions, _phase_padding, _window_gradient, as_model_range,
    count_parameters, from_model_range, leaky_relu, num_doublings, to_model_range, unfold_columns,
)


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("kernel_size,size", [(3, 5), (4, 5), (4, 6), (5, 6)])
def test_phase_conv_transpose_equals_flax_conv_transpose(kernel_size, size):
    x = jax.random.normal(jax.random.key(0), (2, size, size + 1, 3))  # not square: paddings per axis
    reference = nn.ConvTranspose(7, (kernel_size, kernel_size), strides=(2, 2), padding="SAME")
    variables = jax.jit(reference.init)(jax.random.key(1), x)
    ours = ConvTranspose2x(7, kernel_size)
    assert jax.tree.map(jnp.shape, jax.jit(ours.init)(jax.random.key(1), x)) == jax.tree.map(jnp.shape, variables)

    np.testing.assert_allclose(ours.apply(variables, x), reference.apply(variables, x), atol=1e-5)

    def loss(module, variables, x):
        return jnp.sum(jnp.sin(module.apply(variables, x)))

    expected = jax.jit(jax.grad(loss, argnums=(1, 2)), static_argnums=0)(reference, variables, x)
    got = jax.jit(jax.grad(loss, argnums=(1, 2)), static_argnums=0)(ours, variables, x)
    for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("kernel_size", [2, 3, 4, 5, 6])
def test_merged_phase_convolution_equals_the_four_phase_convolutions(kernel_size):
    # CUDA's lowering for even k, run here (it holds for any k): the same phases, values and gradients.
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))  # not square: shifts per axis
    kernel = jax.random.normal(jax.random.key(1), (kernel_size, kernel_size, 3, 7))
    bias = jax.random.normal(jax.random.key(2), (7,))
    paddings = [_phase_padding(kernel_size, phase) for phase in (0, 1)]

    def value_and_grads(image_by):
        def loss(x, kernel, bias):
            image = image_by(x, kernel, paddings, bias, lambda v: leaky_relu(v, 0.2))
            return jnp.sum(jnp.sin(image)), image
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(x, kernel, bias)

    (_, expected), expected_grads = value_and_grads(lambda *args: _interleave(_phase_convolutions(*args)))
    (_, got), grads = value_and_grads(lambda *args: _merged_phase_convolution(*args).interleave())
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    for g, e in zip(grads, expected_grads):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel_size,cuda_convolutions", [(4, 1), (3, 4)])
def test_conv_transpose_merges_its_phases_on_cuda_for_even_kernels_only(kernel_size, cuda_convolutions):
    x = jnp.ones((1, 5, 5, 8))
    layer = ConvTranspose2x(6, kernel_size)
    variables = jax.jit(layer.init)(jax.random.key(0), x)

    def lowered(platform):
        return jax.export.export(jax.jit(layer.apply), platforms=[platform])(variables, x).mlir_module()

    assert lowered("cpu").count("stablehlo.convolution") == 4
    cuda = lowered("cuda")
    assert cuda.count("stablehlo.convolution") == cuda_convolutions
    assert ("x24xf32>" in cuda) == (cuda_convolutions == 1)  # the merged kernel's 4 × 6 output channels


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


def _assert_same_conv(conv, x, kernel, padding):
    """`conv` computes `lax.conv_general_dilated`: value and both gradients."""
    out, grads = _conv_value_and_grads(conv, x, kernel, padding)
    expected_out, expected_grads = _conv_value_and_grads(jax.lax.conv_general_dilated, x, kernel, padding)
    np.testing.assert_allclose(out, expected_out, rtol=1e-5, atol=1e-4)
    for got, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


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
def test_column_unfolded_convolution_equals_lax_conv_with_gradients(c_in, c_out, kernel_size, padding):
    x = jax.random.normal(jax.random.key(c_in), (2, 9, 11, c_in))
    kernel = jax.random.normal(jax.random.key(c_out), (kernel_size, kernel_size, c_in, c_out))
    _assert_same_conv(_column_unfolded_conv, x, kernel, padding)
    columns, unfolded_kernel, _ = unfold_columns(x, kernel, padding)
    aligned = -(-kernel_size * c_in // 8) * 8
    assert columns.shape[-1] == unfolded_kernel.shape[2] == aligned and unfolded_kernel.shape[:2] == (kernel_size, 1)


def test_unfold_columns_rejects_an_unknown_padding():
    with pytest.raises(ValueError, match="padding must be"):
        unfold_columns(jnp.ones((1, 8, 8, 3)), jnp.ones((3, 3, 3, 4)), "CIRCULAR")


def test_dilated_impl_is_lax_conv_transpose():
    x = jax.random.normal(jax.random.key(0), (1, 5, 5, 4))
    variables = jax.jit(ConvTranspose2x(2, 4).init)(jax.random.key(1), x)
    np.testing.assert_allclose(
        ConvTranspose2x(2, 4, impl="dilated").apply(variables, x), ConvTranspose2x(2, 4).apply(variables, x), atol=1e-5
    )
    with pytest.raises(ValueError, match="impl"):
        ConvTranspose2x(2, 4, impl="bogus").apply(variables, x)


@pytest.mark.parametrize("impl", ["phase", "dilated"])
def test_conv_transpose_activation_and_phases_output(impl):
    # Bias and activation applied per phase, and the phases handed out uninterleaved, change nothing.
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
    plain = ConvTranspose2x(4, 4, impl=impl)
    variables = jax.jit(plain.init)(jax.random.key(1), x)
    expected = nn.leaky_relu(plain.apply(variables, x), 0.2)
    activated = ConvTranspose2x(4, 4, impl=impl, activation=lambda v: nn.leaky_relu(v, 0.2))
    np.testing.assert_allclose(activated.apply(variables, x), expected, atol=1e-6)
    phases = activated.clone(interleave=False).apply(variables, x)
    assert isinstance(phases, Phases) and phases.shape == (2, 10, 12, 4)
    np.testing.assert_allclose(phases.interleave(), expected, atol=1e-6)
    np.testing.assert_allclose(phases.phase[1][0], expected[:, 1::2, 0::2], atol=1e-6)
    bare = plain.clone(interleave=False).apply(variables, x)  # no activation: the bias still reaches every phase
    np.testing.assert_allclose(bare.interleave(), plain.apply(variables, x), atol=1e-6)


def test_phases_split_interleave_round_trip_and_bad_sizes():
    images = jax.random.normal(jax.random.key(0), (2, 6, 4, 3))
    phases = Phases.split(images)
    np.testing.assert_array_equal(phases.phase[0][1], images[:, 0::2, 1::2])
    np.testing.assert_array_equal(phases.interleave(), images)
    with pytest.raises(ValueError, match="even height and width"):
        Phases.split(jnp.zeros((1, 5, 4, 3)))


def test_phases_stacked_at_shifts_hold_the_same_phases_and_image():
    # The blocks layout of the merged transposed convolution: phase 1 one row and column further in.
    images = jax.random.normal(jax.random.key(0), (2, 6, 4, 3))
    phase = Phases.split(images).phase
    shifted = Phases.stacked(phase, (0, 1))
    assert shifted.blocks.shape == (2, 4, 3, 4, 3) and shifted.shape == images.shape
    np.testing.assert_array_equal(shifted.blocks[:, 1:, 1:, 3], images[:, 1::2, 1::2])
    np.testing.assert_array_equal(shifted.blocks[:, 0, :, 3], 0.0)
    np.testing.assert_array_equal(shifted.phase[1][0], images[:, 1::2, 0::2])
    np.testing.assert_array_equal(shifted.interleave(), images)


@pytest.mark.parametrize("kernel_size", [1, 3, 5, 7])
def test_conv_in_phase_domain_equals_lax_conv_with_gradients(kernel_size):
    # The CUDA branch of ConvFromPhases, run here on CPU: value and both gradients against the plain 'SAME' conv.
    x = jax.random.normal(jax.random.key(0), (2, 12, 10, 8))
    kernel = jax.random.normal(jax.random.key(1), (kernel_size, kernel_size, 8, 3))

    def phase_domain(x, kernel, window_strides, padding, **kwargs):
        return _conv_in_phase_domain(Phases.split(x), kernel, kwargs["precision"])

    _assert_same_conv(phase_domain, x, kernel, "SAME")


@pytest.mark.parametrize("images_per_product", [1, 2, 3, 8])
def test_window_gradient_is_the_border_masked_product_for_any_grouping(images_per_product):
    # The weight gradient's product runs per gcd(B, images_per_product) images over the unmasked
    # blocks and subtracts the border's products; B = 4 makes 1, 2, 1 and 4 images per product.
    blocks = jax.random.normal(jax.random.key(0), (4, 7, 6, 4, 8))  # 6×5 phases at shifts (0, 1)
    patches = jax.random.normal(jax.random.key(1), (4, 7, 6, 20))
    inside = _inside_phases(blocks.shape, (0, 1))
    masked = jnp.where(inside, blocks, 0).reshape(4, 7, 6, 32)
    expected = jnp.einsum("brcx,brcp->xp", masked, patches, precision="highest")
    got = jax.jit(lambda b, p: _window_gradient(b, p, inside, "highest", images_per_product))(blocks, patches)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_conv_in_phase_domain_ignores_the_blocks_border(kernel_size):
    # On CUDA the blocks are the merged transposed convolution's output, whose border (phase 1's row
    # and column -1) holds computed values: the convolution must see the 'SAME' zeros there, send no
    # gradient to it, and take none from it into the kernel's gradient. That gradient subtracts the
    # border's products (`_window_gradient`): exact up to rounding that grows with the border's
    # values, so they are drawn at the inside's scale (normals shifted by 3), as the convolution's
    # own outputs are.
    images = jax.random.normal(jax.random.key(0), (2, 12, 10, 8))
    kernel = jax.random.normal(jax.random.key(1), (kernel_size, kernel_size, 8, 3))
    phase = Phases.split(images).phase
    inside = Phases.stacked(tuple(tuple(jnp.ones_like(p) for p in row) for row in phase), (0, 1)).blocks > 0
    border = jax.random.normal(jax.random.key(3), inside.shape) + 3.0
    blocks = jnp.where(inside, Phases.stacked(phase, (0, 1)).blocks, border)
    cotangent = jax.random.normal(jax.random.key(2), images.shape[:3] + (3,))

    def loss(blocks, kernel):
        return jnp.sum(_conv_in_phase_domain(Phases(blocks, (0, 1)), kernel, "highest") * cotangent)

    def reference(images, kernel):
        out = jax.lax.conv_general_dilated(
            images, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest"
        )
        return jnp.sum(out * cotangent)

    value, (grad, kernel_grad) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(blocks, kernel)
    expected_value, (expected_grad, expected_kernel_grad) = jax.jit(jax.value_and_grad(reference, argnums=(0, 1)))(
        images, kernel
    )
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    np.testing.assert_array_equal(jnp.where(inside, 0.0, grad), 0.0)
    np.testing.assert_allclose(Phases(grad, (0, 1)).interleave(), expected_grad, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(kernel_grad, expected_kernel_grad, rtol=1e-5, atol=1e-4)


def test_conv_from_phases_is_a_flax_conv_of_the_interleaved_image():
    images = jax.random.normal(jax.random.key(0), (2, 10, 8, 6))
    plain = nn.Conv(3, (5, 5), padding="SAME", precision="highest")
    ours = ConvFromPhases(3, 5, precision="highest")
    variables = jax.jit(plain.init)(jax.random.key(1), images)
    phases = Phases.split(images)
    assert jax.tree.map(jnp.shape, jax.jit(ours.init)(jax.random.key(1), phases)) == jax.tree.map(jnp.shape, variables)
    np.testing.assert_allclose(jax.jit(ours.apply)(variables, phases), plain.apply(variables, images), atol=1e-5)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ConvFromPhases(3, 4).init(jax.random.key(1), phases)


def test_conv_from_phases_lowers_to_matrix_products_for_cuda_and_a_convolution_for_cpu():
    phases = Phases.split(jnp.ones((2, 10, 10, 8)))
    layer = ConvFromPhases(3, 5)
    variables = jax.jit(layer.init)(jax.random.key(0), phases)

    def lowered(platform):
        return jax.export.export(jax.jit(layer.apply), platforms=[platform])(variables, phases).mlir_module()

    cuda, cpu = lowered("cuda"), lowered("cpu")
    assert cuda.count("stablehlo.dot_general") == 1 and "stablehlo.convolution" not in cuda  # one over all phases
    assert "stablehlo.convolution" in cpu and "stablehlo.dot_general" not in cpu


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
