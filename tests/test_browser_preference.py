"""The preference sub-tab in headless Chromium: both methods are named with their loss formulas,
and the editable comparison table holds the bundled pairs."""
import pytest


@pytest.mark.browser
def test_methods_formulas_and_the_comparison_table(page, app_url):
    page.goto(app_url + "?tab=posttraining&view=preference&beta=0.2", timeout=120_000)
    page.locator("#pref-table").wait_for(timeout=120_000)  # the link opened the preference sub-tab
    text = page.locator("body").inner_text()
    assert "−log σ( r(x, y_chosen) − r(x, y_rejected) )" in text
    assert "log π(y_c|x) − log π_ref(y_c|x)" in text
    from engine.training import preference as P

    first = P.load_pairs()[0]  # the table's first row is the bundled set's first pair
    assert first.prompt in page.locator("#pref-table").inner_text()
    assert page.get_by_label("β (beta)").first.input_value() == "0.2"  # the linked knob was applied
