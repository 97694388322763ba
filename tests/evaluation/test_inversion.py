"""Inversion recovers planted latents of tiny generators; PSNR/SSIM; the encoder's steps learn."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from skimage.metrics import structural_similarity

from gan_arith.evaluation import inversion
from gan_arith.evaluation.inversion import (
    LatentEncoder,
    ReconstructionLoss,
    compare_inversion_methods,
    create_encoder_state,
    encoder_fn,
    invert,
    load_or_train_encoder,
    make_encoder_finetune_step,
    make_encoder_latent_step,
    psnr,
    psnr_per_image,
    reconstruction_metrics,
    ssim,
)
from gan_arith.models.layers import from_model_range

LATENT = 8


def _mlp_generator(size: int, seed: int = 0):
    """A fixed random 2-layer MLP: latents [B, 8] -> images [B, size, size, 3] in (-1, 1)."""
    rng = np.random.default_rng(seed)
    w1 = jnp.asarray(rng.normal(size=(LATENT, 64)) / np.sqrt(LATENT), jnp.float32)
    w2 = jnp.asarray(rng.normal(size=(64, size * size * 3)) / np.sqrt(64), jnp.float32)
    return lambda z: jnp.tanh(jnp.tanh(z @ w1) @ w2).reshape(z.shape[0], size, size, 3)


def _relative_errors(found, planted):
    return np.linalg.norm(found - planted, axis=1) / np.linalg.norm(planted, axis=1)


def test_optimisation_recovers_planted_latents():
    generate = _mlp_generator(16)
    planted = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (6, LATENT)))
    targets = generate(planted)
    result = invert(targets, generate, LATENT, jax.random.PRNGKey(1), steps=300, restarts=4, batch_size=4,
                    loss=ReconstructionLoss(prior_weight=0.0))
    assert np.all(_relative_errors(result.latents, planted) < 0.1)
    np.testing.assert_allclose(result.reconstructions, generate(result.latents), atol=1e-5)
    assert result.loss.shape == (6,) and np.all(result.loss < 1e-4)
    assert result.seconds_per_image > 0 and result.compile_seconds > 0
    assert reconstruction_metrics(result, targets)["psnr"] > 40


def test_feature_loss_and_prior_still_recover_and_the_prior_shrinks_latents():
    generate = _mlp_generator(16, seed=1)
    # Scaled so that feature and pixel errors are of similar size (unit-variance rows over 768 pixels).
    projection = jnp.asarray(np.random.default_rng(2).normal(size=(16 * 16 * 3, 5)) / np.sqrt(768), jnp.float32)
    features = lambda images: images.reshape(images.shape[0], -1) @ projection  # noqa: E731
    planted = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (4, LATENT)))
    targets = from_model_range(generate(planted))  # uint8 targets, as from a store
    loose = invert(targets, generate, LATENT, jax.random.PRNGKey(4), steps=300, restarts=3,
                   loss=ReconstructionLoss(features, feature_weight=1.0, prior_weight=1e-3))
    assert np.all(_relative_errors(loose.latents, planted) < 0.1)
    strict = invert(targets, generate, LATENT, jax.random.PRNGKey(4), steps=300, restarts=3,
                    loss=ReconstructionLoss(prior_weight=10.0))
    assert np.linalg.norm(strict.latents, axis=1).mean() < 0.8 * np.linalg.norm(loose.latents, axis=1).mean()


def test_encoder_start_is_used_as_is_without_steps_and_optimisation_only_improves_it():
    # A linear generator has an exact linear encoder: its pseudo-inverse.
    basis = jnp.asarray(np.random.default_rng(5).normal(size=(LATENT, 12 * 12 * 3)) * 0.1, jnp.float32)
    generate = lambda z: (z @ basis).reshape(z.shape[0], 12, 12, 3)  # noqa: E731
    pseudo_inverse = jnp.linalg.pinv(basis)
    encode = lambda images: images.reshape(images.shape[0], -1) @ pseudo_inverse  # noqa: E731
    planted = np.asarray(jax.random.normal(jax.random.PRNGKey(6), (5, LATENT)))
    targets = np.asarray(generate(planted))
    encoded = invert(targets, generate, LATENT, jax.random.PRNGKey(7), encode=encode, steps=0, restarts=1)
    np.testing.assert_allclose(encoded.latents, planted, atol=1e-4)
    # A poor encoder (half the answer): restart 0 starts there, optimisation finishes the job.
    refined = invert(targets, generate, LATENT, jax.random.PRNGKey(7), encode=lambda x: 0.5 * encode(x), steps=200,
                     restarts=2, loss=ReconstructionLoss(prior_weight=0.0))
    assert np.all(_relative_errors(refined.latents, planted) < 0.05)
    with pytest.raises(ValueError, match="steps=0 needs an encoder"):
        invert(targets, generate, LATENT, jax.random.PRNGKey(7), steps=0)


def test_psnr_of_a_known_noise_and_ssim_against_skimage():
    rng = np.random.default_rng(8)
    images = rng.uniform(-1, 1, size=(2, 24, 20, 3)).astype(np.float32)
    noisy = images + 0.1 * rng.choice([-1.0, 1.0], size=images.shape).astype(np.float32)  # MSE exactly 0.01
    np.testing.assert_allclose(psnr(noisy, images), 10 * np.log10(4 / 0.01), rtol=1e-5)
    np.testing.assert_allclose(ssim(images, images), 1.0, atol=1e-6)
    smooth = np.cumsum(images, axis=1) / 10  # some structure, so SSIM is neither 0 nor 1
    expected = [
        structural_similarity(a, b, data_range=2.0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, channel_axis=-1)
        for a, b in zip(smooth + 0.2 * images, smooth)
    ]
    np.testing.assert_allclose(ssim(smooth + 0.2 * images, smooth), expected, atol=1e-5)
    assert 0.2 < min(expected) < max(expected) < 0.99


@pytest.mark.slow
def test_encoder_steps_reduce_their_losses():
    generate = _mlp_generator(32, seed=9)
    encoder = LatentEncoder(LATENT, width=8)
    optimizer = optax.adam(3e-3)
    state = create_encoder_state(encoder, jax.random.PRNGKey(10), 32, optimizer)
    latent_step = make_encoder_latent_step(encoder, optimizer, generate)
    losses = []
    for index in range(40):
        batch = {"latent": jax.random.normal(jax.random.PRNGKey(100 + index), (32, LATENT))}
        state, metrics = latent_step(state, batch, jax.random.PRNGKey(index))
        losses.append(float(metrics["loss"]))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    finetune_step = make_encoder_finetune_step(encoder, optimizer, generate, ReconstructionLoss(prior_weight=1e-3))
    images = {"image": from_model_range(generate(jax.random.normal(jax.random.PRNGKey(11), (16, LATENT))))}
    recon = []
    for index in range(15):
        state, metrics = finetune_step(state, images, jax.random.PRNGKey(index))
        recon.append(float(metrics["loss"]))
    assert recon[-1] < recon[0]
    assert int(state.step) == 40 + 15


@pytest.mark.slow
def test_encoder_is_trained_once_per_generator_and_its_start_is_compared_with_random_starts(tmp_path, capsys, monkeypatch):
    generate = _mlp_generator(32, seed=12)
    real = from_model_range(generate(jax.random.normal(jax.random.PRNGKey(13), (8, LATENT))))
    encoder = LatentEncoder(LATENT, width=4)
    settings = dict(trained_for={"generator": "mlp-12"}, latent_steps=20, finetune_steps=2,
                    loss=ReconstructionLoss(prior_weight=1e-3))
    params = load_or_train_encoder(tmp_path / "encoder", encoder, generate, real, **settings)
    assert "Training the latent encoder" in capsys.readouterr().err
    again = load_or_train_encoder(tmp_path / "encoder", encoder, generate, real, **settings)
    assert "Training" not in capsys.readouterr().err
    jax.tree.map(np.testing.assert_array_equal, params, again)

    class Retrained(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Retrained

    monkeypatch.setattr(inversion, "fit_encoder", refuse)
    with pytest.raises(Retrained):  # another generator: the saved encoder is not reused
        load_or_train_encoder(tmp_path / "encoder", encoder, generate, real, **{**settings, "trained_for": {"generator": "x"}})
    with pytest.raises(Retrained):  # fine-tuned on other real faces (fewer, or the same number of others)
        load_or_train_encoder(tmp_path / "encoder", encoder, generate, real[:-1], **settings)
    with pytest.raises(Retrained):
        load_or_train_encoder(tmp_path / "encoder", encoder, generate, real[::-1], **settings)

    results = compare_inversion_methods(real, generate, LATENT, jax.random.PRNGKey(14), encode=encoder_fn(encoder, params),
                                        steps=30, restarts=2, batch_size=8)
    assert set(results) == {"optimisation", "encoder", "encoder+optimisation"}
    encoded = np.asarray(encoder_fn(encoder, params)(jnp.asarray(real, jnp.float32) / 127.5 - 1.0))
    np.testing.assert_allclose(results["encoder"].latents, encoded, atol=1e-4)
    # Optimising from the encoder's start can only lower the objective it starts from.
    assert np.all(results["encoder+optimisation"].loss <= results["encoder"].loss + 1e-6)
    np.testing.assert_allclose(
        psnr_per_image(results["encoder"], real).mean(), reconstruction_metrics(results["encoder"], real)["psnr"], rtol=1e-5
    )


def test_steps_dispatched_one_per_call_match_one_scan_over_all_steps():
    generate = _mlp_generator(16, seed=15)
    targets = generate(jax.random.normal(jax.random.PRNGKey(16), (5, LATENT)))
    runs = [invert(targets, generate, LATENT, jax.random.PRNGKey(17), steps=40, restarts=2, batch_size=4, steps_per_call=k)
            for k in (1, 8, 40)]
    for other in runs[1:]:
        np.testing.assert_allclose(other.latents, runs[0].latents, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="steps_per_call must be 0 \\(auto\\) or divide steps=40"):
        invert(targets, generate, LATENT, jax.random.PRNGKey(17), steps=40, steps_per_call=3)
