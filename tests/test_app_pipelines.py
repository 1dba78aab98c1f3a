"""The Pipelines tab through its API endpoints, as any gradio_client user would call them."""
from __future__ import annotations

import pytest

from engine.pipelines import tasks as T


def test_zero_shot_endpoint(client):
    fig, status, raw, code = client.predict(
        T.TASKS["zero-shot-classification"].example, "minilm-l6", "politics, sports, cooking", False,
        "This example is about {}.", api_name="/pipeline_zero_shot_classification")
    assert raw["labels"][0] == "sports"
    assert sum(raw["scores"]) == pytest.approx(1.0, abs=1e-4)
    assert "fallback" in status.lower()
    assert "'zero-shot-classification',\n    model='facebook/bart-large-mnli'," in code


def test_ner_endpoint(client):
    text = "Ada Lovelace was born in London."
    html, table, status, raw, code = client.predict(text, "spacy-en-core-web-sm", "simple", api_name="/pipeline_ner")
    assert {"word": "Ada Lovelace", "type": "PER"}.items() <= raw[0].items()
    assert any(e["word"] == "London" and e["type"] == "LOC" for e in raw)
    assert "<mark" in html and "aggregation_strategy='simple'" in code


def test_bad_input_and_offline_translation_give_clear_errors(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="top_k|maximum value 20"):  # the slider or the engine refuses
        client.predict("a [MASK]", "smollm2-135m-instruct", 500, api_name="/pipeline_fill_mask")
    with pytest.raises(AppError, match="needs a Hub model"):
        client.predict("Hello", "opus-mt-en-fr", "en", "fr", api_name="/pipeline_translation")
    with pytest.raises(AppError, match="valid range|out of range|is empty"):
        client.predict("", "smollm2-135m-instruct", 10, 60, api_name="/pipeline_summarization")


def test_all_six_endpoints_are_public(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    for name in ("text_generation", "zero_shot_classification", "fill_mask", "summarization", "ner",
                 "translation"):
        assert f"/pipeline_{name}" in names


def test_text_generation_endpoint_greedy_is_repeatable(client):
    args = dict(text="The capital of France is", key="smollm2-135m-instruct", max_new_tokens=3, temperature=0.0, n=1,
                seed=42)
    md, status, raw, code = client.predict(**args, api_name="/pipeline_text_generation")
    assert raw[0]["generated_text"].startswith("The capital of France is")
    assert "Paris" in raw[0]["generated_text"]
    assert "max_new_tokens=3" in code and "do_sample=False" in code
    again = client.predict(**args, api_name="/pipeline_text_generation")[2]
    assert again == raw
