"""The seed's DCGAN (vector_arithmetic_with_gan.md) on MTCNN-cropped faces.

    python -m experiments.dcgan_celeba [--workdir=workdirs/dcgan_celeba] [--config.key=value ...]

Data: --config.data.store=PATH, else data/celeba_store (what `python -m gan_arith.data.prepare`
writes; used when it holds the run's image size: 80, or 40 for the CPU default), else raw CelebA from $GAN_ARITH_CELEBA (prepared first), else built-in synthetic faces.
Seed configuration (GPU/TPU): 80×80×3, latent 100, width 128, batch 128 (64 real + 64 generated
for D, 128 latents for G), Adam 2e-4/β1 0.5, 100 epochs, samples + checkpoint every 10 epochs.
Runtime: CPU default (scaled: 40×40, width 32, batch 32, a store of 4,000 synthetic faces: 3,200 in
the train partition, 200 steps of 16 real faces per epoch; 20 epochs = 4,000 steps) measured 10 min 14 s wall on the 2 idle cores of the CI-type machine (~110 images/s), 13 min
25 s from a fresh clone of 16e6f9d while other jobs shared the cores; that run's Fréchet distances
were 30.8, 124.2 (a collapse), 56.9, 20.1 at epochs 5-20, best = epoch 20. GAN runs are chaotic: a
change of floating-point rounding (another jax, CPU or an exact rewrite of a layer) gives another
trajectory (the same command at 2b05c2c logged 91.2, 40.9, 20.6, 14.8).
Seed configuration on one H100 in bfloat16
(--config.model.dtype=bfloat16): ~4.8 s per epoch of 50,000 faces after a ~19 s first epoch; 30 epochs
with 6 evaluations took 220 s end to end, 50 epochs with 10 took 359 s with a slower step (62,500
synthetic faces, 2026-11-26; docs/benchmarks.md), so 100 epochs are ~9.5 minutes (predicted). Fréchet
distances of such runs vary widely between runs (best checkpoints 23.4 and 69.6 in two 50-epoch runs
that day), as on CPU. An epoch here is one pass over the real faces (781 steps of 64
for 50,000); the Keras tutorial the seed's tables come from counts int(50,000 / 128) = 390 steps of 64
random real faces, so the seed's 100 epochs are about --config.num_epochs=50 here (39,050 steps for 39,000).
Expected result: workdir/figures/samples_epochNNNN.png grids from a fixed latent batch that turn
from noise into faces over the epochs; checkpoints in workdir/checkpoints; metrics.jsonl; rerunning
the same command resumes from the last checkpoint.
"""

import ml_collections

from gan_arith.config import base_config, run_experiment
from gan_arith.train.loop import train


def get_config() -> ml_collections.ConfigDict:
    config = base_config("dcgan")
    # The best checkpoint is the one whose samples are closest to held-out real faces (Fréchet
    # distance in the attribute classifier's features, trained once per store) - not a GAN loss.
    config.best_metric = "frechet"
    config.cpu = ml_collections.ConfigDict(
        {
            "model": {"image_size": 40, "width": 32},
            # 8,000 train faces: a discriminator that sees each face only ~6 times overfits less.
            "data": {"synthetic_faces": 10000, "max_faces": 10000},
            # Small batches: on a CPU budget more (cheaper) updates beat bigger ones for a young GAN.
            "batch_size": 32,
            # A fast start that still ends in small steps, a weight average to sample from, and R1 so
            # the discriminator cannot win outright: the seed's recipe (Adam 2e-4 held, none of these)
            # leaves this small GAN's generator stalled or collapsed after a CPU budget of steps.
            "optimizer": {"learning_rate": 1e-3, "schedule": "cosine"},
            "ema_decay": 0.999,
            "r1_gamma": 1.0,
            "num_epochs": 6,
            "eval_every_epochs": 1,
            "num_fd_samples": 500,
            "classifier_steps": 300,
        }
    )
    return config


if __name__ == "__main__":
    run_experiment(get_config, train, "dcgan_celeba")
