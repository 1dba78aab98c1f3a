"""What each class activity computes, apart from storage: the model's next-token distribution (one
model call, kept as float32 bytes), a guess's score (the probability of its first token and its
rank), a student's draw from the distribution after the knobs (the decoding lesson's own
processors, the student's own seed), vote tallies with Fleiss' kappa and the preference export,
and the quick checks' answers (engine/classroom/checks.py).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass

from ..core.errors import UserInputError, check_text
from ..core.lazy import torch
from ..core.settings import knob, make, validate
from ..decoding import generation
from ..serving import choice_tokens, complete, use_server

ACTIVITIES = ("predict", "sample", "vote", "check")
TITLES = {"predict": "Predict the next token", "sample": "The class is the sampler", "vote": "Vote on answers",
          "check": "Quick check"}
TOP_K_SHOWN = 10  # the model's bars beside the class's
MAX_PROMPT_CHARS = 300
MAX_RESPONSE_CHARS = 400  # as the Post-training tab's pairs (engine/training/preference.py)


@dataclass
class SamplerSettings:
    """The host's knobs of one sampling round: the decoding lesson's processors, in its order."""

    temperature: float = knob(1.0, 0.05, 2.0, "Divide the logits by T before the softmax", step=0.05)
    top_k: int = knob(0, 0, 200, "Keep only the k most likely tokens (0 = off)", step=1)
    top_p: float = knob(1.0, 0.05, 1.0, "Keep the smallest set of tokens whose probabilities add up to p "
                        "(1 = off)", step=0.01)

    def __post_init__(self):
        validate(self)


# --- the model's distribution (one call per prompt) --------------------------------------------
def model_probs(tm, prompt: str) -> torch.Tensor:
    """The raw next-token probabilities after `prompt` (vocab,), float32: one forward pass (or one
    request to the operator's server, through the decoding lesson's next_token_view)."""
    raw = make(generation.DecodingSettings, temperature=1.0, top_k=0, top_p=1.0)
    view = generation.next_token_view(tm, prompt, raw, "raw")
    return view.stages[0].probs.float().contiguous()


def to_bytes(probs: torch.Tensor) -> bytes:
    return probs.float().numpy().tobytes()


def from_bytes(blob: bytes) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.frombuffer(blob, dtype=np.float32).copy())


def top_rows(tm, probs: torch.Tensor, k: int = TOP_K_SHOWN) -> list[list]:
    """[[token label, probability, id]] of the k most likely tokens."""
    values, ids = probs.topk(k)
    return [[generation.token_label(tm, int(i)), round(float(v), 6), int(i)] for v, i in zip(values, ids)]


# --- predict the next token ---------------------------------------------------------------------
def guess_text(prompt: str, guess: str) -> str:
    """The text a guess stands for right after the prompt: a word after a prompt that ends without a
    space starts with one (" Paris"), as the tokenizer sees words inside a sentence."""
    word = guess.strip()
    if prompt and not prompt[-1].isspace() and word and word[0] not in ".,;:!?'\")]}":
        word = " " + word
    return word


def first_token(tm, prompt: str, guess: str) -> int:
    ids = tm.tokenizer.encode(guess_text(prompt, guess), add_special_tokens=False)
    if not ids:
        raise UserInputError(f"the guess {guess!r} makes no token: type a word.")
    return int(ids[0])


def score_guess(tm, probs: torch.Tensor, prompt: str, guess: str) -> tuple[float, int, str]:
    """(probability the model gave the guess's first token, its rank among all tokens (1 = most
    likely), the token as a label). A guess past the top-k keeps its real probability and rank."""
    tid = first_token(tm, prompt, guess)
    p = float(probs[tid])
    rank = int((probs > p).sum()) + 1
    r = use_server(tm)
    if r is not None and rank > r.top_n:  # a server answers only its top N: the stored tail is an even spread
        p, rank = served_token(r, tm, prompt, tid)
    return p, rank, generation.token_label(tm, tid)


def prompt_ids(tm, prompt: str) -> list[int]:
    """The prompt's ids as the round's distribution read them (the decoding lesson's raw format)."""
    return generation.encode(tm, prompt, "raw")[1][0].tolist()


def served_token(r, tm, prompt: str, tid: int) -> tuple[float, int]:
    """The probability and whole-vocabulary rank the served model gives token `tid` after the prompt:
    the server's prompt logprob of that token appended to the prompt (exact, as perplexity reads it)."""
    out = complete(r, prompt_ids(tm, prompt) + [int(tid)], max_tokens=1, prompt_logprobs=1)
    entry = out["choices"][0]["prompt_logprobs"][-1]
    target = {int(k): v for k, v in entry.items()}[int(tid)]
    return math.exp(float(target["logprob"])), int(target["rank"])


# --- the class is the sampler -------------------------------------------------------------------
def after_knobs(probs: torch.Tensor, s: SamplerSettings) -> torch.Tensor:
    """The distribution the class draws from (vocab,): the raw log-probabilities through the decoding
    lesson's temperature, top-k and top-p (stage_logits, in transformers' order), renormalised."""
    knobs = make(generation.DecodingSettings, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                 min_p=0.0, typical_p=1.0, repetition_penalty=1.0, do_sample=True)
    logits = probs.clamp_min(1e-45).log()[None]  # (1, vocab); log p = logits minus a constant
    staged = generation.stage_logits(logits, torch.zeros((1, 0), dtype=torch.long), knobs)
    return staged[-1][0].softmax(-1)


def draw(knobbed: torch.Tensor, seed: int) -> int:
    """One token id drawn from the knob distribution with a generator seeded by `seed`."""
    g = torch.Generator().manual_seed(int(seed))
    return int(torch.multinomial(knobbed, 1, generator=g)[0])


def served_draw(r, tm, prompt: str, s: SamplerSettings, seed: int) -> int:
    """One token drawn by the operator's server with the round's knobs and the student's seed: used when
    the knobs keep more tokens than the server's top N, whose order and probabilities only it knows."""
    out = complete(r, prompt_ids(tm, prompt), max_tokens=1, temperature=s.temperature, top_k=s.top_k,
                   top_p=s.top_p, seed=seed, logprobs=1)
    return int(choice_tokens(out["choices"][0])[0]["id"])


def round_seed(student_seed: int, round_number: int) -> int:
    """A student's seed for one round: their own seed, moved on by the round (a new knob setting is
    a new round, so the class samples again)."""
    return (int(student_seed) + 7919 * int(round_number)) % 2**31


def kept_rows(tm, knobbed: torch.Tensor, k: int = 12) -> list[list]:
    n = int((knobbed > 0).sum())
    return top_rows(tm, knobbed, min(k, max(1, n)))


# --- votes --------------------------------------------------------------------------------------
def check_pair(prompt: str, first: str, second: str) -> tuple[str, str, str]:
    prompt = check_text("vote prompt", prompt, max_chars=MAX_PROMPT_CHARS).strip()
    first = check_text("response 1", first, max_chars=MAX_RESPONSE_CHARS).strip()
    second = check_text("response 2", second, max_chars=MAX_RESPONSE_CHARS).strip()
    if first == second:
        raise UserInputError("response 1 and response 2 are the same text: a vote needs two different answers.")
    return prompt, first, second


def vote_counts(values: list[str]) -> dict[str, int]:
    c = Counter(v for v in values if v in ("A", "B"))
    return {"A": c["A"], "B": c["B"]}


def fleiss_kappa(items: list[dict[str, int]]) -> float | None:
    """Fleiss' kappa over items rated by several students into categories (counts per category per
    item; the number of raters may vary per item, the usual generalisation). None when undefined:
    fewer than 2 items with at least 2 ratings, or every rating in one category."""
    items = [it for it in items if sum(it.values()) >= 2]
    if len(items) < 2:
        return None
    cats = sorted({c for it in items for c in it})
    total = sum(sum(it.values()) for it in items)
    p_j = [sum(it.get(c, 0) for it in items) / total for c in cats]
    p_e = sum(p * p for p in p_j)
    p_i = [(sum(n * n for n in it.values()) - sum(it.values())) / (sum(it.values()) * (sum(it.values()) - 1))
           for it in items]
    p_bar = sum(p_i) / len(p_i)
    if math.isclose(p_e, 1.0):
        return None
    return (p_bar - p_e) / (1 - p_e)


def preference_jsonl(pairs: list[tuple[str, str, str, dict]]) -> str:
    """The class's votes as the Post-training tab's comparison data: one {"prompt", "chosen",
    "rejected"} line per vote round with a majority (a tie says nothing and is left out)."""
    lines = []
    for prompt, first, second, counts in pairs:
        if counts["A"] == counts["B"]:
            continue
        chosen, rejected = (first, second) if counts["A"] > counts["B"] else (second, first)
        lines.append(json.dumps(dict(prompt=prompt, chosen=chosen, rejected=rejected), ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")
