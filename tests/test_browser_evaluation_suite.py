"""Evaluation part 2 in headless Chromium: a deep link opens the task suite with its knobs, runs
it, and the per-item table holds one row per item with its CSV download."""
import pytest

from tests.conftest import SCREENSHOTS


@pytest.mark.browser
def test_suite_deep_link_fills_the_per_item_table(page, app_url, smollm):
    page.goto(app_url + "?tab=evaluation&view=suite&k=0&items=5")
    table = page.locator("#eval-suite-items")
    table.get_by_text("negation-000").first.wait_for(timeout=180_000)
    text = table.inner_text()
    for item_id in ("arithmetic-000", "capitals-000", "quotes-000", "commonsense-000", "negation-000"):
        assert item_id in text
    assert "arithmetic-001" not in text  # items=5 from the link: one per skill
    csv = page.locator(".csv-download:visible", has_text="suite-items.csv")
    csv.wait_for(timeout=10_000)
    summary = page.locator("#eval-suite-summary").inner_text()
    assert "smollm2-135m-instruct" in summary and "\t5\t" in summary.replace("\n", "\t")
    page.wait_for_timeout(500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "evaluation-suite-link.png"))
