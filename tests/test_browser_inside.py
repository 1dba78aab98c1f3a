"""The Inside-the-model tab opens from a link and draws the journey."""
from __future__ import annotations

from urllib.parse import urlencode

import pytest


@pytest.mark.browser
def test_deep_link_opens_the_journey(app_url, page):
    page.set_default_timeout(180_000)
    page.goto(app_url + "?" + urlencode({"tab": "inside", "prompt": "The capital of France is"}))
    page.wait_for_function("(document.querySelector('#inside-journey .jr') || {innerText: ''}).innerText"
                           ".includes('Picked token')")
    shown = page.locator("#inside-journey").inner_text()
    assert "Paris" in shown and "(1, 5, 576)" in shown and "30 blocks" in shown
