"""Angle brackets are text, not tags (issue 32): a special token such as <end_of_turn> or <mask>
that reaches Markdown, HTML or a toast was read as an HTML tag and vanished with the text after
it. Every view below gets every special-token string of the embedded tokenizers and must show
it in full. "Shown" is what a browser reads: Markdown rendered by markdown-it (CommonMark with
raw HTML on, as Gradio's renderer passes it), then parsed as HTML, text nodes only."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from markdown_it import MarkdownIt

from engine.core.errors import ModelUnavailableError, UserInputError
from engine.core.markdown import html_text, md_code, md_text

# A few of the real ones, for the fast loop; test_the_few_are_real_special_tokens checks each is one.
FEW = ["<end_of_turn>", "<start_of_turn>", "<mask>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "</s>", "<s>",
       "<unk>", ">>SUFFIX<<", "<｜begin▁of▁sentence｜>", "[MASK]", "<fim_prefix>", "<|reserved_special_token_0|>",
       "<EOS_TOKEN>", "<unused42>"]
RENDER = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")
HTML_TAGS = {"a", "b", "br", "code", "del", "details", "div", "em", "h4", "i", "ins", "li", "ol", "p", "pre", "s",
             "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
             "mark", "h1", "h2", "h3", "hr", "blockquote", "style", "img", "iframe", "label", "details", "u"}


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text, self.tags = [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)

    def handle_endtag(self, tag):
        self.tags.add(tag)

    def handle_data(self, data):
        self.text.append(data)


def read_html(markup: str) -> tuple[str, set]:
    """(the text a browser shows, whitespace squashed; the tags it reads) of an HTML string."""
    r = _Reader()
    r.feed(markup)
    r.close()
    return " ".join("".join(r.text).replace("\xa0", " ").split()), r.tags


def shown_html(markup: str) -> str:
    return read_html(markup)[0]


def shown_md(markdown: str) -> str:
    return read_html(RENDER.render(markdown))[0]


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def special_strings(engine) -> list[str]:
    """Every special-token string of every tokenizer the Tokens tab can load here (~7,300, most of
    them Gemma's <unusedN>), loaded without model weights (~15 s)."""
    from engine.tokens import views

    found = set()
    for key in views.tokenizer_keys(engine):
        found |= set(engine.load(key).specials)
    return sorted(found)


# --- the helpers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("s", FEW)
def test_the_helpers_keep_a_special_token_whole(s):
    assert s in shown_html(f"<div>before {html_text(s)} after</div>")
    assert s in shown_md(f"<div class='notice'>before {html_text(s)} after</div>")  # an HTML block in Markdown
    assert s in shown_md(f"before {html_text(s)} after") and s in shown_md(f"before {md_text(s)} after")
    assert s in shown_md(f"x {md_code(s)} y")


@pytest.mark.slow  # loads every tokenizer
def test_every_special_token_string_survives_every_helper(special_strings):
    assert len(special_strings) > 1000 and set(FEW) <= set(special_strings)
    joined = " ".join(special_strings)  # one long line: each string is one word of it
    words = joined.split(" ")
    for view in (shown_html(f"<div>{html_text(joined)}</div>"), shown_md(f"<div>{html_text(joined)}</div>"),
                 shown_md(md_text(joined)), shown_md(html_text(joined))):
        assert view.split(" ") == [w for w in words if w]


# --- toasts: gr.Error and gr.Warning read their message as HTML -----------------------------------

def _toast_text(message: str) -> str:
    return shown_html(message)


@pytest.mark.parametrize("s", FEW)
def test_an_error_toast_shows_the_whole_message(s):
    from tabs._ui import _as_gr_error, user_errors

    text = f"the value {s!r} is not allowed here (or {s}): choose another."
    for exc in (UserInputError(text), ModelUnavailableError(text)):
        assert _toast_text(_as_gr_error(exc).message) == squash(text)

    def listener():
        raise UserInputError(text)
    with pytest.raises(Exception) as got:  # the way every tab wraps its listeners
        user_errors(listener)()
    assert _toast_text(got.value.message) == squash(text)


def test_the_fill_mask_error_is_shown_to_its_end():
    """The message the issue saw cut at "(or": the engine's own check, through the tab's wrapper."""
    from engine.pipelines import tasks
    from tabs._ui import user_errors

    with pytest.raises(Exception) as got:
        user_errors(tasks._fm_pre)("no mask in this text", None)
    shown = _toast_text(got.value.message)
    assert "write exactly 1 [MASK] (or <mask>) where the missing word goes" in shown
    assert shown.endswith("'The capital of France is [MASK].'")


def test_a_warning_toast_shows_the_whole_message(monkeypatch):
    import tabs._ui as ui

    seen = []
    monkeypatch.setattr(ui.gr, "Warning", seen.append)
    ui.warn(UserInputError("id 3 is <unk> in this tokenizer"))
    assert _toast_text(seen[0]) == "id 3 is <unk> in this tokenizer"


# --- notices and the Markdown views that hold model or user text ---------------------------------

@pytest.mark.parametrize("s", FEW)
def test_a_notice_shows_its_text_as_written(s):
    from tabs._ui import notice

    text = f"A base model has never seen {s} close a turn, so that one token makes most of its loss."
    assert shown_md(notice(text).value) == "💡 " + text


@pytest.mark.parametrize("s", FEW)
def test_markdown_views_with_model_and_user_text(s):
    from engine.decoding.generation import StepSession
    from engine.inside import plots as inside_plots
    from tabs import decoding, evaluation, inside, retrieval

    said = f"say {s} twice: {s}"
    for dropped in (0, 1):  # the chat log (gr.Chatbot renders Markdown), struck out or not
        log = decoding._chat_log([{"user": said, "assistant": said}], dropped)
        assert all(said in shown_md(m["content"]) for m in log)
    stepped = SimpleNamespace(stop_reason="eos", steps=[{"text": s}])
    stepped.stop_message = lambda: StepSession.stop_message(stepped)
    assert f"token {s!r} (EOS)" in shown_md(decoding._stopped_line(stepped))
    assert shown_md(decoding._forgetting_summary(96, said, 256, said, 4, 120)).count(said) == 2
    res = dict(robustness=0.5, mode="choices", original_answer=s, p_original=0.9, rows=[dict(passed=True)] * 2,
               skipped=[])
    assert f"Original answer (choices): {s} with p" in shown_md(evaluation._stress_summary(res))
    drift = SimpleNamespace(word=s, pieces=([s], ["x", s]), same_ids=False, row_cosine=1.0, cosines=[1.0, 0.5, 0.2])
    assert shown_md(inside._static_summary(drift)).startswith(f"“{s}” is {s!r} in the first sentence and 'x' + {s!r}")
    pred = SimpleNamespace(entropy=1.0, continuation=said)
    assert shown_md(inside._untrained_summary(pred, pred, 100)).count(repr(said)) == 2
    doc = SimpleNamespace(title=f"upload: {s}.txt", text="abc")
    assert f"of upload: {s}.txt (3 characters)" in shown_md(retrieval._chunks_summary(doc, [SimpleNamespace(n_tokens=5)]))
    cell = dict(i=1, j=0, query=s, key=s, q=[0.1], k=[0.2], products=[0.02], dot=0.02, sqrt_d=8.0, score=0.1,
                row_max=0.1, exp=1.0, exp_sum=2.0, weight=0.5)
    block = SimpleNamespace(worked_cell=lambda: cell, rope=False, n_kv_heads=2, n_heads=2, causal=True, head_dim=64)
    assert f"query token 1 {s} and key token 0 {s}," in shown_md(inside_plots.worked_markdown(block))


def test_the_server_error_on_the_start_tab_is_text():
    from tabs import home

    status = dict(url="http://x", up=False, error="ConnectError: <html><title>502 Bad Gateway</title>", models=[])
    eng = SimpleNamespace(status=lambda: {"serving": status}, serving=SimpleNamespace(fallback=False),
                          backends=lambda: [])
    assert "down: ConnectError: <html><title>502 Bad Gateway</title>" in shown_md(home._backends_markdown(eng))


# --- the Tokens views with each tokenizer's own special tokens -----------------------------------

def _tokens_views_show(engine, key: str, strings: list[str]) -> None:
    from engine.tokens import plots, views

    for i in range(0, len(strings), 200):  # the card draws up to max_render pieces: 200 strings fit
        text = "".join(strings[i:i + 200])
        (r,) = views.compare(engine, [key], text, max_render=5000)
        card = shown_html(plots.card_html(r))
        assert squash(r.title) in card and squash(r.algorithm) in card
        body = read_html(plots.card_html(r, show_ids=False))[0]
        missing = [s for s in strings[i:i + 200] if squash(s) not in body]
        assert not missing, (key, missing[:5])
    trip = views.round_trip(engine, key, strings[0])
    assert squash(trip.title) in shown_html(trip.html)


def test_the_toy_tokenizer_names_its_unknown_token(engine):
    """Its title and algorithm read "<unk>": they were swallowed in the card and the round trip."""
    _tokens_views_show(engine, "toy-word", ["<unk>", "<pad>", "<bos>", "<eos>"])
    from tabs import home

    assert "Toy · word-level (20-line corpus, <unk>)" in shown_md(home._models_markdown(engine))


@pytest.mark.slow  # loads every tokenizer
def test_every_tokenizer_card_shows_its_special_tokens(engine, special_strings):
    from engine.tokens import views

    for key in views.tokenizer_keys(engine):
        tok = engine.load(key)
        _tokens_views_show(engine, key, sorted(tok.specials)[:400])  # Gemma's 6,249 are <unused0..>: 400 say it


@pytest.mark.slow  # the full string set through the toast and the notice, as one text each
def test_every_special_token_string_in_a_toast_and_a_notice(special_strings):
    from tabs._ui import _as_gr_error, notice

    text = "refused: " + " ".join(special_strings)
    assert _toast_text(_as_gr_error(UserInputError(text)).message) == squash(text)
    assert shown_md(notice(text).value) == "💡 " + squash(text)


@pytest.mark.slow  # builds the whole app (~20 s, no model loaded)
def test_no_static_markdown_or_html_in_the_app_loses_text(engine):
    """Every Markdown and HTML block as the app is built: no tag the browser would not know (an
    unknown tag is a swallowed special token), and the SFT loss-mask tip reads to its end."""
    import gradio as gr

    import app

    demo = app.build_demo(engine)
    seen = 0
    for block in demo.blocks.values():
        if not isinstance(block, (gr.Markdown, gr.HTML)) or not isinstance(block.value, str):
            continue
        markup = RENDER.render(block.value) if isinstance(block, gr.Markdown) else block.value
        tags = read_html(markup)[1] - HTML_TAGS - {"svg", "g", "rect", "text", "line", "path", "circle", "title",
                                                   "polyline", "tspan", "defs", "marker", "input", "button", "script",
                                                   "meta", "link", "head", "body", "html", "col", "colgroup", "caption",
                                                   "figure", "figcaption", "kbd", "abbr", "q", "wbr", "nav", "section"}
        assert not tags, (tags, block.value[:300])
        seen += 1
    assert seen > 50
    tips = [shown_md(b.value) for b in demo.blocks.values() if isinstance(b, gr.Markdown)
            and "has never seen" in str(b.value)]
    assert any(re.search(r"A base model has never seen <end_of_turn> close a turn, .* before SFT\.$", t) for t in tips)
