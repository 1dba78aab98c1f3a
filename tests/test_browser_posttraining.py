"""The Post-training tab in headless Chromium: the loss-mask view colours the runs and outlines only
the response and end-of-turn tokens under 'response only'."""
import pytest


@pytest.mark.browser
def test_loss_mask_view(page, app_url):
    page.goto(app_url + "?tab=posttraining&prompt=What+is+40+%2B+2%3F&response=42", timeout=120_000)
    page.get_by_role("tab", name="SFT: training format and loss mask").click()
    page.get_by_role("button", name="Render and compute both losses").click()
    page.locator("#sft-mask h4").first.wait_for(timeout=300_000)
    heads = page.locator("#sft-mask h4").all_inner_texts()
    assert heads[0].startswith("Loss on the response only: 3 tokens counted") and "nats/token" in heads[0], heads
    assert page.locator("#sft-license").inner_text().count("Gemma Terms of Use") == 1
