"""experiments.evaluate on tiny trained models: results.json and the markdown table, with consistent numbers."""

import json

import numpy as np
import pytest

from experiments import evaluate
from gan_arith import artifacts
from gan_arith.data.store import attribute_mask
from gan_arith.runs import load_run

pytestmark = pytest.mark.slow  # trains tiny runs end to end


def test_evaluate_writes_results_for_both_models(tiny_experiment_config, tmp_path):
    config = tiny_experiment_config(
        evaluate, num_draws=5, num_baseline=20, pool_size=48, top_n=6, per_concept=20, partition="train", num_generated=24
    )
    evaluate.main(config, str(tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["models"]) == {"dcgan", "vae"} and results["target"] == "Smiling & Male"
    for kind, row in results["models"].items():
        arithmetic = row["arithmetic"]
        rates = [row["real_target_rate"], arithmetic["judge_hit_rate"]]
        for reader in ("classifier", "judge"):  # both readings, side by side
            assert arithmetic[reader]["result"]["trials"] == 5 and arithmetic[reader]["baseline"]["trials"] == 20
            rates += [arithmetic[reader]["result"], arithmetic[reader]["baseline"]]
        for rate in rates:
            assert 0.0 <= rate["ci_low"] <= rate["rate"] <= rate["ci_high"] <= 1.0
        assert set(row["classifier_accuracy"]) == set(row["judge_accuracy"]) == {"Blond_Hair", "Eyeglasses", "Male", "Smiling"}
        assert row["distances"]["frechet"] > 0 and row["distances"]["generated"] == 24
        source = "encoded" if kind == "vae" else "scored"
        assert row["pool"]["source"] == arithmetic["source"] == source
    # The real-face rate is the ground truth of the store's test partition.
    store = artifacts.run_store(load_run(results["models"]["vae"]["run"]))
    test = store.attributes[store.select(None, "test")]
    expected = attribute_mask("Smiling & Male", store.attribute_names, test).mean()
    assert np.isclose(results["models"]["vae"]["real_target_rate"]["rate"], expected)
    table = (tmp_path / "results.md").read_text()
    assert table.count("\n| dcgan | scored |") == 1 and table.count("\n| vae | encoded |") == 1
    assert "python -m experiments.evaluate" in table and "| judge on real Smiling & Male faces |" in table
