"""Screenshots of the LoRA tab for docs/screenshots: the data preview, the loss after a full
default training run (40 steps: one to two minutes on a 2-core CPU) and base vs adapted.
Run the app first (`python app.py --offline --port 7899`), then
`python scripts/screenshot_lora.py [URL]`; scripts/refresh_screenshots.sh does both."""
from __future__ import annotations

import sys
from pathlib import Path

from shots import OUT, ROOT, chromium_page


def view_from(page, locator, path: Path, offset: int = 20) -> None:
    """A viewport-sized screenshot whose top is just above `locator`."""
    box = locator.bounding_box()
    page.evaluate("y => window.scrollTo(0, y)", page.evaluate("() => window.scrollY") + box["y"] - offset)
    page.wait_for_timeout(800)
    page.screenshot(path=str(path))
    print(f"wrote {path.relative_to(ROOT)}")


def main(url: str = "http://127.0.0.1:7899/") -> None:
    with chromium_page(height=1000, timeout_ms=900_000) as page:
        page.goto(url + "?tab=lora")
        page.get_by_role("button", name="Preview data and training format").click()
        page.get_by_text("examples,", exact=False).first.wait_for()
        view_from(page, page.get_by_text("1. Data", exact=True).first, OUT / "lora-data.png")

        page.get_by_role("button", name="Train adapter").click()
        page.locator("#lora-status").get_by_text("Done", exact=False).first.wait_for()
        view_from(page, page.get_by_text("3. Train", exact=True).first, OUT / "lora-train.png")

        page.get_by_role("button", name="Compare base vs adapted").click()
        page.wait_for_function("() => (document.querySelector('#lora-adapted textarea') || {}).value")
        view_from(page, page.locator("#lora-loss"), OUT / "lora-compare.png", offset=-300)


if __name__ == "__main__":
    main(*sys.argv[1:])
