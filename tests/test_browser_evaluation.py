"""The evaluation tab in headless Chromium: surprisal-coloured text with a tooltip per token,
and a deep link that reopens the tab with a text and scores it."""
from urllib.parse import quote

import pytest

from tests.conftest import SCREENSHOTS


@pytest.mark.browser
def test_surprisal_text_has_a_tooltip_per_token(page, app_url, smollm):
    page.goto(app_url)
    page.get_by_role("tab", name="Evaluation").click()
    page.get_by_role("button", name="Score the text").click()
    page.wait_for_selector("#eval-surprisal .surprisal-text", timeout=120_000)
    spans = page.locator("#eval-surprisal .surprisal-text span[title]")
    n = int(page.locator("#eval-arithmetic").inner_text().split("tokens scored")[1].split()[1])
    assert spans.count() == n > 20
    tip = spans.nth(3).get_attribute("title")
    assert "p = " in tip and "rank" in tip and "surprisal" in tip
    text = "".join(page.locator("#eval-surprisal .surprisal-text span[title]").all_inner_texts())
    assert text.startswith("The water cycle")
    page.wait_for_timeout(800)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "evaluation-surprisal.png"), full_page=True)


@pytest.mark.browser
def test_deep_link_scores_the_linked_text(page, app_url, smollm):
    page.goto(app_url + "?tab=evaluation&window=64&stride=32&text=" + quote("Bonjour, the cat sat on the mat."))
    page.wait_for_selector("#eval-surprisal .surprisal-text", timeout=120_000)
    assert "Bonjour" in page.locator("#eval-surprisal").inner_text()
    assert "window of 64" in page.locator("#eval-arithmetic").inner_text()
