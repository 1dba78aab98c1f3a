"""Evaluation rows: perplexity of a 2,000-token text through engine.evaluation.metrics (per-token
probabilities, ranks and entropies included) vs the raw loop of the transformers perplexity
guide (model(input_ids, labels=...) per window), with the same window and stride."""
from __future__ import annotations

import math
import time

import torch

from bench.run import ROOT, Row, interleaved

N_TOKENS = 2000


def _text(tokenizer) -> str:
    """Exactly N_TOKENS tokens of prose and code from this repository (no download)."""
    parts = [p.read_text(encoding="utf-8") for p in sorted(ROOT.glob("engine/*.py")) + sorted(ROOT.glob("tabs/*.py"))]
    ids = tokenizer("\n\n".join(parts), add_special_tokens=False).input_ids
    while len(ids) < N_TOKENS:
        ids = ids + ids
    text = tokenizer.decode(ids[:N_TOKENS])
    return text


@torch.no_grad()
def raw_loop(model, ids: torch.Tensor, window: int, stride: int) -> float:
    """The perplexity guide's loop: each window masks its already-scored part with -100."""
    n, nll_sum, n_scored, prev_end = ids.shape[1], 0.0, 0, 0
    for begin in range(0, n, stride):
        end = min(begin + window, n)
        trg = end - prev_end
        inp = ids[:, begin:end]
        labels = inp.clone()
        labels[:, :-trg] = -100
        loss = model(inp, labels=labels).loss
        scored = int((labels[:, 1:] != -100).sum())
        nll_sum += float(loss) * scored
        n_scored += scored
        prev_end = end
        if end == n:
            break
    return math.exp(nll_sum / n_scored)


def run(ctx) -> list[Row]:
    from engine.evaluation import metrics

    bundle = ctx.engine.load("smollm2-135m-instruct")
    model, tok = bundle.model, bundle.tokenizer
    text = _text(tok)
    ids = [metrics.begin_token_id(tok)] + tok(text, add_special_tokens=False).input_ids
    x = torch.tensor([ids], device=bundle.device)  # (1, n)
    rows = []
    for window, stride, label in ((1024, 512, "sliding window 1024/512"), (2048, 1024, "one pass")):
        ours_ppl, raw_ppl = [], []
        t_ours, t_raw = interleaved(
            lambda: ours_ppl.append(metrics.perplexity(model, tok, text, window, stride).perplexity),
            lambda: raw_ppl.append(raw_loop(model, x, window, stride)))
        rows.append(Row(f"perplexity, {len(ids) - 1} tokens, {label}: ours vs raw loop", t_ours, t_raw, target=1.2,
                        note=f"ppl ours {ours_ppl[-1]:.3f} / raw {raw_ppl[-1]:.3f}; ours adds rank+entropy per token"))
    return rows
