"""bertviz's head view and model view draw SVG inside the app, with no network."""
from __future__ import annotations

import pytest


@pytest.mark.browser
def test_bertviz_views_draw_svg_offline(app_url, page):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.set_default_timeout(120_000)
    page.goto(app_url)
    page.get_by_role("tab", name="Embeddings & attention").click()
    page.get_by_role("tab", name="bertviz").click()
    page.locator("#bv-run").click()
    frame = page.frame_locator("#bv-html iframe")
    frame.locator("svg line").first.wait_for(state="attached")
    assert frame.locator("svg line").count() > 100  # one line per token pair and head
    assert frame.locator("text", has_text="cat").count() >= 2  # tokens on both sides

    page.get_by_text("Model view (every layer x every head)").click()
    page.locator("#bv-run").click()
    frame = page.frame_locator("#bv-html iframe")
    frame.locator("svg text", has_text="Layers").wait_for(state="attached")
    assert frame.locator("svg line").count() > 1000  # 6 layers x 12 heads of thumbnails
    outside = [u for u in requests if not u.startswith(app_url) and not u.startswith(("about:", "data:", "blob:"))]
    assert outside == [], outside
