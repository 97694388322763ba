"""The GAN-quality experiments end to end on one tiny synthetic DCGAN, and the loop's Fréchet checkpoint choice.

One session-scoped run (40px: the attribute classifier needs >= 32, the DCGAN 5·2^k; width 8,
latent 8, 160 faces, 2 epochs) is trained with best_metric="frechet": it tests the loop's metric
and serves every experiment. The classifier it trains on the way lives in the session's shared
`classifier_dir` (conftest) with the shared step count, so it is trained once, as in real use.
"""

import json
import math
from pathlib import Path

import pytest

from experiments import dcgan_celeba, discriminator_filter, inversion, noise_classifier
from gan_arith.artifacts import frechet_metric, run_store, train
from gan_arith.runs import load_run

pytestmark = pytest.mark.slow  # trains tiny runs end to end

CLASSIFIER_STEPS = 30  # as the shared tiny_experiment_config, so the session trains one classifier
SIZE = 40


@pytest.fixture(scope="session")
def tiny_gan(tmp_path_factory, classifier_dir) -> dict:
    root = tmp_path_factory.mktemp("tiny_gan")
    config = dcgan_celeba.get_config()
    config.scale_for_cpu = False
    config.model.update(image_size=SIZE, width=8, latent_dim=8)
    config.data.update(default_store=str(root / "no_store"), synthetic_dir=str(root / "synthetic"), synthetic_faces=160)
    config.update(batch_size=16, num_epochs=2, eval_every_epochs=1, num_samples=8, tensorboard=False)
    config.update(best_metric="frechet", num_fd_samples=64, classifier_dir=str(classifier_dir),
                  classifier_steps=CLASSIFIER_STEPS)
    train(config, root / "run")
    return {"root": root, "workdir": root / "run", "train": config}


def experiment_config(module, tiny_gan: dict, **changes):
    config = module.get_config()
    config.update(run=str(tiny_gan["workdir"]), train=tiny_gan["train"], classifier_dir=tiny_gan["train"].classifier_dir,
                  classifier_steps=CLASSIFIER_STEPS)
    config.update(changes)
    return config


def test_loop_logs_the_frechet_distance_and_keeps_the_lowest_as_best(tiny_gan):
    workdir = tiny_gan["workdir"]
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in rows if row["split"] == "eval"]
    assert len(evals) == 2 and all(math.isfinite(row["frechet"]) and row["frechet"] >= 0 for row in evals)
    best_steps = [int(p.name) for p in (workdir / "checkpoints" / "best").iterdir() if p.name.isdigit()]
    assert best_steps == [min(evals, key=lambda row: row["frechet"])["step"]]
    # The metric is a function of the checkpoint: recomputing it on the best one gives the logged value.
    run = load_run(workdir)
    metric = frechet_metric(run.config)(run_store(run), run.steps)
    assert metric(run.state) == pytest.approx(min(row["frechet"] for row in evals), rel=1e-4)


def _check_noise(summary: dict, filtered: list[str], sets: int, printed: str) -> None:
    """The summary's noise floor is the spread of `sets` unfiltered sets; each filtered sampler is judged by it."""
    noise, quality = summary["noise"], summary["quality"]
    names = ["unfiltered"] + [f"unfiltered_{i}" for i in range(2, sets + 1)]
    assert noise["unfiltered_sets"] == names and noise["spreads"] == 2.0
    frechets = [quality[name]["frechet"] for name in names]
    assert len(set(frechets)) == sets  # independent sets, not one set scored again
    assert noise["floor"]["frechet"]["mean"] == pytest.approx(sum(frechets) / sets)
    std = noise["floor"]["frechet"]["std"]
    assert std == pytest.approx((sum((f - sum(frechets) / sets) ** 2 for f in frechets) / (sets - 1)) ** 0.5)
    assert set(noise["samplers"]) == set(filtered)
    assert "noise floor, %d unfiltered sets" % sets in printed
    for name in filtered:
        verdict = noise["samplers"][name]["frechet"]
        difference = quality[name]["frechet"] - noise["floor"]["frechet"]["mean"]
        sd = std * math.sqrt(1 + 1 / sets)  # the spread of one more set's distance minus the sets' mean
        assert verdict["difference"] == pytest.approx(difference) and verdict["in_spreads"] == pytest.approx(difference / sd)
        expected = "within noise" if abs(difference) < 2 * sd else ("better" if difference < 0 else "worse")
        assert verdict["verdict"] == expected
        assert f"{name} vs unfiltered: Fréchet {quality[name]['frechet']:.3f}" in printed and expected in printed


def test_discriminator_filter_writes_distances_for_each_sampler(tiny_gan, tmp_path, capsys):
    config = experiment_config(discriminator_filter, tiny_gan, num_samples=48, num_real=64, top_fraction=0.25,
                               drs_acceptance=0.5, drs_burn_in=256, kid_subsets=5)
    discriminator_filter.main(config, str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["quality"]) == {"unfiltered", "unfiltered_2", "unfiltered_3", "top_fraction",
                                       "rejection_sampling", "real_valid"}
    _check_noise(summary, ["top_fraction", "rejection_sampling"], 3, capsys.readouterr().err)
    for numbers in summary["quality"].values():
        assert math.isfinite(numbers["frechet"]) and numbers["frechet"] >= 0
        assert 0.5 <= numbers["confidence"] <= 1 and math.isfinite(numbers["kid_mean"])
    top, drs = summary["sampling"]["top_fraction"], summary["sampling"]["rejection_sampling"]
    assert (top["proposed"], top["accepted"], top["acceptance_rate"]) == (192, 48, 0.25)
    assert drs["accepted"] >= 48 and 0.2 < drs["acceptance_rate"] < 0.8
    assert (tmp_path / "figures" / "scored_faces.png").stat().st_size > 1000


def test_inversion_compares_three_methods_and_saves_the_encoder(tiny_gan, tmp_path):
    # Fine-tuning and reuse of the saved encoder are tested in tests/evaluation/test_inversion.py.
    config = experiment_config(inversion, tiny_gan, num_images=8, steps=15, restarts=2, feature_weight=0.1,
                               encoder_width=8, encoder_steps=15, finetune_steps=0, batch_size=8)
    inversion.main(config, str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["methods"]) == {"optimisation", "encoder", "encoder+optimisation"}
    for numbers in summary["methods"].values():
        assert 0 < numbers["psnr"] < 100 and -1 <= numbers["ssim"] <= 1 and numbers["seconds_per_image"] > 0
    assert (tmp_path / "figures" / "reconstructions.png").stat().st_size > 1000
    record = json.loads((tmp_path / "encoder" / "encoder.json").read_text())
    assert record["trained_for"]["run"] == str(Path(tiny_gan["workdir"]).absolute()) and record["latent_steps"] == 15
    assert (tmp_path / "encoder" / "params").is_dir()


def test_noise_classifier_reports_auc_and_filtered_distances(tiny_gan, tmp_path, capsys):
    config = experiment_config(noise_classifier, tiny_gan, pool_size=400, mlp_steps=40, num_samples=32, num_real=64,
                               kid_subsets=5, noise_sets=2)
    noise_classifier.main(config, str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["quality"]) == {"unfiltered", "unfiltered_2", "predicted_good"}
    _check_noise(summary, ["predicted_good"], 2, capsys.readouterr().err)
    assert summary["held_out"] == 40  # 20% of the 200 labelled extremes (25% each side of 400)
    assert 0 <= summary["held_out_auc"] <= 1 and summary["train_accuracy"] > 0.5
    assert summary["sampling"]["accepted"] >= 32 and 0 < summary["sampling"]["acceptance_rate"] <= 1
    for numbers in summary["quality"].values():
        assert math.isfinite(numbers["frechet"]) and numbers["frechet"] >= 0
    assert all(Path(path).stat().st_size > 1000 for path in summary["figures"])


@pytest.mark.parametrize("module", [discriminator_filter, noise_classifier])
def test_one_unfiltered_set_gives_no_noise_floor_and_is_refused_first(module, tmp_path):
    config = module.get_config()
    config.update(run=str(tmp_path / "no_run"), noise_sets=1)
    with pytest.raises(ValueError, match="noise_sets must be an integer >= 2, got 1"):
        module.main(config, str(tmp_path))
