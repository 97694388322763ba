import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_arith.errors import InputError
from gan_arith.models.fused import NEEDED_XLA_FLAG, check_xla_flags, conv, leaky_conv_stack

SLOPE = 0.2


def _plain_stack(x, kernels, biases, strides, paddings):
    for kernel, bias, stride, padding in zip(kernels, biases, strides, paddings):
        x = jax.nn.leaky_relu(conv(x, kernel, stride, padding) + bias, SLOPE)
    return x


def _layers(key, channels, kernel_size=5):
    keys = jax.random.split(key, 2 * len(channels))
    kernels = tuple(
        jax.random.normal(keys[i], (kernel_size, kernel_size, c_in, c_out)) * 0.3
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:]))
    )
    biases = tuple(jax.random.normal(keys[-1 - i], (c_out,)) * 0.1 for i, c_out in enumerate(channels[1:]))
    return kernels, biases


@pytest.mark.usefixtures("exact_products")
@pytest.mark.parametrize("size,strides,paddings,fused", [
    # The discriminator's shapes: stride 1 'SAME', then stride 2 with Keras' (1, 2) or symmetric (2, 2).
    (16, (1, 2, 2), ("SAME", "SAME", "SAME"), (True, True, False)),
    (16, (1, 2, 2), ("SAME", ((2, 2), (2, 2)), ((2, 2), (2, 2))), (True, False, True)),
    # Odd sizes and uneven explicit padding: the transposed convolution's after-padding is not symmetric.
    (13, (2, 1), (((1, 2), (0, 3)), ((2, 1), (1, 1))), (False, True)),
])
def test_stack_equals_autodiff_of_the_plain_layers(size, strides, paddings, fused):
    # The hand-written backward (masked input gradients, weight and bias gradients) against autodiff,
    # for every input; on CPU the cuDNN-fused layers run as plain operations, so this tests the math.
    channels = (3,) + (8,) * len(strides)
    kernels, biases = _layers(jax.random.key(0), channels)
    x = jax.random.normal(jax.random.key(1), (2, size, size, 3))
    cotangent = jax.random.normal(jax.random.key(2), _plain_stack(x, kernels, biases, strides, paddings).shape)

    def loss(stack):
        return lambda *args: jnp.sum(stack(*args) * cotangent)

    ours = jax.jit(jax.value_and_grad(
        loss(lambda x, k, b: leaky_conv_stack(x, k, b, strides, paddings, SLOPE, fused)), argnums=(0, 1, 2)
    ))(x, kernels, biases)
    expected = jax.jit(jax.value_and_grad(
        loss(lambda x, k, b: _plain_stack(x, k, b, strides, paddings)), argnums=(0, 1, 2)
    ))(x, kernels, biases)
    for got, want in zip(jax.tree.leaves(ours), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_fused_layers_lower_to_cudnn_fusions_for_cuda_only():
    # Lowered without the hardware: per fused layer one forward kernel, and one masked input gradient
    # into it from the layer above (none into the last layer's output, none below the first layer).
    kernels, biases = _layers(jax.random.key(0), (3, 8, 8, 8))
    x = jnp.ones((2, 16, 16, 3))
    fused = (True, True, False)

    def loss(x, kernels, biases):
        return jnp.sum(leaky_conv_stack(x, kernels, biases, (1, 2, 2), ("SAME",) * 3, SLOPE, fused))

    def lowered(platform):
        gradient = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
        # XLA's cuDNN fusion custom call has no serialisation guarantee; only its presence is checked here.
        unchecked = [jax.export.DisabledSafetyCheck.custom_call("__cudnn$fusion")]
        return jax.export.export(gradient, platforms=[platform], disabled_checks=unchecked)(x, kernels, biases).mlir_module()

    cuda, cpu = lowered("cuda"), lowered("cpu")
    assert cuda.count("stablehlo.custom_call @__cudnn$fusion") == 2 + 2
    assert "__cudnn$fusion" not in cpu


def test_fused_layers_on_a_gpu_need_the_xla_flag(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_autotune_level=4")
    with pytest.raises(InputError, match=r"config.model.fused_discriminator=True needs XLA_FLAGS=.*computation-deduplicator"):
        check_xla_flags("config.model.fused_discriminator=True")
    monkeypatch.setenv("XLA_FLAGS", f"--xla_gpu_autotune_level=4 {NEEDED_XLA_FLAG}")
    check_xla_flags("config.model.fused_discriminator=True")
    monkeypatch.setenv("XLA_FLAGS", "--xla_disable_hlo_passes=while-loop-simplifier,computation-deduplicator")
    check_xla_flags("config.model.fused_discriminator=True")  # one of several disabled passes
    monkeypatch.setenv("XLA_FLAGS", "--xla_disable_hlo_passes=computation-deduplicator-x")
    with pytest.raises(InputError):
        check_xla_flags("config.model.fused_discriminator=True")
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    monkeypatch.delenv("XLA_FLAGS")
    check_xla_flags("config.model.fused_discriminator=True")  # CPUs run the plain operations



def test_stack_arguments_are_checked():
    kernels, biases = _layers(jax.random.key(0), (3, 8, 8))
    x = jnp.ones((1, 8, 8, 3))
    with pytest.raises(ValueError, match="tuples of one length per layer.*'strides': 1"):
        leaky_conv_stack(x, kernels, biases, (1,), ("SAME", "SAME"), SLOPE, (False, False))
    with pytest.raises(ValueError, match="'kernels': 'list'"):
        leaky_conv_stack(x, list(kernels), biases, (1, 2), ("SAME", "SAME"), SLOPE, (False, False))
