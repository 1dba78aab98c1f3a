"""Perplexity from the operator's OpenAI-compatible server (engine/serving): prompt logprobs.

One /completions call per window with prompt_logprobs = N (the server's --max-logprobs) returns,
for every prompt position, the target token's raw logprob (exact, so the perplexity is the model's)
and the top N of the distribution there. From those: the rank is the one vLLM reports (exact over the whole vocabulary; elsewhere exact up to N); the top token and its probability are exact; the entropy is a lower bound: the top
N terms, plus the rest of the mass counted as if it were one token. Imports no other evaluation
module: metrics.perplexity() calls score_window() here in place of its own forward.
"""
from __future__ import annotations

import math

from ..core.lazy import torch
from ..serving import Route, complete


def score_window(r: Route, ids: list[int], score_from: int) -> dict[str, torch.Tensor]:
    """The same dict as metrics.score_window() for ids[score_from:], from the server."""
    out = complete(r, list(ids), max_tokens=1, prompt_logprobs=r.top_n)
    positions = out["choices"][0]["prompt_logprobs"]  # one entry per prompt token (None for the first)
    res = {k: [] for k in ("logprob", "rank", "entropy", "top_id", "top_prob")}
    for pos in range(score_from, len(ids)):
        entry = {int(k): v for k, v in (positions[pos] or {}).items()}
        target = entry[int(ids[pos])]  # vLLM always includes the actual prompt token
        top = sorted(((tid, v["logprob"]) for tid, v in entry.items()), key=lambda kv: -kv[1])[: r.top_n]
        res["logprob"].append(float(target["logprob"]))
        in_top = any(tid == int(ids[pos]) for tid, _ in top)
        if isinstance(target.get("rank"), int):  # vLLM says the target's true rank in the whole vocabulary
            res["rank"].append(int(target["rank"]))
        else:
            res["rank"].append(sum(1 for _, lp in top if lp > target["logprob"]) + 1 if in_top else len(top) + 1)
        probs = [math.exp(lp) for _, lp in top]
        rest = max(0.0, 1.0 - sum(probs))
        res["entropy"].append(-sum(p * math.log(p) for p in probs + [rest] if p > 0))
        res["top_id"].append(top[0][0])
        res["top_prob"].append(probs[0])
    return {"logprob": torch.tensor(res["logprob"]), "rank": torch.tensor(res["rank"]),
            "entropy": torch.tensor(res["entropy"]), "top_id": torch.tensor(res["top_id"]),
            "top_prob": torch.tensor(res["top_prob"])}


__all__ = ["score_window"]
