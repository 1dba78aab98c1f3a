"""Screenshots of the Embeddings & attention tab for docs/screenshots (run the app first:
`python app.py --offline --port 7872`, then `python scripts/screenshot_embeddings.py [URL]`)."""
from __future__ import annotations

import sys
from pathlib import Path

from shots import OUT, ROOT, chromium_page


def open_tab(page, url: str, inner: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Embeddings & attention").click()
    page.get_by_role("tab", name=inner).click()


def shot(page, path: Path, top_sel: str, bottom_sel: str) -> None:
    """Screenshot from the top of one element to the bottom of another."""
    # The viewport is tall enough for a whole inner tab, so no full-page capture is needed
    # (a full-page capture resizes the page and blanks the bertviz iframe).
    page.evaluate("window.scrollTo(0, 0)")
    top = page.locator(top_sel).first.bounding_box()
    bottom = page.locator(bottom_sel).first.bounding_box()
    y0 = max(0, top["y"] - 10)
    clip = dict(x=0, y=y0, width=page.viewport_size["width"], height=bottom["y"] + bottom["height"] + 10 - y0)
    page.screenshot(path=str(path), clip=clip, type="png")
    if path.stat().st_size > 450_000:  # dense SVG line art: a 256-colour palette keeps it small
        from PIL import Image

        Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} kB)")


def run_and_shoot(page, button: str, plot: str, path: Path, top_sel: str, bottom_sel: str) -> None:
    """Click a run button, wait for its plot to be drawn and settle, then take the screenshot."""
    page.locator(button).click()
    page.locator(f"{plot} .js-plotly-plot").wait_for()
    page.wait_for_timeout(1500)
    shot(page, path, top_sel, bottom_sel)


def main(url: str = "http://127.0.0.1:7872/") -> None:
    with chromium_page(height=3200, timeout_ms=180_000) as page:
        open_tab(page, url, "Attention heatmaps")
        page.locator("#att-run").click()
        page.locator("#att-heatmap .js-plotly-plot").wait_for()
        page.locator("#att-grid .js-plotly-plot").wait_for()
        page.wait_for_timeout(1500)
        shot(page, OUT / "embeddings-heatmap.png", "#att-text", "#att-bar")
        shot(page, OUT / "embeddings-grid.png", "#att-grid", "#att-grid")
        page.get_by_text("Causal: SmolLM2-135M (sees only the past)").first.click()  # reloads the maps
        page.locator("#att-heatmap .gtitle", has_text="SmolLM2").wait_for()
        page.wait_for_timeout(1500)
        shot(page, OUT / "embeddings-heatmap-causal.png", "#att-text", "#att-bar")
        page.get_by_text("Encoder: all-MiniLM-L6-v2 (sees both sides)").first.click()
        page.locator("#att-heatmap .gtitle", has_text="MiniLM").wait_for()

        run_and_shoot(page, "#cmp-run", "#cmp-plot", OUT / "embeddings-compare.png", "#cmp-run", "#cmp-plot")

        open_tab(page, url, "bertviz")
        page.locator("#bv-run").click()
        frame = page.frame_locator("#bv-html iframe")
        frame.locator("svg").first.wait_for()
        page.wait_for_timeout(1000)
        shot(page, OUT / "embeddings-bertviz.png", "#bv-text", "#bv-html iframe")
        page.get_by_text("Model view (every layer x every head)").click()
        page.locator("#bv-run").click()
        page.wait_for_timeout(500)
        page.frame_locator("#bv-html iframe").locator("svg").first.wait_for()
        page.wait_for_timeout(1500)
        shot(page, OUT / "embeddings-bertviz-model.png", "#bv-text", "#bv-html iframe")

        open_tab(page, url, "Contextual embeddings")
        run_and_shoot(page, "#ctx-run", "#ctx-pca", OUT / "embeddings-bank.png", "#ctx-sentences", "#ctx-shapes")

        open_tab(page, url, "Mini vector search")
        run_and_shoot(page, "#search-run", "#search-plot", OUT / "embeddings-search.png", "#search-passages",
                      "#search-dense")


if __name__ == "__main__":
    main(*sys.argv[1:])
