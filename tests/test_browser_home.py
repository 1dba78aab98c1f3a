import pytest

from tests.conftest import SCREENSHOTS


@pytest.mark.browser
def test_landing_tab_shows_device_cache_and_models(page, app_url):
    page.goto(app_url)
    page.get_by_text("Device:").first.wait_for(timeout=30_000)
    status = page.locator("#engine-status").inner_text()
    assert "cpu" in status and "float32" in status and "evictions" in status
    table = page.locator("#model-table").inner_text()
    assert "smollm2-135m-instruct" in table and "embedded (offline)" in table
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "home.png"), full_page=True)


@pytest.mark.browser
def test_presentation_mode_and_share_link(page, app_url):
    page.goto(app_url + "?present=1")
    page.get_by_text("Device:").first.wait_for(timeout=30_000)
    page.wait_for_function("document.body.classList.contains('present')", timeout=10_000)
    page.get_by_label("Presentation mode (larger text)").uncheck()
    page.wait_for_function("!document.body.classList.contains('present')", timeout=10_000)
    page.get_by_role("button", name="🔗 Link to this view").click()
    box = page.locator("#share-link textarea")
    box.wait_for(timeout=10_000)
    page.wait_for_function("document.querySelector('#share-link textarea').value.includes('tab=home')",
                           timeout=10_000)
    assert box.input_value().startswith(app_url.rstrip("/"))
