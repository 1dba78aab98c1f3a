"""Quick checks: short multiple-choice questions whose right answers the app computes from the real
models when the round opens (never typed in by hand), three or more per lesson. Each builder takes
the model bundle (tokenizer + causal LM) and returns the question, its options, the right ones and
a one-line reason with the computed numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ..core.errors import UserInputError
from ..decoding import generation
from ..evaluation import metrics
from . import activities as act

MODEL_KEY = "smollm2-135m-instruct"  # the embedded instruct model (engine/core/registry.py)


@dataclass(frozen=True)
class Check:
    lesson: str
    title: str
    build: Callable  # tm -> dict(question, options, right (list of option texts), why)


def _pieces(tm, text: str) -> list[str]:
    ids = tm.tokenizer.encode(text, add_special_tokens=False)
    return [generation.token_label(tm, i) for i in ids]


def tokens_count(tm) -> dict:
    word = "unbelievably"
    n = len(_pieces(tm, word))
    options = [str(v) for v in sorted({max(1, n - 1), n, n + 1, n + 2})]
    return dict(question=f"How many tokens does SmolLM2's tokenizer cut “{word}” into?", options=options,
                right=[str(n)], why=f"{n}: {' | '.join(_pieces(tm, word))}")


def tokens_most(tm) -> dict:
    words = [" cat", " understanding", " Kilimanjaro", " photosynthesis"]
    counts = {w.strip(): len(_pieces(tm, w)) for w in words}
    top = max(counts.values())
    return dict(question="Inside a sentence (a space before it), which word does SmolLM2 cut into the MOST tokens?",
                options=list(counts), right=[w for w, n in counts.items() if n == top],
                why=", ".join(f"{w}: {n}" for w, n in counts.items()))


def tokens_space(tm) -> dict:
    a, b = tm.tokenizer.encode("Hello", add_special_tokens=False), tm.tokenizer.encode(" Hello", add_special_tokens=False)
    same = a == b
    return dict(question="Do “Hello” and “ Hello” (with a space before it) get the same token ids?",
                options=["Yes", "No"], right=["Yes" if same else "No"], why=f"“Hello” → {a}, “ Hello” → {b}")


def decoding_top(tm) -> dict:
    prompt = "The capital of France is"
    rows = act.top_rows(tm, act.model_probs(tm, prompt), 4)
    options = sorted(r[0] for r in rows)
    return dict(question=f"Which token is most likely next after “{prompt}”?", options=options, right=[rows[0][0]],
                why=", ".join(f"{r[0]} {r[1]:.1%}" for r in rows))


def decoding_top_p(tm) -> dict:
    prompt = "Once upon a"
    kept = act.after_knobs(act.model_probs(tm, prompt), act.SamplerSettings(temperature=1.0, top_k=0, top_p=0.9))
    n = int((kept > 0).sum())
    options = [str(v) for v in sorted({1, n, n * 3, n * 10})]
    return dict(question=f"With top-p 0.9, how many tokens can be drawn next after “{prompt}”?", options=options,
                right=[str(n)], why=f"{n} tokens hold 90% of the probability")


def decoding_temperature(tm) -> dict:
    prompt = "I like to eat"
    probs = act.model_probs(tm, prompt)
    cold = act.after_knobs(probs, act.SamplerSettings(temperature=0.5))
    p1, p05 = float(probs.max()), float(cold.max())
    answer = "It goes up" if p05 > p1 + 1e-6 else "It goes down" if p05 < p1 - 1e-6 else "It stays the same"
    return dict(question=f"After “{prompt}”, the most likely token has some probability at temperature 1. "
                         "At temperature 0.5, that probability…", options=["It goes up", "It goes down",
                                                                           "It stays the same"],
                right=[answer], why=f"{p1:.1%} at T = 1, {p05:.1%} at T = 0.5")


def eval_ppl(tm) -> dict:
    texts = {"The cat sat on the mat.": 0.0, "Mat the on sat cat the.": 0.0}
    for t in texts:
        texts[t] = metrics.perplexity(tm.model, tm.tokenizer, t, window=128, stride=64).perplexity
    best = min(texts, key=texts.get)
    return dict(question="Which text has the LOWER perplexity for SmolLM2?", options=list(texts), right=[best],
                why=", ".join(f"“{t}” {v:.1f}" for t, v in texts.items()))


def eval_surprise(tm) -> dict:
    prompt = "I drank a cup of"
    probs = act.model_probs(tm, prompt)
    words = ["coffee", "tea", "bricks"]
    scored = {w: act.score_guess(tm, probs, prompt, w)[0] for w in words}
    worst = min(scored, key=scored.get)
    return dict(question=f"Which next word is the MOST surprising for SmolLM2 after “{prompt}”?", options=words,
                right=[worst], why=", ".join(f"{w} {p:.2%}" for w, p in scored.items()))


def eval_bits(tm) -> dict:
    prompt = "The capital of France is"
    p, _, label = act.score_guess(tm, act.model_probs(tm, prompt), prompt, "Paris")
    bits = -math.log2(p)
    options = [f"{b:.1f} bits" for b in sorted({round(bits, 1), round(bits + 2, 1), round(bits * 3 + 1, 1),
                                                round(bits / 2 + 4, 1)})]
    return dict(question=f"SmolLM2 gives {label} p = {p:.3f} after “{prompt}”. Its surprisal (−log₂ p) is about…",
                options=options, right=[f"{bits:.1f} bits"], why=f"−log₂ {p:.3f} = {bits:.2f} bits")


CHECKS = {
    "tokens-count": Check("Tokens", "How many tokens in a long word", tokens_count),
    "tokens-most": Check("Tokens", "Which word makes the most tokens", tokens_most),
    "tokens-space": Check("Tokens", "A space before a word", tokens_space),
    "decoding-top": Check("Decoding", "The most likely next token", decoding_top),
    "decoding-top-p": Check("Decoding", "How many tokens top-p keeps", decoding_top_p),
    "decoding-temperature": Check("Decoding", "Lower temperature, top token", decoding_temperature),
    "evaluation-ppl": Check("Evaluation", "Which text has lower perplexity", eval_ppl),
    "evaluation-surprise": Check("Evaluation", "The most surprising next word", eval_surprise),
    "evaluation-bits": Check("Evaluation", "Surprisal in bits", eval_bits),
}


def choices() -> list[tuple[str, str]]:
    """(label, id) for the host's picker, grouped by lesson."""
    return [(f"{c.lesson}: {c.title}", key) for key, c in CHECKS.items()]


def build(tm, key: str) -> dict:
    if key not in CHECKS:
        raise UserInputError(f"quick check {key!r} is not one of {', '.join(CHECKS)}.")
    out = CHECKS[key].build(tm)
    assert set(out["right"]) <= set(out["options"]), out  # a computed answer is always offered
    return out
