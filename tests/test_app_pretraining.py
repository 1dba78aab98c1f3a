"""The Pre-training tab through its API (gradio_client): a tiny model trained from scratch, its
folder downloaded and loaded in plain transformers, and a second session that does not see it."""
from __future__ import annotations

import zipfile

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

# /pretraining_train's inputs in order: source, upload, tokenizer, bpe vocab, val share, arch, layers, width, heads,
# context, lr, warm-up, batch, steps, token budget, sample every, eval every, seed, prompt, time budget (min)
TINY = ["bundled", None, "char", 512, 0.1, "llama", 1, 32, 2, 32, 0.01, 5, 8, 20, 0, 10, 10, 0, "The ", 2.0]


def test_train_download_and_another_session_sees_no_model(client, app_url, tmp_path):
    from gradio_client import Client
    from transformers import AutoModelForCausalLM, AutoTokenizer

    status, plot, samples = client.predict(*TINY, api_name="/pretraining_train")
    assert "Done" in status and "20 / 20" in status and "ln(" in status, status
    assert samples.count("step ") == 3  # before training, at step 10 and at the end
    path = client.predict(api_name="/pretraining_download")
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path)
    folder = tmp_path / "pretrained-model"
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    assert model.config.num_hidden_layers == 1 and model.config.hidden_size == 32
    assert tok.decode(tok("The value")["input_ids"]) == "The value"
    other = Client(app_url, verbose=False)  # a new browser session
    with pytest.raises(Exception, match="no model in this session"):
        other.predict(api_name="/pretraining_download")
    with pytest.raises(Exception, match="heads = 5 does not divide width = 32"):
        client.predict(*TINY[:8], 5, *TINY[9:], api_name="/pretraining_train")


def test_a_sessions_model_opens_in_decoding_for_that_session_only(app_url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    knobs = dict(mode="raw", prompt="The ", temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0,
                 repetition_penalty=1.0, do_sample=False, seed=0)
    a, b = Client(app_url, verbose=False), Client(app_url, verbose=False)  # two browser sessions
    with pytest.raises(AppError, match="no pre-trained model yet"):
        a.predict(model="session-pretrained", **knobs, api_name="/next_token")
    status, _plot, _samples = a.predict(*TINY[:13], 5, *TINY[14:], api_name="/pretraining_train")
    assert "Done" in status and "Your pre-trained model (this session only)" in status, status
    fig, summary, table, steps, context = a.predict(model="session-pretrained", **knobs, api_name="/next_token")
    assert "4 prompt" in context and "of 32" in context, context  # "The " is 4 characters; the model's window is 32
    rows = table["data"] if isinstance(table, dict) else table
    assert rows and all(len(r[1]) <= 3 for r in rows)  # one character per token (shown marks allowed)
    with pytest.raises(AppError, match="no pre-trained model yet"):
        b.predict(model="session-pretrained", **knobs, api_name="/next_token")
