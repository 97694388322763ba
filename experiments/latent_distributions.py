"""The VAE seed's latent distribution plots, with numbers: averaged concept vectors and single dimensions.

    python -m experiments.latent_distributions [--workdir=workdirs/latent_distributions] [--config.key=value ...]

(1) The histogram of each averaged concept vector's values (k encoded faces per concept, the
concepts of --config.queries). (2) The first few latent dimensions across --config.num_encodings
encoded test faces (the seed used 90), against the prior N(0, 1), with per-dimension mean and std
and Kolmogorov-Smirnov tests against N(0, 1).
Needs a trained VAE in --config.run; the default one is trained first when missing (CPU-scaled: several minutes).
Runtime (CPU, trained VAE): about 20 s. GPU: not measured.
Expected result: figures/concept_histograms.png and figures/dimension_histograms.png; summary.json;
as in the seed, the values look normal-ish but not always centred on 0 with unit spread (the
posterior means of a VAE are narrower than the prior), which the tests quantify.
"""

import sys
from pathlib import Path

import ml_collections

from experiments import vae_celeba
from gan_arith import artifacts, figures
from gan_arith.files import write_json
from gan_arith.cli import run_experiment
from gan_arith.config import analysis_config, check_ranges
from gan_arith.errors import InputError
from gan_arith.latent import distributions, pools, sweeps
from gan_arith.latent.concepts import concept_vector


def get_config() -> ml_collections.ConfigDict:
    config = analysis_config("workdirs/vae_celeba", vae_celeba.get_config(), classifier=False)
    config.queries = pools.SEED_QUERIES
    config.partition = "test"
    config.per_concept = 200
    config.k = 3
    config.num_encodings = 90
    config.dimensions = (0, 1, 2)
    return config


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    check_ranges(config, positive=("per_concept", "k", "num_encodings"), choices={"partition": ("train", "valid", "test")})
    run = artifacts.trained_run(config)
    if not all(isinstance(d, int) and 0 <= d < run.latent_dim for d in config.dimensions):
        raise InputError(f"config.dimensions must be latent dimensions 0..{run.latent_dim - 1}, got {tuple(config.dimensions)}")
    store = artifacts.run_store(run)
    pools.check_queries(config.queries, store.attribute_names)
    figures_dir = Path(workdir) / "figures"
    pool = pools.encoded_pool(
        run, store, pools.parse_queries(config.queries), per_concept=config.per_concept, partition=config.partition
    )
    vectors = {name: concept_vector(pool.latents[rows[0]]) for name, rows in pool.draw(config.k, 1, config.seed).items()}
    _, latents = sweeps.encoded_faces(run, store, query=None, partition=config.partition, count=config.num_encodings)
    summary = {
        "run": str(run.workdir),
        "figures": {
            "concepts": figures.plot_concept_histograms(vectors, figures_dir / "concept_histograms.png",
                                                        title=f"averages of k = {config.k} encoded faces"),
            "dimensions": figures.plot_dimension_histograms(latents, figures_dir / "dimension_histograms.png",
                                                            dimensions=config.dimensions),
        },
        "concept_histograms": distributions.histogram_data(vectors),
        "dimensions": distributions.dimension_summary(latents),
        "normality": distributions.normality_test(latents),
    }
    write_json(summary, Path(workdir) / "summary.json")
    dims, normality = summary["dimensions"], summary["normality"]
    print(
        f"{dims['num_vectors']} encodings, D = {dims['latent_dim']}: pooled mean {dims['pooled_mean']:.3f}, "
        f"std {dims['pooled_std']:.3f}; max |mean| {dims['max_abs_mean']:.3f}; std range "
        f"{dims['std_range'][0]:.3f}..{dims['std_range'][1]:.3f}; KS vs N(0, 1) rejects "
        f"{normality['dimensions_rejected_bonferroni']} of {dims['latent_dim']} dimensions (Bonferroni); "
        f"figures in {figures_dir}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_experiment(get_config, main, "latent_distributions")
