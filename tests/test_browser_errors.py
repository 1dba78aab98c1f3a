"""One bad input, one error toast (issue 25): a value set by a deep link was refused twice (the
tab's .change listener and the link's own run), and logits confirmed with Enter were refused
again when the box lost focus."""
from urllib.parse import urlencode

import pytest

FIVE = "tok-gpt2,tok-cl100k,tok-o200k,tok-p50k,tok-bert-uncased"


def _messages(page, wait_ms=3000, at_least: int = 0, timeout_ms: int = 30_000) -> list[str]:
    """Every error message on screen, one entry per message (Gradio groups equal ones in a toast
    and shows a count, so the texts inside the toasts are what a user reads). Waits wait_ms, then
    (on a busy machine) up to timeout_ms more until at least `at_least` messages show."""
    page.wait_for_timeout(wait_ms)
    toasts = page.locator('[data-testid="toast-text"]')
    waited = 0
    while toasts.count() < at_least and waited < timeout_ms:
        page.wait_for_timeout(500)
        waited += 500
    return toasts.all_inner_texts()


@pytest.mark.browser
def test_a_bad_deep_link_value_gives_one_error(browser, app_url, caplog):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    try:
        with caplog.at_level("WARNING", logger="llm_playground"):
            page.goto(app_url + "?" + urlencode({"tab": "tokens", "picks": FIVE}))
            page.locator('[data-testid="toast-text"]').first.wait_for(timeout=60_000)
            shown = _messages(page)
        assert len(shown) == 1 and "got 5" in shown[0], shown
        refused = [r for r in caplog.records if "got 5" in r.getMessage()]
        assert len(refused) == 1, [r.getMessage() for r in refused]  # run once, not twice
    finally:
        ctx.close()


@pytest.mark.browser
def test_bad_logits_confirmed_with_enter_then_left_give_one_error(page, app_url):
    page.goto(app_url)
    page.get_by_role("tab", name="Evaluation").click()
    page.get_by_role("tab", name="Cross-entropy toy").click()
    box = page.get_by_label("Logits: 'label value' pairs, comma separated")
    box.wait_for(state="visible", timeout=60_000)
    box.fill("cat 1, dog")
    box.press("Enter")
    page.locator('[data-testid="toast-text"]').first.wait_for(timeout=60_000)
    page.mouse.click(5, 5)  # leave the box: the same text, already refused
    shown = _messages(page)
    assert len(shown) == 1 and "'dog' is not 'label number'" in shown[0], shown
    # a new value is still checked when the box is left
    box.fill("cat 1, dog 2, car")
    page.mouse.click(5, 5)
    shown = _messages(page, at_least=2)
    assert len(shown) == 2 and "'car'" in shown[-1], shown


@pytest.mark.browser
def test_angle_brackets_in_a_toast_and_a_notice_are_shown(page, app_url):
    """Issue 32: the fill-mask error stopped at "(or" (<mask> read as a tag) and the SFT tip at
    "A base model has never seen" (<end_of_turn>)."""
    page.goto(app_url + "?tab=pipelines")
    page.get_by_role("tab", name="Fill-mask").click()
    box = page.get_by_label("Text with one [MASK]")
    box.fill("no mask here")
    page.get_by_role("button", name="Fill the mask").click()
    page.locator('[data-testid="toast-text"]').first.wait_for(timeout=30_000)
    shown = _messages(page, wait_ms=500)
    assert len(shown) == 1 and "write exactly 1 [MASK] (or <mask>) where the missing word goes" in shown[0], shown
    page.goto(app_url + "?tab=posttraining")
    page.get_by_role("tab", name="SFT: training format and loss mask").click()
    tip = page.locator(".notice", has_text="has never seen").first
    tip.wait_for(timeout=30_000)
    assert "A base model has never seen <end_of_turn> close a turn, so that one token" in tip.inner_text()
