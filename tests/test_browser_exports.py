"""Exports and examples in headless Chromium: a plot's camera button saves a named SVG or a 2x PNG,
a table's CSV button saves the rows shown, and clicking an example fills the inputs and shows its
result, also when it comes from the example cache on a later click."""
from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from engine import tokens as T


def _toy_tab(page, app_url):
    page.goto(app_url + "?tab=evaluation")
    page.get_by_role("tab", name="Cross-entropy toy").click()
    plot = page.locator(".js-plotly-plot:visible").first
    plot.wait_for(timeout=60_000)
    return plot


def _download_from_camera(page, plot):
    plot.hover()
    with page.expect_download() as info:
        plot.locator(".modebar-btn[data-title*='Download']").click()
    return info.value


@pytest.mark.browser
def test_plot_camera_saves_svg_or_png_at_twice_the_size(page, app_url):
    plot = _toy_tab(page, app_url)
    page.locator("#plot-format").get_by_text("SVG", exact=True).click()
    svg = _download_from_camera(page, plot)
    assert svg.suggested_filename == "cross-entropy-toy.svg"
    text = open(svg.path(), encoding="utf-8").read()
    assert text.startswith("<svg") and "dog" in text  # vector text, editable in slides

    page.locator("#plot-format").get_by_text("PNG, 2× size").click()
    png = _download_from_camera(page, plot)
    assert png.suggested_filename == "cross-entropy-toy.png"
    width = plot.locator(".main-svg").first.bounding_box()["width"]
    assert Image.open(png.path()).width == pytest.approx(2 * width, abs=2)


def _loss_line(page) -> str:
    found = re.findall(r"L = −[\d.]+ \+ [\d.]+ = ([\d.]+) nats", page.locator("body").inner_text())
    return found[-1] if found else ""


@pytest.mark.browser
def test_cached_example_shows_its_result_again(page, app_url):
    _toy_tab(page, app_url)
    logits = {"cat": 4.0, "dog": 0.5, "car": -1.0, "tree": 0.5}  # "Confident and wrong"
    expected = f"{-(0.5 - math.log(sum(math.exp(z) for z in logits.values()))):.4f}"
    for label, want in (("Confident and wrong", expected), ("No idea (all equal)", f"{math.log(4):.4f}"),
                        ("Confident and wrong", expected)):  # the third click is served from the cache
        page.get_by_text(label, exact=True).first.click()
        page.wait_for_function("w => document.body.innerText.split('\\n').some("
                               "l => l.startsWith('L = −') && l.includes(' = ' + w + ' nats'))", arg=want,
                               timeout=60_000)
        assert _loss_line(page) == want
    assert page.get_by_label("Logits: 'label value' pairs, comma separated").input_value() == \
        "cat 4.0, dog 0.5, car -1.0, tree 0.5"
    # the result was kept in Gradio's example cache (a run-only example would leave nothing there)
    cache = Path(os.environ["GRADIO_EXAMPLES_CACHE"])
    kept = [f for f in cache.rglob("*.csv") if f"= **{expected} nats**" in f.read_text(encoding="utf-8")]
    assert kept, sorted(str(f) for f in cache.rglob("*"))


@pytest.mark.browser
def test_tokens_example_and_its_csv(page, app_url, engine):
    page.goto(app_url)  # no deep link: the first table shown is the example's
    page.get_by_role("tab", name="Tokens").click()
    page.get_by_text("Emoji", exact=True).first.click()
    page.wait_for_function("() => (document.querySelector('#tok-stats') || {}).innerText?.includes('Qwen2')",
                           timeout=60_000)
    assert page.locator("#tok-text textarea").input_value() == T.EXAMPLES["Emoji"]
    button = page.locator(".csv-download:visible").first
    button.wait_for(timeout=30_000)
    keys = ["tok-gpt2", "tok-o200k", "tok-llama2", "tok-qwen2"]
    expected = [[str(v) for v in r] for r in T.stats_rows(T.compare(engine, keys, T.EXAMPLES["Emoji"], 800))]
    # The button is refreshed by the table's change event, a moment after the table: poll briefly.
    for _ in range(20):
        with page.expect_download() as info:
            button.click()
        download = info.value
        rows = list(csv.reader(io.StringIO(open(download.path(), encoding="utf-8").read())))
        if rows[1:] == expected:
            break
        page.wait_for_timeout(500)
    assert download.suggested_filename == "tokenizer-stats.csv"
    assert rows[0] == T.STATS_HEADERS
    assert rows[1:] == expected
