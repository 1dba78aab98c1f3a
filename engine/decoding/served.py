"""The decoding paths answered by the operator's OpenAI-compatible server (engine/serving).

Plain data in and out, so generation.py builds its own results from it and this module imports
nothing of the decoding package (no import circle). What the server gives back per position is
the raw model's top-N logprobs (N = the server's --max-logprobs, 20 by default), never the whole
vocabulary, so:
- next-token view: the top N tokens' raw probabilities are exact; the rest of the vocabulary is
  only known as one mass, 1 - sum(top N). It is spread evenly over the other tokens so the knobs
  can still run (the chart shows it as one "the rest" bar, labelled as such); any knob result that
  depends on how that mass is spread (high temperature, a top-p beyond the top N) is approximate.
- Generate: each token's raw probability is exact; its rank is exact up to N and "more than N"
  after that; the probability after the knobs is not returned (NaN).
- typical-p: vLLM's sampling parameters have no typical_p, so a sampled Generate with
  typical_p < 1 is refused (UserInputError) rather than silently sampled without it. The
  next-token view applies it in this process like every knob (generation.view_from_logits), to
  the top N and the evenly spread rest; it reads the entropy of the whole distribution, so there
  it is approximate.
"""
from __future__ import annotations

import math
import time

from ..core.errors import UserInputError
from ..core.lazy import torch
from ..serving import Route, choice_tokens, complete


def next_logits(r: Route, ids: list[int], vocab: int) -> tuple[torch.Tensor, list[int]]:
    """(logits (vocab,), the top-N ids) for the position after `ids`: the top N at their raw
    logprob, every other token at log((1 - sum top N) / (vocab - N)), so softmax gives back the
    top N exactly and the rest as one mass."""
    out = complete(r, ids, max_tokens=1, temperature=0.0, logprobs=r.top_n)
    first = choice_tokens(out["choices"][0])[0]
    top = dict(sorted(first["top"].items(), key=lambda kv: -kv[1])[: r.top_n])
    mass = sum(math.exp(v) for v in top.values())
    rest = max(1.0 - mass, 1e-12)
    tail = math.log(rest / max(vocab - len(top), 1))
    logits = torch.full((vocab,), tail, dtype=torch.float32)
    idx = torch.tensor(list(top), dtype=torch.long)
    logits[idx] = torch.tensor(list(top.values()), dtype=torch.float32)
    return logits, list(top)


def generate(r: Route, ids: list[int], *, max_new_tokens: int, sampling: bool, temperature: float, top_k: int,
             top_p: float, min_p: float, typical_p: float, repetition_penalty: float, rows: int, seed: int,
             stops: list[str]) -> tuple[list[dict], float]:
    """One /completions call for `rows` continuations. Returns ([{"ids", "p_raw", "rank",
    "stop_reason"}], seconds). rank: exact up to N, N + 1 means "not in the top N"."""
    if sampling and typical_p < 1.0:
        raise UserInputError(
            f"typical_p = {typical_p:g} is not supported by the text generation server ({r.url}): "
            "its OpenAI-compatible API has no typical_p. Set typical_p to 1 (off) to generate there, or use "
            "Step, which samples in this process with every knob.")
    start = time.perf_counter()
    kw = dict(temperature=float(temperature), top_k=int(top_k), top_p=float(top_p), min_p=float(min_p),
              seed=int(seed)) if sampling else dict(temperature=0.0)
    out = complete(r, ids, max_tokens=max_new_tokens, repetition_penalty=float(repetition_penalty), n=rows,
                   stop=stops or None, logprobs=min(r.top_n, 20), **kw)
    seqs = []
    for choice in sorted(out["choices"], key=lambda c: c.get("index", 0)):
        toks = choice_tokens(choice)
        ranks = []
        for t in toks:
            above = sum(1 for tid, lp in t["top"].items() if lp > t["logprob"] and tid != t["id"])
            ranks.append(above + 1 if t["id"] in t["top"] else len(t["top"]) + 1)
        finish, why = choice.get("finish_reason"), choice.get("stop_reason")
        if finish == "length":
            reason = "max_new_tokens"
        elif isinstance(why, str):
            reason = f"stop string {why!r}"
        else:
            reason = "EOS"
        seqs.append(dict(ids=[t["id"] for t in toks], p_raw=[math.exp(t["logprob"]) for t in toks], rank=ranks,
                         stop_reason=reason))
    return seqs, time.perf_counter() - start


__all__ = ["next_logits", "generate"]
