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
