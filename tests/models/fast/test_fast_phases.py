import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_arith.models import layers
from gan_arith.models.fast.layers import leaky_relu
from gan_arith.models.fast.phases import (
    ConvFromPhases, ConvTranspose2x, Phases, conv_in_phase_domain, inside_phases, merged_phase_convolution,
    window_gradient_product,
)


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("kernel_size", [2, 3, 4, 5, 6])
def test_merged_phase_convolution_equals_the_four_phase_convolutions(kernel_size):
    # The same phases, values and gradients, for any k (the generator's is 4).
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))  # not square: shifts per axis
    kernel = jax.random.normal(jax.random.key(1), (kernel_size, kernel_size, 3, 7))
    bias = jax.random.normal(jax.random.key(2), (7,))

    def value_and_grads(image_by):
        def loss(x, kernel, bias):
            image = image_by(x, kernel, bias)
            return jnp.sum(jnp.sin(image)), image
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(x, kernel, bias)

    def separate(x, kernel, bias):
        phase = layers.phase_convolutions(x, kernel)
        return layers.interleave(tuple(tuple(leaky_relu(p + bias, 0.2) for p in row) for row in phase))

    def merged(x, kernel, bias):
        return merged_phase_convolution(x, kernel, lambda y: leaky_relu(y + jnp.tile(bias, 4), 0.2)).interleave()

    (_, expected), expected_grads = value_and_grads(separate)
    (_, got), grads = value_and_grads(merged)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    for g, e in zip(grads, expected_grads):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("impl", ["phase", "dilated"])
def test_conv_transpose_is_the_plain_layer_interleaved_or_as_phases(impl):
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
    activation = lambda v: nn.leaky_relu(v, 0.2)  # noqa: E731
    plain = layers.ConvTranspose2x(4, 4, impl=impl, activation=activation)
    variables = jax.jit(plain.init)(jax.random.key(1), x)
    expected = plain.apply(variables, x)
    fast = ConvTranspose2x(4, 4, impl=impl, activation=activation)
    np.testing.assert_allclose(jax.jit(fast.apply)(variables, x), expected, atol=1e-5)
    phases = fast.clone(interleave=False).apply(variables, x)
    assert isinstance(phases, Phases) and phases.shape == (2, 10, 12, 4)
    np.testing.assert_allclose(phases.interleave(), expected, atol=1e-5)
    np.testing.assert_allclose(phases.phase[1][0], expected[:, 1::2, 0::2], atol=1e-5)
    bare = ConvTranspose2x(4, 4, impl=impl, interleave=False).apply(variables, x)  # the bias reaches every phase
    np.testing.assert_allclose(bare.interleave(), layers.ConvTranspose2x(4, 4).apply(variables, x), atol=1e-5)


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
def test_conv_in_phase_domain_equals_lax_conv_with_gradients(kernel_size, assert_same_conv):
    x = jax.random.normal(jax.random.key(0), (2, 12, 10, 8))
    kernel = jax.random.normal(jax.random.key(1), (kernel_size, kernel_size, 8, 3))

    def phase_domain(x, kernel, window_strides, padding, **kwargs):
        return conv_in_phase_domain(Phases.split(x), kernel, kwargs["precision"])

    assert_same_conv(phase_domain, x, kernel, "SAME")


@pytest.mark.parametrize("images_per_product", [1, 2, 3, 8])
def test_window_gradient_is_the_border_masked_product_for_any_grouping(images_per_product):
    # The weight gradient's product runs per gcd(B, images_per_product) images over the unmasked
    # blocks and subtracts the border's products; B = 4 makes 1, 2, 1 and 4 images per product.
    blocks = jax.random.normal(jax.random.key(0), (4, 7, 6, 4, 8))  # 6×5 phases at shifts (0, 1)
    patches = jax.random.normal(jax.random.key(1), (4, 7, 6, 20))
    inside = inside_phases(blocks.shape, (0, 1))
    masked = jnp.where(inside, blocks, 0).reshape(4, 7, 6, 32)
    expected = jnp.einsum("brcx,brcp->xp", masked, patches, precision="highest")
    got = jax.jit(lambda b, p: window_gradient_product(b, p, inside, "highest", images_per_product))(blocks, patches)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_conv_in_phase_domain_ignores_the_blocks_border(kernel_size):
    # The blocks are the merged transposed convolution's output, whose border (phase 1's row and
    # column -1) holds computed values: the convolution must see the 'SAME' zeros there, send no
    # gradient to it, and take none from it into the kernel's gradient. That gradient subtracts the
    # border's products (`window_gradient_product`): exact up to rounding that grows with the
    # border's values, so they are drawn at the inside's scale (normals shifted by 3), as the
    # convolution's own outputs are.
    images = jax.random.normal(jax.random.key(0), (2, 12, 10, 8))
    kernel = jax.random.normal(jax.random.key(1), (kernel_size, kernel_size, 8, 3))
    phase = Phases.split(images).phase
    inside = Phases.stacked(tuple(tuple(jnp.ones_like(p) for p in row) for row in phase), (0, 1)).blocks > 0
    border = jax.random.normal(jax.random.key(3), inside.shape) + 3.0
    blocks = jnp.where(inside, Phases.stacked(phase, (0, 1)).blocks, border)
    cotangent = jax.random.normal(jax.random.key(2), images.shape[:3] + (3,))

    def loss(blocks, kernel):
        return jnp.sum(conv_in_phase_domain(Phases(blocks, (0, 1)), kernel, "highest") * cotangent)

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
