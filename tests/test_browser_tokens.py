"""The Tokens tab in headless Chromium: the side-by-side view renders on page load, with a screenshot."""
from __future__ import annotations

import pytest

from tests.conftest import SCREENSHOTS


@pytest.mark.browser
def test_side_by_side_view_renders(page, app_url):
    """The counts are there on page load, without a click, with the tokens each model receives
    besides the text's own (BERT: [CLS] and [SEP]; Llama 2: <s>) drawn with a purple outline and counted."""
    page.goto(app_url)
    page.get_by_role("tab", name="Tokens").click()
    cards = page.locator("#tok-side-by-side .card")
    cards.nth(3).wait_for(timeout=60_000)
    assert cards.count() == 4
    bert, llama = cards.nth(2), cards.nth(3)
    assert bert.locator(".t.add").all_inner_texts() == ["[CLS]\n101", "[SEP]\n102"]
    assert llama.locator(".t.add").count() == 1 and cards.nth(0).locator(".t.add").count() == 0
    assert "57 (+ [CLS] [SEP])" in page.locator("#tok-stats").inner_text()
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


@pytest.mark.browser
def test_new_tokenizer_columns_and_hover_highlight(page, app_url):
    """Today's tokenizers side by side (a deep link); hovering a piece lights up its characters in
    the source text and the pieces over the same characters in the other columns."""
    from urllib.parse import urlencode

    picks = "tok-llama3,tok-tekken,tok-deepseek-llm,tok-command-r"
    text = "Llama 3, Mistral NeMo, DeepSeek: naïve café 🦙 東京は晴れ\n    return a + b  # 1234567"
    page.goto(f"{app_url}?{urlencode({'tab': 'tokens', 'text': text, 'picks': picks})}")
    cards = page.locator("#tok-side-by-side .card")
    cards.nth(3).wait_for(timeout=60_000)
    for name in ("Llama 3", "Tekken", "DeepSeek LLM", "Command-R"):
        assert page.locator("#tok-side-by-side .card .head", has_text=name).count() == 1
    chip = cards.nth(0).locator(".t[data-s]").nth(2)
    chip.hover()
    page.wait_for_timeout(200)
    lit = page.locator("#tok-side-by-side .src span.on")
    assert lit.count() >= 1
    s, e = int(chip.get_attribute("data-s")), int(chip.get_attribute("data-e"))
    assert "".join(lit.all_inner_texts()) == text[s:e]
    assert page.locator("#tok-side-by-side .card:nth-child(2) .t.on").count() >= 1  # the same characters, Tekken
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#tok-side-by-side").screenshot(path=str(SCREENSHOTS / "tokens_new_tokenizers.png"))
