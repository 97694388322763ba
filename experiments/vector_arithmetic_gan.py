"""Vector arithmetic with the DCGAN: smiling woman − neutral woman + neutral man, by hand and from labels.

    python -m experiments.vector_arithmetic_gan [--workdir=workdirs/vector_arithmetic_gan] [--config.key=value ...]

The seeds' way: every run without --config.concepts writes figures/index_grid.png, numbered faces
generated from latents saved in WORKDIR/grid_latents.npy (so the numbers stay valid between runs),
and prints how to name concept members by index:
    --config.concepts="smiling_woman=12,45,78; neutral_woman=3,9,41; neutral_man=7,22,60"
which averages each concept's latents, evaluates --config.expression and generates the result.
Without eyeballing (the same run without --config.concepts): concepts are attribute queries
(--config.queries); their members are the attribute classifier's top-scored of --config.pool_size
generated faces (--config.concept_source=scored) or real faces inverted into the GAN (=inversion).
--config.num_draws random draws of k members give as many results, which the classifier and an
independent judge (evaluation/judge.py: another architecture, trained on the other half of the
store's train faces, kept in --config.judge_dir) each score against random samples; the judge's
hit rate on real test faces with the target says how high its reading can go.
Needs a trained GAN in --config.run; the default one is trained first when missing (CPU-scaled:
about 7.5 minutes on 2 idle cores; --config.train.cpu.num_epochs=N changes the CPU-scaled length).
Runtime (CPU, 2 cores, trained GAN): about 1.5 minutes, most of it the judge's first training
(600 steps); with both readers trained, seconds; inversion adds several minutes. GPU: not measured.
Expected result: figures/gan_scored_arithmetic.png (each concept's k faces and their average,
then the result) and figures/gan_scored_draws.png (8 draws) show mostly smiling male-presenting
faces; summary_scored.json has the classifier's and the judge's Smiling & Male rates of the results
beside those of random samples, both readers' test accuracy, where the members came from, and the
judge's attribute rates of random samples against real faces. On the CPU-default GAN of seeds 0-2
(synthetic faces) the judge read 35-61% of results as smiling men against 14-25% of random
samples (docs/results.md).
"""

import sys
from pathlib import Path

import ml_collections

from experiments import dcgan_celeba
from gan_arith import artifacts, figures
from gan_arith.files import write_json
from gan_arith.cli import run_experiment
from gan_arith.config import analysis_config, check_ranges
from gan_arith.data.store import check_query
from gan_arith.evaluation.judge import judged_success, load_or_train_judge, sample_attribute_rates
from gan_arith.evaluation.scorer import classifier_attributes, load_or_train_classifier
from gan_arith.evaluation.success_rate import format_success
from gan_arith.latent import pools
from gan_arith.latent.arithmetic import arithmetic_summary, concept_arithmetic, write_arithmetic_figures
from gan_arith.latent.expression import parse


def get_config() -> ml_collections.ConfigDict:
    config = analysis_config("workdirs/dcgan_celeba", dcgan_celeba.get_config(), judge=True)
    config.concepts = ""  # hand-picked grid indices, "name=i,j,k; name=..."; empty: label-defined concepts
    config.grid_size = 100
    config.queries = pools.SEED_QUERIES
    config.expression = pools.SEED_EXPRESSION
    config.target = pools.SEED_TARGET
    config.concept_source = "scored"  # or "inversion"
    config.pool_size = 2000  # scored: generated faces the classifier ranks
    config.top_n = 30  # scored: candidates kept per concept
    config.per_concept = 24  # inversion: real test faces inverted per concept
    config.inversion_steps = 300
    config.k = 3
    config.num_draws = 100
    config.num_baseline = 1000
    return config


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    check_ranges(config, positive=("grid_size", "pool_size", "top_n", "per_concept", "inversion_steps", "k",
                                   "num_draws", "num_baseline", "classifier_steps", "judge_steps"),
                 choices={"concept_source": ("auto", "scored", "inversion")})  # 'encoded' needs a VAE
    pools.check_arithmetic(config.expression, config.concepts or config.queries, hand_picked=bool(config.concepts),
                           num_candidates=config.grid_size)
    run = artifacts.trained_run(config)
    workdir, scorer, store = Path(workdir), None, None
    latents = pools.saved_latents(workdir / "grid_latents.npy", config.grid_size, run.latent_dim, config.seed)
    if config.concepts:
        pool = pools.hand_picked_pool(run, latents, config.concepts)
    else:
        grid = figures.plot_index_grid(
            pools.generate_images(run, latents), workdir / "figures" / "index_grid.png", title=f"{run.workdir}: pick by number"
        )
        example = "; ".join(f"{name}=i,j,k" for name in parse(config.expression))
        print(f"Numbered faces in {grid}; name concept members by number:\n  python -m experiments.vector_arithmetic_gan "
              f"--config.concepts='{example}'", file=sys.stderr)
        store = artifacts.run_store(run)
        classified = classifier_attributes(store)  # checked before the classifier trains (minutes, the first time)
        check_query(config.target, classified, "config.target")
        # Scored members are generated faces the classifier scores; inverted ones are labelled store faces.
        pools.check_queries(config.queries, classified if config.concept_source != "inversion" else store.attribute_names)
        scorer = load_or_train_classifier(store, run.image_size, config.classifier_dir, steps=config.classifier_steps)
        pool = pools.label_defined_pool(
            run, store, scorer, pools.parse_queries(config.queries), source=config.concept_source,
            pool_size=config.pool_size, top_n=config.top_n, per_concept=config.per_concept, seed=config.seed,
            inversion_steps=config.inversion_steps,
        )
    images = concept_arithmetic(run, pool, config.expression, pool.draw(config.k, config.num_draws, config.seed))
    summary = {**arithmetic_summary(images, pool), "run": str(run.workdir)}
    summary["figures"] = write_arithmetic_figures(images, pool, workdir / "figures", f"gan_{pool.source}")
    if scorer is not None:
        judge = load_or_train_judge(store, run.image_size, config.judge_dir, steps=config.judge_steps)
        baseline = pools.prior_samples(run, config.num_baseline, config.seed + 1)
        summary["success"] = judged_success(
            scorer, judge, store, images.result_images, baseline, config.target, source=pool.source
        )
        summary["classifier_accuracy"], summary["judge_accuracy"] = scorer.test_accuracy, judge.test_accuracy
        summary["attribute_rates"] = sample_attribute_rates(judge, store, baseline)
        print(format_success(summary["success"]), file=sys.stderr)
        print("judge's attribute rates, random samples vs real test faces: " + ", ".join(
            f"{name} {rates['samples']:.2f} vs {rates['real']:.2f}" for name, rates in summary["attribute_rates"].items()
        ), file=sys.stderr)
    write_json(summary, workdir / f"summary_{pool.source}.json")
    print(f"{summary['expression']} ({pool.source} members): {summary['num_draws']} draw(s); figures "
          f"{', '.join(summary['figures'].values())}", file=sys.stderr)


if __name__ == "__main__":
    run_experiment(get_config, main, "vector_arithmetic_gan")
