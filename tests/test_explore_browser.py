"""The explorer's page in a real headless Chromium: draw, invert, move the slider, no console errors."""

import shutil

import pytest

from explore_support import live_server, tiny_conditional_explorer, tiny_explorer

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no system chromium on PATH (Debian: apt install chromium)")


def _pixels(page, selector: str) -> list[int]:
    return page.evaluate("""(sel) => Array.from(
        document.querySelector(sel).getContext('2d').getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0))""",
        selector)


def _stroke(page, selector: str, points: list[tuple[float, float]]) -> None:
    """A mouse stroke through points given as fractions of the canvas."""
    box = page.locator(selector).bounding_box()
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_draw_invert_and_mix_in_a_browser():
    problems = []
    with live_server(tiny_explorer()) as (url, _), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda err: problems.append(str(err)))
        page.on("request", lambda req: problems.append(f"request off the machine: {req.url}")
                if not req.url.startswith((url, "data:")) else None)
        page.goto(url)
        page.wait_for_function("document.querySelectorAll('#grid figure').length === 16")  # the first samples

        # A and B start as the test set's first 2 and 5, inverted and mixed.
        page.wait_for_function("document.querySelector('#mix-reading').textContent.startsWith('w = 0.50')")
        assert page.is_hidden("#condition")  # an unconditional model: no digit picker, no guidance slider
        page.click("#clear-a")
        assert sum(_pixels(page, "#draw-a")) == sum(_pixels(page, "#recon-a")) == 0
        assert page.text_content("#recon-reading-a").strip() == ""
        _stroke(page, "#draw-a", [(0.5, 0.2), (0.5, 0.5), (0.45, 0.8)])
        drawn = _pixels(page, "#draw-a")
        assert max(drawn) == 255 and sum(v > 0 for v in drawn) > 20
        page.click("#invert-a")
        page.wait_for_function("document.querySelector('#recon-reading-a').textContent.startsWith('decoded')")
        assert sum(_pixels(page, "#recon-a")) > 0

        page.wait_for_function("document.querySelector('#reading-a').textContent.startsWith('drawn: reads as')")
        before, label = _pixels(page, "#mix"), page.text_content("#mix-reading")
        page.focus("#weight")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("document.querySelector('#mix-reading').textContent.startsWith('w = 0.60')")
        assert page.text_content("#mix-reading") != label
        assert _pixels(page, "#mix") != before

        page.click("#traj-mix")
        page.wait_for_function("document.querySelectorAll('#strip figure').length > 2")
        browser.close()
    assert problems == []


def test_the_digit_picker_and_guidance_slider_steer_the_mix_and_the_samples():
    problems = []
    with live_server(tiny_conditional_explorer()) as (url, _), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda err: problems.append(str(err)))
        page.goto(url)
        page.wait_for_function("document.querySelector('#mix-reading').textContent.startsWith('w = 0.50 (slerp)')")
        assert page.is_visible("#condition") and page.is_disabled("#guidance")  # no digit picked: no guidance
        assert page.text_content("#guidance-value") == "2.0"
        page.select_option("#label", "8")
        page.wait_for_function("document.querySelector('#mix-reading').textContent.includes('towards 8 at s = 2')")
        page.focus("#guidance")
        page.keyboard.press("ArrowRight")  # one step of 0.5
        page.wait_for_function("document.querySelector('#mix-reading').textContent.includes('towards 8 at s = 2.5')")
        requests = []
        page.on("request", lambda req: requests.append(req.post_data_json) if req.url.endswith("/api/sample") else None)
        page.click("#sample")
        page.wait_for_function("document.querySelector('#status').textContent.includes('samples')")
        browser.close()
    assert requests and requests[0]["label"] == 8 and requests[0]["guidance"] == 2.5
    assert problems == []
