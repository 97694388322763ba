"""A second attribute classifier of another design, the judge of arithmetic results.

The project's `AttributeClassifier` (evaluation/classifier_network.py) picks concept members and scores the
results; a judge that shares its architecture could share its blind spots and its quirks on
generated faces. `JudgeClassifier` is a plain VGG-style stack instead: unstrided 3×3 convolutions
with ReLU, 2×2 max-pooling to downsample, no normalisation layer, He-initialised, and a hidden
dense layer before the logits. It has the classifier's call signature, so the same training,
prediction and scoring code serves both.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_arith.evaluation.classifier_network import check_images, check_sizes

NUM_STAGES = 4
_HE = nn.initializers.he_normal()


class VGGTrunk(nn.Module):
    """Four stages of (3×3 conv + ReLU) × 2 and a 2×2 max-pool, then a global average pool.

    Images [B, H, W, 3] in [-1, 1], H, W >= 32 -> features [B, 8·width] in float32. Without a
    normalisation layer each image's features depend only on that image.
    """

    width: int = 16
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        check_images(images)
        x = images.astype(self.dtype)
        for stage in range(NUM_STAGES):
            channels = self.width * 2**stage
            for _ in range(2):
                x = nn.relu(nn.Conv(channels, (3, 3), padding="SAME", kernel_init=_HE, dtype=self.dtype)(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


class JudgeClassifier(nn.Module):
    """Per-attribute logits [B, A] for images in [-1, 1]; `features` gives the pooled [B, 8·width] vector.

    Called as `AttributeClassifier` is: `apply(variables, images)` -> logits, with
    `return_features=True` -> (logits, features), `method=JudgeClassifier.features` -> features.
    """

    num_attributes: int
    width: int = 16
    dtype: Any = jnp.float32

    def setup(self) -> None:
        check_sizes(self.num_attributes, self.width)
        self.trunk = VGGTrunk(width=self.width, dtype=self.dtype)
        self.hidden = nn.Dense(8 * self.width, kernel_init=_HE, dtype=self.dtype)
        self.head = nn.Dense(self.num_attributes, dtype=self.dtype)

    def features(self, images: jax.Array) -> jax.Array:
        """Pooled convolutional features [B, 8·width] (float32)."""
        return self.trunk(images)

    def __call__(self, images: jax.Array, return_features: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        features = self.trunk(images)
        logits = self.head(nn.relu(self.hidden(features))).astype(jnp.float32)
        return (logits, features) if return_features else logits
