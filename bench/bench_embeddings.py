"""Embeddings & attention: extracting every attention map for a 128-token text (tokenize, one
forward pass, stack layers into a (layers, heads, q, k) array) vs the raw library call
`model(**tokenizer(text), output_attentions=True)`; no rendering. Target: ratio <= 1.2."""
from __future__ import annotations

import torch

from bench.run import Row, best_of

SENTENCE = ("Attention lets every token in a sentence look at the other tokens and decide which of "
            "them matter for its own meaning. ")


def text_of(tokenizer, n_tokens: int) -> str:
    """A text that tokenizes to exactly n_tokens for this tokenizer (special tokens included)."""
    words = (SENTENCE * 20).split()
    lo, hi = 1, len(words)
    while lo < hi:  # the longest prefix of words with at most n_tokens tokens
        mid = (lo + hi + 1) // 2
        if len(tokenizer(" ".join(words[:mid]))["input_ids"]) <= n_tokens:
            lo = mid
        else:
            hi = mid - 1
    text = " ".join(words[:lo])
    while len(tokenizer(text)["input_ids"]) < n_tokens:
        text += " a"
    return text


def run(ctx) -> list[Row]:
    from engine.embeddings import attention as att

    engine = ctx.engine
    rows = []
    for key in att.ATTENTION_MODELS:
        bundle = att.load_attention_model(engine, key)
        text = text_of(bundle.tokenizer, 128)
        n = len(bundle.tokenizer(text)["input_ids"])

        def ours():
            return att.attention_maps(engine, text, key).weights

        def raw():
            enc = bundle.tokenizer(text, return_tensors="pt").to(bundle.device)
            with torch.no_grad():
                return bundle.model(**enc, output_attentions=True).attentions

        assert ours().shape[-1] == n == raw()[0].shape[-1]  # same work, and a warm-up for both
        # Alternate the two, one call at a time, so neither side gets a quieter machine.
        repeat = 10 if key == "minilm-l6" else 5
        t_raw = t_ours = float("inf")
        for _ in range(repeat):
            t_raw = min(t_raw, best_of(raw, 1))
            t_ours = min(t_ours, best_of(ours, 1))
        spec = engine.registry.get(key)
        rows.append(Row(f"attention maps, {spec.title.split(' (')[0]}, {n} tokens vs raw forward", t_ours, t_raw,
                        target=1.2, note=f"{engine.device.kind}, best of {repeat} alternating, no rendering"))
    return rows
