"""A small CNN attribute classifier whose penultimate features double as the Fréchet feature space.

No Inception weights can be downloaded here, so the project measures its generated faces with a
network it trains itself: `AttributeClassifier` predicts CelebA attributes (Smiling, Male, ...) and
its pooled features (`features`) are what the Fréchet distance and KID compare.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

MIN_IMAGE_SIZE = 32
NUM_BLOCKS = 4


def check_images(images: jax.Array, name: str = "images") -> None:
    """Raise a ValueError unless `images` is [B, H, W, 3] with H, W >= 32 (four stride-2 blocks need them)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{name} must be [B, H, W, 3] RGB, got shape {tuple(images.shape)}")
    if min(images.shape[1:3]) < MIN_IMAGE_SIZE:
        raise ValueError(f"{name} must be at least {MIN_IMAGE_SIZE}×{MIN_IMAGE_SIZE}, got {tuple(images.shape[1:3])}")


def check_sizes(num_attributes: int, width: int) -> None:
    """Raise a ValueError unless an attribute network's `num_attributes` and `width` are both >= 1."""
    if num_attributes < 1:
        raise ValueError(f"num_attributes must be >= 1, got {num_attributes}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")


class ConvTrunk(nn.Module):
    """Four conv blocks (stride-2 conv, conv; GroupNorm + swish each) and a global average pool.

    Images [B, H, W, 3] in [-1, 1], any H, W >= 32 -> features [B, 8·width] in float32. GroupNorm
    rather than BatchNorm keeps the model a pure function of its params (no mutable statistics), so
    features of one image do not depend on the rest of its batch.
    """

    width: int = 32
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        check_images(images)
        x = images.astype(self.dtype)
        for block in range(NUM_BLOCKS):
            channels = self.width * 2**block
            for strides in (2, 1):
                x = nn.Conv(channels, (3, 3), strides=strides, padding="SAME", dtype=self.dtype)(x)
                x = nn.GroupNorm(num_groups=math.gcd(8, channels), dtype=self.dtype)(x)
                x = nn.swish(x)
        return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


class AttributeClassifier(nn.Module):
    """Per-attribute logits [B, A] for images in [-1, 1]; `features` gives the pooled [B, 8·width] vector.

    `apply(variables, images)` -> logits; `apply(variables, images, return_features=True)` ->
    (logits, features); `apply(variables, images, method=AttributeClassifier.features)` -> features.
    """

    num_attributes: int
    width: int = 32
    dtype: Any = jnp.float32

    def setup(self) -> None:
        check_sizes(self.num_attributes, self.width)
        self.trunk = ConvTrunk(width=self.width, dtype=self.dtype)
        self.head = nn.Dense(self.num_attributes, dtype=self.dtype)

    def features(self, images: jax.Array) -> jax.Array:
        """Penultimate feature vector [B, 8·width] (float32): the Fréchet/KID feature space."""
        return self.trunk(images)

    def __call__(self, images: jax.Array, return_features: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
        features = self.trunk(images)
        logits = self.head(features).astype(jnp.float32)
        return (logits, features) if return_features else logits
