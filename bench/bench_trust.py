"""Trust & prompting row: the calibration run on every bundled question (greedy answers with the
first-token and sequence probabilities, no samples) through engine.trust.calibration vs a plain
transformers loop doing the same forward passes: the same left-padded batches of 16, one
model.generate each (greedy, stop at the first newline, raw logits kept), softmax read per row."""
from __future__ import annotations

import math
import os

import torch

from bench.run import Row, interleaved


@torch.no_grad()
def raw_loop(model, tokenizer, prompts: list[str], max_new_tokens: int = 8) -> list[tuple[str, float]]:
    out = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for b in range(0, len(prompts), 16):
        rows = [tokenizer(p)["input_ids"] for p in prompts[b:b + 16]]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])  # (B, L), left-padded
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, top_k=None, top_p=None,
                             temperature=None, max_new_tokens=max_new_tokens, pad_token_id=pad, stop_strings=["\n"],
                             tokenizer=tokenizer, return_dict_in_generate=True, output_logits=True)
        for r in range(len(rows)):
            new = gen.sequences[r, width:].tolist()
            n = next((i for i, t in enumerate(new) if t == pad or "\n" in tokenizer.decode([t])), len(new))
            lp = [float(torch.log_softmax(gen.logits[t][r].float(), -1)[new[t]]) for t in range(n)]
            out.append((tokenizer.decode(new[:n]).strip(), math.exp(sum(lp) / n) if n else 0.0))
    return out


def run(ctx) -> list[Row]:
    from engine.core.settings import make
    from engine.trust import calibration as cal, generation, questions

    bundle = ctx.engine.load("smollm2-135m-instruct")
    items = questions.bundled()
    s = make(cal.CalibrationSettings, n_questions=len(items), samples=0)
    s.max_seconds = 10**9  # the bench answers every question: no time budget (a user's run keeps its cap)
    # The CPU is shared: one batch of 16 at a time, each side run twice alternately and its faster run kept, so
    # a burst of load from another process lands on both sides instead of on one whole 200-question run.
    t_ours = t_raw = 0.0
    ours, raw = [], []
    for b in range(0, len(items), generation.BATCH):
        batch = items[b:b + generation.BATCH]
        got = {}
        o, r = interleaved(
            lambda: got.__setitem__("ours", cal.answer_rows(bundle.model, bundle.tokenizer, batch, s)[0]),
            lambda: got.__setitem__("raw", raw_loop(bundle.model, bundle.tokenizer,
                                                    [generation.qa_prompt(q.question) for q in batch])),
            repeat=2)
        t_ours, t_raw = t_ours + o, t_raw + r
        ours += got["ours"]
        raw += got["raw"]
    assert len(ours) == len(raw) == len(items)
    same = sum(a["answer"] == b[0] for a, b in zip(ours, raw))
    acc = sum(r["correct"] for r in ours) / len(items)
    return [Row(f"calibration run, {len(items)} questions, greedy + first-token/sequence p: engine vs plain generate loop",
                t_ours, t_raw, target=1.2, note=f"wall {t_ours:.1f} s ours / {t_raw:.1f} s raw (per batch of 16, the "
                                                f"faster of 2 alternated runs); {same}/{len(items)} answers identical; "
                                                f"accuracy {acc:.2f}; load avg %.1f/%.1f/%.1f" % os.getloadavg())]
