"""Table headers wrap between words, never inside one, and no header word is cut off by a
column that is too narrow for it (the app's CSS; issue 25: "perplexit y", "tok / ens")."""
import pytest

# For every visible table header cell: each word (a run of letters or digits) must sit on one
# line and end inside the cell's text box.
HEADER_WORDS_JS = """() => {
  const bad = [], checked = [];
  for (const th of document.querySelectorAll('th')) {
    if (!th.offsetParent || !th.getBoundingClientRect().width) continue;
    const holder = th.querySelector('.header') || th;
    const limit = holder.getBoundingClientRect();
    const walker = document.createTreeWalker(holder, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/[\\p{L}\\p{N}]+/gu)) {
        const r = document.createRange();
        r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
        const rects = [...r.getClientRects()].filter(q => q.width > 0);
        const lines = new Set(rects.map(q => Math.round(q.top))).size;
        const right = Math.max(...rects.map(q => q.right));
        checked.push(m[0]);
        if (lines > 1) bad.push(`${m[0]}: split over ${lines} lines`);
        else if (right > limit.right + 1) bad.push(`${m[0]}: cut off ${Math.round(right - limit.right)} px past its cell`);
      }
    }
  }
  return {bad, checked};
}"""


@pytest.mark.browser
def test_table_headers_never_break_or_clip_inside_a_word(page, app_url, tmp_path):
    page.goto(app_url)
    page.get_by_text("Models: where each one comes from here").click()  # Start here: the folded models table
    page.wait_for_selector("#model-table th", timeout=30_000)
    views = {"Start here": page.evaluate(HEADER_WORDS_JS)}
    page.get_by_role("tab", name="Evaluation").click()
    for sub, table in (("Natural vs shuffled vs random", "perplexity"), ("Answer metrics", "candidate"),
                       ("Quantization", "perplexity")):
        page.get_by_role("tab", name=sub).click()
        page.locator("th:visible", has_text=table).first.wait_for(timeout=10_000)
        views[sub] = page.evaluate(HEADER_WORDS_JS)
    page.locator("#eval-quant-table").screenshot(path=str(tmp_path / "quantization-header.png"))
    for name, res in views.items():
        assert len(res["checked"]) >= 5, (name, res)  # the check saw the headers
        assert res["bad"] == [], name
    assert "perplexity" in views["Quantization"]["checked"] and "MiB" in views["Start here"]["checked"]
