"""User text in Markdown outputs is shown as the text it is (issue 25): engine.core.markdown is the
one helper, and every Markdown view that holds user text uses it. Rendered here with markdown-it
(CommonMark, the spec Gradio's renderer follows) to see what a browser would get."""
from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from engine.core.markdown import md_code, md_code_block, md_text

HOSTILE = [
    "**bold** _em_ ~~gone~~ [link](http://evil.example/) ![img](http://evil.example/x.png)",
    "<img src=x onerror=alert(1)> <b>tag</b> &lt;entity&gt; &amp;",
    "# heading\n1. list\n- item\n> quote\n---\n| a | b |\n|---|---|\n    indented code",
    "```\nfence\n```\n~~~\ntilde\n~~~",
    "back\\slash \\* \\` `code` ``two`` http://auto.link www.example.com",
    "line one\nline two\n\nnew paragraph\r\nwindows line",
]
RENDER = MarkdownIt("commonmark").enable("table").enable("strikethrough")


def _text(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered))


def _squash(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").split())


@pytest.mark.parametrize("text", HOSTILE)
def test_md_text_renders_as_the_text_itself(text):
    out = RENDER.render(md_text(text))
    tags = set(re.findall(r"<(\w+)", out))
    assert tags <= {"p", "br"}, (tags, out)  # no link, image, emphasis, heading, list, table, code
    assert _squash(_text(out)) == _squash(text)
    if "line one\nline two" in text:  # a line break stays a line break
        assert "line one<br />\nline two" in out


@pytest.mark.parametrize("text", HOSTILE)
def test_md_code_block_cannot_be_closed_from_inside(text):
    out = RENDER.render("before\n\n" + md_code_block(text, "text") + "\n\n**after**")
    assert out.count("<pre>") == 1 and out.count("<strong>") == 1  # the block holds all, "after" is ours
    code = re.search(r"<code[^>]*>(.*?)</code>", out, re.S).group(1)
    assert html.unescape(code) == text.replace("\r\n", "\n") + "\n"


@pytest.mark.parametrize("text", ["`", "a`b", "``x``", "plain", " "])
def test_md_code_is_one_span_holding_the_text(text):
    out = RENDER.render("x " + md_code(text) + " y")
    assert out.count("<code>") == 1
    assert html.unescape(re.search(r"<code>(.*?)</code>", out).group(1)).strip() == text.strip()


def _listener(demo, api_name):
    return next(f.fn for f in demo.fns.values() if f.api_name == api_name)


@pytest.mark.slow  # runs SmolLM2 and MiniLM a few tokens
def test_markdown_views_show_user_text_literally(engine, smollm, minilm, one_thread):
    import app

    demo = app.build_demo(engine)
    prompt = "**Bold** [click](http://evil.example/) ![x](http://evil.example/p.png) <img src=x>\n# Title"
    md, *_ = _listener(demo, "pipeline_text_generation")(prompt, "smollm2-135m-instruct", 1, 0.0, 1, 0)
    out = RENDER.render(md)
    assert "<a " not in out and "<img" not in out and "<h1" not in out
    assert out.count("<strong>") == 1  # only the app's own "1."
    assert _squash(_text(out)).startswith("1. " + _squash(prompt))

    # the judge's prompt holds the user's answers inside a fenced block: backticks cannot close it
    reference = "Paris\n```\n# Escaped heading\n**not bold**"
    _table, block, _plain = _listener(demo, "compare_answers")("", reference, "Paris", False, True)
    out = RENDER.render(block)
    assert out.count("<pre>") == 1 and "<h1" not in out and "<strong>" not in out
    assert reference in html.unescape(out)

    sentences = "I sat by the **river** bank.\nThe bank [approved](http://evil.example/) the loan."
    legend, _sim, _pca, shapes, _json = _listener(demo, "embedding_similarity")(sentences, "bank", 6)
    for view in (legend, shapes):
        out = RENDER.render(view)
        assert "<a " not in out and "river</strong>" not in out
    assert "**river**" in _text(RENDER.render(legend))
