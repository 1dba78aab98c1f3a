"""The evaluation tab through its API, as any gradio_client user would call it."""
from __future__ import annotations

import pytest
from gradio_client.exceptions import AppError

from engine.evaluation import metrics as M

TEXT = "Rivers carry the water back to the sea. The sun warms the sea, and the water rises again."


def test_perplexity_endpoint_matches_the_engine(client, smollm):
    html, arithmetic, _plot, numbers = client.predict("smollm2-135m-instruct", TEXT, 1024, 512, api_name="/perplexity")
    rep = M.perplexity(smollm.model, smollm.tokenizer, TEXT)
    assert numbers["perplexity"] == pytest.approx(rep.perplexity, rel=1e-6)
    assert numbers["bits_per_byte"] == pytest.approx(rep.bits_per_byte, rel=1e-6)
    assert numbers["tokens_scored"] == len(numbers["tokens"]) == rep.n_tokens
    assert "".join(t["piece"] for t in numbers["tokens"]) == TEXT
    assert html.count("title=") >= rep.n_tokens and "rank" in html
    assert f"{rep.perplexity:.3f}" in arithmetic


def test_perplexity_endpoint_reports_bad_stride(client):
    with pytest.raises(AppError, match="stride = 600 must be smaller than window = 512"):
        client.predict("smollm2-135m-instruct", TEXT, 512, 600, api_name="/perplexity")
    with pytest.raises(AppError, match="gpt-9 is not in the list of choices"):
        client.predict("gpt-9", TEXT, 512, 256, api_name="/perplexity")


def test_compare_answers_endpoint(client):
    table, _prompt, rows = client.predict("", "Paris", "Paris\nparis.\nLondon\n Paris", True, False, api_name="/compare_answers")
    assert [r["exact_raw"] for r in rows] == [True, False, False, False]  # " Paris" is not raw-equal
    assert [r["exact_unicode"] for r in rows] == [True, False, False, True]
    assert [r["exact_normalized"] for r in rows] == [True, True, False, True]
    assert [r["edit_distance"] for r in rows] == [0, 2, 6, 0]
    assert rows[0]["semantic"] == pytest.approx(1.0, abs=1e-5) and rows[2]["semantic"] < rows[1]["semantic"]
    assert len(table["data"]) == 4 and table["headers"][1:4] == ["exact (raw)", "exact (NFC, trimmed)",
                                                                 "exact (normalized)"]
    nfd = "cafe\u0301"  # e + combining accent; NFKC also folds the full-width letters
    table, _prompt, rows = client.predict("", "café", nfd + "\nｃａｆé", False, False, "NFKC", api_name="/compare_answers")
    assert [r["exact_raw"] for r in rows] == [False, False] and [r["exact_unicode"] for r in rows] == [True, True]
    assert "exact (NFKC, trimmed)" in table["headers"]


def test_quantization_endpoint_fp32_and_free(client):
    table, _fig, rows, status = client.predict("smollm2-135m-instruct", TEXT, ["fp32"], 2,
                                               api_name="/quantization_compare")
    assert [r["variant"] for r in rows] == ["fp32"] and rows[0]["tokens_per_s"] > 0
    assert rows[0]["size_mb"] == pytest.approx(513, rel=0.05)  # 134.5M float32 weights (tied head counted once)
    assert "No bf16/int8 copies" in status
    assert client.predict("smollm2-135m-instruct", api_name="/quantization_free").startswith("Freed 0")
    with pytest.raises(AppError, match="500"):  # slider limits (gradio) or our own check
        client.predict("smollm2-135m-instruct", TEXT, ["fp32"], 500, api_name="/quantization_compare")


def test_cross_entropy_endpoint(client):
    md, _fig = client.predict("a 2, b 1, c 0", "b", 1.0, api_name="/cross_entropy")
    assert "1.4076" in md  # -ln softmax([2, 1, 0])[1] = 1.40761
    # a target that is not a label is an error naming the valid labels, not the loss of label 'a'
    for target in ("zzz", "", "A"):
        with pytest.raises(AppError, match=f"target = {target!r} is not one of the labels: choose one of a, b, c"):
            client.predict("a 2, b 1, c 0", target, 1.0, api_name="/cross_entropy")
