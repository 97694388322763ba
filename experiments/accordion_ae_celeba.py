"""The seed's accordion autoencoder V1 (vector_arithmetic_with_vae.md) at 128×128, with input/output plots.

    python -m experiments.accordion_ae_celeba [--workdir=workdirs/accordion_ae_celeba] [--config.key=value ...]

Seed configuration: 128×128×3, two stacked conv encoder/decoder blocks (1,635,846 parameters),
mean squared error, Adam 1e-3, batch 64, 20 epochs, eval every 5.
Data as in experiments.dcgan_celeba; the store needs 128×128 crops (64×64 for the CPU default:
`prepare --sizes 40,64,80,128` serves every default).
Runtime: CPU default (scaled: 64×64, 2,000 faces, 4 epochs) a few minutes on 2 cores.
Expected result: workdir/figures/reconstructions_epochNNNN.png, inputs over outputs, showing the
seed's blocky, blurred reconstructions.
"""

import ml_collections

from gan_arith import artifacts
from gan_arith.cli import run_experiment
from gan_arith.config import base_config


def get_config() -> ml_collections.ConfigDict:
    config = base_config("ae")
    config.model.image_size = 128
    config.optimizer.learning_rate = 1e-3
    config.optimizer.b1 = 0.9
    config.batch_size = 64
    config.num_epochs = 20
    config.eval_every_epochs = 5
    config.cpu = ml_collections.ConfigDict(
        {
            "model": {"image_size": 64},
            "data": {"synthetic_faces": 2000, "max_faces": 2000},
            "batch_size": 32,
            "num_epochs": 4,
            "eval_every_epochs": 2,
        }
    )
    return config


if __name__ == "__main__":
    run_experiment(get_config, artifacts.train, "accordion_ae_celeba")
