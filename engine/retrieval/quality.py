"""Retrieval quality on the bundled corpus: for each bundled question, the chunks that hold at
least half of its answering passage are relevant; hit rate@k (a relevant chunk among the top k)
and MRR (mean of 1 / rank of the first relevant chunk, 0 when none is in the top k) for dense,
sparse and hybrid; and the same over several chunk sizes.
"""
from __future__ import annotations

import json
from dataclasses import replace

from ..core.errors import UserInputError, check_range, check_text
from ..core.models import Progress, no_progress
from ..core.settings import knob_info, make
from . import chunking, corpus, search

SWEEP_SIZES = (64, 128, 256, 384)
MAX_SWEEP_SIZES = 6


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


def evaluate(engine, kb: search.KnowledgeBase, k: int = 5, settings: search.SearchSettings | None = None,
             progress: Progress = no_progress) -> dict:
    """Hit rate@k and MRR@k per method over the bundled questions, and each question's ranks."""
    if not kb.shared:
        raise UserInputError("Retrieval quality is measured on the bundled documents: choose them as the source.")
    k = check_range("k", k, 1, 20, integer=True)
    s = replace(settings or search.SearchSettings(), top_k=k, threshold=0.0)
    qs = questions()
    qvecs = search.embed(engine, [q["question"] for q in qs], progress, what="the questions")  # (questions, dim)
    rows, sums = [], {m: [0, 0.0] for m in search.METHODS}
    for q, vec in zip(qs, qvecs):
        relevant = relevant_ids(kb, q)
        found = search.run_search(kb, vec, q["question"], s)
        row = dict(question=q["question"], doc=q["doc"], relevant=len(relevant))
        for m in search.METHODS:
            rank = next((h["rank"] for h in found[m] if h["id"] in relevant), None)
            row[m] = rank
            sums[m][0] += rank is not None
            sums[m][1] += 1.0 / rank if rank else 0.0
        rows.append(row)
    n = len(qs)
    metrics = {m: dict(hit_rate=round(sums[m][0] / n, 4), mrr=round(sums[m][1] / n, 4)) for m in search.METHODS}
    return dict(k=k, questions=n, chunks=len(kb.chunks), settings=kb.settings.key, metrics=metrics, rows=rows)


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
            f"{m}_{name}": result["metrics"][m][name] for m in search.METHODS for name in ("hit_rate", "mrr")}))
    return dict(k=k, strategy=strategy, overlap_share=overlap_share, points=points)
