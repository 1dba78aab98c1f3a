"""The Tokens tab's API, through gradio_client like any user of the API."""
from __future__ import annotations

import csv

import pytest

from engine import tokens as T

TEXT = "Hello  world!\n\tdef f(x): return 🦙 東京"


def test_tokenize_endpoint_returns_exact_ids(client, engine):
    table, data = client.predict(TEXT, "tok-cl100k", 800, api_name="/tokenize")
    assert data["ids"] == engine.load("tok-cl100k").encode(TEXT)
    assert data["tokens"] == len(data["ids"]) and data["vocab_size"] == 100277
    rows = table["data"] if isinstance(table, dict) else table
    assert [int(r[2]) for r in rows] == data["ids"][:len(rows)]


def test_compare_tokenizers_endpoint(client, engine):
    keys = ["tok-gpt2", "tok-bert-uncased", "tok-qwen2", "toy-byte"]
    html, stats = client.predict(TEXT, keys, 800, True, api_name="/compare_tokenizers")
    assert html.count("class='card'") == 4
    rows = stats["data"] if isinstance(stats, dict) else stats
    counts = [int(r[2]) for r in rows]
    assert counts == [len(engine.load(k).encode(TEXT)) for k in keys]
    assert counts[-1] == len(TEXT.encode("utf-8"))


def test_batch_encode_endpoint(client):
    html, data = client.predict("The cat sat.\nA longer sentence than the first one.\nHi", "tok-bert-uncased",
                                "left", 8, True, "longest", True, api_name="/batch_encode")
    ids, mask = data["input_ids"], data["attention_mask"]
    assert len(ids) == 3 and len({len(r) for r in ids + mask}) == 1
    for row, m in zip(ids, mask):
        n = sum(m)
        assert m == [0] * (len(m) - n) + [1] * n  # left padding
        assert row[len(m) - n] == 101 and row[-1] == 102  # [CLS] ... [SEP]
        assert all(i == 0 for i in row[:len(m) - n])  # [PAD] = 0
    assert "attention_mask" in html


def test_bad_input_reaches_the_client_as_an_error(client):
    with pytest.raises(Exception, match="valid keys|tok-gpt2"):
        client.predict(TEXT, "not-a-tokenizer", 800, api_name="/tokenize")
    with pytest.raises(Exception, match="512"):  # the slider range (gradio checks it, then the engine)
        client.predict("a\nb", "tok-gpt2", "right", 9999, True, "longest", True, api_name="/batch_encode")


def test_csv_export_and_special_token_views(client, engine):
    path = client.predict(TEXT, ["tok-gpt2", "toy-char"], api_name="/export_tokens_csv")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + len(engine.load("tok-gpt2").encode(TEXT)) + len(TEXT)
    assert [int(r[2]) for r in rows[1:] if r[0] == "toy-char"] == [ord(c) + 3 for c in TEXT]
    html, counts = client.predict("tok-smollm2", "Be brief.", "What is a token?", "", api_name="/chat_template")
    assert "&lt;|im_start|&gt;" in html
    tok = engine.load("tok-smollm2")
    assert [m["tokens"] for m in counts["messages"]] == [len(tok.encode("Be brief.")), len(tok.encode("What is a token?"))]
    assert counts["total_tokens"] == counts["content_tokens"] + counts["template_tokens"]
    html = client.predict("tok-starcoder", "def f(x):\n    ", "\n    return y", api_name="/fim_prompt")
    assert "&lt;fim_middle&gt;" in html


def test_decode_ids_endpoint(client, engine):
    ids = engine.load("tok-tekken").encode(TEXT)
    html, data = client.predict("tok-tekken", "\n".join(map(str, ids)), api_name="/decode_ids")
    assert data["ids"] == ids and data["text"] == TEXT
    assert html.count('class="t') == len(ids)
    with pytest.raises(Exception, match="0 to 131,071"):
        client.predict("tok-tekken", "[5, 131072]", api_name="/decode_ids")
