"""Exports for slides and spreadsheets, and the examples on every tab: every plot's camera button
saves a named 2x image, every table has a CSV button holding what it shows, every tab has
examples, and a cached example's result is what its listener computes."""
from __future__ import annotations

import csv
import json
import re

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
import pytest

import tabs
from tabs._ui import ExportPlot, Plot, csv_safe, draw_initial_figures, export_config, write_csv


@pytest.fixture(scope="module")
def demo(engine):
    import app

    return app.build_demo(engine)


def _blocks(demo, cls):
    return [b for b in demo.blocks.values() if isinstance(b, cls)]


def test_export_config_names_the_file_and_keeps_the_figure():
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout=dict(title="t"))
    out = json.loads(export_config(fig.to_json(), "Next token: after top-p!"))
    opts = out["config"]["toImageButtonOptions"]
    assert opts == {"format": "png", "scale": 2, "filename": "next-token-after-top-p"}
    assert out["data"][0]["y"] == [1, 2] and out["layout"]["title"]["text"] == "t"


def test_every_plot_exports_and_keeps_its_settings(demo):
    plots = _blocks(demo, gr.Plot)
    assert len(plots) >= 15
    assert all(isinstance(p, ExportPlot) for p in plots), [type(p) for p in plots]
    names = [p.filename for p in plots]
    assert len(set(names)) == len(names), names  # each download says which view it came from
    heat = next(p for p in plots if p.elem_id == "att-heatmap")
    config = heat.get_config()
    # the constructor's settings reach the front end (they would not with a changed signature)
    assert config["label"] == "Attention heatmap" and config["show_label"] is False and config["scale"] == 3
    assert heat.get_block_name() == "plot"


def test_a_plot_with_an_initial_figure_carries_the_export_config():
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]))
    with gr.Blocks():
        p = Plot(fig, filename="loss curve", label="Loss")
    stored = json.loads(p.value["plot"])
    assert stored["config"]["toImageButtonOptions"]["filename"] == "loss-curve"
    assert p.get_config()["label"] == "Loss"


def test_initial_figures_are_drawn_at_page_load_once_not_while_building():
    from engine.training import plots as training_plots

    drawn = []

    def empty_loss():
        drawn.append("loss")
        return training_plots.loss_figure([], 40)

    with gr.Blocks() as page:
        loss = Plot(filename="loss curve", initial=empty_loss, label="Loss")
        bars = Plot(filename="bars", initial=lambda: go.Figure(go.Bar(x=["a"], y=[1])))
        draw_initial_figures(page)
    assert drawn == [] and loss.value is None and bars.value is None  # the start draws nothing
    load = next(f for f in page.fns.values() if f.outputs == [loss, bars])
    assert [t[1] for t in load.targets] == ["load"] and not load.queue
    first, again = load.fn(), load.fn()
    assert drawn == ["loss"] and first == again  # one drawing, kept for every later page load
    stored = json.loads(loss.postprocess(first[0]).plot)  # what the page receives
    assert stored["config"]["toImageButtonOptions"]["filename"] == "loss-curve"
    assert stored["layout"]["title"]["text"] == "Training loss" and stored["layout"]["xaxis"]["range"] == [0.5, 40.5]


def test_the_app_draws_its_empty_charts_at_page_load(demo):
    deferred = [p for p in _blocks(demo, ExportPlot) if p.initial is not None]
    assert {p.filename for p in deferred} >= {"lora-loss", "sft-loss", "teach-loss", "cross-entropy-toy"}
    load = next(f for f in demo.fns.values() if f.outputs == deferred)
    layouts = [json.loads(p.postprocess(v).plot)["layout"] for p, v in zip(deferred, load.fn())]
    titles = [layout.get("title", {}).get("text") for layout in layouts]
    assert "Training loss" in titles and "Teaching loss" in titles


def test_every_table_has_a_csv_button_fed_by_its_change_event(demo):
    tables = _blocks(demo, gr.Dataframe)
    assert len(tables) >= 10
    wired = set()
    for fn in demo.fns.values():
        outs = [o for o in fn.outputs if isinstance(o, gr.DownloadButton)]
        for trigger, _ in fn.targets:
            block = demo.blocks.get(trigger)
            if isinstance(block, gr.Dataframe) and outs:
                wired.add(block._id)
    missing = [t.label for t in tables if t._id not in wired]
    assert not missing, f"tables without a CSV button: {missing}"


def test_csv_file_holds_the_table_and_defuses_formulas(tmp_path):
    frame = pd.DataFrame({"piece": ["=HYPERLINK(\"x\")", "+1+1", "@SUM(A1)", "plain", "-7.5"],
                          "score": [1.5, -2.0, 0.0, 3.25, 4.0]})
    path = write_csv(frame, "My table!")
    assert path.endswith("my-table.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["piece", "score"]
    assert [r[0] for r in rows[1:]] == ["'=HYPERLINK(\"x\")", "'+1+1", "'@SUM(A1)", "plain", "-7.5"]
    assert [float(r[1]) for r in rows[1:]] == [1.5, -2.0, 0.0, 3.25, 4.0]
    assert write_csv(pd.DataFrame({"a": []}), "empty") is None
    assert csv_safe(-3) == -3 and csv_safe("-3e5") == "-3e5"


def test_every_topic_tab_has_examples(demo):
    examples = [b for b in demo.blocks.values() if isinstance(b, gr.Dataset)]
    # one Dataset per gr.Examples; walk up the layout to the topic tab it sits in
    topic_tabs = {t.id for t in _blocks(demo, gr.Tab) if t.id in {m.__name__.split(".")[-1] for m in tabs.available()}}
    with_examples = set()
    for ds in examples:
        block = ds
        while block is not None:
            if isinstance(block, gr.Tab) and block.id in topic_tabs:
                with_examples.add(block.id)
            block = block.parent
    # Start here and Class mode are not lessons: Class runs rooms, whose prompts the teacher types
    assert topic_tabs - {"home", "classroom"} <= with_examples, topic_tabs - with_examples


def _untimed(text: str) -> str:
    """Durations ('Ran in 0.12 s') differ between runs; everything else must not."""
    return re.sub(r"\d+(\.\d+)? ?(s|ms|seconds)\b", "<time>", text)


def _same(a, b) -> bool:
    if isinstance(a, go.Figure):
        return a.to_json() == b.to_json()
    if isinstance(a, str):
        return _untimed(a) == _untimed(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a if k not in ("seconds",))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.slow
def test_cached_examples_are_deterministic(demo):
    """A cached example shows everyone the first click's result, so its listener must give the
    same answer every time: run each cached example's listener twice, on one of its examples a
    run (a rotation by the day, as the endpoint fuzz rotates: every example within a few days)."""
    import datetime

    day = datetime.date.today().toordinal()
    cached = [b for b in demo.blocks.values() if isinstance(b, gr.Dataset) and getattr(b, "cached_with", None)]
    assert len(cached) >= 6
    for j, ds in enumerate(cached):
        fn, rows = ds.cached_with
        for row in [rows[(day + j) % len(rows)]]:
            first, second = fn(*row), fn(*row)
            assert _same(first, second), (ds.label, row[:2])
