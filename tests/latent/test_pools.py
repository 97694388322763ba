"""Tests for gan_arith/latent/pools.py: concept definitions, saved grids, scored and real-face pools."""

import dataclasses

import numpy as np
import pytest

from gan_arith.data.synthetic import ensure_synthetic_store
from gan_arith.data.store import attribute_mask
from gan_arith.latent import pools


def test_split_definitions_and_queries():
    assert pools.split_definitions(" a=1,2 ;b=3; ") == ["a=1,2", "b=3"]
    assert pools.parse_queries(pools.SEED_QUERIES) == {
        "smiling_woman": "Smiling & ~Male", "neutral_woman": "~Smiling & ~Male", "neutral_man": "~Smiling & Male"
    }
    with pytest.raises(ValueError, match="no concept definitions"):
        pools.split_definitions(" ; ")
    with pytest.raises(ValueError, match="defined twice"):
        pools.parse_queries("a=Smiling; a=Male")


@pytest.mark.parametrize("expression,definitions,hand_picked,message", [
    (pools.SEED_EXPRESSION, pools.SEED_QUERIES, False, None),
    ("a - b + c", "a=1,2; b=3; c=4", True, None),
    ("a - b + d", "a=Smiling; b=Male; c=Eyeglasses", False, "unknown concept\\(s\\) d in the expression; known concepts: a, b, c"),
    ("a - * b", "a=1; b=2", True, "unexpected .\*. at position 4"),
    ("a", "a=1,x", True, "'x' in 'a=1,x' is not a non-negative integer index"),
    ("a", "a=Smiling", True, "is not a non-negative integer index"),  # queries given where indices are meant
])
def test_check_arithmetic_before_any_model_is_loaded(expression, definitions, hand_picked, message):
    if message is None:
        pools.check_arithmetic(expression, definitions, hand_picked=hand_picked)
    else:
        with pytest.raises(ValueError, match=message):
            pools.check_arithmetic(expression, definitions, hand_picked=hand_picked)


def test_saved_latents_are_drawn_once_and_reused(tmp_path):
    path = tmp_path / "grid.npy"
    first = pools.saved_latents(path, 6, 4, seed=1)
    assert first.shape == (6, 4) and path.exists()
    np.testing.assert_array_equal(pools.saved_latents(path, 6, 4, seed=2), first)  # loaded, not redrawn
    with pytest.raises(ValueError, match="delete it"):
        pools.saved_latents(path, 8, 4)


def test_hand_picked_pool_is_one_fixed_draw(fake_run):
    latents = np.arange(24, dtype=np.float32).reshape(6, 4)
    pool = pools.hand_picked_pool(fake_run, latents, "a=4,0; b=5")
    members = pool.draw(k=3, num_draws=7)
    assert {name: rows.tolist() for name, rows in members.items()} == {"a": [[4, 0]], "b": [[5]]}
    np.testing.assert_array_equal(pool.images[2], pools.generate_images(fake_run, latents[2:3])[0])
    with pytest.raises(ValueError, match="out of range"):
        pools.hand_picked_pool(fake_run, latents, "a=6")


def test_scored_pool_keeps_the_best_scored_samples(fake_run, fake_scorer):
    queries = {"smiling_man": "Smiling & Male", "neutral": "~Smiling"}
    pool = pools.scored_pool(fake_run, fake_scorer, queries, count=50, top_n=5, seed=0)
    probabilities = fake_scorer.probabilities(pool.images)
    best = np.argsort(-(probabilities[:, 0] * probabilities[:, 1]))[:5]
    np.testing.assert_array_equal(pool.candidates["smiling_man"], best)
    np.testing.assert_allclose(pool.candidate_scores["neutral"], np.sort(1 - probabilities[:, 0])[::-1][:5])
    assert pool.summary()["candidates"] == {"smiling_man": 5, "neutral": 5}
    draws = pool.draw(k=3, num_draws=4, seed=0)
    assert all(set(rows.ravel()) <= set(pool.candidates[name]) for name, rows in draws.items())


def test_a_rare_concept_s_unmatched_candidates_are_reported(fake_run, fake_scorer, capsys):
    queries = {"rare": "Smiling & Male & Eyeglasses", "neutral": "~Smiling"}
    pool = pools.scored_pool(fake_run, fake_scorer, queries, count=50, top_n=5, seed=0)
    matching = {name: int(np.sum(scores >= 0.5)) for name, scores in pool.candidate_scores.items()}
    assert matching["rare"] < 5 == matching["neutral"]  # P(three attributes) ~ 1/8 under this scorer
    assert pool.summary()["candidates_matching"] == matching
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith(
        f"warning: concept 'rare' (Smiling & Male & Eyeglasses): only {matching['rare']} of its 5 candidates")


def test_real_faces_by_query_and_encoded_pool(tmp_path, fake_run):
    store = ensure_synthetic_store(tmp_path / "faces", num_faces=60, image_sizes=(8,))
    queries = {"smiling": "Smiling", "glasses_man": "Eyeglasses & Male"}
    faces, candidates = pools.real_faces_by_query(store, queries, 8, partition="train", per_concept=5)
    expected = {name: store.select(query, "train")[:5] for name, query in queries.items()}
    for name, rows in candidates.items():
        np.testing.assert_array_equal(faces[rows], store.gather(8, expected[name]))
        assert attribute_mask(queries[name], store.attribute_names, store.attributes[expected[name]]).all()
    pool = pools.encoded_pool(dataclasses.replace(fake_run, image_size=8), store, queries, per_concept=5, partition="train")
    np.testing.assert_allclose(pool.latents, (faces.reshape(len(faces), -1)[:, :4] / 127.5 - 1.0), atol=1e-6)
    with pytest.raises(ValueError, match="'never'.*matches"):
        pools.real_faces_by_query(store, {"never": "Smiling & ~Smiling"}, 8, partition=None, per_concept=5)


def test_label_defined_pool_rejects_an_unknown_source(fake_run, fake_scorer):
    with pytest.raises(ValueError, match="concept source"):
        pools.label_defined_pool(fake_run, None, fake_scorer, {"a": "Smiling"}, source="eyeballed")


def test_format_assignments_is_what_hand_picked_pools_read(fake_run):
    members = {"smiling_woman": [12, 45, 78], "neutral_man": [3]}
    text = pools.format_assignments(members)
    assert text == "smiling_woman=12,45,78; neutral_man=3"
    assert pools.parse_concept_assignments(pools.split_definitions(text)) == members


def test_picked_faces_pool_encodes_the_named_store_rows(tmp_path, fake_run):
    store = ensure_synthetic_store(tmp_path / "faces", num_faces=20, image_sizes=(8,))
    run = dataclasses.replace(fake_run, image_size=8)
    pool = pools.picked_faces_pool(run, store, "a=7,2; b=2")
    assert {name: rows.tolist() for name, rows in pool.draw(k=3, num_draws=5).items()} == {"a": [[0, 1]], "b": [[2]]}
    np.testing.assert_array_equal(pool.images, store.gather(8, np.array([7, 2, 2])))
    np.testing.assert_array_equal(pool.latents, pools.encode_means(run, pool.images))
    with pytest.raises(ValueError, match="out of range"):
        pools.picked_faces_pool(run, store, "a=20")
