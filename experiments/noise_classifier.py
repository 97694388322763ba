"""Can we tell from the noise alone whether it will make a real-looking face? A classifier on z.

    python -m experiments.noise_classifier [--workdir=workdirs/noise_classifier] [--config.key=value ...]

Draws --config.pool_size latents, scores their faces (--config.label_by: "discriminator", the
logit D(G(z)); or "confidence", the attribute classifier's mean max(p, 1 − p)), labels the top
--config.quantile good and the bottom bad, trains a small MLP on z with part of them and reports
its ROC AUC on the held-out rest. Then samples only predicted-good noise (P(good | z) >
--config.threshold) and compares its Fréchet distance and KID to real test faces (attribute
classifier features; not comparable to published FID) with unfiltered samples of the same size:
--config.noise_sets (3) independent unfiltered sets, whose mean and std (ddof 1) are the noise floor
(see experiments/discriminator_filter.py); the predicted-good set is "better" or "worse" only when it
is at least --config.noise_spreads (2) sd = std·√(1 + 1/R) from their mean, else "within noise".
Needs a trained GAN in --config.run; the default one is trained first when missing (CPU-scaled), saying so.
Runtime (CPU, 2 shared cores, trained GAN and classifier): under a minute (53 s). GPU: not measured.
Expected result: summary.json; an AUC of 0.5 means quality is not predictable from z, 1.0 fully;
a verdict of the predicted-good noise against the noise floor (on the CPU-default GAN: AUC
about 0.97, within noise; docs/results.md, section 2);
figures/roc.png (held-out ROC curve) and figures/predicted_faces.png (faces of the noise the
classifier likes most and least).
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
from gan_arith.evaluation import noise_classifier, sampling
from gan_arith.evaluation.frechet import (
    compare_sample_quality, compare_with_noise, format_noise, format_quality,
)


def get_config() -> ml_collections.ConfigDict:
    config = analysis_config("workdirs/dcgan_celeba", dcgan_celeba.get_config(), cpu={"pool_size": 8000, "mlp_steps": 1500, "num_samples": 500, "num_real": 500, "kid_subset_size": 200})
    config.label_by = "discriminator"  # or "confidence"
    config.pool_size = 40000
    config.quantile = 0.25
    config.held_out_fraction = 0.2
    config.mlp_steps = 3000
    config.threshold = 0.5
    config.num_samples = 2000  # per sampler, for the Fréchet distance
    config.num_real = 2000
    config.kid_subsets = 50
    config.kid_subset_size = 500
    config.noise_sets = 3  # independent unfiltered sets: their spread is the noise a filter must beat
    config.noise_spreads = 2.0  # better/worse only when |filtered - unfiltered mean| >= this many sd (std·√(1 + 1/R))
    return config


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    check_ranges(config, positive=("pool_size", "mlp_steps", "num_samples", "num_real", "kid_subsets", "kid_subset_size",
                                   "classifier_steps"), at_least={"noise_sets": 2},
                 open_fractions=("quantile", "held_out_fraction", "threshold"),
                 choices={"label_by": ("discriminator", "confidence")})
    run, store, scorer = artifacts.run_store_and_classifier(config)
    score = sampling.through_generator(
        run.generate, sampling.image_scorer(config.label_by, run.discriminate, scorer.logits_of)
    )
    pool_key, unfiltered_key, good_key = jax.random.split(jax.random.key(config.seed), 3)
    pool = sampling.normal_latents(pool_key, config.pool_size, run.latent_dim)
    evaluation = noise_classifier.evaluate_noise_classifier(
        pool, sampling.batched_apply(score, pool, 256), quantile=config.quantile,
        held_out_fraction=config.held_out_fraction, steps=config.mlp_steps, seed=config.seed,
    )
    model, count = noise_classifier.NoiseMLP(), config.num_samples
    good, good_stats = noise_classifier.sample_good_noise(
        model, evaluation.params, run.latent_dim, count, good_key, threshold=config.threshold
    )
    unfiltered = sampling.normal_latents(unfiltered_key, count, run.latent_dim)
    real_features = scorer.features(store.gather(run.image_size, store.select(None, "test")[: config.num_real]))
    images = {"unfiltered": sampling.batched_apply(run.generate, unfiltered, 256),
              "predicted_good": sampling.batched_apply(run.generate, good, 256)}
    more = sampling.more_unfiltered_sets(run.generate, run.latent_dim, count, config.seed, config.noise_sets)
    quality = compare_sample_quality(
        {"unfiltered": images["unfiltered"], **more, **images}, real_features, scorer.features, scorer.logits,
        kid_subsets=config.kid_subsets, kid_subset_size=config.kid_subset_size, seed=config.seed,
    )
    noise = compare_with_noise(quality, ["unfiltered", *more], ["predicted_good"], config.noise_spreads)
    auc = evaluation.held_out_auc
    out = Path(workdir) / "figures"
    roc = figures.plot_roc_curves(
        {f"held out (AUC {auc:.3f})": noise_classifier.roc_curve(evaluation.held_out_labels, evaluation.held_out_probabilities)},
        out / "roc.png", title=f"good vs bad noise by {config.label_by}",
    )
    faces = figures.plot_scored_faces(
        images["unfiltered"], noise_classifier.noise_probabilities(model, evaluation.params, unfiltered),
        out / "predicted_faces.png", title="P(good | z): the noise classifier's favourite and least favourite noise",
    )
    summary = {
        "run": str(run.workdir), "step": int(run.state.step), "label_by": config.label_by, "pool_size": config.pool_size,
        "quantile": config.quantile, "held_out": len(evaluation.held_out_labels), "held_out_auc": auc,
        "held_out_accuracy": evaluation.held_out_accuracy, "train_accuracy": evaluation.train_accuracy,
        "sampling": good_stats.as_dict(), "num_samples": count, "quality": quality, "noise": noise,
        "figures": [roc, faces],
    }
    write_json(summary, Path(workdir) / "summary.json")
    print(f"noise classifier ({config.label_by} labels): held-out AUC {auc:.3f} on {summary['held_out']} latents, "
          f"accepts {good_stats.acceptance_rate:.2f} of fresh noise", file=sys.stderr)
    print(format_quality(quality), file=sys.stderr)
    print(format_noise(noise), file=sys.stderr)


if __name__ == "__main__":
    run_experiment(get_config, main, "noise_classifier")
