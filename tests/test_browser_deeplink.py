"""A link reopens a tab with the same text and knobs in a fresh browser (issue 12)."""
from urllib.parse import urlencode

import pytest


@pytest.mark.browser
def test_tokens_deep_link_reproduces_the_comparison(browser, app_url, client):
    text = "Deep links: naïve café 2024 🙂"
    qs = urlencode({"tab": "tokens", "text": text, "picks": "tok-gpt2,tok-cl100k", "show_ids": "true"})
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})  # fresh: no state carried over
    page = ctx.new_page()
    try:
        page.goto(app_url + "?" + qs)
        view = page.locator("#tok-side-by-side")
        page.wait_for_function(
            "document.querySelector('#tok-side-by-side') && "
            "document.querySelector('#tok-side-by-side').innerText.includes('cl100k') && "
            "document.querySelector('#tok-side-by-side').innerText.includes('GPT-2') && "  # not a progress line
            "!document.querySelector('#tok-side-by-side').innerText.includes('Llama')", timeout=60_000)
        shown = view.inner_text()
        assert "GPT-2" in shown and "cl100k" in shown and "Llama" not in shown
        # the same numbers as the API gives for the same inputs
        html, stats = client.predict(text, ["tok-gpt2", "tok-cl100k"], 800, True, api_name="/compare_tokenizers")
        counts = {row[0]: row[1] for row in stats["data"]}
        for name, count in counts.items():
            assert str(count) in shown, (name, count)
        # and the link button gives a link back to the same view
        page.get_by_role("button", name="🔗 Link to this view").click()
        page.wait_for_function("(document.querySelector('#share-link textarea') || {value: ''}).value.includes('tab=tokens')",
                               timeout=10_000)
        link = page.locator("#share-link textarea").input_value()
        assert "picks=tok-gpt2%2Ctok-cl100k" in link and "text=Deep+links" in link
    finally:
        ctx.close()


@pytest.mark.browser
def test_embeddings_deep_link_renders_the_heatmap(browser, app_url):
    qs = urlencode({"tab": "embeddings", "text": "The cat sat on the mat because it was tired.",
                    "layer": 2, "head": 3})
    for _ in range(2):  # twice in fresh contexts: the render must not depend on timing
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        try:
            page.goto(app_url + "?" + qs)
            page.wait_for_function("document.body.innerText.includes('tired')", timeout=60_000)
            page.wait_for_selector(".js-plotly-plot .heatmaplayer", timeout=60_000)
        finally:
            ctx.close()


@pytest.mark.browser
def test_a_link_reopens_the_sub_tab_and_the_button_keeps_it(browser, app_url):
    """Issue 32: ?view= opens the inner tab (Tokens' Batch, Pipelines' Named entities with its
    text), and the link button made there carries the view again."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    try:
        page.goto(app_url + "?" + urlencode({"tab": "pipelines", "view": "ner", "ner_text": "Ada lived in Turin."}))
        tab = page.get_by_role("tab", name="Named entities")
        page.wait_for_function("[...document.querySelectorAll('[role=tab][aria-selected=true]')]"
                               ".some(t => t.innerText.includes('Named entities'))", timeout=60_000)
        assert tab.get_attribute("aria-selected") == "true"
        page.wait_for_function("[...document.querySelectorAll('textarea')].some(t => t.value === 'Ada lived in Turin.')",
                               timeout=30_000)
        page.goto(app_url + "?" + urlencode({"tab": "tokens", "view": "batch"}))
        page.wait_for_function("[...document.querySelectorAll('[role=tab][aria-selected=true]')]"
                               ".some(t => t.innerText.includes('Batch: padding'))", timeout=60_000)
        page.get_by_role("tab", name="Special tokens: chat & FIM").click()
        page.get_by_role("button", name="🔗 Link to this view").click()
        page.wait_for_function("(document.querySelector('#share-link textarea') || {value: ''}).value.includes('tab=tokens')",
                               timeout=10_000)
        assert "view=special" in page.locator("#share-link textarea").input_value()
    finally:
        ctx.close()


@pytest.mark.browser
def test_a_lesson_clicked_while_a_link_loads_stays_open(page, app_url):
    """The link's tab opens in the browser as the page starts; the server's answer to the page load
    (which used to select the tab again) must not take back a lesson the user clicked meanwhile."""
    page.goto(app_url + "?tab=posttraining&prompt=Hi")
    page.get_by_role("tab", name="Post-training", selected=True).wait_for(timeout=30_000)
    page.get_by_role("tab", name="Evaluation").click()
    page.wait_for_timeout(3000)  # the load chain's answers (the linked tab's knobs and text) arrive
    assert page.get_by_role("tab", name="Evaluation", selected=True).count() == 1
    assert page.get_by_role("tab", name="Post-training", selected=True).count() == 0
