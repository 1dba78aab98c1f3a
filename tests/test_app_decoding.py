"""The decoding tab through its API (gradio_client), as any user of the API would call it."""
from __future__ import annotations

import re

import pytest

MODEL = "smollm2-135m-instruct"
KNOBS = dict(temperature=0.8, top_k=50, top_p=0.6, min_p=0.0, repetition_penalty=1.0, do_sample=True, seed=7)


def _rows(table):
    return table["data"] if isinstance(table, dict) else table


def test_next_token_api_returns_distributions(client):
    fig, summary, table, steps, context = client.predict(MODEL, "raw", "The capital of France is", *KNOBS.values(),
                                                         api_name="/next_token")
    rows = _rows(table)
    headers = ["rank", "token", "id", "raw", "repetition penalty", "temperature", "top-k", "top-p", "min-p", "kept"]
    assert len(rows) == 15 and rows[0][1] == "␣Paris" and rows[0][3] > 0.5
    for col in range(3, 9):  # each knob's column is part of a distribution: never more than 1 in total
        assert sum(r[col] for r in rows) <= 1.0 + 1e-3, headers[col]
    raw = [r[3] for r in rows]
    assert raw == sorted(raw, reverse=True)
    assert all(r[9] == (r[8] > 0) for r in rows)  # kept <=> positive probability after the last knob
    assert "Greedy pick" in summary and "Paris" in summary
    assert "of 8,192 tokens" in context
    assert fig  # a plotly figure came back


def test_step_api_appends_tokens(client):
    out = client.predict(MODEL, "raw", "The capital of France is", *KNOBS.values(), 3, api_name="/step")
    steps_html = out[3]
    assert steps_html.count("class='dec-tok'") == 3
    assert "Paris" in steps_html


def test_generate_api_side_by_side_with_stop_reasons(client):
    knobs = dict(KNOBS, top_p=1.0, temperature=1.0)
    html, stats, context = client.predict(MODEL, "raw", "Once upon a time", *knobs.values(), 4, 2, "", "rank",
                                          api_name="/generate")
    assert html.count("class='dec-col'") == 2
    assert html.count("stopped: max_new_tokens") + html.count("stopped: EOS") == 2
    assert "**4 tokens**" in stats or "EOS" in stats
    assert "tokens/s" in stats and "4 new" in context
    again, _, _ = client.predict(MODEL, "raw", "Once upon a time", *knobs.values(), 4, 2, "", "rank",
                                 api_name="/generate")
    spans = lambda h: re.findall(r"<span class='dec-tok'[^>]*>(.*?)</span>", h)  # noqa: E731
    assert spans(again) == spans(html)  # same seed, same samples


def test_chat_mode_stops_at_eos(client):
    knobs = dict(KNOBS, do_sample=False)
    html, stats, _ = client.predict(MODEL, "chat", "What is the capital of France?", *knobs.values(), 16, 1, "", "probability",
                                    api_name="/generate")
    assert "stopped: EOS" in html and "Paris" in html
    assert "&lt;|im_end|&gt;" in html and "dec-col" in html


def test_bad_values_reach_the_client_as_errors(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="prompt is empty"):
        client.predict(MODEL, "raw", "   ", *KNOBS.values(), api_name="/next_token")
    with pytest.raises(AppError, match="stop"):
        client.predict(MODEL, "raw", "Hi", *KNOBS.values(), 4, 1, "|".join("abcdefghij"), "rank",
                       api_name="/generate")


def test_chat_step_mode_stops_at_eos_and_says_why(app_url):
    from gradio_client import Client

    c = Client(app_url, verbose=False)  # a session of its own
    knobs = dict(KNOBS, do_sample=False)
    args = (MODEL, "chat", "What is the capital of France?", *knobs.values())
    out = c.predict(*args, 16, api_name="/step")
    for _ in range(3):
        if "stopped: EOS" in out[3]:
            break
        out = c.predict(*args, 16, api_name="/step")
    steps = out[3]
    assert "stopped: EOS" in steps and "Next token" in steps
    tokens = re.findall(r"<span class='dec-tok'[^>]*>(.*?)</span>", steps)
    assert tokens[-1] == "&lt;|im_end|&gt;" and tokens.count("&lt;|im_end|&gt;") == 1  # nothing after EOS
    assert not any("im_start" in t for t in tokens) and "Paris" in "".join(tokens)
    assert "Stopped (EOS)" in out[1]
    again = c.predict(*args, 4, api_name="/step")  # a click after the end appends nothing
    assert again[3].count("class='dec-tok'") == steps.count("class='dec-tok'")


def test_quick_step_submits_all_count_and_equal_sequential_steps(app_url):
    from gradio_client import Client

    knobs = dict(KNOBS, seed=11)  # sampling: the same seed gives the same tokens step after step
    args = (MODEL, "raw", "Once upon a time", *knobs.values(), 1)
    quick = Client(app_url, verbose=False)
    jobs = [quick.submit(*args, api_name="/step") for _ in range(3)]  # before the first one ends
    results = [j.result(timeout=120) for j in jobs]
    spans = lambda h: re.findall(r"<span class='dec-tok'[^>]*>(.*?)</span>", h)  # noqa: E731
    longest = max((spans(r[3]) for r in results), key=len)
    sequential = Client(app_url, verbose=False)
    for _ in range(3):
        want = sequential.predict(*args, api_name="/step")
    assert len(longest) == 3 and longest == spans(want[3])


def test_step_button_queues_clicks_while_a_step_runs(engine):
    import gradio as gr

    import tabs.decoding as tab

    with gr.Blocks() as demo:
        tab.build(engine)
    fns = [f for f in demo.fns.values() if f.api_name == "step"]
    assert fns and fns[0].trigger_mode == "multiple"
