"""Retrieval quality on the bundled corpus: for each bundled question, the chunks that hold at
least half of its answering passage are relevant; hit rate@k (a relevant chunk among the top k),
MRR (mean of 1 / rank of the first relevant chunk, 0 when none is in the top k), recall@k (the
share of the relevant chunks found in the top k) and nDCG@k (ranking_metrics) for dense, sparse
and hybrid; the prompt tokens the top k chunks cost in the generator's tokenizer; and all of it
over several chunk sizes.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace

from ..core.errors import UserInputError, check_range, check_text
from ..core.models import Progress, no_progress
from ..core.settings import knob_default, knob_info, make
from . import chunking, corpus, rag, search

SWEEP_SIZES = (64, 128, 256, 384)
MAX_SWEEP_SIZES = 6
METRICS = ("hit_rate", "mrr", "recall", "ndcg")
# The generator's tokenizer (rag.LM is SmolLM2-135M-Instruct) without its weights: the tokens
# registry's SmolLM2 row, which tests/test_tokens.py checks encodes as the model's own tokenizer.
GENERATOR_TOKENIZER = "tok-smollm2"


def questions() -> list[dict]:
    """The bundled questions with the character span of their passage in its document."""
    data = json.loads((corpus.CORPUS_DIR / "questions.json").read_text(encoding="utf-8"))
    docs = {d.doc_id: d for d in corpus.bundled()}
    out = []
    for q in data["questions"]:
        start = docs[q["doc"]].text.index(q["passage"])
        out.append(dict(q, start=start, end=start + len(q["passage"])))
    return out


def relevant_ids(kb: search.KnowledgeBase, q: dict) -> set[int]:
    """Point ids of the chunks that hold at least half of the question's passage."""
    need = (q["end"] - q["start"]) / 2
    return {i for i, c in enumerate(kb.chunks)
            if c.doc_id == q["doc"] and min(c.end, q["end"]) - max(c.start, q["start"]) >= need}


def ranking_metrics(ranked_ids: list[int], relevant: set[int], k: int) -> dict:
    """One query's scores for the ranking `ranked_ids` (best first; only the first k count).
    hit: a relevant id is in the top k (1 or 0). rr: 1 / rank of the first relevant id (0 if none).
    recall: relevant ids in the top k / all relevant ids. ndcg: DCG / ideal DCG with binary gains,
    DCG = sum over the top k of rel(i) / log2(i + 1) at 1-based rank i, and the ideal DCG puts
    min(k, |relevant|) relevant ids first. A query without any relevant chunk scores 0 on all four."""
    top = list(ranked_ids)[:k]
    ranks = [i + 1 for i, pid in enumerate(top) if pid in relevant]  # 1-based ranks of the relevant hits
    if not relevant:
        return dict(hit=0.0, rr=0.0, recall=0.0, ndcg=0.0)
    dcg = sum(1.0 / math.log2(r + 1) for r in ranks)
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(k, len(relevant)) + 1))
    return dict(hit=float(bool(ranks)), rr=1.0 / ranks[0] if ranks else 0.0, recall=len(ranks) / len(relevant),
                ndcg=dcg / ideal)


def context_tokens(tokenizer, hits: list[dict]) -> int:
    """Tokens the hits take in the answer prompt: the context block rag.build_prompt writes for
    them ("[1] (title) text" lines), counted by the generator's tokenizer."""
    return len(tokenizer.encode(rag.context(hits))) if hits else 0


def evaluate(engine, kb: search.KnowledgeBase, k: int = 5, settings: search.SearchSettings | None = None,
             progress: Progress = no_progress) -> dict:
    """Hit rate@k, MRR, recall@k and nDCG@k per method over the bundled questions (means of
    ranking_metrics), the mean prompt tokens of each method's top k chunks, and each question's
    rank of its first relevant chunk."""
    if not kb.shared:
        raise UserInputError("Retrieval quality is measured on the bundled documents: choose them as the source.")
    k = check_range("k", k, 1, 20, integer=True)
    s = replace(settings or search.SearchSettings(), top_k=k, threshold=0.0)
    qs = questions()
    qvecs = search.embed(engine, [q["question"] for q in qs], progress, what="the questions")  # (questions, dim)
    tok = engine.load(GENERATOR_TOKENIZER, progress=progress)
    rows, sums = [], {m: dict.fromkeys(("hit", "rr", "recall", "ndcg", "tokens"), 0.0) for m in search.METHODS}
    for q, vec in zip(qs, qvecs):
        relevant = relevant_ids(kb, q)
        found = search.run_search(kb, vec, q["question"], s)
        row = dict(question=q["question"], doc=q["doc"], relevant=len(relevant))
        for m in search.METHODS:
            row[m] = next((h["rank"] for h in found[m] if h["id"] in relevant), None)
            for name, value in ranking_metrics([h["id"] for h in found[m]], relevant, k).items():
                sums[m][name] += value
            sums[m]["tokens"] += context_tokens(tok, found[m])
        rows.append(row)
    n = len(qs)
    metrics = {m: dict(hit_rate=round(v["hit"] / n, 4), mrr=round(v["rr"] / n, 4), recall=round(v["recall"] / n, 4),
                       ndcg=round(v["ndcg"] / n, 4), prompt_tokens=round(v["tokens"] / n, 1))
               for m, v in sums.items()}
    return dict(k=k, questions=n, chunks=len(kb.chunks), settings=kb.settings.key, metrics=metrics, rows=rows,
                tokenizer=GENERATOR_TOKENIZER)


def parse_sizes(sizes) -> list[int]:
    if isinstance(sizes, str):
        sizes = check_text("chunk sizes", sizes, max_chars=200)
        parts = [p for p in sizes.replace(";", ",").split(",") if p.strip()]
    else:
        parts = list(sizes or [])
    if not 1 <= len(parts) <= MAX_SWEEP_SIZES:
        raise UserInputError(f"chunk sizes = {sizes!r}: give 1 to {MAX_SWEEP_SIZES} sizes, e.g. 64, 128, 256.")
    info = knob_info(chunking.ChunkSettings, "size")
    return sorted({check_range("chunk size", p, info.minimum, info.maximum, integer=True) for p in parts})


def sweep(library: search.Library, sizes=SWEEP_SIZES, overlap_share: float = 0.25, strategy: str = "fixed tokens",
          k: int = 5, progress: Progress = no_progress) -> dict:
    """evaluate() at each chunk size (overlap = overlap_share x size), indexing the bundled corpus
    for each size (shared indexes are reused)."""
    sizes = parse_sizes(sizes)
    overlap_share = check_range("overlap share", overlap_share, 0.0, 0.75)
    points = []
    for i, size in enumerate(sizes):
        def step(fraction, message, _i=i):
            progress((_i + (fraction or 0.0)) / len(sizes), f"size {size}: {message}")

        settings = make(chunking.ChunkSettings, size=size, overlap=int(size * overlap_share), strategy=strategy)
        kb = library.bundled(settings, step)
        result = evaluate(library.engine, kb, k, progress=step)
        points.append(dict(size=size, overlap=settings.overlap, chunks=result["chunks"], **{
            f"{m}_{name}": result["metrics"][m][name] for m in search.METHODS for name in (*METRICS, "prompt_tokens")}))
    # the room the Answer tab's default budget leaves for the prompt (the rest is the answer's)
    room = knob_default(rag.AnswerSettings, "budget") - knob_default(rag.AnswerSettings, "max_new_tokens")
    return dict(k=k, strategy=strategy, overlap_share=overlap_share, points=points, prompt_room=room,
                tokenizer=GENERATOR_TOKENIZER)
