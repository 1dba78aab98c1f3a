"""The decoding tab in headless Chromium: the distribution chart with a top-p cut, and
generation side by side. Saves the screenshots used in the docs."""
from __future__ import annotations

import pytest

from tests.conftest import SCREENSHOTS

GREY_FILL = "rgb(156, 163, 175)"  # engine/decoding/plots.py CUT_NOW


def _set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


@pytest.mark.browser
def test_top_p_cut_chart_and_generation(page, app_url):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(app_url)
    page.get_by_role("tab", name="Decoding").click()
    page.locator("#decoding-chart .js-plotly-plot").wait_for(timeout=120_000)  # the default, drawn on opening
    page.locator("#decoding-prompt textarea").fill("My favourite colour is")
    _set_number(page, "decoding-temperature", 1.0)
    _set_number(page, "decoding-top_p", 0.5)
    page.locator("#decoding-next").click()
    page.wait_for_function("() => document.querySelector('#decoding-chart').innerText.includes('top-p 0.5')",
                           timeout=120_000)
    page.wait_for_timeout(800)
    chart = page.locator("#decoding-chart")
    assert "top-p 0.5" in chart.inner_text()
    fills = chart.locator("g.point path").evaluate_all("els => els.map(e => e.style.fill)")
    assert GREY_FILL in fills  # some visible tokens are cut by top-p
    page.locator("#decoding-row").screenshot(path=str(SCREENSHOTS / "decoding-topp.png"))

    page.get_by_role("tab", name="Generate").click()
    _set_number(page, "decoding-max_new_tokens", 20)
    _set_number(page, "decoding-num_return_sequences", 3)
    page.locator("#decoding-generate").click()
    page.wait_for_function(
        "() => (document.querySelector('#decoding-generated')?.innerText.match(/stopped: (EOS|max_new_tokens)/g)"
        " || []).length === 3", timeout=180_000)
    assert page.locator("#decoding-generated .dec-col").count() == 3
    page.locator("#decoding-row").screenshot(path=str(SCREENSHOTS / "decoding-generate.png"))


@pytest.mark.browser
def test_deep_link_opens_the_chart_with_the_same_knobs(browser, app_url):
    """A link with top-k, top-p and typical-p fills the sliders and draws every knob's panel; the
    typical-p panel cuts visible tokens (grey). Saves the typical-p screenshot."""
    from urllib.parse import urlencode

    qs = urlencode({"tab": "decoding", "prompt": "My favourite colour is", "temperature": "1", "top_p": "0.9",
                    "top_k": "20", "typical_p": "0.5"})
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})  # fresh: no session state
    page = ctx.new_page()
    try:
        page.goto(app_url + "?" + qs)
        page.wait_for_selector("#decoding-chart .js-plotly-plot", timeout=120_000)
        page.wait_for_function("document.querySelector('#decoding-chart').innerText.includes('typical-p 0.5')",
                               timeout=30_000)
        text = page.locator("#decoding-chart").inner_text()
        assert "top-k 20" in text and "temperature 1" in text and "top-p 0.9" in text
        assert page.locator("#decoding-prompt textarea").input_value() == "My favourite colour is"
        assert page.locator("#decoding-typical_p input[type=number]").input_value() == "0.5"
        panels = page.locator("#decoding-chart g.trace.bars")  # one bar trace per knob, typical-p last
        assert panels.count() == 7
        fills = panels.nth(6).locator("g.point path").evaluate_all("els => els.map(e => e.style.fill)")
        assert GREY_FILL in fills  # typical-p cut some of the visible tokens
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(500)
        page.locator("#decoding-row").screenshot(path=str(SCREENSHOTS / "decoding_typical_p.png"))
    finally:
        ctx.close()


@pytest.mark.browser
def test_quick_step_clicks_each_append_a_token(browser, app_url):
    """Three Step clicks 50 ms apart, while the first is still running, append three tokens:
    the same three that three clicks one after the other append."""
    import re

    def steps_after(clicks_gap_ms: int | None) -> list[str]:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})  # a session of its own
        page = ctx.new_page()
        try:
            page.goto(app_url)
            page.get_by_role("tab", name="Decoding").click()
            page.locator("#decoding-prompt textarea").fill("Once upon a time")
            step = page.locator("#decoding-step")
            count = "() => document.querySelectorAll('#decoding-steps .dec-tok').length"
            for i in range(3):
                step.click()
                if clicks_gap_ms is None:
                    page.wait_for_function(f"() => ({count})() === {i + 1}", timeout=120_000)
                else:
                    page.wait_for_timeout(clicks_gap_ms)
            page.wait_for_function(f"() => ({count})() >= 3", timeout=120_000)
            page.wait_for_timeout(1500)  # a fourth token would have arrived by now
            html = page.locator("#decoding-steps").inner_html()
            return re.findall(r'<span class="dec-tok"[^>]*>(.*?)</span>', html)
        finally:
            ctx.close()

    quick = steps_after(50)  # the first click is still running when the next two arrive
    assert len(quick) == 3 and quick == steps_after(None)


@pytest.mark.browser
def test_beam_tree_and_the_forgetting_example(page, app_url):
    """The beam view draws every step's candidates with the winner's path; the forgetting example
    drops the turn that gave the code, and the model no longer gives it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(app_url)
    page.get_by_role("tab", name="Decoding").click()
    page.locator("#decoding-chart .js-plotly-plot").wait_for(timeout=90_000)  # drawn when the tab opens
    page.get_by_role("tab", name="Beam search").click()
    page.locator("#decoding-beam-run").click()
    page.wait_for_function("() => (document.querySelector('#decoding-beam-stats')?.innerText || '')"
                           ".includes('stopped')", timeout=180_000)
    page.wait_for_timeout(800)
    tree = page.locator("#decoding-beam-tree")
    assert "best hypothesis" in tree.inner_text() and "Paris" in tree.inner_text()
    assert page.locator("#decoding-beam-summary tr").count() == 1 + 4  # header + num_beams finished
    page.locator("#decoding-main").screenshot(path=str(SCREENSHOTS / "decoding_beam.png"))

    page.get_by_role("tab", name="Conversation").click()
    page.locator("#decoding-chat-forget").click()
    page.wait_for_function("() => (document.querySelector('#decoding-chat-compare')?.innerText || '')"
                           ".includes('Window 256')", timeout=240_000)
    sent = page.locator("#decoding-chat-sent").inner_text()
    assert "Dropped to fit the window" in sent and "4417" not in sent.split("The full prompt sent")[1]
    assert "4417" in page.locator("#decoding-chat-compare").inner_text()
    page.locator("#decoding-main").screenshot(path=str(SCREENSHOTS / "decoding_forgetting.png"))
