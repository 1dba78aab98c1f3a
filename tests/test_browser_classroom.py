"""Class mode in headless Chromium: a host page on a 1920x1080 projector and three students on
390x844 phones go through one round of each activity (predict, sample, vote, quick check), the
pages refreshing on their own. Screenshots of the projector and of a phone go to docs/screenshots."""
from __future__ import annotations

import re

import pytest

from tests.conftest import SCREENSHOTS

TIMEOUT = 60_000
PHONES = 3  # each phone is a full page of the app: ~10 s of a 2-core CI machine to open


def _answered(host, n: int, round_no: int) -> None:
    """The projector shows round `round_no` with n answers (its timer refreshed it)."""
    proj = host.locator("#class-projector")
    proj.get_by_text(f"Round {round_no} ·").wait_for(timeout=TIMEOUT)
    proj.get_by_text(f"{n} of {PHONES} answered").wait_for(timeout=TIMEOUT)


def _open(host, tab: str, button: str, round_no: int) -> None:
    host.get_by_role("tab", name=tab).click()
    host.locator(button).click()
    host.locator("#class-projector").get_by_text(f"Round {round_no} ·").wait_for(timeout=TIMEOUT)


@pytest.fixture
def contexts(browser):
    """New browser contexts, each closed after the test: a page left open keeps its class timer
    polling the app (every REFRESH_S) for the rest of the session and slowed every later browser test."""
    made = []

    def new(width: int, height: int):
        made.append(browser.new_context(viewport={"width": width, "height": height}))
        return made[-1].new_page()

    yield new
    for ctx in made:
        ctx.close()


@pytest.mark.browser
def test_a_host_and_three_phones_go_through_each_activity(contexts, app_url):
    host = contexts(1920, 1080)
    host.goto(app_url + "?tab=classroom", timeout=120_000)
    host.get_by_role("tab", name="Teacher (host)").click()
    host.locator("#class-create").click()
    host.locator("#class-projector svg").wait_for(timeout=TIMEOUT)  # the join link's QR code
    join = re.search(r"Join link: (\S+)", host.locator("#class-links textarea").input_value()).group(1)
    phones = []
    for i in range(PHONES):
        phone = contexts(390, 844)
        phone.goto(join, timeout=120_000)
        phone.locator("#class-nick").wait_for(timeout=120_000)
        if i < PHONES - 1:
            # the tab opens in the browser at once; the link's room code arrives with the page load's answer
            phone.wait_for_function("(document.querySelector('#class-code input, #class-code textarea') || "
                                    "{value: ''}).value.length > 0", timeout=TIMEOUT)
            phone.locator("#class-nick").get_by_role("textbox").fill(f"<b>Phone {i}</b>")  # as typed, never markup
        # the last phone presses Join at once: before the load's answer, Join takes the link's room and
        # a suggested nickname itself
        phone.locator("#class-join").click()
        phone.get_by_text("Waiting for the host").wait_for(timeout=TIMEOUT)
        phones.append(phone)

    _open(host, "1. Predict the next token", "#class-open-predict", 1)
    for phone, guess in zip(phones, ["Paris", "Lyon", "Rome"]):
        phone.locator("#class-guess").get_by_role("textbox").fill(guess, timeout=TIMEOUT)
        phone.locator("#class-send").click()
    _answered(host, PHONES, 1)
    assert "model: next-token probability" not in host.locator("#class-projector").inner_text()
    host.locator("#class-reveal").click()
    host.locator("#class-projector").get_by_text("model: next-token probability").wait_for(timeout=TIMEOUT)
    phones[0].get_by_text("model: next-token probability").wait_for(timeout=TIMEOUT)
    assert "<b>Phone 0</b>" in host.locator("#class-projector").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    host.screenshot(path=str(SCREENSHOTS / "class-projector.png"))
    phones[0].screenshot(path=str(SCREENSHOTS / "class-phone.png"), full_page=True)

    _open(host, "2. The class is the sampler", "#class-open-sample", 2)
    for phone in phones:
        phone.locator("#class-sample").click()
    _answered(host, PHONES, 2)
    host.locator("#class-projector").get_by_text("class draws").wait_for(timeout=TIMEOUT)

    _open(host, "3. Vote on answers", "#class-open-vote", 3)
    for phone, side in zip(phones, "ABA"):
        phone.locator("#class-choice").get_by_text(side, exact=True).click()
    _answered(host, PHONES, 3)
    host.locator("#class-reveal").click()
    host.locator("#class-projector").get_by_text("Fleiss").wait_for(timeout=TIMEOUT)

    _open(host, "4. Quick check", "#class-open-check", 4)
    for phone in phones:
        phone.locator("#class-choice label").first.click()
    _answered(host, PHONES, 4)
    host.locator("#class-reveal").click()
    host.locator("#class-projector").get_by_text("✅").wait_for(timeout=TIMEOUT)
    phones[1].get_by_text("✅").wait_for(timeout=TIMEOUT)
