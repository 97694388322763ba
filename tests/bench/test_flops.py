"""Tests for gan_arith/bench/flops.py: model FLOPs from layer shapes, exact on small layers and XLA's count."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from gan_arith.bench.flops import Pass, model_layers, train_step_flops, xla_flops
from gan_arith.bench.measure import SIZES, step_config
from gan_arith.models.layers import ConvTranspose2x
from gan_arith.train.steps import build_steps


def test_dense_and_valid_conv_counts_are_exact_and_match_xla():
    dense = nn.Dense(7, use_bias=False)
    x = jnp.ones((5, 3))
    (layer,) = model_layers(dense, x)
    assert (layer.kind, layer.macs) == ("Dense", 5 * 3 * 7)
    assert Pass("dense", (layer,), train_weights=False, input_grad=False).forward == 2 * 5 * 3 * 7
    compiled = jax.jit(dense.apply).lower(dense.init(jax.random.key(0), x), x).compile()
    assert xla_flops(compiled) == 2 * 5 * 3 * 7

    conv = nn.Conv(4, (3, 3), padding="VALID", use_bias=False)
    images = jnp.ones((2, 9, 9, 5))
    (layer,) = model_layers(conv, images)
    assert layer.output_shape == (2, 7, 7, 4) and layer.macs == 2 * 7 * 7 * 3 * 3 * 5 * 4
    compiled = jax.jit(conv.apply).lower(conv.init(jax.random.key(0), images), images).compile()
    assert xla_flops(compiled) == 2 * layer.macs  # no padding taps, no bias: XLA counts the same


def test_strided_and_transposed_conv_counts():
    images = jnp.ones((2, 5, 5, 6))
    (strided,) = model_layers(nn.Conv(4, (5, 5), strides=(2, 2), padding="SAME"), images)
    assert strided.output_shape == (2, 3, 3, 4) and strided.macs == 2 * 3 * 3 * 25 * 6 * 4  # padding taps counted
    # A transposed conv: every input pixel meets every tap; dilation zeros are not model FLOPs.
    expected = 2 * 5 * 5 * 4 * 4 * 6 * 7
    for module in (ConvTranspose2x(7, 4), ConvTranspose2x(7, 4, impl="dilated"),
                   nn.ConvTranspose(7, (4, 4), strides=(2, 2), padding="SAME")):
        (layer,) = model_layers(module, images)
        assert (layer.kind, layer.output_shape, layer.macs) == ("ConvTranspose", (2, 10, 10, 7), expected)


def test_pass_counts_backward_only_where_gradients_are_needed():
    layers = tuple(model_layers(nn.Sequential([nn.Dense(6), nn.Dense(4)]), jnp.ones((3, 5))))
    first, second = (2 * layer.macs for layer in layers)
    assert (first, second) == (2 * 3 * 5 * 6, 2 * 3 * 6 * 4)
    trained = Pass("trained", layers, train_weights=True, input_grad=False)
    assert (trained.forward, trained.backward_input, trained.backward_weights) == (first + second, second, first + second)
    frozen = Pass("frozen, gradient to its input", layers, train_weights=False, input_grad=True)
    assert frozen.total == 2 * (first + second)
    assert Pass("forward only", layers, False, False).total == first + second


@pytest.mark.parametrize("impl", ["plain", "fast"])  # the same layers, counted from other modules
def test_seed_dcgan_step_is_about_two_teraflop(impl):
    config = step_config("dcgan", "float32", SIZES["seed"])
    config.model.impl = impl
    steps = build_steps(config)
    counted = train_step_flops(steps, batch_size=128, image_size=80)
    # Per image, in MACs, from the seed's layer tables (80x80, width 128, latent 100).
    g_dense = 100 * 5 * 5 * 128
    g = g_dense + (5**2 + 10**2 + 20**2 + 40**2) * 4 * 4 * 128 * 128 + 80 * 80 * 5 * 5 * 128 * 3
    d_first = 80 * 80 * 5 * 5 * 3 * 128
    d = d_first + (40**2 + 20**2 + 10**2 + 5**2) * 5 * 5 * 128 * 128 + 5 * 5 * 128
    macs = 64 * g + 128 * (3 * d - d_first) + 128 * (3 * g - g_dense) + 128 * 2 * d
    assert counted.total == 2 * macs
    assert 1.6e12 < counted.total < 2.1e12  # DESIGN.md: "about 2 TFLOP"
    assert [p.train_weights for p in counted.passes] == [False, True, True, False]
    assert "discriminator frozen" in counted.table()


def test_vae_step_counts_encoder_and_decoder():
    steps = build_steps(step_config("vae", "float32", SIZES["seed"]))
    counted = train_step_flops(steps, batch_size=4, image_size=80)
    encoder, decoder = counted.passes
    assert [layer.path for layer in encoder.layers] == [
        "encoder/Conv_0", "encoder/Conv_1", "encoder/Conv_2", "encoder/Conv_3", "encoder/mean", "encoder/logvar"]
    assert decoder.layers[0].path == "decoder/Dense_0" and decoder.input_grad and not encoder.input_grad
    first_conv = 4 * 40 * 40 * 3 * 3 * 3 * 128
    assert encoder.layers[0].macs == first_conv
    assert encoder.total == 3 * encoder.forward - 2 * first_conv and decoder.total == 3 * decoder.forward
