"""The explorer's JSON API without a browser: its faces are the latent toolkit's, pixel for pixel, and bad
requests get a 400 with a message while the server keeps answering."""

import json
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import jax
import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx2")

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from experiments import vector_arithmetic_gan, vector_arithmetic_vae  # noqa: E402
from gan_arith.cli import command_line_fields  # noqa: E402
from gan_arith.config import check_field_names  # noqa: E402
from gan_arith.evaluation.sampling import normal_latents  # noqa: E402
from gan_arith.explore.explorer import Explorer  # noqa: E402
from gan_arith.explore.server import STATIC, create_app, decode_png  # noqa: E402
from gan_arith.latent import pools  # noqa: E402
from gan_arith.latent.arithmetic import concept_arithmetic  # noqa: E402
from gan_arith.latent.directions import edit  # noqa: E402
from gan_arith.latent.interpolate import interpolate_path  # noqa: E402
from gan_arith.latent.sweeps import attribute_directions, encoded_faces  # noqa: E402

pytestmark = pytest.mark.slow  # trains tiny runs end to end (the explorers fixture), and one test serves from a subprocess
EXPRESSION = "smiling_woman - neutral_woman + neutral_man"
PICKED = {"smiling_woman": [1, 5, 7], "neutral_woman": [2, 3], "neutral_man": [11]}


@pytest.fixture
def client(explorers, request):
    with TestClient(create_app(explorers[request.param])) as client:
        yield client


def concepts_on(seed, picked=PICKED):
    return {name: [[seed, index] for index in rows] for name, rows in picked.items()}


def pixels(faces):
    return np.stack([decode_png(face["image"]) for face in faces])


@pytest.mark.parametrize("client", ["dcgan"], indirect=True)
def test_gan_grid_and_arithmetic_are_the_toolkits_faces(client, explorers):
    run, grid_size = explorers["dcgan"].run, explorers["dcgan"].settings.grid_size
    grid = client.post("/api/grid", json={"seed": 3}).json()
    latents = np.asarray(normal_latents(jax.random.key(3), grid_size, run.latent_dim))
    np.testing.assert_array_equal(pixels(grid["faces"]), pools.generate_images(run, latents))
    # Each face carries the saved classifier's reading of it.
    probabilities = explorers["dcgan"].classifier.probabilities(pools.generate_images(run, latents[:2]))
    reading = grid["faces"][1]["readings"]["classifier"]
    np.testing.assert_allclose([reading[name] for name in explorers["dcgan"].classifier.attribute_names],
                               probabilities[1], atol=1e-5)

    answer = client.post("/api/arithmetic", json={"expression": EXPRESSION, "concepts": concepts_on(3)}).json()
    pool = pools.hand_picked_pool(run, latents, pools.format_assignments(PICKED))
    expected = concept_arithmetic(run, pool, EXPRESSION, pool.draw())
    np.testing.assert_array_equal(decode_png(answer["result"]["image"]), expected.result_images[0])
    averages = client.post("/api/averages", json={"concepts": concepts_on(3)}).json()["averages"]
    for name, faces in expected.average_images.items():
        np.testing.assert_array_equal(decode_png(averages[name]["image"]), faces[0])


@pytest.mark.parametrize("client", ["vae"], indirect=True)
def test_vae_grid_edit_and_strip_are_the_toolkits_faces(client, explorers, tiny_runs):
    explorer = explorers["vae"]
    run, store = explorer.run, explorer.store
    grid = client.post("/api/grid", json={"seed": 0}).json()
    rows = np.asarray(grid["ids"])
    assert set(rows) <= set(store.select(None, "test")) and len(set(rows)) == len(rows)
    np.testing.assert_array_equal(pixels(grid["faces"]), store.gather(run.image_size, rows))  # the real faces
    latents = pools.encode_means(run, store.gather(run.image_size, rows))

    change = {"attribute": "Smiling", "condition": "Male", "method": "linear", "alpha": 1.5}
    edited = client.post("/api/edit", json={"target": {"face": [0, 2]}, "edits": [change]}).json()
    train_rows, train_latents = encoded_faces(run, store, query=None, partition="train", count=200)
    direction = attribute_directions(train_latents, store.attributes[train_rows], store.attribute_names, "Smiling",
                                     condition="Male", method="linear")["Smiling \u22a5 Male"]
    expected = pools.generate_images(run, edit(latents[2:3], direction, [1.5])[0])
    np.testing.assert_array_equal(decode_png(edited["face"]["image"]), expected[0])

    strip = client.post("/api/interpolate", json={"a": {"face": [0, 0]}, "b": {"face": [0, 1]}, "method": "lerp"}).json()
    path = interpolate_path(latents[:2], explorer.settings.interpolation_steps, "lerp")
    np.testing.assert_array_equal(pixels(strip["faces"]), pools.generate_images(run, path))


@pytest.mark.parametrize("client", ["dcgan"], indirect=True)
def test_bad_requests_are_answered_with_their_message_and_the_server_keeps_running(client, tmp_path, tiny_runs):
    concepts = concepts_on(0)
    malformed = client.post("/api/arithmetic", json={"expression": "smiling_woman - (neutral_man", "concepts": concepts})
    assert malformed.status_code == 400
    assert "unclosed '(' from position 16" in malformed.json()["error"]  # the parser's own message, with its caret
    empty = client.post("/api/arithmetic", json={"expression": EXPRESSION, "concepts": {**concepts, "neutral_man": []}})
    assert empty.status_code == 400 and "'neutral_man' in the expression is empty" in empty.json()["error"]
    unknown = client.post("/api/run", json={"run": str(tmp_path / "no_run")})
    assert unknown.status_code == 400 and "no training run in" in unknown.json()["error"]
    # A run of another kind: an autoencoder has no latent vectors to explore.
    config = json.loads((tiny_runs["dcgan"][0] / "config.json").read_text())
    config["model"]["kind"] = "ae"
    (tmp_path / "ae").mkdir()
    (tmp_path / "ae" / "config.json").write_text(json.dumps(config))
    other = client.post("/api/run", json={"run": str(tmp_path / "ae")})
    assert other.status_code == 400 and "holds a 'ae' run; the explorer needs a dcgan or vae run" in other.json()["error"]
    out_of_grid = client.post("/api/edit", json={"target": {"face": [0, 999]}, "edits": []})
    assert out_of_grid.status_code == 400 and "not 999" in out_of_grid.json()["error"]
    assert client.get("/api/info").json()["kind"] == "dcgan"  # still serving the same run


@pytest.mark.parametrize("client", ["dcgan"], indirect=True)
def test_readers_are_the_saved_ones_and_none_is_trained(client, settings):
    assert client.get("/api/info").json()["readers"] == ["classifier"]  # no judge is saved for the tiny store
    assert not Path(settings.judge_dir).exists()


def test_a_saved_judge_reads_every_face_beside_the_classifier(explorers):
    explorer = Explorer(explorers["dcgan"].run, explorers["dcgan"].settings)
    explorer.judge = explorers["dcgan"].classifier  # stands in for a saved judge (same interface)
    with TestClient(create_app(explorer)) as client:
        assert client.get("/api/info").json()["readers"] == ["classifier", "judge"]
        face = client.post("/api/grid", json={"seed": 0}).json()["faces"][0]
    assert face["readings"]["judge"] == face["readings"]["classifier"] and len(face["readings"]["judge"]) == 4


@pytest.mark.parametrize("client", ["dcgan"], indirect=True)
def test_the_page_is_served_from_the_package_without_outside_addresses(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
    for path in sorted(STATIC.iterdir()):
        assert client.get(f"/static/{path.name}").status_code == 200
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", path.read_text()), f"{path.name} refers outside"


def parse_command(command, module):
    """(config, workdir) of a command line as `module`'s own options parse it (its config and absl flags)."""
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", module.__name__]
    check_field_names(module.get_config(), command_line_fields(words))
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_dict("config", module.get_config(), flag_values=flag_values, sys_argv=words[2:])
    flags.DEFINE_string("workdir", "", "", flag_values=flag_values)
    flag_values(words[2:])
    return flag_values.config, flag_values.workdir


def test_copy_command_reproduces_the_gan_result_with_the_gan_experiment(explorers, tmp_path, monkeypatch):
    explorer = explorers["dcgan"]
    concepts = concepts_on(2)
    config, workdir = parse_command(explorer.command(EXPRESSION, concepts), vector_arithmetic_gan)
    assert config.concepts == "smiling_woman=1,5,7; neutral_woman=2,3; neutral_man=11"
    monkeypatch.chdir(tmp_path)
    vector_arithmetic_gan.main(config, workdir)
    summary = json.loads((tmp_path / workdir / "summary_hand-picked.json").read_text())
    assert summary["first_draw_members"] == PICKED and summary["expression"] == EXPRESSION
    # Its grid is the explorer's grid 2, so its result is the page's.
    latents = np.load(tmp_path / workdir / "grid_latents.npy")
    np.testing.assert_array_equal(latents, explorer.grid(2).latents)
    pool = pools.hand_picked_pool(explorer.run, latents, config.concepts)
    result = concept_arithmetic(explorer.run, pool, config.expression, pool.draw()).result_images[0]
    np.testing.assert_array_equal(result, explorer.arithmetic(EXPRESSION, concepts).result_image)
    with pytest.raises(ValueError, match="come from grids 0, 1"):  # one command line, one numbered grid
        explorer.command(EXPRESSION, {**concepts_on(0), "neutral_man": [[1, 4]]})


def test_copy_command_reproduces_the_vae_result_with_the_vae_experiment(explorers):
    explorer = explorers["vae"]
    concepts = {**concepts_on(0), "neutral_man": [[1, 4]]}  # store rows: faces of several grids are fine
    config, _ = parse_command(explorer.command(EXPRESSION, concepts), vector_arithmetic_vae)
    store = explorer.store
    rows = {name: [int(explorer.grid(seed).ids[index]) for seed, index in faces] for name, faces in concepts.items()}
    assert pools.parse_concept_assignments(pools.split_definitions(config.concepts)) == rows
    vector_arithmetic_vae.check_names(config, store, store.attribute_names)  # the experiment's checks pass
    pool = pools.picked_faces_pool(explorer.run, store, config.concepts)
    expected = concept_arithmetic(explorer.run, pool, config.expression, pool.draw())
    members = {name: rows[0].tolist() for name, rows in expected.arithmetic.members.items()}
    assert members == {"smiling_woman": [0, 1, 2], "neutral_woman": [3, 4], "neutral_man": [5]}  # one draw, as picked
    np.testing.assert_array_equal(expected.result_images[0], explorer.arithmetic(EXPRESSION, concepts).result_image)


def test_the_command_prints_its_url_and_serves_on_localhost(tiny_runs, settings, tmp_path):
    command = [sys.executable, "-m", "experiments.explore", f"--config.run={tiny_runs['vae'][0]}", "--config.port=0",
               "--config.grid_size=8", f"--config.classifier_dir={settings.classifier_dir}"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:
            found = re.search(r"at (http://127\.0\.0\.1:(\d+)/)", line)
            if found:
                break
        assert found, "no URL printed"
        with urllib.request.urlopen(found.group(1) + "api/info", timeout=60) as response:
            info = json.loads(response.read())
        assert info["kind"] == "vae" and info["grid_size"] == 8
    finally:
        process.terminate()
        process.wait(timeout=60)
    missing = subprocess.run([*command[:3], f"--config.run={tmp_path / 'nothing'}"], capture_output=True, text=True,
                             timeout=300)
    assert missing.returncode != 0 and "no training run there" in missing.stderr.splitlines()[-1]
