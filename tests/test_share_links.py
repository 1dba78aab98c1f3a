"""The link button's query, applied on page load, gives the same inputs back (issue 32): the
model in Decoding, Pipelines' task and text, and the sub-view of Tokens, Embeddings and Inside.
No browser: the query is made and read by app.py's own helpers (link_query, _query_updates)."""
from types import SimpleNamespace
from urllib.parse import parse_qsl

import gradio as gr
import pytest

import app
from tabs._ui import model_choices, view_link


@pytest.fixture(scope="module")
def demo(engine):
    return app.build_demo(engine)


@pytest.fixture(scope="module")
def slots(demo):
    return demo.share_slots


def _value(comp):
    return comp.value() if callable(comp.value) else comp.value


def _round_trip(slots, tab_id: str, changed: dict) -> tuple[str, dict]:
    """The query the link button makes on tab_id with `changed` inputs set (the rest at their
    defaults), and what a page load with that query puts in each of the tab's inputs."""
    names = {name for tid, name, _ in slots if tid == tab_id}
    assert set(changed) <= names, set(changed) - names
    values = [changed.get(name, _value(comp)) if tid == tab_id else None for tid, name, comp in slots]
    query = app.link_query(slots, tab_id, values)
    request = SimpleNamespace(query_params=dict(parse_qsl(query)))
    loaded = {}
    for text_fields in (False, True):
        _, _, updates = app._query_updates(slots, request, text_fields=text_fields)
        for (tid, name, _), update in zip(slots, updates):
            if tid == tab_id and "value" in update:
                loaded[name] = update["value"]
    return query, loaded


def _check(slots, tab_id, changed):
    query, loaded = _round_trip(slots, tab_id, changed)
    for name, value in changed.items():
        assert loaded.get(name) == value, (name, value, query)
    return query, loaded


def test_decoding_link_keeps_the_model(engine, slots):
    keys = [k for _, k in model_choices(engine, "causal-lm")]
    assert len(keys) >= 2, keys
    query, _ = _check(slots, "decoding", {"model": keys[1], "prompt": "Once upon", "view": "beam"})
    assert f"model={keys[1]}" in query


def test_a_link_to_an_unknown_model_keeps_the_default(slots):
    request = SimpleNamespace(query_params={"tab": "decoding", "model": "no-such-model", "top_k": "7"})
    _, _, updates = app._query_updates(slots, request, text_fields=False)
    got = {name: u for (tid, name, _), u in zip(slots, updates) if tid == "decoding"}
    assert "value" not in got["model"]  # the picker keeps its default
    assert got["top_k"]["value"] == 7  # the other knobs still come with the link


def test_pipelines_link_reopens_the_task_with_its_text(slots):
    names = {name for tid, name, _ in slots if tid == "pipelines"}
    assert {"view", "ner_text", "generation_text", "translation_text", "zero_shot_text"} <= names
    knob = next(n for n in sorted(names) if n.startswith("generation_") and n.endswith("temperature"))
    query, _ = _check(slots, "pipelines", {"view": "ner", "ner_text": "Ada Lovelace lived in London.",
                                           "generation_text": "The sea", knob: 0.5})
    assert "view=ner" in query


@pytest.mark.parametrize("tab_id, view", [("tokens", "batch"), ("embeddings", "search"), ("inside", "lens")])
def test_sub_view_comes_back(slots, tab_id, view):
    text = {"tokens": "text", "embeddings": "text", "inside": "prompt"}[tab_id]
    _check(slots, tab_id, {"view": view, text: "A linked text."})


def test_view_link_opens_the_named_sub_tab():
    with gr.Blocks():
        with gr.Tabs():
            with gr.Tab("A", id="a-tab") as a:
                pass
            with gr.Tab("B", id="b-tab") as b:
                pass
        view, open_view = view_link({"a": a, "b": b})
    assert view.value == "a"
    assert open_view("b")["selected"] == "b-tab"
    assert open_view("a") == gr.skip()  # the first is open already
    assert open_view("nonsense") == gr.skip()


@pytest.mark.parametrize("tab_id, view, tab_ids", [
    ("tokens", "batch", {"side", "ids", "batch", "special"}),
    ("embeddings", "search", {"emb-attention", "emb-search"}),
    ("inside", "lens", {"inside-journey-tab", "inside-lens-tab"}),
    ("pipelines", "ner", {"text-generation", "ner", "translation"})])
def test_the_link_run_opens_the_sub_view(demo, tab_id, view, tab_ids):
    """The run a link triggers reads the view box and updates the tab's inner gr.Tabs."""
    share = demo.shares[tab_id]
    assert share.run_inputs[0] is share.params["view"]
    inner = [c for c in share.run_outputs if isinstance(c, gr.Tabs)]
    assert len(inner) == 1
    ids = {child.id for child in inner[0].children}
    assert tab_ids <= ids, ids
    if tab_id == "pipelines":  # its run only opens the sub-tab: cheap enough to call here
        assert share.run(view)["selected"] == "ner"
        assert share.run("no-such-task") == gr.skip()


def test_every_tab_link_round_trips_its_defaults(slots):
    """A link made on any tab, with what the page opens with, fills the same values back (no
    choice dropped by the check against a picker's choices)."""
    for tab_id in sorted({tid for tid, _, _ in slots}):
        defaults = {name: _value(comp) for tid, name, comp in slots if tid == tab_id and _value(comp) is not None}
        _, loaded = _round_trip(slots, tab_id, defaults)
        for name, value in defaults.items():
            if isinstance(value, str) and value == "":
                continue
            want = value if not isinstance(value, tuple) else list(value)
            assert loaded.get(name) == want, (tab_id, name, value, loaded.get(name))


def test_a_link_value_out_of_range_keeps_the_default_and_is_named(slots):
    """A hand-edited link (temperature 50, top_k NaN, an unknown model) opens on the defaults for
    those inputs, and the notice names each input with the reason; the valid knobs still apply."""
    request = SimpleNamespace(query_params={"tab": "decoding", "temperature": "50", "top_k": "nan",
                                            "model": "<b>no-such-model</b>", "top_p": "0.5"})
    ignored: list[str] = []
    _, _, updates = app._query_updates(slots, request, text_fields=False, ignored=ignored)
    got = {name: u for (tid, name, _), u in zip(slots, updates) if tid == "decoding"}
    assert "value" not in got["temperature"] and "value" not in got["top_k"] and "value" not in got["model"]
    assert got["top_p"]["value"] == 0.5
    assert sorted(line.split(":")[0] for line in ignored) == ["model", "temperature", "top_k"], ignored
    temperature = next(c for tid, n, c in slots if tid == "decoding" and n == "temperature")
    assert f"outside {temperature.minimum} to {temperature.maximum}" in next(x for x in ignored
                                                                           if x.startswith("temperature"))
    notice = app.link_notice(ignored)
    assert notice.startswith("This link's values were not used for 3 input(s)")
    assert "<b>" not in app.html_text(notice)  # the typed value is shown as text, not markup


def test_the_priority_groups_are_the_apps_queue_groups(demo):
    """Trainings and heavy calls run at a lower CPU priority (engine.core.threads, issue 39)."""
    groups = {fn.concurrency_id for fn in demo.fns.values()}
    assert set(app.PRIORITY) <= groups, set(app.PRIORITY) - groups
    train = next(fn for fn in demo.fns.values() if fn.api_name == "lora_train")
    assert train.fn.__code__.co_qualname.startswith("at_priority.")  # each step niced
    tokenize = next(fn for fn in demo.fns.values() if fn.api_name == "tokenize")
    assert tokenize.concurrency_id not in app.PRIORITY  # a cheap click keeps the default priority
    assert not tokenize.fn.__code__.co_qualname.startswith("at_priority.")
