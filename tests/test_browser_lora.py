"""The LoRA tab in headless Chromium: the data preview shows the EOS-terminated format and the
parameter count appears before any training."""
import pytest


@pytest.mark.browser
def test_preview_and_parameter_count(page, app_url):
    page.goto(app_url + "?tab=lora&r=4", timeout=120_000)
    page.get_by_role("tab", name="LoRA").click()
    page.get_by_role("button", name="Preview data and training format").click()
    page.get_by_text("examples,", exact=False).first.wait_for(timeout=300_000)
    assert "<|im_end|>" in page.locator("body").inner_text()
    page.get_by_role("button", name="Count parameters (before training)").click()
    page.get_by_text("Trainable:", exact=False).first.wait_for(timeout=300_000)
    text = page.locator("body").inner_text()
    # r=4 on q_proj + v_proj of SmolLM2: 30 layers x 4 x ((576+576) + (576+192)) = 230,400
    assert "230,400" in text, text[-2000:]
