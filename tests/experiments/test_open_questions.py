"""experiments.open_questions on the tiny trained runs: files, one row per k per contender, rates that match
the library called directly (latent and image averages), and bad options refused in one line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from experiments import open_questions
from gan_arith import artifacts
from gan_arith.evaluation.judge import judged_success, load_or_train_judge
from gan_arith.evaluation.scorer import load_or_train_classifier
from gan_arith.evaluation.success_rate import attribute_success
from gan_arith.latent import pools
from gan_arith.latent.arithmetic import concept_arithmetic
from gan_arith.runs import load_run

TINY = dict(ks=(1, 2, 3, 20), compare_k=3, num_draws=4, num_baseline=16, per_concept=8, partition="train",
            inversion_steps=5, inversion_restarts=1, pool_size=32, top_n=6)


@pytest.mark.slow
def test_open_questions_rows_figures_and_oracle(tiny_experiment_config, classifier_dir, judge_dir, tmp_path):
    config = tiny_experiment_config(open_questions, **TINY)
    open_questions.main(config, str(tmp_path))
    results = json.loads((tmp_path / "open_questions.json").read_text())
    for name in ("rate_by_k", "image_vs_latent_average", "gan_vs_vae"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 0
    contenders = {("dcgan", "inverted", "latents"), ("dcgan", "scored", "latents"), ("vae", "encoded", "latents"),
                  ("vae", "encoded", "images")}
    keys = [(row["model"], row["members"], row["averaging"], row["k"]) for row in results["rows"]]
    assert sorted(keys) == sorted((*c, k) for c in contenders for k in (1, 2, 3))  # k=20 > 8 (6 scored) candidates
    assert sorted((row["model"], row["members"], row["averaging"], row["k"]) for row in results["skipped"]) == sorted(
        (*c, 20) for c in contenders)
    for row in results["rows"]:
        assert row["draws"] == 4 and row["success"]["source"] == row["members"]
        for reader in ("classifier", "judge"):  # both readings of every row
            assert row["success"][reader]["result"]["trials"] == 4 and row["success"][reader]["baseline"]["trials"] == 16
    # The GAN's inversions and the VAE's encodings are of the same real faces.
    pools_of = {model: summary["pools"] for model, summary in results["models"].items()}
    assert pools_of["dcgan"]["inverted"]["candidates"] == pools_of["vae"]["encoded"]["candidates"]
    table = (tmp_path / "open_questions.md").read_text()
    assert table.count("\n## ") == 4 and "| dcgan | scored | 3 | 4 |" in table and "| images | 3 | 4 |" in table

    # Oracle at k=3: the VAE's rates from the library called directly, and the seed's image average by hand.
    run = load_run(results["models"]["vae"]["run"])
    store = artifacts.run_store(run)
    scorer = load_or_train_classifier(store, run.image_size, classifier_dir, steps=30)
    judge = load_or_train_judge(store, run.image_size, judge_dir, steps=30)
    pool = pools.encoded_pool(run, store, pools.parse_queries(config.queries), per_concept=8, partition="train")
    members = pool.draw(3, 4, config.seed)
    baseline = pools.prior_samples(run, 16, config.seed + 1)
    expected = judged_success(scorer, judge, store, concept_arithmetic(run, pool, config.expression, members).result_images,
                              baseline, config.target, source="encoded")
    row = {(r["averaging"], r["k"]): r["success"] for r in results["rows"] if r["model"] == "vae"}
    for reader in ("classifier", "judge"):
        for part in ("result", "baseline"):
            assert row["latents", 3][reader][part] == expected[reader][part]
    vectors = {name: pools.encode_means(run, pool.images[rows].astype(np.float32).mean(axis=1) / 127.5 - 1)
               for name, rows in members.items()}
    faces = pools.generate_images(run, vectors["smiling_woman"] - vectors["neutral_woman"] + vectors["neutral_man"])
    hits = attribute_success(scorer.probabilities(faces), scorer.attribute_names, config.target)
    assert row["images", 3]["classifier"]["result"]["successes"] == int(hits.sum())


@pytest.mark.slow
@pytest.mark.parametrize("option,message", [
    ("--config.ks=()", "config.ks must list at least one k"),
    ("--config.ks=(3,0)", "config.ks must hold positive integers (members averaged per concept), got 0 in (3, 0)"),
    ("--config.kinds=dcgan,gan", "config.kinds must be a comma-separated subset of dcgan,vae, got 'dcgan,gan'"),
])
def test_bad_options_end_the_command_with_one_line(option, message, tmp_path):
    # (test_option_checks checks every bad option is refused before a model loads)
    done = subprocess.run([sys.executable, "-m", "experiments.open_questions", option, f"--workdir={tmp_path / 'out'}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"open_questions: {message}")
    assert not (tmp_path / "out").exists()
