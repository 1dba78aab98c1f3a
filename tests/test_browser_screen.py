"""Every view fits and reads on a laptop (1280x800), a phone (390x844), a projector (1920x1080 in
presentation mode) and in the dark theme (issue 32, "The screen"): no element cuts its content, text
contrasts with what is behind it, views show their default example when they open, views hide the
controls they ignore, and a refused action leaves nothing behind. One browser test, one page per size."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("one_thread")]

# Elements that cut their content: a number box narrower than its number, a clipping or scrolling
# box wider inside than out (a table that hides its last columns, "0.(" for "0.01").
OVERFLOW_JS = """(root) => {
  const bad = [];
  for (const el of (root ? document.querySelector(root) : document).querySelectorAll('.gradio-container *, *')) {
    if (!el.offsetParent || el.getBoundingClientRect().width < 2) continue;
    const input = el.tagName === 'INPUT' && ['number', 'text'].includes(el.type);
    if (!input && !['hidden', 'clip', 'auto', 'scroll'].includes(getComputedStyle(el).overflowX)) continue;
    if (el.closest('.js-plotly-plot, textarea, .options, iframe') || !(input || el.innerText.trim())) continue;
    if (el.scrollWidth > el.clientWidth + 2)
      bad.push(`${el.tagName}.${String(el.className).slice(0, 30)} in #${(el.closest('[id]') || {}).id}: `
               + `${el.scrollWidth} > ${el.clientWidth} ${(input ? el.value : el.innerText).slice(0, 30)}`);
  }
  return bad;
}"""

# WCAG contrast of every visible text against the colour behind it (backgrounds composed up the
# tree; gradients are skipped): below 3 is unreadable on a projector.
CONTRAST_JS = """(root) => {
  const rgba = s => { const m = s.match(/[\\d.]+/g); return m && [+m[0], +m[1], +m[2], m[3] === undefined ? 1 : +m[3]]; };
  const lum = c => c.slice(0, 3).map(v => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
                    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const behind = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 0.99) break; }
    }
    let out = layers.length && layers[layers.length - 1][3] >= 0.99 ? layers.pop() : [255, 255, 255];
    for (const l of layers.reverse()) out = out.map((v, i) => i < 3 ? v * (1 - l[3]) + l[i] * l[3] : 1);
    return out;
  };
  const bad = [], seen = new Set();
  const walk = document.createTreeWalker(document.querySelector(root), NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement;
    if (!n.data.trim() || seen.has(el) || !el.offsetParent) continue;
    seen.add(el);
    let gradient = false;
    for (let e = el; e && !gradient; e = e.parentElement) gradient = getComputedStyle(e).backgroundImage !== 'none';
    if (gradient) continue;
    const bg = behind(el), fg = rgba(getComputedStyle(el).color);
    const text = fg.map((v, i) => i < 3 ? v * fg[3] + bg[i] * (1 - fg[3]) : 1);
    const [a, b] = [lum(text), lum(bg)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 3) bad.push(`${ratio.toFixed(2)} ${n.data.trim().slice(0, 20)} ${getComputedStyle(el).color}`);
  }
  return [seen.size, bad];
}"""

# Labels (plotly text) that overlap another: [checked, overlapping pairs].
OVERLAP_JS = """(sel) => {
  const boxes = [...document.querySelectorAll(sel)].map(e => [e.textContent, e.getBoundingClientRect()])
    .filter(([, r]) => r.width > 0);
  const bad = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [p, a] = boxes[i], [q, b] = boxes[j];
    const x = Math.min(a.right, b.right) - Math.max(a.left, b.left), y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (x > 2 && y > 2) bad.push(`${p} / ${q}`);
  }
  return [boxes.length, bad];
}"""

# Words of the cells under `sel` that are broken over two lines: "perplex|ity".
BROKEN_WORDS_JS = """(sel) => {
  const bad = [];
  for (const cell of document.querySelectorAll(sel)) {
    const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) for (const m of n.data.matchAll(/[\\p{L}\\p{N}]+/gu)) {
      const r = document.createRange(); r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
      if (new Set([...r.getClientRects()].filter(q => q.width).map(q => Math.round(q.top))).size > 1) bad.push(m[0]);
    }
  }
  return bad;
}"""


def _tab(page, *names):
    for name in names:
        page.get_by_role("tab", name=name, exact=True).first.click()


def _laptop(page, app_url, tmp_path):
    """1280x800: tables, slider rows and sub-tab rows fit; views draw their default example on
    opening; Decoding hides what a view ignores; refused actions leave nothing behind."""
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(app_url)
    _tab(page, "Tokens")
    page.locator("#tok-stats", has_text="GPT-2").wait_for(timeout=60_000)  # drawn at page load
    assert page.evaluate(OVERFLOW_JS, "#tok-stats") == []  # all ten columns
    _tab(page, "Batch: padding & attention mask")
    page.locator("#tok-batch table").first.wait_for(timeout=30_000)  # drawn when the view opens
    _tab(page, "Post-training", "Preference tuning (reward model, DPO)")
    page.locator("#pref-table").wait_for()
    assert page.evaluate(OVERFLOW_JS, "#posttraining-views") == []  # "0.(" "21474836": sliders had no room
    _tab(page, "Evaluation")
    assert page.get_by_role("tab", name="Model-written?").is_visible()  # not behind a "⋯" menu
    _tab(page, "LoRA")
    page.locator("#lora-data-preview", has_text="Balliett").wait_for(timeout=60_000)  # the bundled quotes
    _tab(page, "Retrieval (RAG)")
    page.locator("#rag-chunks span").first.wait_for(timeout=60_000)  # the first document's chunks
    _tab(page, "2 · Search")
    widths = page.evaluate("() => ['rag-dense', 'rag-hybrid', 'rag-results'].map("
                           "i => document.getElementById(i).getBoundingClientRect().width)")
    assert min(widths[:2]) > 0.9 * widths[2]  # the result tables one above the other, each full width
    _tab(page, "1 · Chunks")
    page.locator("#rag-upload").click()  # no file: refused
    page.locator(".toast-body", has_text="No file").wait_for()
    page.wait_for_timeout(500)
    assert page.locator("#rag-source input[type=radio]").count() == 2 and page.locator("#rag-source .error").count() == 0
    _teach_leftovers(page, tmp_path)
    _tab(page, "Decoding")
    page.locator("#decoding-chart .js-plotly-plot").wait_for(timeout=90_000)  # the default prompt's chart
    _tab(page, "Beam search")
    page.wait_for_timeout(300)
    assert page.locator("#decoding-knobs").is_hidden()  # beam search has its own knobs
    assert page.locator("#decoding-prompt textarea").is_editable()  # and reads the prompt
    _tab(page, "Conversation")
    page.wait_for_timeout(300)
    assert not page.locator("#decoding-prompt textarea").is_editable()  # always SmolLM2, its own messages
    _tab(page, "Next token, step by step")
    page.wait_for_timeout(300)
    assert page.locator("#decoding-knobs").is_visible() and page.locator("#decoding-prompt textarea").is_editable()


def _teach_leftovers(page, tmp_path):
    """Diffusion → Teach: a refused Train leaves no "Starting…" and no pills over the pictures; Clear the
    pictures empties the upload box."""
    from PIL import Image, ImageDraw

    _tab(page, "Diffusion", "Teach it a new symbol")
    picture = tmp_path / "symbol.png"
    image = Image.new("RGB", (16, 16), "white")
    ImageDraw.Draw(image).line([(2, 2), (13, 13)], fill="black", width=2)
    image.save(picture)
    page.locator("#teach-uploads input[type=file]").set_input_files(str(picture))
    page.locator("#teach-images img").first.wait_for(timeout=90_000)
    page.locator("#teach-train").click()  # one picture: refused (3 to 10)
    page.locator(".toast-body", has_text="picture").first.wait_for(timeout=20_000)
    page.wait_for_timeout(500)
    assert "Starting" not in page.locator("#teach-status").inner_text()
    # the refusal is marked where the run's status goes, never over the pictures or the loss plot
    assert page.locator("#diffusion-teach-tab .error:visible").count() == page.locator("#teach-status .error").count()
    page.locator("#teach-clear").click()
    page.wait_for_timeout(800)
    assert page.locator("#teach-uploads", has_text="symbol.png").count() == 0
    assert page.locator("#teach-images img").count() == 0


def _dark(page):
    """The dark theme (the class ?__theme=dark sets): the token views and the step view read (the
    pieces were white on pastel, the source text white on white)."""
    page.evaluate("() => document.body.classList.add('dark')")
    _tab(page, "Tokens", "Side by side")
    checked, bad = page.evaluate(CONTRAST_JS, "#tok-side-by-side")
    assert checked > 100 and bad == []
    _tab(page, "Batch: padding & attention mask")
    assert page.evaluate(CONTRAST_JS, "#tok-batch")[1] == []
    _tab(page, "Decoding")
    assert page.evaluate(CONTRAST_JS, "#decoding-steps")[1] == []
    page.evaluate("() => document.body.classList.remove('dark')")


def _phone(page):
    """390x844: the Decoding panel titles and the heatmap's labels do not overlap; the token cards
    stack; the perplexity arithmetic breaks no word."""
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(1000)  # the charts follow the window's width
    checked, bad = page.evaluate(OVERLAP_JS, "#decoding-chart .annotation-text")
    assert checked == 7 and bad == []
    _tab(page, "Tokens", "Side by side")
    widths = page.evaluate("() => [...document.querySelectorAll('#tok-side-by-side .card')].map(c => c.offsetWidth)")
    assert len(widths) == 4 and min(widths) > 300  # one card a row, not four 80 px columns
    _tab(page, "Embeddings & attention")
    page.locator("#att-heatmap .js-plotly-plot").wait_for(timeout=60_000)  # drawn when the tab opens
    checked, bad = page.evaluate(OVERLAP_JS, "#att-heatmap .xtick text")
    assert checked > 10 and bad == []
    _tab(page, "Evaluation")
    page.get_by_role("button", name="Score the text").click()
    page.locator("#eval-arithmetic td").first.wait_for(timeout=90_000)
    assert page.evaluate(BROKEN_WORDS_JS, "#eval-arithmetic td") == []


def _projector(page):
    """Presentation mode (the class ?present=1 sets) at 1920x1080: the Decoding chart starts above the fold."""
    page.set_viewport_size({"width": 1920, "height": 1080})
    _tab(page, "Decoding")
    page.evaluate("() => { document.body.classList.add('present'); window.scrollTo(0, 0); }")
    page.wait_for_timeout(500)
    top = page.evaluate("() => document.querySelector('#decoding-chart').getBoundingClientRect().top")
    assert top < 1080 - 300, top  # at least its first row of panels


def test_views_fit_laptop_phone_projector_and_dark_theme(page, app_url, tmp_path):
    page.set_default_timeout(30_000)
    _laptop(page, app_url, tmp_path)  # one page load; the other sizes and themes on the same page
    _dark(page)
    _phone(page)
    _projector(page)
