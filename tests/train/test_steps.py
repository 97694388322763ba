import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gan_arith.config import base_config
from gan_arith.train.steps import build_steps, fuse_steps, kl_to_standard_normal


def tiny_config(kind: str, image_size: int) -> ml_collections.ConfigDict:
    config = base_config(kind)
    config.model.update(latent_dim=8, width=8, image_size=image_size)
    config.optimizer.learning_rate = 2e-3
    return config


def fixed_batch(batch_size: int, image_size: int, seed: int = 0) -> dict:
    # Smooth images (a few gradients), so an autoencoder can learn them in a few dozen steps.
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:image_size, 0:image_size] / image_size
    wx, wy, bias = rng.uniform(-3, 3, (3, batch_size, 1, 1))
    images = 0.5 + 0.4 * np.tanh(wx * xs + wy * ys + bias)
    images = images[..., None] * np.array([1.0, 0.8, 0.6])
    return {"image": jnp.asarray((images * 255).astype(np.uint8))}


def tree_equal(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b)))


@pytest.mark.slow
def test_gan_phases_update_only_their_own_network():
    steps = build_steps(tiny_config("dcgan", 10))
    state = steps.init(jax.random.key(0), 10)
    batch = fixed_batch(4, 10)

    after_d, d_metrics = jax.jit(steps.discriminator_update)(state, batch, jax.random.key(1))
    assert tree_equal(after_d.params["generator"], state.params["generator"])
    assert not tree_equal(after_d.params["discriminator"], state.params["discriminator"])

    after_g, g_metrics = jax.jit(steps.generator_update, static_argnums=1)(after_d, 8, jax.random.key(2))
    assert tree_equal(after_g.params["discriminator"], after_d.params["discriminator"])
    assert not tree_equal(after_g.params["generator"], after_d.params["generator"])
    for value in {**d_metrics, **g_metrics}.values():
        assert bool(jnp.isfinite(value))


def test_gan_step_metrics_are_finite_and_step_counts():
    steps = build_steps(tiny_config("dcgan", 10))
    state = steps.init(jax.random.key(0), 10)
    step = jax.jit(steps.train_step, donate_argnums=0)
    for i in range(3):
        state, metrics = step(state, fixed_batch(4, 10, seed=i), jax.random.key(i))
    assert int(state.step) == 3
    assert set(metrics) == {"d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake"}
    assert all(bool(jnp.isfinite(v)) for v in metrics.values())
    assert 0.0 <= float(metrics["d_acc_real"]) <= 1.0
    with pytest.raises(ValueError, match="even"):
        steps.data_batch_size(7)


@pytest.mark.slow
@pytest.mark.parametrize("kind,image_size", [("vae", 20), ("ae", 16)])
def test_reconstruction_losses_fall_on_a_fixed_batch(kind, image_size):
    steps = build_steps(tiny_config(kind, image_size))
    state = steps.init(jax.random.key(0), image_size)
    batch = fixed_batch(8, image_size)
    step = jax.jit(steps.train_step, donate_argnums=0)
    losses = []
    for i in range(50):
        state, metrics = step(state, batch, jax.random.key(i))
        losses.append(float(metrics["loss"]))
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses[::10]


def test_vae_metrics_and_kl():
    steps = build_steps(tiny_config("vae", 20))
    state = steps.init(jax.random.key(0), 20)
    _, metrics = jax.jit(steps.train_step)(state, fixed_batch(4, 20), jax.random.key(1))
    np.testing.assert_allclose(metrics["loss"], metrics["recon"] + metrics["kl"], rtol=1e-6)
    # KL is zero exactly at the prior and grows with the mean's distance from it.
    assert float(kl_to_standard_normal(jnp.zeros((2, 4)), jnp.zeros((2, 4)))) == 0.0
    np.testing.assert_allclose(kl_to_standard_normal(jnp.ones((2, 4)), jnp.zeros((2, 4))), 2.0)
    # Eval uses the running statistics, so it needs no batch-statistics update and is deterministic in them.
    eval_metrics = jax.jit(steps.eval_step)(state, fixed_batch(4, 20), jax.random.key(1))
    assert bool(jnp.isfinite(eval_metrics["loss"]))


@pytest.mark.slow
def test_same_key_gives_bit_identical_state():
    steps = build_steps(tiny_config("dcgan", 10))
    run = jax.jit(fuse_steps(steps.train_step))
    batches = jax.tree.map(lambda *xs: jnp.stack(xs), *[fixed_batch(4, 10, seed=i) for i in range(3)])
    state_a, metrics_a = run(steps.init(jax.random.key(0), 10), batches, jax.random.key(7))
    state_b, metrics_b = run(steps.init(jax.random.key(0), 10), batches, jax.random.key(7))
    assert tree_equal(state_a, state_b) and tree_equal(metrics_a, metrics_b)
    state_c, _ = run(steps.init(jax.random.key(0), 10), batches, jax.random.key(8))
    assert not tree_equal(state_a.params, state_c.params)


@pytest.mark.slow
def test_fused_steps_equal_one_at_a_time():
    steps = build_steps(tiny_config("dcgan", 10))
    batches = [fixed_batch(4, 10, seed=i) for i in range(3)]
    rng = jax.random.key(3)
    state = steps.init(jax.random.key(0), 10)
    # One step per call is fuse_steps on a stack of one: the loop's CPU path, which skips lax.scan.
    single = jax.jit(fuse_steps(steps.train_step))
    one_at_a_time = []
    for batch in batches:
        state, metrics = single(state, jax.tree.map(lambda x: x[None], batch), rng)
        assert metrics["g_loss"].shape == (1,)
        one_at_a_time.append(metrics["g_loss"][0])
    fused_state, fused_metrics = jax.jit(fuse_steps(steps.train_step))(
        steps.init(jax.random.key(0), 10), jax.tree.map(lambda *xs: jnp.stack(xs), *batches), rng
    )
    np.testing.assert_allclose(fused_metrics["g_loss"], np.array(one_at_a_time), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(fused_state.params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unknown_kind_and_dtype_are_named():
    config = tiny_config("gan", 10)
    with pytest.raises(ValueError, match="model.kind"):
        build_steps(config)
    config = tiny_config("vae", 20)
    config.model.dtype = "float16"
    with pytest.raises(ValueError, match="dtype"):
        build_steps(config)



@pytest.mark.slow
def test_generator_average_follows_its_ramped_decay_and_feeds_sampling():
    config = tiny_config("dcgan", 10)
    config.ema_decay = 0.9
    steps = build_steps(config)
    state = steps.init(jax.random.key(0), 10)
    assert tree_equal(state.ema_params["generator"], state.params["generator"])
    step = jax.jit(steps.train_step, donate_argnums=0)  # as the loop runs it: the average must own its buffers
    # The oracle: the average recomputed on the host from each step's generator weights.
    expected = jax.tree.map(np.asarray, state.params["generator"])
    for i in range(4):
        state, _ = step(state, fixed_batch(4, 10, seed=i), jax.random.key(i))
        decay = min(0.9, (1 + i) / (10 + i))
        expected = jax.tree.map(lambda old, new: decay * old + (1 - decay) * np.asarray(new), expected, state.params["generator"])
    for got, want in zip(jax.tree.leaves(state.ema_params["generator"]), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert not tree_equal(state.ema_params["generator"], state.params["generator"])
    assert steps.sampling_params(state) is state.ema_params["generator"]
    # Without an average the state carries none, and samples come from the trained weights.
    plain = build_steps(tiny_config("dcgan", 10))
    plain_state = plain.init(jax.random.key(0), 10)
    assert plain_state.ema_params == {}
    assert plain.sampling_params(plain_state) is plain_state.params["generator"]


@pytest.mark.slow
def test_discriminator_learning_rate_sets_only_the_discriminators_step():
    def first_updates(discriminator_learning_rate: float):
        config = tiny_config("dcgan", 10)
        config.optimizer.discriminator_learning_rate = discriminator_learning_rate
        steps = build_steps(config)
        state = steps.init(jax.random.key(0), 10)
        after, _ = jax.jit(steps.train_step)(state, fixed_batch(4, 10), jax.random.key(1))
        return [
            np.concatenate([np.ravel(a - b) for a, b in zip(jax.tree.leaves(after.params[name]), jax.tree.leaves(state.params[name]))])
            for name in ("discriminator", "generator")
        ]

    shared_d, shared_g = first_updates(0.0)  # 0: the discriminator uses learning_rate, as the seed
    own_d, own_g = first_updates(3 * 2e-3)
    # Adam's first step is lr * sign(gradient) (up to eps), so the discriminator's moves scale with its own rate.
    np.testing.assert_allclose(own_d, 3 * shared_d, rtol=1e-3, atol=1e-6)
    # The generator trains through a different discriminator, so its step changes, but not its size.
    np.testing.assert_allclose(np.abs(own_g).max(), np.abs(shared_g).max(), rtol=1e-3)


@pytest.mark.slow
def test_cosine_schedule_decays_both_rates_over_the_run_and_keeps_the_state_shape():
    from gan_arith.train.steps import learning_rate_schedule

    schedule = learning_rate_schedule(1e-3, "cosine", 100)
    np.testing.assert_allclose([schedule(0), schedule(50), schedule(100)], [1e-3, 5e-4, 0.0], atol=1e-9)
    assert learning_rate_schedule(1e-3, "constant", 100) == 1e-3
    with pytest.raises(ValueError, match="schedule"):
        learning_rate_schedule(1e-3, "linear", 100)
    config = tiny_config("dcgan", 10)
    config.optimizer.schedule = "cosine"
    config.optimizer.discriminator_learning_rate = 1e-3
    # A loaded run builds its steps without knowing the run's length: the state must restore all the same.
    shapes = [jax.eval_shape(lambda: build_steps(config, total_steps=n).init(jax.random.key(0), 10)) for n in (1, 4)]
    assert jax.tree.structure(shapes[0]) == jax.tree.structure(shapes[1])
    steps = build_steps(config, total_steps=2)
    state = steps.init(jax.random.key(0), 10)
    step = jax.jit(steps.train_step)
    for i in range(3):  # the third step runs at rate 0: nothing moves
        before = state
        state, _ = step(state, fixed_batch(4, 10, seed=i), jax.random.key(i))
    assert tree_equal(state.params, before.params)
    assert not tree_equal(state.params, steps.init(jax.random.key(0), 10).params)


@pytest.mark.slow
def test_r1_penalty_is_the_real_faces_squared_input_gradient_and_steers_the_discriminator():
    config = tiny_config("dcgan", 10)
    config.r1_gamma = 10.0
    steps = build_steps(config)
    state = steps.init(jax.random.key(0), 10)
    real = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 10, 10, 3)), jnp.float32)
    rng = jax.random.key(5)
    d_params = state.params["discriminator"]
    penalty = steps._real_gradient_norm(d_params, real, rng)

    # Oracle: central differences of D's logit, pixel by pixel (same dropout mask: same key, same shapes).
    def logits(images):
        return steps.discriminator.apply({"params": d_params}, images, train=True, rngs={"dropout": rng})

    eps = 1e-2
    basis = jnp.eye(real[0].size, dtype=jnp.float32).reshape(-1, 10, 10, 3) * eps
    squared = 0.0
    for i in range(2):
        plus = jax.vmap(lambda d: logits(real.at[i].add(d))[i])(basis)
        minus = jax.vmap(lambda d: logits(real.at[i].add(-d))[i])(basis)
        squared += float(jnp.sum(((plus - minus) / (2 * eps)) ** 2))
    np.testing.assert_allclose(float(penalty), squared / 2, rtol=2e-2)

    # The penalty enters the discriminator's update (and only with a weight).
    batch = fixed_batch(4, 10)
    with_r1, _ = jax.jit(steps.discriminator_update)(state, batch, jax.random.key(1))
    plain = build_steps(tiny_config("dcgan", 10))
    without, _ = jax.jit(plain.discriminator_update)(state, batch, jax.random.key(1))
    assert not tree_equal(with_r1.params["discriminator"], without.params["discriminator"])
