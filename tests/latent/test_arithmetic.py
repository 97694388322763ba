"""Tests for gan_arith/latent/arithmetic.py: faces of concept averages and results, figures, summary."""

import numpy as np
import pytest

from gan_arith.latent import arithmetic, pools


def test_concept_arithmetic_generates_the_exact_result(fake_run, tmp_path):
    latents = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    pool = pools.ConceptPool(latents, pools.generate_images(fake_run, latents),
                             {"a": np.arange(0, 3), "b": np.arange(3, 6), "c": np.arange(6, 9)}, "test")
    members = pool.draw(k=2, num_draws=3, seed=0)
    images = arithmetic.concept_arithmetic(fake_run, pool, "a - b + c", members)
    expected = latents[members["a"]].mean(1) - latents[members["b"]].mean(1) + latents[members["c"]].mean(1)
    np.testing.assert_allclose(images.arithmetic.results, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(images.result_images, pools.generate_images(fake_run, expected))
    assert images.average_images["b"].shape == (3, 4, 4, 3)

    paths = arithmetic.write_arithmetic_figures(images, pool, tmp_path, "test", draws_shown=2)
    assert sorted(paths) == ["arithmetic", "draws"] and all(open(p, "rb").read(4) == b"\x89PNG" for p in paths.values())
    summary = arithmetic.arithmetic_summary(images, pool)
    assert summary["expression"] == "a - b + c" and summary["k"] == {"a": 2, "b": 2, "c": 2}
    assert summary["result_norm_mean"] == pytest.approx(np.linalg.norm(expected, axis=1).mean(), rel=1e-5)
    assert summary["first_draw_members"]["a"] == members["a"][0].tolist()
