"""GAN inversion: find the latent that recreates a real face, by optimisation, by an encoder, and both.

    python -m experiments.inversion [--workdir=workdirs/inversion] [--config.key=value ...]

Inverts --config.num_images test-partition faces of the run's store three ways with one objective
(pixel MSE + --config.feature_weight × attribute-classifier feature MSE + --config.prior_weight ×
Gaussian prior): "optimisation" (Adam from --config.restarts random starts, best kept),
"encoder" (a LatentEncoder trained on G(z) -> z, then fine-tuned on real train faces through the
generator; saved with orbax in WORKDIR/encoder and reused) and "encoder+optimisation" (the
encoder's output as the single start). Reports PSNR/SSIM and seconds per image of each.
Needs a trained GAN in --config.run; the default one is trained first when missing (CPU-scaled), saying so.
Runtime (CPU, 2 shared cores, trained GAN and classifier): about 6 minutes the first time, 3-4 of
them training the encoder (saved and reused), about 2 minutes after that. GPU: not measured.
Expected result: summary.json; the encoder alone is fastest but blurriest, optimisation reaches a
higher PSNR, and the encoder start reaches it with one start instead of several.
figures/reconstructions.png: originals over each method's reconstructions, PSNR under each.
"""

import sys
from pathlib import Path

import jax
import ml_collections

from experiments import dcgan_celeba
from gan_arith import artifacts, figures
from gan_arith.files import write_json
from gan_arith.cli import run_experiment
from gan_arith.config import analysis_config, check_ranges
from gan_arith.evaluation import inversion


def get_config() -> ml_collections.ConfigDict:
    cpu = {"num_images": 32, "steps": 200, "restarts": 2, "encoder_steps": 600, "finetune_steps": 150, "finetune_faces": 2000}
    config = analysis_config("workdirs/dcgan_celeba", dcgan_celeba.get_config(), cpu=cpu)
    config.num_images = 256  # test-partition faces inverted
    config.steps = 500
    config.restarts = 4
    config.learning_rate = 0.05
    config.feature_weight = 0.1
    config.prior_weight = 1e-3
    config.encoder_width = 32
    config.encoder_steps = 3000  # G(z) -> z regression
    config.finetune_steps = 1000  # on real train faces through the generator
    config.finetune_faces = 20000
    config.batch_size = 64
    return config


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    check_ranges(config, positive=("num_images", "steps", "restarts", "encoder_width", "encoder_steps", "finetune_faces",
                                   "batch_size", "classifier_steps"))
    run, store, scorer = artifacts.run_store_and_classifier(config)
    loss = inversion.ReconstructionLoss(scorer.features.fn, config.feature_weight, config.prior_weight)
    targets = store.gather(run.image_size, store.select(None, "test")[: config.num_images])
    encoder = inversion.LatentEncoder(run.latent_dim, config.encoder_width)
    encoder_params = inversion.load_or_train_encoder(
        Path(workdir) / "encoder", encoder, run.generate,
        store.gather(run.image_size, store.select(None, "train")[: config.finetune_faces]),
        trained_for={"run": str(Path(run.workdir).absolute()), "step": int(run.state.step),
                     "classifier_steps": config.classifier_steps},
        latent_steps=config.encoder_steps, finetune_steps=config.finetune_steps, loss=loss, seed=config.seed,
    )
    results = inversion.compare_inversion_methods(
        targets, run.generate, run.latent_dim, jax.random.key(config.seed),
        encode=inversion.encoder_fn(encoder, encoder_params), steps=config.steps, restarts=config.restarts,
        loss=loss, batch_size=config.batch_size,
    )
    metrics = {method: inversion.reconstruction_metrics(result, targets) for method, result in results.items()}
    figure = figures.plot_reconstructions(
        targets, {method: result.reconstructions for method, result in results.items()},
        Path(workdir) / "figures" / "reconstructions.png",
        captions={method: [f"{v:.1f} dB" for v in inversion.psnr_per_image(result, targets)] for method, result in results.items()},
        title=f"inverting {len(targets)} test faces into {run.workdir}",
    )
    summary = {
        "run": str(run.workdir), "step": int(run.state.step), "num_images": len(targets), "steps": config.steps,
        "restarts": config.restarts, "feature_weight": config.feature_weight, "prior_weight": config.prior_weight,
        "methods": metrics, "figure": figure,
    }
    write_json(summary, Path(workdir) / "summary.json")
    for method, numbers in metrics.items():
        print(f"{method:>21}: PSNR {numbers['psnr']:.2f} dB  SSIM {numbers['ssim']:.3f}  "
              f"{numbers['seconds_per_image'] * 1000:.1f} ms/image", file=sys.stderr)
    print(f"{Path(workdir) / 'summary.json'}, {figure}", file=sys.stderr)


if __name__ == "__main__":
    run_experiment(get_config, main, "inversion")
