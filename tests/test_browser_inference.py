"""The Inference tab opens from a link and draws the KV-cache timing."""
from __future__ import annotations

from urllib.parse import urlencode

import pytest


@pytest.mark.browser
def test_deep_link_opens_the_tab_and_measures_the_cache(app_url, page):
    page.set_default_timeout(180_000)
    page.goto(app_url + "?" + urlencode({"tab": "inference", "prompt": "The capital of France is"}))
    box = page.locator("#inference-kv-new-tokens input[type=number]").first
    box.fill("4")
    box.press("Enter")
    page.locator("#inference-kv-run").click()
    page.wait_for_function("(document.querySelector('#inference-kv-md') || {innerText: ''}).innerText"
                           ".includes('Grouped-query')")
    shown = page.locator("#inference-kv-md").inner_text()
    assert "bytes" in shown and "equal" in shown
    assert page.locator("#inference-kv-plot .js-plotly-plot").count() == 1
