"""The explorer page in a real browser: headless Chromium (the system's, Debian package `chromium`) driven by
Playwright clicks members into concepts, types the expression, moves a slider and switches runs.

The screenshot it takes is saved in the test's tmp_path, and also at $GAN_ARITH_EXPLORER_SCREENSHOT when set
(how docs/explorer.png is made: the tiny synthetic-face VAE run, whose grid shows encoded real faces)."""

import contextlib
import os
import re
import shutil
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

from gan_arith.explore.server import create_app, decode_png  # noqa: E402

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
pytestmark = [
    pytest.mark.slow,  # trains tiny runs end to end (the explorers fixture) and drives a real browser
    pytest.mark.skipif(
        CHROMIUM is None, reason="no system Chromium found (chromium, chromium-browser or google-chrome on PATH): "
        "install it with `apt-get install -y chromium` to run the browser tests"
    ),
]
EXPRESSION = "smiling_woman - neutral_woman + neutral_man"
PICKED = {"smiling_woman": [1, 5, 7], "neutral_woman": [2, 3], "neutral_man": [11]}


@contextlib.contextmanager
def serving(app):
    """The app on a free port of 127.0.0.1, in a thread of this process; yields its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_build_the_arithmetic_by_clicking_edit_with_a_slider_and_switch_runs(explorers, tiny_runs, tmp_path):
    expect = sync_api.expect
    expect.set_options(timeout=60_000)  # two shared CPU cores
    explorer = explorers["dcgan"]
    with serving(create_app(explorer)) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(url)
        faces = page.locator("#grid .face")
        expect(faces).to_have_count(explorer.settings.grid_size)
        expect(page.locator("#run-info")).to_contain_text("dcgan run")

        for name, rows in PICKED.items():  # smiling_woman is the chosen concept at first
            page.locator(f".concept[data-name={name}]").click()
            for row in rows:
                faces.nth(row).click()
            expect(page.locator(f".concept[data-name={name}] .members img")).to_have_count(len(rows))
        expect(page.locator(".concept .average img")).to_have_count(3)

        box = page.locator("#expression")
        box.fill(EXPRESSION)
        result = page.locator("#result img")
        expect(page.locator("#expression-error")).to_be_empty()
        expect(result).to_have_count(1)
        concepts = {name: [[0, row] for row in rows] for name, rows in PICKED.items()}
        expected = explorer.arithmetic(EXPRESSION, concepts).result_image
        expect(page.locator("#command")).to_have_text(explorer.command(EXPRESSION, concepts))
        np.testing.assert_array_equal(decode_png(result.get_attribute("src")), expected)
        assert page.locator("#copy").is_enabled()
        first = result.get_attribute("src")
        box.press_sequentially(" * 2")  # the result image changes with the expression
        expect(result).not_to_have_attribute("src", first)
        box.press_sequentially(" -")  # malformed: the parser's message shows inline
        expect(page.locator("#expression-error")).to_contain_text("unexpected end of expression at position")
        box.press("Backspace")
        box.press("Backspace")
        expect(page.locator("#expression-error")).to_be_empty()

        page.check("input[name=mode][value=select]")
        faces.nth(4).click()
        faces.nth(6).click()
        expect(page.locator("#strip .face")).to_have_count(explorer.settings.interpolation_steps + 1)
        edited = page.locator("#edited img")
        expect(edited).to_have_count(1)
        unedited = edited.get_attribute("src")
        np.testing.assert_array_equal(decode_png(unedited), explorer.grid(0).images[4])  # the sliders start at 0
        slider = page.locator("#sliders .alpha").first
        for _ in range(6):  # the keyboard moves the slider as a user would: alpha 0 -> 1.5
            slider.press("ArrowRight")
        expect(edited).not_to_have_attribute("src", unedited)
        page.fill("#run-path", str(tmp_path / "no_run"))
        page.click("#run-form button")
        expect(page.locator("#run-error")).to_contain_text("no training run in")
        page.fill("#run-path", str(tiny_runs["vae"][0]))
        page.click("#run-form button")
        expect(page.locator("#run-info")).to_contain_text("vae run")
        expect(page.locator("#run-error")).to_be_empty()
        expect(faces.first.locator(".reading").first).to_have_text(re.compile(r"^#\d+$"))  # an encoded real face's store row
        # The seed's arithmetic on the VAE's encoded real faces, members picked by their true attributes;
        # its command line names them by store row.
        page.check("input[name=mode][value=concept]")
        vae = explorers["vae"]
        store = vae.store
        labels = store.attributes[vae.grid(0).ids]
        smiling, male = (labels[:, store.attribute_names.index(name)] > 0 for name in ("Smiling", "Male"))
        for name, chosen in {"smiling_woman": smiling & ~male, "neutral_woman": ~smiling & ~male,
                             "neutral_man": ~smiling & male}.items():
            page.locator(f".concept[data-name={name}]").click()
            for row in np.flatnonzero(chosen)[:3]:
                faces.nth(int(row)).click()
        box.fill(EXPRESSION)
        expect(result).to_have_count(1)
        expect(page.locator("#command")).to_contain_text("python -m experiments.vector_arithmetic_vae --config.run=")
        assert page.locator("#copy").is_enabled()
        page.check("input[name=mode][value=select]")
        faces.nth(4).click()
        faces.nth(6).click()
        expect(page.locator("#strip .face")).to_have_count(explorer.settings.interpolation_steps + 1)
        expect(edited).to_have_count(1)
        unedited = edited.get_attribute("src")
        np.testing.assert_array_equal(decode_png(unedited), vae.render(vae.latent((0, 4))[None])[0])  # its decode
        for _ in range(6):
            page.locator("#sliders .alpha").first.press("ArrowRight")
        expect(edited).not_to_have_attribute("src", unedited)
        page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
        if os.environ.get("GAN_ARITH_EXPLORER_SCREENSHOT"):
            page.screenshot(path=os.environ["GAN_ARITH_EXPLORER_SCREENSHOT"], full_page=True)
        browser.close()
