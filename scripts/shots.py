"""What the screenshot scripts share: where screenshots go and a headless Debian Chromium page."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium_page(height: int, timeout_ms: int):
    """A 1400-pixel-wide page in /usr/bin/chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        page.set_default_timeout(timeout_ms)
        try:
            yield page
        finally:
            browser.close()
