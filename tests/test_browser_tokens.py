"""The Tokens tab in headless Chromium: the side-by-side view renders, with a screenshot."""
from __future__ import annotations

import pytest

from tests.conftest import SCREENSHOTS


@pytest.mark.browser
def test_side_by_side_view_renders(page, app_url):
    page.goto(app_url)
    page.get_by_role("tab", name="Tokens").click()
    page.locator("#tok-run").click()
    cards = page.locator("#tok-side-by-side .card")
    cards.nth(3).wait_for(timeout=60_000)
    assert cards.count() == 4
    assert page.locator("#tok-side-by-side .t").count() > 100  # coloured pieces
    assert page.locator("#tok-side-by-side .by").count() > 0  # byte pieces of the emoji
    page.wait_for_timeout(500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#tok-side-by-side").screenshot(path=str(SCREENSHOTS / "tokens-side-by-side.png"))


@pytest.mark.browser
def test_long_paste_shows_capped_view(page, app_url):
    page.goto(app_url)
    page.get_by_role("tab", name="Tokens").click()
    page.get_by_role("button", name="Paste 100 kB of text").click()
    page.get_by_text("the counts are exact for the whole text").first.wait_for(timeout=60_000)
    assert page.locator("#tok-side-by-side .more").count() == 4
