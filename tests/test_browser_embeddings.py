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


@pytest.mark.browser
def test_clicking_a_heatmap_row_picks_the_query_token(app_url, page):
    page.set_default_timeout(120_000)
    page.goto(app_url)
    page.get_by_role("tab", name="Embeddings & attention").click()
    page.locator("#att-run").click()
    page.locator("#att-bar .gtitle", has_text="What it").wait_for()
    page.wait_for_timeout(1000)  # the click hook is attached just after the plot is drawn
    area = page.locator("#att-heatmap .nsewdrag").first.bounding_box()
    n_tokens = 16  # [CLS] the animal didn ' t cross the street because it was too tired . [SEP]
    row = 2  # "animal"
    page.mouse.click(area["x"] + area["width"] / 2, area["y"] + (row + 0.5) * area["height"] / n_tokens)
    page.locator("#att-bar .gtitle", has_text="What animal").wait_for()
