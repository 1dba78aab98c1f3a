"""Screenshots of the main views at the three sizes a lesson is shown at (issue 32): a laptop
(1280x800), a projector in presentation mode (1920x1080, ?present=1) and a phone (390x844), plus the
dark theme on a laptop. Each view opens from its share link, so it shows its default example.

    .venv/bin/python app.py --offline --port 7899 &
    .venv/bin/python scripts/screenshot_sizes.py http://127.0.0.1:7899/

Writes docs/screenshots/screen-<view>-<size>.png (what the window shows, not the whole page)."""
from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

from shots import ARGS, OUT

SIZES = {"laptop": (1280, 800, ""), "projector": (1920, 1080, "&present=1"), "phone": (390, 844, ""),
         "dark": (1280, 800, "&__theme=dark")}
# view name -> (link query, the element that shows the view's result: the window starts there)
VIEWS = {
    "tokens": ("tab=tokens", "#tok-side-by-side .card"),
    "decoding": ("tab=decoding", "#decoding-chart .js-plotly-plot"),
    "attention": ("tab=embeddings", "#att-heatmap .js-plotly-plot"),
    "rag-chunks": ("tab=retrieval", "#rag-chunks span"),
}
DARK_VIEWS = ("tokens", "decoding")


def shoot(page, base: str, view: str, size: str) -> None:
    width, height, extra = SIZES[size]
    query, ready = VIEWS[view]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{base}?{query}{extra}")
    page.locator(ready).first.wait_for(timeout=180_000)
    page.wait_for_timeout(1500)
    if size != "projector":  # on a projector the page is shown from its top, as a class sees it
        page.locator(ready).first.evaluate("e => e.closest('.block').scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
    page.screenshot(path=str(OUT / f"screen-{view}-{size}.png"))


def main(base: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page()
        page.set_default_timeout(60_000)
        for size in SIZES:
            for view in (DARK_VIEWS if size == "dark" else VIEWS):
                shoot(page, base, view, size)
                print("wrote", f"screen-{view}-{size}.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7860/")
