"""The VAE seed's open questions, measured: more members per concept? average images or latents? GAN or VAE?

    python -m experiments.open_questions [--workdir=workdirs/open_questions] [--config.key=value ...]

The VAE seed found `smiling woman - neutral woman + neutral man` poor and asked: "Perhaps we need
more than just 3 images to average?", "I think taking the average of the images is causing
problems", "Perhaps a GAN would work better?". Concepts are attribute queries (--config.queries)
over the same labelled real faces for both models (the first --config.per_concept of each concept
in --config.partition), inverted into the GAN ('inverted' members) and encoded by the VAE
('encoded'); --config.gan_members=inversion,scored adds the classifier's top-scored GAN samples
('scored'). For each k of --config.ks, --config.num_draws draws of k members per concept (the
same draws for both models) give as many results, read by the project classifier and the
independent judge (evaluation/judge.py) against each model's random samples, with the judge's hit
rate on real target faces (95% Wilson intervals). Questions: (1) the rate against k; (2) VAE: the
members' images averaged then encoded (the seed's way) against their encodings averaged, per k;
(3) GAN against VAE at k = --config.compare_k. k values above a pool's smallest concept are left
out, and said so. Library: gan_arith/latent/averaging.py.
Needs trained runs on one store in --config.dcgan.run / --config.vae.run (the defaults are trained
first when missing, CPU-scaled).
Runtime (CPU, 2 shared cores): inverting the real faces dominates. Timed with an untrained generator
of each shape, 3 x 60 faces at the CPU defaults (--config.inversion_steps=100,
--config.inversion_restarts=2) take about 5 minutes at the CPU-scaled 40px/width 32 and about 95
minutes at the seed's 80px/width 128 (lower per_concept, steps or restarts to shorten it; k above
per_concept is then left out). The rest was not timed on CelebA runs; on the tests' tiny runs the
whole experiment takes about 20 s after the classifier and judge have trained. GPU: not measured.
Expected result: open_questions.json (one row per model, members, averaging and k with both
readings, the k values left out, each pool's faces read as their concept), open_questions.md (a
table per question) and figures/rate_by_k.png, image_vs_latent_average.png, gan_vs_vae.png in the
workdir. On the CelebA subset (VAE only, --config.kinds=vae): the classifier's rate climbs with k
(39% at k = 1, 74% at 3, 99% at 20) while the judge's stays near random decodes (13-21%), and
averaging images or encodings reads the same (docs/results.md).
"""

import sys
from pathlib import Path
from typing import Any

import ml_collections

from experiments import dcgan_celeba, vae_celeba
from gan_arith import artifacts
from gan_arith.cli import run_experiment
from gan_arith.config import analysis_config, check_ranges, selected_kinds
from gan_arith.data.store import FaceStore, check_query
from gan_arith.errors import InputError
from gan_arith.evaluation.judge import load_or_train_judge, success_reader
from gan_arith.files import write_json, write_text
from gan_arith.latent import averaging, pools

GAN_MEMBERS = ("inversion", "scored")


def get_config() -> ml_collections.ConfigDict:
    # Inverting the real faces is the slow part on a CPU (each face: steps x restarts generator passes).
    config = analysis_config(judge=True, cpu={"inversion_steps": 100, "inversion_restarts": 2})
    config.kinds = "dcgan,vae"
    # Training workdirs (trained first if they have no finished run) and what to train there.
    config.dcgan = ml_collections.ConfigDict({"run": "workdirs/dcgan_celeba", "train": dcgan_celeba.get_config()})
    config.vae = ml_collections.ConfigDict({"run": "workdirs/vae_celeba", "train": vae_celeba.get_config()})
    config.queries = pools.SEED_QUERIES
    config.expression = pools.SEED_EXPRESSION
    config.target = pools.SEED_TARGET
    config.ks = averaging.K_VALUES  # members averaged per concept
    config.compare_k = 3  # the k of the GAN-or-VAE comparison (the seeds' 3)
    config.num_draws = 100
    config.num_baseline = 1000
    config.partition = "test"  # the labelled real faces both models' members come from
    config.per_concept = 60
    config.inversion_steps = 300
    config.inversion_restarts = 4
    config.gan_members = "inversion,scored"  # 'inversion': the real faces; 'scored': classifier-picked samples
    config.pool_size = 2000  # scored: generated faces the classifier ranks
    config.top_n = 60  # scored: candidates kept per concept
    return config


def check_options(config: ml_collections.ConfigDict) -> tuple[list[str], list[str], list[int]]:
    """(kinds, GAN member sources, ks), or an InputError for the first bad option, before any model loads."""
    check_ranges(config, positive=("compare_k", "num_draws", "num_baseline", "per_concept", "inversion_steps",
                                   "inversion_restarts", "pool_size", "top_n", "classifier_steps", "judge_steps"),
                 choices={"partition": ("train", "valid", "test")})
    kinds, ks = selected_kinds(config), averaging.check_ks(config.ks)
    if config.compare_k not in ks:
        raise InputError(f"config.compare_k={config.compare_k} is not among config.ks {tuple(ks)}")
    sources = [source.strip() for source in config.gan_members.split(",") if source.strip()]
    if not sources or any(source not in GAN_MEMBERS for source in sources):
        raise InputError(f"config.gan_members must be a comma-separated subset of {','.join(GAN_MEMBERS)}, "
                         f"got {config.gan_members!r}")
    pools.check_arithmetic(config.expression, config.queries)
    return kinds, sources, ks


def contenders(
    config: ml_collections.ConfigDict, kinds: list[str], gan_members: list[str]
) -> tuple[list[averaging.Contender], dict[str, Any]]:
    """The contenders of every kind (GAN: inverted and/or scored members; VAE: encoded members, averaged as
    latents and as images), each read against its model's random samples, and each model's summary."""
    loaded = {}
    for kind in kinds:
        def check_names(store: FaceStore, classified: tuple[str, ...], kind: str = kind) -> None:
            check_query(config.target, classified, "config.target")
            pools.check_queries(config.queries, store.attribute_names)  # labelled real faces
            if kind == "dcgan" and "scored" in gan_members:
                pools.check_queries(config.queries, classified)
        loaded[kind] = artifacts.run_store_and_classifier(config, kind, check=check_names)
    roots = {kind: str(store.root.resolve()) for kind, (_, store, _) in loaded.items()}
    if len(set(roots.values())) > 1:  # checked before the slow part: the same real faces need one store
        raise InputError(f"the runs read different face stores ({roots}): train them on one store to compare them "
                         f"on the same faces")
    sizes = {kind: run.image_size for kind, (run, _, _) in loaded.items()}
    if len(set(sizes.values())) > 1:
        print(f"warning: the runs make faces of different sizes ({sizes}): each is read by a classifier and a judge "
              f"trained at its own size", file=sys.stderr)
    queries, found, models = pools.parse_queries(config.queries), [], {}
    for kind, (run, store, scorer) in loaded.items():
        judge = load_or_train_judge(store, run.image_size, config.judge_dir, steps=config.judge_steps)
        read = success_reader(scorer, judge, store, pools.prior_samples(run, config.num_baseline, config.seed + 1),
                              config.target)
        models[kind] = {"run": str(run.workdir), "image_size": run.image_size, "store": roots[kind],
                        "classifier_accuracy": scorer.test_accuracy, "judge_accuracy": judge.test_accuracy, "pools": {}}
        for source in gan_members if kind == "dcgan" else ["encoded"]:
            if source == "inversion":
                print(f"inverting up to {len(queries) * config.per_concept} real faces into {run.workdir} "
                      f"({config.inversion_steps} steps, {config.inversion_restarts} starts each)...", file=sys.stderr)
            pool = pools.label_defined_pool(
                run, store, scorer, queries, source=source, pool_size=config.pool_size, top_n=config.top_n,
                per_concept=config.per_concept, partition=config.partition, seed=config.seed,
                inversion_steps=config.inversion_steps, inversion_restarts=config.inversion_restarts,
            )
            models[kind]["pools"][pool.source] = {
                **pool.summary(), "read_as_concept": averaging.members_matching(run, scorer, pool, queries)}
            ways = averaging.AVERAGING if kind == "vae" else ("latents",)  # averaging images needs an encoder
            found += [averaging.Contender(kind, run, pool, read, way) for way in ways]
    return found, models


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    kinds, gan_members, ks = check_options(config)
    found, models = contenders(config, kinds, gan_members)
    rows, skipped = averaging.success_by_k(found, config.expression, ks, num_draws=config.num_draws, seed=config.seed)
    results = {
        "command": " ".join(["python -m experiments.open_questions", *sys.argv[1:]]),
        "expression": config.expression, "target": config.target, "concepts": list(pools.parse_queries(config.queries)),
        "ks": ks, "compare_k": config.compare_k, "num_draws": config.num_draws, "per_concept": config.per_concept,
        "partition": config.partition, "models": models, "rows": rows, "skipped": skipped,
    }
    results["figures"] = averaging.write_question_figures(rows, Path(workdir) / "figures", compare_k=config.compare_k,
                                                          expression=config.expression)
    write_json(results, Path(workdir) / "open_questions.json")
    table = averaging.questions_markdown(results)
    write_text(Path(workdir) / "open_questions.md", table)
    print(table, file=sys.stderr)


if __name__ == "__main__":
    run_experiment(get_config, main, "open_questions")
