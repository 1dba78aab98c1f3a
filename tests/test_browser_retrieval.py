"""The Retrieval (RAG) tab in a browser: a deep link paints the chunks with their overlap, and a
file uploaded in the page is indexed into the session's own collection and searched."""
from __future__ import annotations

from urllib.parse import urlencode

import pytest


@pytest.mark.browser
def test_deep_link_chunks_then_upload_and_search(app_url, page, tmp_path):
    page.set_default_timeout(120_000)
    qs = urlencode({"tab": "retrieval", "doc": "howto-sorting", "size": 48, "overlap": 16,
                    "query": "Which animal lives in the Lisbon zoo?"})
    page.goto(app_url + "?" + qs)
    view = page.locator("#rag-chunk-view")
    view.wait_for()
    page.wait_for_function("document.body.innerText.includes('chunks** of') || "
                           "document.querySelector('#rag-chunk-view').innerText.includes('Sorting')")
    overlaps = page.locator("#rag-chunk-view span[title*='overlap']")
    assert overlaps.count() > 10  # with 16 tokens of overlap, every boundary is striped
    assert "chunk 0 (48 tokens) + chunk 1 (48 tokens): overlap" in overlaps.first.get_attribute("title")

    notes = tmp_path / "zoo notes.md"
    notes.write_text("# Zoo\n\nThe zebra named Quilla lives in the Lisbon zoo.\n\nOwls sleep during the day.\n")
    page.locator("#rag-files input[type=file]").set_input_files(str(notes))
    page.wait_for_timeout(1500)
    page.locator("#rag-upload").click()
    page.locator("#rag-index-status", has_text="chunks").wait_for()
    assert "session" in page.locator("#rag-index-status").inner_text()
    page.get_by_role("tab", name="2 · Search").click()
    assert page.locator("#rag-query textarea").input_value() == "Which animal lives in the Lisbon zoo?"  # from the link
    page.locator("#rag-search").click()
    page.locator("#rag-dense", has_text="Quilla").wait_for()
    page.locator("#rag-map .js-plotly-plot").wait_for()
    assert page.locator("#rag-hybrid", has_text="zoo notes.md").count() >= 1
