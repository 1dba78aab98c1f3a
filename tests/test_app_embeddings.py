"""The Embeddings & attention tab through its API, as any gradio_client user would call it."""
from __future__ import annotations

import numpy as np
import pytest
from gradio_client.exceptions import AppError

TEXT = "The animal didn't cross the street because it was too tired."


def test_attention_endpoint(client):
    *_, summary = client.predict(TEXT, "smollm2-135m-instruct", 2, 3, False, None, api_name="/attention")
    n = len(summary["tokens"])
    assert summary["shape"] == dict(layers=30, heads=9, query_tokens=n, key_tokens=n)
    m = np.array(summary["matrix"])
    assert m.shape == (n, n) and np.allclose(m.sum(axis=1), 1.0, atol=1e-3)
    assert np.all(m[np.triu_indices(n, k=1)] == 0)  # causal: nothing above the diagonal
    assert summary["tokens"][summary["token"]] == "it"


def test_attention_endpoint_validates(client):
    with pytest.raises(AppError, match="layer = 9 is out of range: valid values are 1 to 6"):
        client.predict(TEXT, "minilm-l6", 9, 1, False, None, api_name="/attention")
    with pytest.raises(AppError, match="gpt-17"):
        client.predict(TEXT, "gpt-17", 1, 1, False, None, api_name="/attention")


def test_embedding_similarity_endpoint(client):
    sentences = "The river bank was muddy.\nThe bank lent me money.\nThe bank of the river flooded."
    *_, sim = client.predict(sentences, "bank", 6, api_name="/embedding_similarity")
    assert sim["pairs"] == [[1, 2], [1, 3], [2, 3]] and sim["layers"] == list(range(7))
    assert sim["shapes"]["last_hidden_state"] == [1, 8, 384]
    cos = {tuple(p): c[-1] for p, c in zip(sim["pairs"], sim["cosine"])}
    assert cos[(1, 3)] > cos[(1, 2)]
    assert len(sim["pca"]["x"]) == len(sim["pca"]["labels"])


def test_semantic_search_endpoint(client):
    passages = "Cats purr when they are content.\nStock markets fell sharply on Monday.\n" \
               "A happy kitten makes a soft rumbling sound."
    _, _, tfidf_table, result = client.predict("Why does my cat make a humming noise?", passages, 3,
                                               api_name="/semantic_search")
    ranking = [r["passage"] for r in result["embedding"]]
    assert ranking.index(3) < ranking.index(2) and ranking.index(1) < ranking.index(2)
    assert {r["passage"] for r in result["tfidf"]} == {1, 2, 3}
    unranked = [r["passage"] for r in result["tfidf"] if r["rank"] is None]  # no word shared: "—"
    assert unranked and [row[0] for row in tfidf_table["data"]].count("—") == len(unranked)


def test_tab_offers_a_deep_link(engine):
    import gradio as gr

    import tabs.embeddings as tab

    with gr.Blocks():
        share = tab.build(engine)
    assert set(share.params) == {"text", "model", "layer", "head", "mean", "view"}  # view: the inner tab
    assert len(share.run_inputs) == 7 and len(share.run_outputs) == 10  # + the view and the inner tabs


def test_every_valid_layer_and_head_after_a_model_switch(app_url):
    """The sliders' maximum follows the last model; a later call for another model must still
    reach all of that model's layers and heads, and the error names the chosen model's range."""
    from gradio_client import Client

    c = Client(app_url, verbose=False)  # one session: the maximum left by one call is seen by the next
    *_, s = c.predict(TEXT, "minilm-l6", 6, 12, False, None, api_name="/attention")
    assert s["layer"] == 6 and s["head"] == 12
    *_, s = c.predict(TEXT, "smollm2-135m-instruct", 30, 9, False, None, api_name="/attention")
    assert s["layer"] == 30 and s["head"] == 9
    *_, s = c.predict(TEXT, "minilm-l6", 6, 12, False, None, api_name="/attention")  # back: 12 heads again
    assert s["head"] == 12
    c.predict("minilm-l6", 4, 2, api_name="/attention_model_dims")
    *_, s = c.predict(TEXT, "smollm2-135m-instruct", 30, 1, False, None, api_name="/attention")
    assert s["layer"] == 30
    with pytest.raises(AppError, match="layer = 30 is out of range: valid values are 1 to 6"):
        c.predict(TEXT, "minilm-l6", 30, 1, False, None, api_name="/attention")
    with pytest.raises(AppError, match="head = 12 is out of range: valid values are 1 to 9"):
        c.predict(TEXT, "smollm2-135m-instruct", 1, 12, False, None, api_name="/attention")


def test_passages_sharing_no_word_with_the_query_are_not_ranked():
    """Issue 32: with every TF-IDF score 0 the table ranked passages 1-5 in input order. A passage
    with no word in common scores exactly 0 and shows "—"; the label says why."""
    from engine.embeddings import vectors as emb
    from tabs.embeddings import TFIDF_LABEL, UNRANKED, _ranking_rows

    passages = ["Cats purr when content.", "Stock markets fell on Monday.", "Bake bread until golden.",
                "Cats sleep all day long.", "Rain flooded the pitch."]
    none = emb.tfidf_scores("How do I fix a flat tire on my bike?", passages)
    assert not none.any()  # no shared word: all exactly 0
    rows = emb.ranking(none, passages, top_k=5, unranked_at_zero=True)
    assert [r["rank"] for r in rows] == [None] * 5 and [r["passage"] for r in rows] == [1, 2, 3, 4, 5]
    assert [row[0] for row in _ranking_rows(rows)] == [UNRANKED] * 5
    assert f"{UNRANKED} = no word shared with the query (score 0: tied, so unranked)" in TFIDF_LABEL
    some = emb.tfidf_scores("Why do cats purr?", passages)  # passages 1 and 4 share "cats"
    rows = emb.ranking(some, passages, top_k=4, unranked_at_zero=True)
    assert [(r["rank"], r["passage"]) for r in rows] == [(1, 1), (2, 4), (None, 2), (None, 3)]
    assert [r[0] for r in _ranking_rows(rows)] == [1, 2, UNRANKED, UNRANKED]
    dense = emb.ranking(np.array([0.0, 0.3, -0.1]), passages[:3], top_k=3)  # cosine: 0 is a score like any
    assert [(r["rank"], r["passage"]) for r in dense] == [(1, 2), (2, 1), (3, 3)]
