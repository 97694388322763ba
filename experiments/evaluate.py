"""What the seeds judged by eye, as numbers: classifier accuracy, arithmetic success rate, Fréchet distance/KID.

    python -m experiments.evaluate [--workdir=workdirs/evaluate] [--config.kinds=dcgan,vae] [--config.key=value ...]

For each model kind: the attribute classifier's and the independent judge's (evaluation/judge.py,
kept in --config.judge_dir) accuracy per attribute on the test partition; the arithmetic success
rate, i.e. the fraction of --config.num_draws results of --config.expression (k faces per
concept; GAN: classifier-scored samples, VAE: encoded test faces; the table says which) that the
classifier labels --config.target, beside the rate among --config.num_baseline random samples,
and the same two rates read by the judge, with the judge's hit rate on real test faces labelled
--config.target and the target's rate among real test faces, with 95% Wilson intervals; the
Fréchet distance and KID between real test faces and --config.num_generated samples in the
classifier's feature space (or in the network of --config.feature_network, a jax.export file,
e.g. an Inception port). Classifier-feature numbers rank this project's models; they are not
comparable to published FID.
Needs trained runs in --config.dcgan.run / --config.vae.run (the defaults are trained first, CPU-scaled, when missing).
Runtime (CPU, trained runs, classifiers and judges): about 30 s. GPU: not measured.
Expected result: results.json and results.md (a markdown table) in the workdir; arithmetic
results labelled Smiling & Male far more often than random samples, by the classifier and the judge.
"""

import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import ml_collections

from experiments import dcgan_celeba, vae_celeba
from gan_arith import artifacts
from gan_arith.files import write_json, write_text
from gan_arith.cli import run_experiment
from gan_arith.config import analysis_config, check_ranges, selected_kinds
from gan_arith.errors import InputError
from gan_arith.data.store import FaceStore, attribute_mask, check_query
from gan_arith.evaluation.frechet import distribution_distances, load_feature_extractor
from gan_arith.evaluation.sampling import normal_latents
from gan_arith.evaluation.judge import judged_success, load_or_train_judge
from gan_arith.evaluation.success_rate import format_success, rate_of, results_markdown
from gan_arith.latent import pools
from gan_arith.latent.arithmetic import concept_arithmetic


def get_config() -> ml_collections.ConfigDict:
    config = analysis_config(judge=True)
    config.kinds = "dcgan,vae"
    # Training workdirs (trained first if they have no finished run) and what to train there.
    config.dcgan = ml_collections.ConfigDict({"run": "workdirs/dcgan_celeba", "train": dcgan_celeba.get_config()})
    config.vae = ml_collections.ConfigDict({"run": "workdirs/vae_celeba", "train": vae_celeba.get_config()})
    config.queries = pools.SEED_QUERIES
    config.expression = pools.SEED_EXPRESSION
    config.target = pools.SEED_TARGET
    config.k = 3
    config.num_draws = 100
    config.num_baseline = 1000
    config.pool_size = 2000  # GAN: generated faces the classifier ranks per concept
    config.top_n = 30
    config.per_concept = 200  # VAE: encoded real faces per concept
    config.partition = "test"  # VAE: the partition of those faces
    config.num_generated = 1000  # samples for the Fréchet distance and KID
    config.feature_network = ""  # optional jax.export feature network file used instead of the classifier
    return config


def evaluate_model(config: ml_collections.ConfigDict, kind: str) -> dict:
    def check_names(store: FaceStore, classified: Sequence[str]) -> None:  # before the classifier trains
        check_query(config.target, classified, "config.target")
        # The GAN's concept members are generated faces the classifier scores; the VAE's are labelled store faces.
        pools.check_queries(config.queries, classified if kind == "dcgan" else store.attribute_names)

    run, store, scorer = artifacts.run_store_and_classifier(config, kind, check=check_names)
    judge = load_or_train_judge(store, run.image_size, config.judge_dir, steps=config.judge_steps)
    pool = pools.label_defined_pool(
        run, store, scorer, pools.parse_queries(config.queries), pool_size=config.pool_size, top_n=config.top_n,
        per_concept=config.per_concept, partition=config.partition, seed=config.seed,
    )
    images = concept_arithmetic(run, pool, config.expression, pool.draw(config.k, config.num_draws, config.seed))
    baseline = pools.prior_samples(run, config.num_baseline, config.seed + 1)
    features = load_feature_extractor(config.feature_network or None, (scorer.model, scorer.params))
    test_rows = store.select(None, "test")
    generated = normal_latents(jax.random.key(config.seed + 2), config.num_generated, run.latent_dim)
    return {
        "run": str(run.workdir),
        "classifier_accuracy": scorer.test_accuracy,
        "judge_accuracy": judge.test_accuracy,
        "pool": pool.summary(),
        "arithmetic": judged_success(scorer, judge, store, images.result_images, baseline, config.target,
                                     source=pool.source),
        "real_target_rate": rate_of(attribute_mask(config.target, store.attribute_names, store.attributes[test_rows])).as_dict(),
        "distances": {
            "feature_network": features.name, "real_faces": int(len(test_rows)), "generated": config.num_generated,
            **distribution_distances(features(store.gather(run.image_size, test_rows)), features.of_generated(run.generate, generated)),
        },
    }


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    results = {
        "command": " ".join(["python -m experiments.evaluate", *sys.argv[1:]]),
        "expression": config.expression, "target": config.target, "k": config.k,
        "feature_network": config.feature_network or "classifier features", "models": {},
    }
    check_ranges(config, positive=("k", "num_draws", "num_baseline", "pool_size", "top_n", "per_concept",
                                   "num_generated", "classifier_steps", "judge_steps"), choices={"partition": ("train", "valid", "test")})
    if config.feature_network and not Path(config.feature_network).is_file():
        raise InputError(f"config.feature_network={config.feature_network}: no such file")
    pools.check_arithmetic(config.expression, config.queries)
    for kind in selected_kinds(config):
        results["models"][kind] = evaluate_model(config, kind)
        print(f"{kind}: {format_success(results['models'][kind]['arithmetic'])}", file=sys.stderr)
    write_json(results, Path(workdir) / "results.json")
    table = results_markdown(results)
    write_text(Path(workdir) / "results.md", table)
    print(table, file=sys.stderr)


if __name__ == "__main__":
    run_experiment(get_config, main, "evaluate")
