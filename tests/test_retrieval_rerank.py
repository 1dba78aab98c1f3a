"""Retrieval quality beyond the first hit (recall@k, nDCG@k against hand computations), the prompt
tokens the top k chunks cost, and the cross-encoder reranker: a tiny one built from a config
loads through the engine's registry and cache as the Hub model would; offline it says why not."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from engine import Engine
from engine.core.errors import UserInputError
from engine.core.registry import ALL_SPECS, Registry
from engine.core.settings import knob_default
from engine.retrieval import quality, rag, rerank, search

# --- recall@k and nDCG@k on a fixed ranking, worked by hand ----------------------------------------
# The ranking (best first) and the relevant ids: 3 is at rank 2, 4 at rank 5, 8 is not retrieved.
RANKING = [7, 3, 9, 1, 4]
RELEVANT = {3, 4, 8}
# k = 5: hit 1; RR 1/2; recall 2 of 3.
# DCG  = 1/log2(2+1) + 1/log2(5+1) = 0.6309298 + 0.3868528 = 1.0177826
# IDCG = 1/log2(2) + 1/log2(3) + 1/log2(4) = 1 + 0.6309298 + 0.5 = 2.1309298 (3 relevant, all first)
# nDCG = 1.0177826 / 2.1309298 = 0.4776240
AT_5 = dict(hit=1.0, rr=0.5, recall=2 / 3, ndcg=0.4776240)
# k = 2: the top two are 7, 3. recall 1/3; DCG = 0.6309298; IDCG = 1 + 0.6309298 = 1.6309298;
# nDCG = 0.3868528 (that is 1 / log2(6)).
AT_2 = dict(hit=1.0, rr=0.5, recall=1 / 3, ndcg=0.3868528)
# k = 1: only 7, not relevant: all zero.
AT_1 = dict(hit=0.0, rr=0.0, recall=0.0, ndcg=0.0)


@pytest.mark.parametrize("k, expected", [(5, AT_5), (2, AT_2), (1, AT_1)])
def test_recall_and_ndcg_equal_hand_computations(k, expected):
    got = quality.ranking_metrics(RANKING, RELEVANT, k)
    assert got == pytest.approx(expected, abs=1e-6)


def test_a_perfect_ranking_scores_one_and_no_relevant_chunk_scores_zero():
    assert quality.ranking_metrics([4, 3, 8, 1], RELEVANT, 3) == pytest.approx(dict(hit=1, rr=1, recall=1, ndcg=1))
    # more relevant chunks than k: the ideal order fills all k places, so a full top k is still 1
    assert quality.ranking_metrics([3, 4], RELEVANT, 2)["ndcg"] == pytest.approx(1.0)
    assert quality.ranking_metrics([1, 2], set(), 2) == dict(hit=0.0, rr=0.0, recall=0.0, ndcg=0.0)


def _hit(pid: int, text: str, rank: int, score: float = 0.5) -> dict:
    return dict(rank=rank, id=pid, score=score, doc_id="d", title="Doc", chunk=pid, tokens=5, text=text)


def test_evaluate_averages_the_four_scores_and_counts_prompt_tokens(monkeypatch, smollm2_tokenizer):
    """Two questions with fixed rankings (the same for every method): the means of the hand numbers."""
    qs = [dict(question="q one", doc="d"), dict(question="q two", doc="d")]
    texts = {i: f"chunk {i} says something about sorting lists" for i in range(10)}
    rankings = {"q one": RANKING, "q two": [8, 0, 2, 5, 6]}  # q two: 8 at rank 1, recall 1/3
    monkeypatch.setattr(quality, "questions", lambda: qs)
    monkeypatch.setattr(quality, "relevant_ids", lambda kb, q: RELEVANT)
    monkeypatch.setattr(search, "embed", lambda engine, texts_, *a, **kw: [None] * len(texts_))

    def run_search(kb, vec, query, s):
        hits = [_hit(pid, texts[pid], r + 1) for r, pid in enumerate(rankings[query][:s.top_k])]
        return {m: hits for m in search.METHODS}

    monkeypatch.setattr(search, "run_search", run_search)
    tok = SimpleNamespace(encode=lambda text: smollm2_tokenizer.encode(text, add_special_tokens=False))
    engine = SimpleNamespace(load=lambda key, progress=None: tok if key == quality.GENERATOR_TOKENIZER else None)
    kb = SimpleNamespace(shared=True, chunks=[None] * 10, settings=SimpleNamespace(key=(64, 16, "fixed tokens")))
    result = quality.evaluate(engine, kb, k=5)
    # q two at k=5: DCG = 1; IDCG = 2.1309298; nDCG = 0.4692787
    expected = dict(hit_rate=1.0, mrr=(0.5 + 1.0) / 2, recall=(2 / 3 + 1 / 3) / 2, ndcg=(0.4776240 + 0.4692787) / 2)
    tokens = [len(smollm2_tokenizer.encode(rag.context([_hit(pid, texts[pid], r + 1)
                                                        for r, pid in enumerate(rankings[q["question"]])]),
                                           add_special_tokens=False)) for q in qs]
    for m in search.METHODS:
        got = result["metrics"][m]
        assert {n: got[n] for n in expected} == pytest.approx(expected, abs=1e-4)
        assert got["prompt_tokens"] == pytest.approx(sum(tokens) / 2, abs=0.05)
    assert [r["dense"] for r in result["rows"]] == [2, 1]  # the first relevant rank, as before


# --- the cross-encoder reranker -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory, minilm_tokenizer):
    """A random 2-layer BERT with a one-output head (as ms-marco-MiniLM-L-6-v2 has) and MiniLM's
    WordPiece tokenizer, saved as a Hub repository would hold them."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=512, num_labels=1)
    folder = tmp_path_factory.mktemp("cross-encoder")
    BertForSequenceClassification(config).save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def online_engine(tiny_cross_encoder):
    """An engine that believes it is online, whose reranker's Hub id is the tiny folder."""
    eng = Engine(device="cpu", offline=True, cache_bytes=2**28)
    specs = tuple(dataclasses.replace(s, hub_id=str(tiny_cross_encoder), revision="") if s.key == rerank.RERANKER
                  else s for s in ALL_SPECS)
    eng.registry = Registry(online=True, reason="test: a local folder", specs=specs)
    return eng


def test_the_reranker_orders_the_hits_by_the_cross_encoder_and_names_it(online_engine, tiny_cross_encoder):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    query = "How do I sort a list in place?"
    texts = ["list.sort() sorts the list in place and returns None.", "sorted() builds a new sorted list.",
             "Sockets carry bytes between programs.", "A float cannot hold 0.1 exactly.",
             "Keyword-only parameters come after a bare *.", "The key function is called once per element.",
             "x " * 600]  # longer than the 512-token pair limit: truncated, not refused
    hits = [_hit(100 + i, t, i + 1, score=1 - i / 10) for i, t in enumerate(texts)]
    assert rerank.unavailable(online_engine) == ""
    result = rerank.rerank(online_engine, query, hits, keep=4)
    # the same pairs scored by plain transformers from the same folder
    model = AutoModelForSequenceClassification.from_pretrained(tiny_cross_encoder).eval()
    tok = AutoTokenizer.from_pretrained(tiny_cross_encoder)
    with torch.no_grad():
        enc = tok([query] * len(texts), texts, padding=True, truncation="only_second", max_length=512,
                  return_tensors="pt")
        expected = model(**enc).logits[:, 0].tolist()
    order = sorted(range(len(texts)), key=lambda i: -expected[i])
    assert [h["id"] for h in result["hits"]] == [100 + i for i in order[:4]]
    assert [h["rank"] for h in result["hits"]] == [1, 2, 3, 4]
    assert [h["first_rank"] for h in result["hits"]] == [i + 1 for i in order[:4]]
    assert [h["score"] for h in result["hits"]] == pytest.approx([expected[i] for i in order[:4]], abs=1e-4)
    assert order[:4] != [0, 1, 2, 3]  # it did reorder
    assert result["model"] == str(tiny_cross_encoder) and result["where"] == "hub" and result["pool"] == len(texts)
    # through the engine's one cache: a second rerank loads nothing
    misses = online_engine.cache.stats()["misses"]
    rerank.rerank(online_engine, query, hits[:2], keep=2)
    assert online_engine.cache.stats()["misses"] == misses


def test_offline_the_reranker_says_why_it_is_unavailable(engine):
    why = rerank.unavailable(engine)
    assert why.startswith("Reranking is unavailable offline")
    assert "cross-encoder/ms-marco-MiniLM-L-6-v2" in why and "no pip package ships" in why
    assert engine.registry.reason in why


def test_the_tab_shows_the_reason_offline_and_its_endpoint_returns_it(engine):
    import gradio as gr

    import tabs.retrieval as tab

    with gr.Blocks() as demo:
        share = tab.build(engine)
    fn = next(f for f in demo.fns.values() if f.api_name == "rag_rerank")
    md, rows, sess = fn.fn("bundled", "How do I sort?", 128, 32, "fixed tokens", 5, 0.0, 60, 20, "hybrid", 20, None)
    assert md == rerank.unavailable(engine) and rows == [] and sess is None
    button = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "rag-rerank")
    assert button.interactive is False
    assert {"rerank_from", "pool"} <= set(share.params)
    with pytest.raises(gr.Error, match="pool = 500"):  # bad input is refused before the offline answer
        fn.fn("bundled", "How do I sort?", 128, 32, "fixed tokens", 5, 0.0, 60, 20, "hybrid", 500, None)


def test_the_sweep_reports_each_size_with_its_prompt_cost_and_the_chart_shows_it(monkeypatch):
    """quality.sweep indexes the bundled corpus once per size (overlap = share x size) and keeps each
    size's scores and prompt tokens; the chart's points are those numbers, with the prompt room line."""
    from engine.retrieval import plots as rplots

    built, scores = [], {64: 0.5, 128: 0.75, 256: 0.9}

    def bundled(settings, progress):
        built.append((settings.size, settings.overlap))
        return SimpleNamespace(size=settings.size)

    def evaluate(engine, kb, k, progress=None):
        metrics = {m: dict(hit_rate=scores[kb.size], mrr=scores[kb.size] / 2, recall=0.3, ndcg=0.4,
                           prompt_tokens=kb.size * k * 1.5) for m in search.METHODS}
        return dict(chunks=1000 // kb.size, metrics=metrics)

    monkeypatch.setattr(quality, "evaluate", evaluate)
    library = SimpleNamespace(engine=None, bundled=bundled)
    result = quality.sweep(library, "256, 64; 128", overlap_share=0.25, k=5)
    assert built == [(64, 16), (128, 32), (256, 64)]  # sorted, each indexed once, overlap a quarter
    assert [p["size"] for p in result["points"]] == [64, 128, 256]
    assert [p["hybrid_hit_rate"] for p in result["points"]] == [0.5, 0.75, 0.9]
    assert [p["dense_prompt_tokens"] for p in result["points"]] == [480.0, 960.0, 1920.0]
    room = knob_default(rag.AnswerSettings, "budget") - knob_default(rag.AnswerSettings, "max_new_tokens")
    assert result["prompt_room"] == room
    fig = rplots.sweep_figure(result)
    tokens = [t for t in fig.data if t.xaxis == "x5"]  # the bottom panel: prompt tokens per method
    assert len(tokens) == len(search.METHODS) and all(list(t.y) == [480.0, 960.0, 1920.0] for t in tokens)
    assert any(s.y0 == room for s in fig.layout.shapes)
    with pytest.raises(UserInputError, match="chunk sizes"):
        quality.parse_sizes("")
