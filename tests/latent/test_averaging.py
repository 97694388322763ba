"""Success rates per k and per way of averaging (gan_arith/latent/averaging.py), on the fake run of conftest.py."""

import dataclasses

import numpy as np
import pytest

from gan_arith.errors import InputError
from gan_arith.latent import averaging
from gan_arith.latent.arithmetic import concept_arithmetic
from gan_arith.latent.pools import ConceptPool, encode_means

EXPRESSION = "a - b + c"


def _real_faces_pool(run, sizes=(4, 5, 6)) -> ConceptPool:
    faces = np.random.default_rng(0).integers(0, 256, size=(sum(sizes), 4, 4, 3), dtype=np.uint8)
    starts = np.cumsum((0,) + sizes)
    candidates = {name: np.arange(start, start + size) for name, start, size in zip("abc", starts, sizes)}
    return ConceptPool(encode_means(run, faces), faces, candidates, "encoded")


def _reading(successes: int, trials: int = 10) -> dict:
    rate = {"rate": successes / trials, "successes": successes, "trials": trials, "ci_low": 0.0, "ci_high": 1.0}
    return {"target": "Smiling & Male", "source": "encoded", "classifier": {"result": rate, "baseline": rate},
            "judge": {"result": rate, "baseline": rate}, "relative_to_hit_rate": 1.0,
            "judge_hit_rate": {"rate": 0.8, "successes": 8, "trials": 10, "ci_low": 0.5, "ci_high": 0.9}}


def test_check_ks_sorts_and_refuses_bad_lists():
    assert averaging.check_ks((10, 3, 3, 1)) == [1, 3, 10]
    for ks, message in (((), "at least one k"), ((0,), "positive integers"), ((2, True), "positive integers"),
                        ((1.5,), "positive integers")):
        with pytest.raises(InputError, match=message):
            averaging.check_ks(ks)


def test_image_average_equals_latent_average_under_a_linear_encoder(fake_run):
    # The fake encoder reads the first pixel values: linear, so the average image encodes to the average encoding.
    run = dataclasses.replace(fake_run, kind="vae")
    pool = _real_faces_pool(run)
    members = pool.draw(3, 5, seed=1)
    by_images = averaging.image_average_arithmetic(run, pool, EXPRESSION, members)
    by_latents = concept_arithmetic(run, pool, EXPRESSION, members)
    np.testing.assert_allclose(by_images.arithmetic.results, by_latents.arithmetic.results, atol=1e-5)
    assert by_images.result_images.shape == (5, 4, 4, 3)
    with pytest.raises(ValueError, match="needs an encoder"):
        averaging.image_average_arithmetic(fake_run, pool, EXPRESSION, members)
    with pytest.raises(ValueError, match="averaging must be one of latents, images"):
        averaging.Contender("vae", run, pool, lambda *a, **k: {}, "pixels")


def test_success_by_k_draws_the_same_members_for_pools_with_the_same_candidates(fake_run, capsys):
    gan, vae = fake_run, dataclasses.replace(fake_run, kind="vae")
    read_images = []

    def read(images, *, source):
        read_images.append(images)
        return {"source": source, "count": len(images)}

    pool = _real_faces_pool(vae)
    contenders = [averaging.Contender("vae", vae, pool, read), averaging.Contender("gan", gan, pool, read)]
    rows, skipped = averaging.success_by_k(contenders, EXPRESSION, (5, 1, 3), num_draws=6, seed=2)
    assert [(row["model"], row["k"], row["draws"]) for row in rows] == [
        ("vae", 1, 6), ("vae", 3, 6), ("gan", 1, 6), ("gan", 3, 6)]
    assert [(row["model"], row["k"]) for row in skipped] == [("vae", 5), ("gan", 5)]  # concept a has 4 candidates
    assert "k=5 exceeds the candidates of the smallest concept (a 4, b 5, c 6)" in capsys.readouterr().err
    # The same draws: the GAN and the VAE here share the generator, so equal draws give equal faces.
    np.testing.assert_array_equal(read_images[0], read_images[2])
    assert rows[0]["success"] == {"source": "encoded", "count": 6}


def test_rows_as_figures_and_tables_take_them(tmp_path):
    rows = [{"model": model, "members": members, "averaging": way, "k": k, "draws": 10, "success": _reading(s)}
            for model, members, way, k, s in (
                ("dcgan", "inverted", "latents", 3, 4), ("dcgan", "inverted", "latents", 1, 2),
                ("vae", "encoded", "latents", 1, 3), ("vae", "encoded", "latents", 3, 5), ("vae", "encoded", "images", 3, 1))]
    curves = averaging.rate_curves(rows, "judge")
    np.testing.assert_allclose(curves["dcgan, inverted members"], [[1, 0.2, 0, 1], [3, 0.4, 0, 1]])
    assert set(curves) == {"dcgan, inverted members", "vae, encoded members", "vae, encoded members, image average"}
    assert set(averaging.reference_rates(rows, "judge")) == {"dcgan random samples", "vae random samples",
                                                             "real Smiling & Male faces"}
    questions = averaging.question_rows(rows, compare_k=3)
    assert [(row["averaging"], row["k"]) for row in questions["image_average"]] == [
        ("latents", 1), ("latents", 3), ("images", 3)]
    assert {row["model"] for row in questions["gan_or_vae"]} == {"dcgan", "vae"}
    assert averaging.question_rows(rows[:2], compare_k=3)["gan_or_vae"] == []  # one model: nothing to compare
    bars = averaging.rate_bars(questions["gan_or_vae"], "judge", averaging.row_label, lambda row: "results", baselines=True)
    assert bars["vae, encoded members"] == {"results": (0.5, 0, 1), "random samples": (0.5, 0, 1),
                                            "real Smiling & Male faces": (0.8, 0.5, 0.9)}
    paths = averaging.write_question_figures(rows, tmp_path, compare_k=3, expression=EXPRESSION)
    assert sorted(paths) == ["gan_or_vae", "image_average", "more_members"]
    results = {"command": "c", "expression": EXPRESSION, "target": "Smiling & Male", "per_concept": 60,
               "partition": "test", "num_draws": 10, "compare_k": 3, "rows": rows, "concepts": ["a"],
               "skipped": [{"model": "vae", "members": "encoded", "averaging": "images", "k": 50, "reason": "r"}],
               "models": {"vae": {"pools": {"encoded": {"read_as_concept": {"a": {"rate": 0.5, "trials": 8}}}}}}}
    table = averaging.questions_markdown(results)
    assert "| images | 3 | 10 | 10% [0%, 100%] of 10 |" in table
    assert "Left out (too few candidates): vae, encoded members, image average k=50." in table
    assert "| vae | encoded | 50% of 8 |" in table
