"""Grounding: the same questions answered with passages in the prompt.

Four conditions, the same questions, the same greedy decoding (generation.py):

    closed book      the question alone
    retrieved        the top-k passages of a MiniLM dense search (the Retrieval lesson's embedder)
                     over every bundled passage: the gold one and the other questions' passages,
                     which are distractors
    gold passage     only the passage that states the answer
    misleading       only a passage that states a wrong answer (another question's answer)

Hallucination rate = share of answers that are not right (normalised exact or alias match).
An answer is "supported" when, normalised, it occurs as whole words in one of the passages the
model was shown (the first such passage is named); "unsupported" otherwise. With the misleading
passage we also count answers that repeat its false answer: grounding moves the error, it does
not remove it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from ..core.settings import knob
from ..evaluation import answers
from ..retrieval import search
from . import generation, questions

CONDITIONS = ("closed book", "retrieved", "gold passage", "misleading")
_VECTORS: dict = {}
_LOCK = threading.Lock()


@dataclass
class GroundingSettings:
    n_questions: int = knob(16, 4, 209, "Questions answered in each condition", step=1, label="questions")
    top_k: int = knob(3, 1, 5, "Passages the retrieved condition puts in the prompt", step=1, label="top-k passages")
    max_new_tokens: int = knob(8, 2, 24, "Tokens an answer may have at most", step=1, label="max answer tokens")
    max_seconds: int = knob(60, 5, 300, "Time budget: conditions not started when it passes are left out",
                            step=5, label="time budget (s)")


def passages() -> list[str]:
    return [q.passage for q in questions.bundled()]


def passage_vectors(engine, progress=None) -> np.ndarray:
    """MiniLM vectors of the bundled passages, (n, 384), made once per process."""
    with _LOCK:
        if "gold" not in _VECTORS:
            _VECTORS["gold"] = search.embed(engine, passages(), progress or search.no_progress, "passages")
        return _VECTORS["gold"]


def retrieve(engine, items: list, k: int, progress=None) -> list[list[int]]:
    """For each question, the indexes of its top-k passages by cosine similarity."""
    vecs = passage_vectors(engine, progress)
    qv = search.embed(engine, [q.question for q in items], progress or search.no_progress, "questions")
    sims = qv @ vecs.T  # (questions, passages); both unit length
    return [list(np.argsort(-row)[:k]) for row in sims]


def shown(cond: str, q, hits: list[int] | None) -> list[str]:
    if cond == "closed book":
        return []
    if cond == "retrieved":
        return [passages()[i] for i in hits or []]
    return [q.passage] if cond == "gold passage" else [q.misleading_passage]


def context_text(texts: list[str]) -> str:
    if not texts:
        return ""
    return "Passages:\n" + "\n".join(f"[{n}] {t}" for n, t in enumerate(texts, 1))


def support(answer: str, texts: list[str]) -> int | None:
    """1-based number of the first passage that contains the normalised answer as whole words."""
    got = answers.normalize(answer)
    if not got:
        return None
    for n, t in enumerate(texts, 1):
        if f" {got} " in f" {answers.normalize(t)} ":
            return n
    return None


def _condition(model, tokenizer, items, cond, hits, s) -> list[dict]:
    rows = []
    for b in range(0, len(items), generation.BATCH):
        batch = items[b:b + generation.BATCH]
        texts = [shown(cond, q, hits[b + i] if hits else None) for i, q in enumerate(batch)]
        prompts = [generation.qa_prompt(q.question, context=context_text(t)) for q, t in zip(batch, texts)]
        got = generation.answer_batch(model, tokenizer, prompts, s.max_new_tokens)
        for q, t, prompt, g in zip(batch, texts, prompts, got):
            sup = support(g["text"], t)
            rows.append(dict(id=q.id, question=q.question, gold=q.answer, condition=cond, answer=g["text"],
                             correct=questions.is_correct(g["text"], q), passages=t, supported_by=sup,
                             repeats_false=cond == "misleading" and questions.repeats(g["text"], q.false_answer),
                             gold_retrieved=q.passage in t, prompt=prompt))
    return rows


def run(engine, model_key: str, s: GroundingSettings, progress=None) -> dict:
    report = progress or (lambda f, m: None)
    items = questions.choose(s.n_questions)
    bundle = engine.load(model_key, progress=report)
    report(0.02, "Retrieving passages with MiniLM")
    hits = retrieve(engine, items, s.top_k)
    start, rows, done = time.perf_counter(), [], []
    for i, cond in enumerate(CONDITIONS):
        if done and time.perf_counter() - start > s.max_seconds:
            break
        report(0.05 + 0.95 * i / len(CONDITIONS), f"answering: {cond}")
        rows += _condition(bundle.model, bundle.tokenizer, items, cond, hits if cond == "retrieved" else None, s)
        done.append(cond)
    return dict(model=model_key, rows=rows, conditions=done, left_out=[c for c in CONDITIONS if c not in done],
                summary=summarize(rows), seconds=time.perf_counter() - start, n=len(items))


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for cond in CONDITIONS:
        rs = [r for r in rows if r["condition"] == cond]
        if not rs:
            continue
        n = len(rs)
        out.append(dict(condition=cond, n=n, accuracy=sum(r["correct"] for r in rs) / n,
                        hallucination=sum(not r["correct"] for r in rs) / n,
                        supported=sum(r["supported_by"] is not None for r in rs) / n if cond != "closed book" else None,
                        repeats_false=sum(r["repeats_false"] for r in rs) / n if cond == "misleading" else None,
                        gold_retrieved=sum(r["gold_retrieved"] for r in rs) / n if cond == "retrieved" else None))
    return out
