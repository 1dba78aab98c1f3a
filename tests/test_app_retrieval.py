"""The Retrieval (RAG) tab through its API, as any gradio_client user would call it. Each
gradio_client Client is one browser session: its uploads live in its own Qdrant collection."""
from __future__ import annotations

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from engine.retrieval import corpus


def test_chunks_endpoint_shows_the_overlap(client):
    md, view, table = client.predict("bundled", "howto-sorting", 64, 16, "fixed tokens", api_name="/rag_chunks")
    rows = table["data"]
    assert len(rows) > 5 and all(r[3] == 64 for r in rows[:-1])
    assert all(nxt[1] < prev[2] for prev, nxt in zip(rows, rows[1:]))  # each chunk starts inside the previous one
    assert "overlap" in view and f"{len(rows)} chunks" in md
    _, _, table0 = client.predict("bundled", "howto-sorting", 64, 0, "fixed tokens", api_name="/rag_chunks")
    assert all(nxt[1] >= prev[2] for prev, nxt in zip(table0["data"], table0["data"][1:]))
    assert len(table0["data"]) < len(rows)


def test_chunk_settings_are_checked(client):
    with pytest.raises(AppError, match="overlap = 64 must be smaller than the chunk size"):
        client.predict("bundled", "howto-sorting", 64, 64, "fixed tokens", api_name="/rag_chunks")
    with pytest.raises(AppError, match="document = 'nope' is not in this corpus"):
        client.predict("bundled", "nope", 64, 8, "fixed tokens", api_name="/rag_chunks")


def _session(app_url):
    return Client(app_url, verbose=False)


def test_each_session_searches_only_its_own_uploads(app_url, tmp_path):
    a, b = tmp_path / "giraffes.txt", tmp_path / "submarines.md"
    a.write_text("Giraffes are the tallest animals on land. They eat leaves from acacia trees.\n\n" * 4)
    b.write_text("Submarines dive by filling their ballast tanks with sea water.\n\n" * 4)
    one, two = _session(app_url), _session(app_url)
    md1, info1, *_ = one.predict([handle_file(str(a))], 32, 8, "fixed tokens", api_name="/rag_upload")
    md2, info2, *_ = two.predict([handle_file(str(b))], 32, 8, "fixed tokens", api_name="/rag_upload")
    assert info1["collection"] != info2["collection"] and info1["points"] > 0
    assert info1["sample_point"]["payload"]["title"] == "giraffes.txt"
    for c, mine, other in ((one, "Giraffes", "Submarines"), (two, "Submarines", "Giraffes")):
        summary, dense, sparse, hybrid, *_ = c.predict("uploads", f"{other} or {mine}?", 32, 8, "fixed tokens",
                                                       10, 0.0, 60, 20, api_name="/rag_search")
        texts = [r[2] for t in (dense, sparse, hybrid) for r in t["data"]]
        assert texts and all(mine in t and other not in t for t in texts)
        assert all(float(r[1]) > 0 for r in dense["data"])
    # clearing one session's files leaves the other's alone
    one.predict(api_name="/rag_clear")
    with pytest.raises(AppError, match="No uploaded documents"):
        one.predict("uploads", "Giraffes?", 32, 8, "fixed tokens", 5, 0.0, 60, 20, api_name="/rag_search")
    *_, hybrid, _ = two.predict("uploads", "Submarines?", 32, 8, "fixed tokens", 5, 0.0, 60, 20,
                                api_name="/rag_search")[:5]
    assert hybrid["data"]


def test_an_upload_past_the_limit_is_refused_by_name(app_url, tmp_path):
    big = tmp_path / "too-big.txt"
    big.write_bytes(b"x " * (corpus.MAX_FILE_BYTES // 2 + 1))
    with pytest.raises(AppError, match=r"'too-big.txt' is 2,000,002 bytes: the limit is 2,000,000 bytes per file"):
        _session(app_url).predict([handle_file(str(big))], 64, 8, "fixed tokens", api_name="/rag_upload")
    odd = tmp_path / "table.csv"
    odd.write_text("a,b")
    # Gradio's file component refuses another type first, naming the valid ones (the engine's own
    # check, which names the file, is in test_retrieval.py)
    with pytest.raises(AppError, match=r"\.txt', '\.md', '\.pdf'"):
        _session(app_url).predict([handle_file(str(odd))], 64, 8, "fixed tokens", api_name="/rag_upload")


def test_search_input_is_checked(client):
    with pytest.raises(AppError, match="query is empty"):
        client.predict("bundled", "   ", 64, 8, "fixed tokens", 5, 0.0, 60, 20, api_name="/rag_search")
    with pytest.raises(AppError, match="Value 50 is greater than maximum value 20"):  # Gradio's slider check
        client.predict("bundled", "sorting", 64, 8, "fixed tokens", 50, 0.0, 60, 20, api_name="/rag_search")


def test_tab_offers_a_deep_link(engine):
    import gradio as gr

    import tabs.retrieval as tab

    with gr.Blocks():
        share = tab.build(engine)
    assert {"query", "doc", "size", "overlap", "strategy", "top_k"} <= set(share.params)
    assert share.run is not None and len(share.run_outputs) == 3


@pytest.mark.slow
def test_bundled_search_quality_and_answer(client):
    """The bundled corpus indexed once (MiniLM over ~900 chunks), then searched, scored, answered."""
    summary, dense, sparse, hybrid, fig, info = client.predict(
        "bundled", "How do I make function parameters keyword-only?", 128, 32, "fixed tokens", 5, 0.0, 60, 20,
        api_name="/rag_search")
    assert info["points"] > 500 and info["dense"] == dict(name="dense", size=384, distance="Cosine")
    assert any("keyword" in r[2].lower() for r in dense["data"][:3])
    plot, table = client.predict(128, 32, "fixed tokens", 5, api_name="/rag_quality")
    assert len(table["data"]) >= 30
    prompt, with_rag, without_rag, stats = client.predict(
        "bundled", "How do I make function parameters keyword-only?", 128, 32, "fixed tokens", 5, 0.0, 60, 20,
        "hybrid", 1024, 40, 0.0, 42, api_name="/rag_answer")
    assert "Sources cited" in prompt and "With retrieval" in with_rag and "Without retrieval" in without_rag
