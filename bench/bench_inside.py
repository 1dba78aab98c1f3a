"""Inside the model: the whole journey view (tokenize, one recorded forward with hooks, the
embedding strip, the HTML picture) vs the raw library call
`model(**tokenizer(text), output_hidden_states=True, output_attentions=True)`. Target: ratio <= 1.3."""
from __future__ import annotations

import torch

from bench.bench_embeddings import text_of
from bench.run import Row, interleaved

N_TOKENS = 64


def run(ctx) -> list[Row]:
    from engine import inside
    from engine.inside import plots

    engine = ctx.engine
    rows = []
    for key in inside.MODELS:
        bundle = inside.load(engine, key)
        text = text_of(bundle.tokenizer, N_TOKENS)
        n = len(bundle.tokenizer(text)["input_ids"])

        def ours():
            j, _ = inside.journey(engine, text, key)
            return plots.journey_html(j)

        def raw():
            enc = bundle.tokenizer(text, return_tensors="pt").to(bundle.device)
            with torch.inference_mode():
                return bundle.model(**enc, output_hidden_states=True, output_attentions=True)

        assert f"(1, {n}, {bundle.model.config.hidden_size})" in ours() and raw().hidden_states  # warm-up both
        repeat = 5
        t_ours, t_raw = interleaved(ours, raw, repeat)
        spec = engine.registry.get(key)
        rows.append(Row(f"journey view, {spec.title.split(' (')[0]}, {n} tokens vs raw forward", t_ours, t_raw,
                        target=1.3, note=f"{engine.device.kind}, best of {repeat} alternating, HTML included"))
    return rows
