"""Screenshots of the Evaluation tab's part 2 for docs/screenshots: the task suite's per-item table,
a stress test and the GLTR rank colouring. Run the app first (`python app.py --offline --port 7876`),
then `python scripts/screenshot_evaluation2.py [URL]`."""
from __future__ import annotations

import sys
from urllib.parse import quote

from shots import OUT, ROOT, chromium_page


def shot(page, locator, name: str, offset: int = 20) -> None:
    box = locator.bounding_box()
    page.evaluate("y => window.scrollTo(0, y)", page.evaluate("() => window.scrollY") + box["y"] - offset)
    page.wait_for_timeout(800)
    page.screenshot(path=str(OUT / name))
    print(f"wrote {(OUT / name).relative_to(ROOT)}")


def main(url: str = "http://127.0.0.1:7876/") -> None:
    with chromium_page(height=1000, timeout_ms=600_000) as page:
        page.goto(url + "?tab=evaluation&view=suite&k=1&items=30")
        page.locator("#eval-suite-items").get_by_text("arithmetic-000").first.wait_for()
        shot(page, page.locator("#eval-suite-summary"), "evaluation-suite.png")
        shot(page, page.locator("#eval-suite-items"), "evaluation-suite-items.png")

        page.goto(url + "?tab=evaluation&view=stress&question=" + quote("Which of these is a fruit?")
                  + "&choices=" + quote("apple\ncar\nhammer\nblue"))
        page.locator("#eval-stress-table").get_by_text("negation swap").first.wait_for()
        shot(page, page.locator("#eval-stress-score"), "evaluation-stress.png", offset=60)

        page.goto(url + "?tab=evaluation&view=gltr")
        page.get_by_role("button", name="Example: the model's own text (A) vs a human quote (B)").click()
        page.locator("#eval-gltr-b .gltr-text").wait_for()
        shot(page, page.locator("#eval-gltr-a"), "evaluation-ranks.png", offset=260)


if __name__ == "__main__":
    main(*sys.argv[1:])
