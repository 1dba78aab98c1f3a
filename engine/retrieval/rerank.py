"""Reranking with a cross-encoder: the question and one chunk go through the model together and
one number comes out (how well the chunk answers the question). Slower than comparing two
vectors, since each pair is a forward pass, and usually more precise; so a first stage (dense,
sparse or hybrid) picks a pool of chunks and the cross-encoder reorders that pool.

No pip package ships a cross-encoder's weights (looked for on 2026-12-07: FlashRank,
fastretrieval and coremem download theirs at run time), so the reranker is the Hub's
cross-encoder/ms-marco-MiniLM-L-6-v2 (registry row RERANKER): available when the app runs
online, and plainly unavailable offline (unavailable() says why).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..core.lazy import from_transformers, torch
from ..core.models import Progress, TextModel, no_progress
from ..core.settings import knob

RERANKER = "ms-marco-minilm-l6"  # engine/core/registry.py, RETRIEVAL_SPECS
MAX_PAIR_TOKENS = 512  # question + chunk, [CLS] and [SEP]s included (MiniLM's position limit)
BATCH = 16


@dataclass
class RerankSettings:
    pool: int = knob(20, 5, 50, "How many chunks the first stage hands to the cross-encoder; it reads each "
                     "one with the question and keeps the top-k", step=5, label="chunks to rerank")


def load_cross_encoder(source, device, variant: str = "default", progress: Progress = no_progress) -> TextModel:
    """A sequence-classification model that scores (question, passage) pairs, with its tokenizer.
    Hub ids and local folders go through the same from_pretrained call."""
    AutoModelForSequenceClassification, AutoTokenizer = from_transformers("AutoModelForSequenceClassification", "AutoTokenizer")

    start = time.perf_counter()
    kwargs = {"revision": source.revision} if source.is_hub and source.revision else {}
    progress(0.5, f"Loading {source.spec.title} on {device.kind}...")
    model = AutoModelForSequenceClassification.from_pretrained(source.path, dtype=torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
    model.to(device.torch_device).eval()
    return TextModel(model, tokenizer, source, device.torch_device, torch.float32, time.perf_counter() - start)


def model_name(source) -> str:
    """The model a resolved Source loads: its Hub id at its pinned commit, or its folder."""
    return f"{source.path}@{source.revision[:7]}" if source.revision else source.path


def unavailable(engine) -> str:
    """'' when the reranker can load here; else why not, in one plain sentence."""
    if engine.registry.usable(RERANKER):
        return ""
    spec = engine.registry.get(RERANKER)
    return (f"Reranking is unavailable offline: the reranker is a cross-encoder from the Hugging Face Hub "
            f"({spec.hub_id}, {spec.size_mb:.0f} MB), no pip package ships a cross-encoder's weights, and this "
            f"app cannot reach the Hub ({engine.registry.reason}). Run the app online (e.g. on a Hugging Face "
            "Space) to rerank.")


def scores(tm: TextModel, query: str, texts: list[str]) -> list[float]:
    """The cross-encoder's score of each (query, text) pair: the logit of a one-output head, or the
    log-probability of the last class ("relevant") of a head with several."""
    out = []
    for start in range(0, len(texts), BATCH):
        batch = texts[start:start + BATCH]
        enc = tm.tokenizer([query] * len(batch), batch, padding=True, truncation="only_second",
                           max_length=MAX_PAIR_TOKENS, return_tensors="pt").to(tm.device)
        with torch.inference_mode():
            logits = tm.model(**enc).logits.float()  # (pairs, labels)
        col = logits[:, 0] if logits.shape[-1] == 1 else torch.log_softmax(logits, -1)[:, -1]  # (pairs,)
        out.extend(col.tolist())
    return out


def rerank(engine, query: str, hits: list[dict], keep: int, progress: Progress = no_progress) -> dict:
    """The first stage's `hits` (in its order) reordered by the cross-encoder's score, best first,
    the top `keep` of them; each hit keeps its first-stage rank as `first_rank`."""
    t0 = time.perf_counter()
    tm = engine.load(RERANKER, progress=progress)
    progress(0.9, f"Cross-encoder reading {len(hits)} (question, chunk) pairs...")
    ce = scores(tm, query, [h["text"] for h in hits]) if hits else []
    order = sorted(range(len(hits)), key=lambda i: (-ce[i], hits[i]["rank"]))  # ties: the first stage's order
    out = [dict(hits[i], rank=r + 1, first_rank=hits[i]["rank"], first_score=hits[i]["score"],
                score=round(ce[i], 5)) for r, i in enumerate(order[:keep])]
    return dict(model=model_name(tm.source), where=tm.source.where, pool=len(hits), hits=out,
                seconds=time.perf_counter() - t0)
