"""The decoding tab through its API (gradio_client), as any user of the API would call it."""
from __future__ import annotations

import re

import pytest

MODEL = "smollm2-135m-instruct"
KNOBS = dict(temperature=0.8, top_k=50, top_p=0.6, min_p=0.0, typical_p=1.0, repetition_penalty=1.0, do_sample=True,
             seed=7)
GEN = dict(model=MODEL, mode="raw")  # endpoints are called by keyword: the listeners' parameter names


def _rows(table):
    return table["data"] if isinstance(table, dict) else table


def test_next_token_api_returns_distributions(client):
    knobs = dict(KNOBS, top_p=0.95, typical_p=0.5)  # typical-p on: its column is the last distribution
    fig, summary, table, steps, context = client.predict(**GEN, prompt="The capital of France is",
                                                         **knobs, api_name="/next_token")
    rows = _rows(table)
    headers = ["rank", "token", "id", "raw", "repetition penalty", "temperature", "top-k", "top-p", "min-p",
               "typical-p", "kept"]
    if isinstance(table, dict):
        assert table["headers"] == headers
    assert len(rows) == 15 and rows[0][1] == "␣Paris" and rows[0][3] > 0.5
    for col in range(3, 10):  # each knob's column is part of a distribution: never more than 1 in total
        assert sum(r[col] for r in rows) <= 1.0 + 1e-3, headers[col]
    raw = [r[3] for r in rows]
    assert raw == sorted(raw, reverse=True)
    assert all(r[10] == (r[9] > 0) for r in rows)  # kept <=> positive probability after the last knob
    # typical-p only cuts and renormalises: a survivor's probability never falls, and it cut some tokens
    assert all(r[9] >= r[8] - 1e-6 for r in rows if r[10]) and not all(r[10] for r in rows if r[8] > 0)
    assert "typical-p 0.5" in str(fig)
    assert "Greedy pick" in summary and "Paris" in summary
    assert "of 8,192 tokens" in context
    assert fig  # a plotly figure came back


def test_step_api_appends_tokens(client):
    out = client.predict(**GEN, prompt="The capital of France is", **KNOBS, n=3, api_name="/step")
    steps_html = out[3]
    assert steps_html.count("class='dec-tok'") == 3
    assert "Paris" in steps_html


def test_generate_api_side_by_side_with_stop_reasons(client):
    knobs = dict(KNOBS, top_p=1.0, temperature=1.0)
    html, stats, context = client.predict(**GEN, prompt="Once upon a time", **knobs, max_new_tokens=4,
                                          num_return_sequences=2, stop="", color_by="rank", api_name="/generate")
    assert html.count("class='dec-col'") == 2
    assert html.count("stopped: max_new_tokens") + html.count("stopped: EOS") == 2
    assert "**4 tokens**" in stats or "EOS" in stats
    assert "tokens/s" in stats and "4 new" in context
    again, _, _ = client.predict(**GEN, prompt="Once upon a time", **knobs, max_new_tokens=4, num_return_sequences=2,
                                 stop="", color_by="rank", api_name="/generate")
    spans = lambda h: re.findall(r"<span class='dec-tok'[^>]*>(.*?)</span>", h)  # noqa: E731
    assert spans(again) == spans(html)  # same seed, same samples


def test_chat_mode_stops_at_eos(client):
    knobs = dict(KNOBS, do_sample=False)
    html, stats, _ = client.predict(model=MODEL, mode="chat", prompt="What is the capital of France?", **knobs,
                                    max_new_tokens=16, num_return_sequences=1, stop="", color_by="probability",
                                    api_name="/generate")
    assert "stopped: EOS" in html and "Paris" in html
    assert "&lt;|im_end|&gt;" in html and "dec-col" in html


def test_bad_values_reach_the_client_as_errors(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="prompt is empty"):
        client.predict(**GEN, prompt="   ", **KNOBS, api_name="/next_token")
    with pytest.raises(AppError, match="stop"):
        client.predict(**GEN, prompt="Hi", **KNOBS, max_new_tokens=4, num_return_sequences=1,
                       stop="|".join("abcdefghij"), color_by="rank", api_name="/generate")


def test_chat_step_mode_stops_at_eos_and_says_why(app_url):
    from gradio_client import Client

    c = Client(app_url, verbose=False)  # a session of its own
    knobs = dict(KNOBS, do_sample=False)
    args = dict(model=MODEL, mode="chat", prompt="What is the capital of France?", **knobs)
    out = c.predict(**args, n=16, api_name="/step")
    for _ in range(3):
        if "stopped: EOS" in out[3]:
            break
        out = c.predict(**args, n=16, api_name="/step")
    steps = out[3]
    assert "stopped: EOS" in steps and "Next token" in steps
    tokens = re.findall(r"<span class='dec-tok'[^>]*>(.*?)</span>", steps)
    assert tokens[-1] == "&lt;|im_end|&gt;" and tokens.count("&lt;|im_end|&gt;") == 1  # nothing after EOS
    assert not any("im_start" in t for t in tokens) and "Paris" in "".join(tokens)
    assert "Stopped (EOS)" in out[1]
    again = c.predict(**args, n=4, api_name="/step")  # a click after the end appends nothing
    assert again[3].count("class='dec-tok'") == steps.count("class='dec-tok'")


def test_quick_step_submits_all_count_and_equal_sequential_steps(app_url):
    from gradio_client import Client

    knobs = dict(KNOBS, seed=11)  # sampling: the same seed gives the same tokens step after step
    args = dict(**GEN, prompt="Once upon a time", **knobs, n=1)
    quick = Client(app_url, verbose=False)
    jobs = [quick.submit(**args, api_name="/step") for _ in range(3)]  # before the first one ends
    results = [j.result(timeout=120) for j in jobs]
    spans = lambda h: re.findall(r"<span class='dec-tok'[^>]*>(.*?)</span>", h)  # noqa: E731
    longest = max((spans(r[3]) for r in results), key=len)
    sequential = Client(app_url, verbose=False)
    for _ in range(3):
        want = sequential.predict(**args, api_name="/step")
    assert len(longest) == 3 and longest == spans(want[3])


def test_step_button_queues_clicks_while_a_step_runs(engine):
    import gradio as gr

    import tabs.decoding as tab

    with gr.Blocks() as demo:
        tab.build(engine)
    fns = [f for f in demo.fns.values() if f.api_name == "step"]
    assert fns and fns[0].trigger_mode == "multiple"


def test_beam_search_and_conversation_through_the_api(app_url):
    """Beam search's best text and the KV line come back; a conversation keeps its turns per
    session and drops the oldest whole turn once the window is small."""
    from gradio_client import Client

    c = Client(app_url, verbose=False)  # a session of its own: its own chat history
    beam = dict(**GEN, prompt="The capital of France is", num_beams=2, length_penalty=1.0, early_stopping="false",
                no_repeat_ngram_size=0, repetition_penalty=1.0, beam_max_new_tokens=6)
    fig, summary, table, stats = c.predict(**beam, api_name="/beam_search")
    assert "Paris" in summary and "stopped: max_new_tokens" in stats and fig
    rows = _rows(table)
    assert [r[0] for r in rows if r[6] == "running"] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # 2 beams a step
    with pytest.raises(Exception, match="maximum value 8"):  # the slider's bound, checked by Gradio
        c.predict(**dict(beam, prompt="Hi", num_beams=12), api_name="/beam_search")
    _, sent, _ = c.predict(message="The secret code is 4417.", context_window=256, max_new_tokens=16,
                           api_name="/chat_send")
    assert "1 earlier turn" not in sent and "0 dropped" in sent
    log, sent, _ = c.predict(message="Name three fruits.", context_window=256, max_new_tokens=16, api_name="/chat_send")
    assert "The secret code is 4417." in sent and "1 earlier turn(s) re-sent" in sent  # the history is re-sent
    log, sent, _ = c.predict(message="What is the secret code?", context_window=96, max_new_tokens=16,
                             api_name="/chat_send")
    assert "Dropped to fit the window" in sent and "1 dropped" in sent
    assert "4417" not in sent.split("The full prompt sent")[1]  # the dropped turn is not in what was sent
    assert "~~The secret code" in str(log[0]["content"]) and len(log) == 6  # struck out in the chat
    *_, context = c.predict(**GEN, prompt="The capital of France is", **KNOBS, api_name="/next_token")
    assert "KV cache:" in context and "2 (K and V) × 30 layers × 3 KV heads × 64 dims × 5 tokens × 4 bytes = <b>230,400 " \
        "bytes" in context and "tensors hold 230,400 bytes" in context
