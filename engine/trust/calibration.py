"""Is the model as sure as it is right?

Each question is answered greedily (generation.py). Three confidences in [0, 1]:

    first token     the probability of the answer's first token: how sure the model was as it began
    sequence        exp(mean ln p) over the answer's tokens: length-normalised, so long answers
                    are not less sure only for being long
    agreement       share of k sampled answers (temperature T, seeded) that, normalised, equal the
                    greedy answer: self-consistency, which needs no access to probabilities

Scores of a confidence c_i against correctness y_i in {0, 1} over N answers:

    reliability bins   B equal-width bins [0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1] (c = 1 in the last)
    ECE                sum over bins of (n_b / N) * |accuracy_b - mean confidence_b|
    Brier              (1/N) * sum (c_i - y_i)^2
    coverage(tau)      share of questions with c_i >= tau (answered; the rest are declined)
    accuracy(tau)      accuracy over the answered ones (undefined when none is answered)
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..core.errors import UserInputError, check_choice, check_range
from ..core.settings import knob
from ..evaluation import answers
from . import generation, questions

MEASURES = ("first token", "sequence", "agreement")
MEASURE_HELP = {
    "first token": "p(first answer token): how sure the model was as it began the answer",
    "sequence": "exp(mean log-probability of the answer's tokens): the whole answer, length-normalised",
    "agreement": "share of k sampled answers equal to the greedy one (self-consistency; 0 when k = 0)",
}
CATEGORY_CHOICES = ("all",) + questions.CATEGORIES


@dataclass
class CalibrationSettings:
    n_questions: int = knob(32, 8, 209, "Questions answered (taken from each category in turn)", step=1,
                            label="questions")
    category: str = knob("all", help="Only the questions of one category, or all", choices=CATEGORY_CHOICES)
    samples: int = knob(3, 0, 10, "Sampled answers per question for the agreement confidence (0 = skip it)",
                        step=1, label="samples k")
    temperature: float = knob(1.0, 0.1, 2.0, "Temperature of the samples", step=0.1)
    bins: int = knob(10, 2, 20, "Equal-width bins of the reliability diagram and of ECE", step=1)
    max_new_tokens: int = knob(8, 2, 24, "Tokens an answer may have at most", step=1, label="max answer tokens")
    seed: int = knob(0, 0, 2**32 - 1, "Seed of the samples", step=1)
    max_seconds: int = knob(60, 5, 300, "Time budget: the run stops after the batch that passes it and "
                            "scores the questions answered so far", step=5, label="time budget (s)")


# ---- scores of (confidence, correct) pairs --------------------------------------------------------
def _arrays(conf, correct) -> tuple[np.ndarray, np.ndarray]:
    c, y = np.asarray(conf, dtype=float), np.asarray(correct, dtype=float)
    if c.shape != y.shape or c.ndim != 1 or c.size == 0:
        raise UserInputError(f"confidences and correct flags must be two lists of the same length >= 1, got "
                             f"{c.size} and {y.size}.")
    if np.any((c < 0) | (c > 1)) or np.any(np.isnan(c)):
        raise UserInputError("every confidence must be between 0 and 1.")
    return c, y


def bin_index(conf, n_bins: int) -> np.ndarray:
    """The bin of each confidence: floor(c * B), with c = 1 in the last bin."""
    c = np.asarray(conf, dtype=float)
    return np.minimum((c * n_bins).astype(int), n_bins - 1)


def reliability(conf, correct, n_bins: int = 10) -> list[dict]:
    """One row per bin: edges, count, mean confidence, accuracy (None when empty), member indexes."""
    n_bins = check_range("bins", n_bins, 2, 20, integer=True)
    c, y = _arrays(conf, correct)
    idx = bin_index(c, n_bins)
    rows = []
    for b in range(n_bins):
        members = np.flatnonzero(idx == b)
        rows.append(dict(lo=b / n_bins, hi=(b + 1) / n_bins, n=int(members.size), members=members.tolist(),
                         confidence=float(c[members].mean()) if members.size else None,
                         accuracy=float(y[members].mean()) if members.size else None))
    return rows


def ece(conf, correct, n_bins: int = 10) -> float:
    c, y = _arrays(conf, correct)
    return float(sum(r["n"] / c.size * abs(r["accuracy"] - r["confidence"])
                     for r in reliability(c, y, n_bins) if r["n"]))


def brier(conf, correct) -> float:
    c, y = _arrays(conf, correct)
    return float(np.mean((c - y) ** 2))


def coverage_curve(conf, correct, taus=None) -> list[dict]:
    """For each threshold tau: coverage (share answered, c >= tau) and accuracy of the answered."""
    c, y = _arrays(conf, correct)
    taus = np.linspace(0, 1, 51) if taus is None else np.asarray(taus, dtype=float)
    out = []
    for tau in taus:
        answered = c >= tau
        out.append(dict(tau=float(tau), coverage=float(answered.mean()), answered=int(answered.sum()),
                        accuracy=float(y[answered].mean()) if answered.any() else None))
    return out


# ---- the run ------------------------------------------------------------------------------------
def answer_rows(model, tokenizer, items: list, s: CalibrationSettings, progress=None, prompt=None) -> tuple[list, bool]:
    """Every question answered in batches until the time budget passes; (rows, stopped early)."""
    prompt = prompt or (lambda q: generation.qa_prompt(q.question))
    start, rows = time.perf_counter(), []
    for b in range(0, len(items), generation.BATCH):
        batch = items[b:b + generation.BATCH]
        got = generation.answer_batch(model, tokenizer, [prompt(q) for q in batch], s.max_new_tokens,
                                      s.samples, s.temperature, s.seed + b)
        for q, g in zip(batch, got):
            norm = answers.normalize(g["text"])
            agree = (sum(answers.normalize(x) == norm for x in g["samples"]) / len(g["samples"])
                     if g["samples"] else 0.0)
            rows.append(dict(id=q.id, category=q.category, question=q.question, gold=q.answer, answer=g["text"],
                             correct=questions.is_correct(g["text"], q), samples=g["samples"],
                             confidence={"first token": g["first_token_p"], "sequence": g["sequence_p"],
                                         "agreement": agree}, tokens=len(g["ids"])))
        if progress:
            progress(len(rows) / len(items), f"answered {len(rows)} of {len(items)} questions")
        if time.perf_counter() - start > s.max_seconds and len(rows) < len(items):
            return rows, True
    return rows, False


def summarize(rows: list[dict], n_bins: int) -> dict:
    y = [r["correct"] for r in rows]
    out = dict(n=len(rows), accuracy=float(np.mean(y)), bins=n_bins, measures={})
    for m in MEASURES:
        c = [r["confidence"][m] for r in rows]
        out["measures"][m] = dict(ece=ece(c, y, n_bins), brier=brier(c, y), mean_confidence=float(np.mean(c)),
                                  reliability=reliability(c, y, n_bins))
    return out


def run(engine, model_key: str, settings: CalibrationSettings, progress=None) -> dict:
    if settings.n_questions > len(questions.bundled()):
        raise UserInputError(f"questions = {settings.n_questions} is out of range: valid 8 to {len(questions.bundled())}.")
    items = questions.choose(settings.n_questions, settings.category)
    report = progress or (lambda f, m: None)
    bundle = engine.load(model_key, progress=report)
    start = time.perf_counter()
    rows, stopped = answer_rows(bundle.model, bundle.tokenizer, items, settings, report)
    seconds = time.perf_counter() - start
    return dict(model=model_key, rows=rows, stopped=stopped, asked=len(items), seconds=seconds,
                settings=dict(settings.__dict__), summary=summarize(rows, settings.bins))


def ranked(rows: list[dict], measure: str) -> list[dict]:
    """Wrong answers first, the most confident of them first (the confident hallucinations), then
    the right ones from the least confident."""
    check_choice("confidence measure", measure, MEASURES)
    wrong = sorted((r for r in rows if not r["correct"]), key=lambda r: -r["confidence"][measure])
    right = sorted((r for r in rows if r["correct"]), key=lambda r: r["confidence"][measure])
    return wrong + right


def declined(rows: list[dict], measure: str, tau: float) -> dict:
    """What answering only when confidence >= tau keeps and declines."""
    check_choice("confidence measure", measure, MEASURES)
    tau = check_range("tau", tau, 0.0, 1.0)
    kept = [r for r in rows if r["confidence"][measure] >= tau]
    out = [r for r in rows if r["confidence"][measure] < tau]
    return dict(tau=tau, answered=len(kept), declined=out, coverage=len(kept) / max(len(rows), 1),
                accuracy=(sum(r["correct"] for r in kept) / len(kept)) if kept else None,
                wrong_declined=sum(not r["correct"] for r in out), right_declined=sum(r["correct"] for r in out))
