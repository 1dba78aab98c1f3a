import datetime
from urllib.parse import parse_qsl

import pytest
from playwright.sync_api import expect

import tabs
from tabs import home
from tests.conftest import SCREENSHOTS

# every input value on the page, visible or not (text boxes, slider number boxes)
INPUT_VALUES_JS = "() => [...document.querySelectorAll('input, textarea')].map(e => e.value)"


@pytest.mark.browser
def test_landing_tab_shows_lessons_first_then_device_cache_and_folded_models(page, app_url):
    page.goto(app_url)
    page.get_by_text("Device:").first.wait_for(timeout=30_000)
    status = page.locator("#engine-status").inner_text()
    assert "cpu" in status and "float32" in status and "evictions" in status
    cards = page.locator("#lesson-cards .card")
    assert cards.count() == len(home.lesson_cards())
    # lessons first: the cards start above the status, and the model table is folded
    assert cards.first.bounding_box()["y"] < page.locator("#engine-status").bounding_box()["y"]
    assert not page.locator("#model-table").is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "home.png"), full_page=True)
    page.get_by_text("Models: where each one comes from here").click()  # still one click away
    page.locator("#model-table").wait_for(state="visible", timeout=10_000)
    table = page.locator("#model-table").inner_text()
    assert "smollm2-135m-instruct" in table and "embedded (offline)" in table


@pytest.mark.browser
def test_every_lesson_card_link_opens_its_tab_with_the_example(page, app_url):
    titles = {m.__name__.split(".")[-1]: m.TITLE for m in tabs.available()}
    page.goto(app_url)
    page.locator("#lesson-cards a").first.wait_for(timeout=30_000)
    n = page.locator("#lesson-cards a").count()
    assert n == len(titles) - 1  # every tab but this one
    hrefs = [(a.get_attribute("data-tab"), a.get_attribute("href")) for a in page.locator("#lesson-cards a").all()]
    assert sorted(t for t, _ in hrefs) == sorted(set(titles) - {"home"})  # one card a lesson
    assert all(dict(parse_qsl(h.lstrip("?"))).get("tab") == t for t, h in hrefs)
    # Each page load costs ~5 s: a run follows about a third of the cards, a rotation by the day
    # (as the endpoint fuzz rotates), so three days in a row follow every card.
    day = datetime.date.today().toordinal()
    followed = [i for i in range(n) if (i + day) % 3 == 0]
    pg = page
    for j, i in enumerate(followed):
        # Each link is a real navigation (a page load, as for a newcomer); the way back to the cards is
        # the Start tab of the page it opened, so that every card costs one page load, not two.
        if j:
            pg.get_by_role("tab", name=titles["home"], exact=True).click()
        link = pg.locator("#lesson-cards a").nth(i)
        link.wait_for(timeout=30_000)
        tab_id = link.get_attribute("data-tab")
        params = dict(parse_qsl(link.get_attribute("href").lstrip("?")))
        link.click()
        pg.wait_for_url(f"**tab={tab_id}**", timeout=10_000)
        pg.get_by_role("tab", name=titles[tab_id], exact=True, selected=True).wait_for(timeout=30_000)
        assert params.pop("tab") == tab_id
        for value in params.values():  # the example's values reached the tab's inputs
            try:
                pg.wait_for_function(
                    f"() => ({INPUT_VALUES_JS})().some(v => v === {value!r} || "
                    f"(v !== '' && Number(v) === Number({value!r})))", timeout=30_000)
            except Exception as exc:
                raise AssertionError(f"card {tab_id}: {value!r} never reached an input") from exc


@pytest.mark.browser
def test_presentation_mode_and_share_link(page, app_url):
    page.goto(app_url + "?present=1")
    page.get_by_text("Device:").first.wait_for(timeout=30_000)
    page.wait_for_function("document.body.classList.contains('present')", timeout=10_000)
    box = page.get_by_label("Presentation mode (larger text)")
    # the server's answer to the page load ticks the box: wait for it, or it re-ticks it after us
    expect(box).to_be_checked(timeout=30_000)
    box.uncheck()
    page.wait_for_function("!document.body.classList.contains('present')", timeout=10_000)
    page.get_by_role("button", name="🔗 Link to this view").click()
    box = page.locator("#share-link textarea")
    box.wait_for(timeout=10_000)
    page.wait_for_function("document.querySelector('#share-link textarea').value.includes('tab=home')",
                           timeout=10_000)
    assert box.input_value().startswith(app_url.rstrip("/"))
