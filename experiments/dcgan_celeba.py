"""The seed's DCGAN (vector_arithmetic_with_gan.md) on MTCNN-cropped faces.

    python -m experiments.dcgan_celeba [--workdir=workdirs/dcgan_celeba] [--config.key=value ...]

Data: --config.data.store=PATH, else data/celeba_store (what `python -m gan_arith.data.prepare`
writes; used when it holds the run's image size: 80, or 40 for the CPU default), else raw CelebA
from $GAN_ARITH_CELEBA (prepared first), else built-in synthetic faces.
Seed configuration (GPU/TPU): 80×80×3, latent 100, width 128, batch 128 (64 real + 64 generated
for D, 128 latents for G), Adam 2e-4/β1 0.5, 100 epochs, samples + checkpoint every 10 epochs.
An epoch here is one pass over the real faces; the Keras tutorial the seed's tables come from
counts 390 steps of 64 random faces, so its 100 epochs are about --config.num_epochs=50 over
50,000 faces (tools/gpu_seed_run.sh runs that count on a prepared CelebA store in one GPU call).
CPU default (no accelerator): the same layers at 40×40 and width 32, batch 32, 10,000 faces
(8,000 train), 6 epochs of 500 steps, Adam 1e-3 with a cosine decay, a 0.999 moving average of
the generator's weights for samples and checkpoints, and the R1 penalty (γ 1) on the discriminator.
Runtime: CPU default about 7.5 minutes on 2 idle cores (the 3,000 steps ~6.5 minutes of it); seed
configuration in bfloat16 on one H100 about 6 minutes for the seed's count of steps
(docs/benchmarks.md).
Expected result: workdir/figures/samples_epochNNNN.png grids from a fixed latent batch that turn
from noise into varied synthetic faces (the CPU default: Fréchet distance, in the attribute
classifier's features, about 5-9 after 6 epochs for seeds 0-2, against a real-vs-real floor of
1.3; docs/results.md); checkpoints in workdir/checkpoints (best: lowest Fréchet distance);
metrics.jsonl; rerunning the same command resumes from the last checkpoint.
"""

import ml_collections

from gan_arith import artifacts
from gan_arith.cli import run_experiment
from gan_arith.config import base_config


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
    run_experiment(get_config, artifacts.train, "dcgan_celeba")
