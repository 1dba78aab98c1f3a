"""Evaluation rows: perplexity of a 2,000-token text through engine.evaluation.metrics (per-token
probabilities, ranks and entropies included) vs the raw loop of the transformers perplexity
guide (model(input_ids, labels=...) per window), with the same window and stride."""
from __future__ import annotations

import math

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


@torch.no_grad()
def raw_suite_loop(model, tokenizer, items, batch_size: int = 16) -> list[float]:
    """The plain loop: every (question, choice) as context + ' choice' (after the tokenizer's own
    prefix, none for SmolLM2, as lm-eval encodes it), batches of 16 in
    item order, right-padded, full logits, log_softmax, the continuation's log-probs summed;
    acc = argmax per item. Returns acc per item."""
    from engine.evaluation import suite

    prefix = suite.own_prefix(tokenizer)
    seqs = []
    for it in items:
        ctx = tokenizer(suite.context_for(it, []), add_special_tokens=False).input_ids
        for c in it.choices:
            whole = tokenizer(suite.context_for(it, []) + " " + c, add_special_tokens=False).input_ids
            seqs.append((prefix + whole, len(prefix) + len(ctx)))
    lls = []
    for b in range(0, len(seqs), batch_size):
        chunk = seqs[b:b + batch_size]
        width = max(len(s) for s, _ in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, (s, _) in enumerate(chunk):
            ids[r, :len(s)] = torch.tensor(s)
            mask[r, :len(s)] = 1
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)  # (B, L, V)
        for r, (s, n_ctx) in enumerate(chunk):
            pos = torch.arange(n_ctx, len(s))
            lls.append(float(logp[r, pos - 1, ids[r, pos]].sum()))
    acc, at = [], 0
    for it in items:
        scores = lls[at:at + len(it.choices)]
        at += len(it.choices)
        acc.append(float(max(range(len(scores)), key=scores.__getitem__) == it.answer))
    return acc


def suite_row(ctx) -> Row:
    from engine.evaluation import suite

    bundle = ctx.engine.load("smollm2-135m-instruct")
    items = suite.bundled()
    ours_acc, raw_acc = [], []
    t_ours, t_raw = interleaved(
        lambda: ours_acc.append(suite.score_items(bundle.model, bundle.tokenizer, items, 0).summary()["acc"]["value"]),
        lambda: raw_acc.append(sum(raw_suite_loop(bundle.model, bundle.tokenizer, items)) / len(items)), repeat=1)
    return Row(f"task suite, {len(items)} bundled items x 4 choices, 0-shot: engine vs plain batched loop", t_ours, t_raw,
               target=1.2, note=f"{len(items) / t_ours:.1f} items/s ours, {len(items) / t_raw:.1f} raw; acc ours "
                                f"{ours_acc[-1]:.3f} / raw {raw_acc[-1]:.3f}")


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
    rows.append(suite_row(ctx))
    return rows
