"""The Pipelines tab in headless Chromium: zero-shot draws its bars, NER marks its entities.
Also refreshes docs/screenshots/pipelines-zero-shot.png and pipelines-ner.png."""
from __future__ import annotations

import pytest

from tests.conftest import SCREENSHOTS

pytestmark = pytest.mark.browser


def _open(page, app_url, sub_tab: str):
    page.goto(app_url, timeout=60_000)
    page.get_by_role("tab", name="Pipelines").click()
    page.get_by_role("tab", name=sub_tab).click()


def test_zero_shot_bars_and_code(page, app_url):
    _open(page, app_url, "Zero-shot classification")
    page.get_by_role("button", name="Classify").click()
    page.wait_for_selector("#pipe-zs-plot .js-plotly-plot", timeout=180_000)
    assert "offline fallback" in page.locator("#pipe-model-zero-shot-classification").inner_text().lower() or \
        "Offline fallback" in page.locator("#pipe-info-zero-shot-classification").inner_text()
    page.locator("button:visible", has_text="Show code").click()
    code = page.locator("#pipe-code-zero-shot-classification")
    code.wait_for(state="visible")
    page.wait_for_function("document.querySelector('#pipe-code-zero-shot-classification').innerText"
                           ".includes('candidate_labels')", timeout=30_000)
    assert "facebook/bart-large-mnli" in code.inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "pipelines-zero-shot.png"), full_page=True)


def test_ner_highlights_entities(page, app_url):
    _open(page, app_url, "Named entities")
    page.get_by_role("button", name="Find entities").click()
    page.wait_for_selector("#pipe-ner-html mark", timeout=180_000)
    marks = page.locator("#pipe-ner-html mark").all_inner_texts()
    assert any("Marie Curie" in m and "PER" in m for m in marks)
    assert any("Paris" in m and "LOC" in m for m in marks)
    page.screenshot(path=str(SCREENSHOTS / "pipelines-ner.png"), full_page=True)
