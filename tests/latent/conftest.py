"""A fake trained run and attribute scorer: closed-form stand-ins, so latent-pool tests need no training."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

LATENT_DIM, IMAGE_SIZE = 4, 4


@dataclasses.dataclass
class FakeRun:
    """generate: z -> tanh of a fixed linear map; encode: (the first D pixel values, zeros)."""

    kind: str = "dcgan"
    latent_dim: int = LATENT_DIM
    image_size: int = IMAGE_SIZE

    def __post_init__(self):
        weights = jnp.asarray(np.random.default_rng(0).normal(size=(LATENT_DIM, IMAGE_SIZE * IMAGE_SIZE * 3)) * 0.3)
        self.generate = jax.jit(lambda z: jnp.tanh(z @ weights).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 3))
        self.encode = jax.jit(
            lambda images: (images.reshape(images.shape[0], -1)[:, :LATENT_DIM], jnp.zeros((images.shape[0], LATENT_DIM)))
        )


@dataclasses.dataclass
class FakeScorer:
    """P(attribute j) = the mean of colour channel j of the image (uint8 / 255)."""

    attribute_names: tuple = ("Smiling", "Male", "Eyeglasses")

    def probabilities(self, images):
        images = np.asarray(images)
        values = images / 255.0 if images.dtype == np.uint8 else (images + 1.0) / 2.0
        return values.mean(axis=(1, 2))[:, : len(self.attribute_names)]


@pytest.fixture
def fake_run():
    return FakeRun()


@pytest.fixture
def fake_scorer():
    return FakeScorer()
