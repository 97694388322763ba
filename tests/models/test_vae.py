import jax
import jax.numpy as jnp
import numpy as np

from gan_arith.models.layers import count_parameters
from gan_arith.models.vae import VAE, reparameterize


def test_seed_parameter_counts_and_shapes():
    model = VAE()
    images = jnp.zeros((2, 80, 80, 3))
    variables = jax.eval_shape(model.init, jax.random.key(1), images, jax.random.key(2))
    encoder = count_parameters(variables["params"]["encoder"]) + count_parameters(variables["batch_stats"])
    assert encoder == 305_840
    assert count_parameters(variables["params"]["encoder"]) == 305_808  # trainable
    assert count_parameters(variables["params"]["decoder"]) == 203_251
    mean, logvar = jax.eval_shape(lambda v, x: model.apply(v, x, method=model.encode), variables, images)
    assert mean.shape == logvar.shape == (2, 256)
    assert jax.eval_shape(lambda v, z: model.apply(v, z, method=model.decode), variables, mean).shape == (2, 80, 80, 3)


def test_encode_decode_sample():
    model = VAE(latent_dim=8, image_size=20)
    images = jax.random.uniform(jax.random.key(0), (2, 20, 20, 3), minval=-1, maxval=1)
    variables = jax.jit(model.init)(jax.random.key(1), images, jax.random.key(2))
    mean, logvar = model.apply(variables, images, method=model.encode)
    assert mean.shape == logvar.shape == (2, 8)
    decoded = model.apply(variables, mean, method=model.decode)
    assert decoded.shape == (2, 20, 20, 3) and float(jnp.abs(decoded).max()) <= 1.0
    reconstruction, mean2, _ = model.apply(variables, images, jax.random.key(3))
    np.testing.assert_allclose(mean2, mean, atol=1e-6)
    assert not np.allclose(reconstruction, decoded)  # a sample, not the mean


def test_reparameterization_is_a_differentiable_sample():
    mean, logvar = jnp.full((4096, 2), 1.5), jnp.full((4096, 2), np.log(0.25))
    z = reparameterize(mean, logvar, jax.random.key(0))
    np.testing.assert_allclose(z.mean(0), 1.5, atol=0.03)
    np.testing.assert_allclose(z.std(0), 0.5, atol=0.03)
    grad_mean, grad_logvar = jax.grad(lambda m, lv: jnp.sum(reparameterize(m, lv, jax.random.key(0)) ** 2), (0, 1))(
        mean, logvar
    )
    assert float(jnp.abs(grad_mean).min()) > 0 and float(jnp.abs(grad_logvar).max()) > 0


def test_batchnorm_statistics_change_only_in_train_mode():
    model = VAE(latent_dim=8, image_size=20)
    images = jax.random.uniform(jax.random.key(0), (4, 20, 20, 3), minval=-1, maxval=1)
    variables = jax.jit(model.init)(jax.random.key(1), images, jax.random.key(2))
    _, updates = model.apply(variables, images, jax.random.key(3), train=True, mutable=["batch_stats"])
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"], updates["batch_stats"])
    assert all(jax.tree.leaves(changed))
    eval_a = model.apply(variables, images, method=model.encode)
    eval_b = model.apply({**variables, "batch_stats": updates["batch_stats"]}, images, method=model.encode)
    assert not np.allclose(eval_a[0], eval_b[0])


def test_filters_set_the_widths_and_the_decoders_base_map():
    # 40×40 with filters 32-64-128: three stride-2 convs, the decoder starting from a 5×5×128 map.
    model = VAE(latent_dim=256, image_size=40, filters=(32, 64, 128))
    images = jnp.zeros((2, 40, 40, 3))
    variables = jax.eval_shape(model.init, jax.random.key(1), images, jax.random.key(2))
    conv = lambda n_in, n_out: 9 * n_in * n_out + n_out  # a 3×3 kernel and its bias
    encoder = conv(3, 32) + conv(32, 64) + conv(64, 128) + 2 * 128 + 2 * (5 * 5 * 128 * 256 + 256)
    decoder = (256 * 5 * 5 * 128 + 5 * 5 * 128) + conv(128, 64) + conv(64, 32) + conv(32, 3)
    assert count_parameters(variables["params"]["encoder"]) == encoder == 1_732_416
    assert count_parameters(variables["params"]["decoder"]) == decoder == 915_523
    assert variables["params"]["decoder"]["Dense_0"]["kernel"].shape == (256, 5 * 5 * 128)
    z = jnp.zeros((2, 256))
    assert jax.eval_shape(lambda v: model.apply(v, z, method=model.decode), variables).shape == (2, 40, 40, 3)


def test_no_filters_is_the_seed_sequence_shortened_from_the_front():
    # () and the seed's last three filters build the same function from the same key: an old 40px config
    # (which has no filters field) computes what it computed.
    images = jax.random.uniform(jax.random.key(0), (2, 40, 40, 3), minval=-1, maxval=1)
    outputs = []
    for filters in ((), (64, 32, 16)):
        model = VAE(latent_dim=16, image_size=40, filters=filters)
        variables = jax.jit(model.init)(jax.random.key(1), images, jax.random.key(2))
        outputs.append(model.apply(variables, images, jax.random.key(3)))
    for seed_output, explicit_output in zip(*outputs):
        np.testing.assert_array_equal(seed_output, explicit_output)
    wider = VAE(latent_dim=16, image_size=40, filters=(16, 32, 64))
    variables = jax.jit(wider.init)(jax.random.key(1), images, jax.random.key(2))
    assert not np.allclose(wider.apply(variables, images, jax.random.key(3))[0], outputs[0][0])
