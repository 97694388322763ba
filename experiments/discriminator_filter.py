"""Can the discriminator tell good generated faces from bad? Filter samples by D(G(z)) and measure.

    python -m experiments.discriminator_filter [--workdir=workdirs/discriminator_filter] [--config.key=value ...]

Scores latents by the trained discriminator's logit D(G(z)) and compares three samplers at the same
sample count: unfiltered z ~ N(0, I), the top --config.top_fraction of scores, and discriminator
rejection sampling (Azadi et al. 2019) at --config.drs_acceptance. Each is measured against real
test-partition faces of the run's store: Fréchet distance and KID in the attribute classifier's
feature space (not comparable to published FID/KID), and the classifier's mean confidence. Two
disjoint real sets (validation vs test) give the floor those distances can reach.
Sample noise: the distances of one sampler move from one sample set of the same size to the next,
often by as much as a filter moves them. So --config.noise_sets (3) independent
unfiltered sets are scored ("unfiltered" is the first; the others are drawn from keys derived
from --config.seed), their mean and std (ddof 1) are the noise floor, and each filtered sampler gets
its difference from their mean in units of sd = std·√(1 + 1/R) (the spread of one more set's
difference from the mean of R) and a verdict: "better" or "worse" when it is at least
--config.noise_spreads (2) sd, else "within noise" (summary.json "noise", and printed).
Needs a trained GAN in --config.run; the default one is trained first when missing (CPU-scaled), saying so.
Runtime (CPU, 2 shared cores, trained GAN and classifier): about a minute (43 s with 3 unfiltered
sets); the classifier, trained once per store, adds minutes the first time (300 steps on synthetic
faces: 51 s). GPU: not measured.
Expected result: summary.json with per-sampler numbers, verdicts against the noise floor and
acceptance rates; if the discriminator knows good faces, the filtered samplers have a lower Fréchet
distance and higher confidence than unfiltered ones, by more than the noise; it does not always
(measure before filtering): on the CPU-default GAN both filters were better by about 4 sd, on
other runs within noise or worse (docs/results.md, section 2).
figures/scored_faces.png shows the best- and worst-scored faces.
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
from gan_arith.evaluation import sampling
from gan_arith.evaluation.frechet import (
    compare_sample_quality, compare_with_noise, format_noise, format_quality,
)


def get_config() -> ml_collections.ConfigDict:
    config = analysis_config("workdirs/dcgan_celeba", dcgan_celeba.get_config(), cpu={"num_samples": 500, "num_real": 500, "kid_subset_size": 200})
    config.num_samples = 2000  # per sampler
    config.num_real = 2000  # real test faces the samples are compared with (at most)
    config.top_fraction = 0.25
    config.drs_acceptance = 0.25
    config.drs_burn_in = 2048
    config.kid_subsets = 50
    config.kid_subset_size = 500
    config.noise_sets = 3  # independent unfiltered sets: their spread is the noise a filter must beat
    config.noise_spreads = 2.0  # better/worse only when |filtered - unfiltered mean| >= this many sd (std·√(1 + 1/R))
    return config


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    check_ranges(config, positive=("num_samples", "num_real", "kid_subsets", "kid_subset_size", "classifier_steps"),
                 at_least={"noise_sets": 2}, fractions=("top_fraction", "drs_acceptance"))
    run, store, scorer = artifacts.run_store_and_classifier(config)
    real = {part: store.gather(run.image_size, store.select(None, part)[: config.num_real]) for part in ("test", "valid")}
    real_features = scorer.features(real["test"])
    score = sampling.through_generator(run.generate, run.discriminate)
    keys = jax.random.split(jax.random.key(config.seed), 3)
    count, dim = config.num_samples, run.latent_dim
    unfiltered = sampling.normal_latents(keys[0], count, dim)
    top, _, top_stats = sampling.top_fraction_sample(score, dim, count, config.top_fraction, keys[1])
    drs, drs_stats = sampling.rejection_sample(
        score, dim, count, keys[2], target_acceptance=config.drs_acceptance, burn_in=config.drs_burn_in
    )
    images = {name: sampling.batched_apply(run.generate, z, 256) for name, z in
              (("unfiltered", unfiltered), ("top_fraction", top), ("rejection_sampling", drs))}
    more = sampling.more_unfiltered_sets(run.generate, dim, count, config.seed, config.noise_sets)
    sets = {"unfiltered": images["unfiltered"], **more, **images, "real_valid": real["valid"]}
    quality = compare_sample_quality(
        sets, real_features, scorer.features, scorer.logits,
        kid_subsets=config.kid_subsets, kid_subset_size=config.kid_subset_size, seed=config.seed,
    )
    noise = compare_with_noise(quality, ["unfiltered", *more], ["top_fraction", "rejection_sampling"], config.noise_spreads)
    figure = figures.plot_scored_faces(
        images["unfiltered"], sampling.batched_apply(score, unfiltered, 256), Path(workdir) / "figures" / "scored_faces.png",
        title=f"D(G(z)) of {run.workdir}: best and worst of {count}",
    )
    summary = {
        "run": str(run.workdir), "step": int(run.state.step), "num_samples": count, "num_real": len(real_features),
        "feature_space": scorer.features.name, "quality": quality, "noise": noise,
        "sampling": {"top_fraction": top_stats.as_dict(), "rejection_sampling": drs_stats.as_dict()}, "figure": figure,
    }
    write_json(summary, Path(workdir) / "summary.json")
    print(format_quality(quality), file=sys.stderr)
    print(format_noise(noise), file=sys.stderr)
    print(f"acceptance: top fraction {top_stats.acceptance_rate:.2f}, DRS {drs_stats.acceptance_rate:.2f}; "
          f"{Path(workdir) / 'summary.json'}, {figure}", file=sys.stderr)


if __name__ == "__main__":
    run_experiment(get_config, main, "discriminator_filter")
