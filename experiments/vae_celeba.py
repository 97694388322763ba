"""The seed's convolutional VAE, version 1 (vector_arithmetic_with_vae.md), with its reconstruction plots.

    python -m experiments.vae_celeba [--workdir=workdirs/vae_celeba] [--config.key=value ...]

Seed configuration: 80×80×3, latent 256, encoder 128-64-32-16 conv + BatchNorm, loss = per-image
squared error (in [-1, 1]) + β·KL with β = 1, Adam 1e-3, batch 128, 30 epochs, eval every 5.
Data as in experiments.dcgan_celeba (prepared CelebA store, raw CelebA, or synthetic faces).
Runtime: CPU default (scaled: 40×40, β 0.25, all ~16,000 training faces of a prepared CelebA store
or 16,000 synthetic ones, 15 epochs) about 5-10 minutes on 2 cores; one GPU: minutes.
Expected result: workdir/figures/reconstructions_epochNNNN.png (originals over reconstructions,
blurry but recognisable as in the seed) and samples_epochNNNN.png (decoded prior
samples); `python -m experiments.vector_arithmetic_vae` then measures how much of Smiling & Male
the reconstructions keep in the independent judge's eyes, and the arithmetic (docs/results.md).
"""

import ml_collections

from gan_arith import artifacts
from gan_arith.cli import run_experiment
from gan_arith.config import base_config


def get_config() -> ml_collections.ConfigDict:
    config = base_config("vae")
    config.model.latent_dim = 256
    config.optimizer.learning_rate = 1e-3
    config.optimizer.b1 = 0.9
    config.num_epochs = 30
    config.eval_every_epochs = 5
    config.cpu = ml_collections.ConfigDict(
        {
            # The loss sums squared errors over pixels, so at 40×40 it has a quarter of the seed's
            # 80×80 terms: β 0.25 keeps the seed's balance against the KL term. A sharper β 0.1 for
            # 20 epochs still lost most of the smile in decoding (docs/results.md), so it did not stay.
            "model": {"image_size": 40, "beta": 0.25},
            "batch_size": 64,
            "num_epochs": 15,
            "eval_every_epochs": 5,
        }
    )
    return config


if __name__ == "__main__":
    run_experiment(get_config, artifacts.train, "vae_celeba")
