"""Screenshots of the Retrieval (RAG) tab: the chunk view, the three rankings with the map, and
the side-by-side answers. Start the app first (python app.py --offline --port 7861), then:

    python scripts/screenshot_retrieval.py http://127.0.0.1:7861/

The first search indexes the bundled corpus (a minute or more on a small CPU)."""
from __future__ import annotations

import sys
from urllib.parse import urlencode

from shots import OUT, chromium_page


def main(url: str) -> None:
    with chromium_page(1300, 900_000) as page:
        page.goto(url + "?" + urlencode({"tab": "retrieval", "doc": "tutorial-errors", "size": 64, "overlap": 16}))
        page.locator("#rag-chunk-view span[title*='overlap']").first.wait_for()
        page.wait_for_timeout(1000)
        page.locator("#rag-row").screenshot(path=str(OUT / "retrieval-chunks.png"))
        page.get_by_role("tab", name="2 · Search").click()
        page.locator("#rag-search").click()
        page.locator("#rag-map .js-plotly-plot").wait_for()
        page.wait_for_timeout(1500)
        page.locator("#rag-row").screenshot(path=str(OUT / "retrieval-search.png"))
        page.get_by_role("tab", name="3 · Answer").click()
        page.locator("#rag-answer").click()
        page.locator("#rag-answer-stats", has_text="without").wait_for()
        page.wait_for_function("!document.querySelector('#rag-answers').innerText.includes('writing')")
        page.wait_for_timeout(1000)
        page.locator("#rag-row").screenshot(path=str(OUT / "retrieval-answer.png"))
        page.get_by_role("tab", name="4 · Quality").click()
        page.locator("#rag-quality").click()
        page.locator("#rag-quality-plot .js-plotly-plot").wait_for()
        page.wait_for_timeout(1000)
        page.locator("#rag-row").screenshot(path=str(OUT / "retrieval-quality.png"))
    print("wrote", *sorted(p.name for p in OUT.glob("retrieval-*.png")))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7861/")
