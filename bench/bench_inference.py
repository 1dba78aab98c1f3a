"""Inference rows: the lesson's batched generation (engine.inference.batching: its own left padding,
one model.generate call) vs raw transformers on the same batch (the tokenizer's own left padding,
model.generate), the same tokens checked equal; and the lesson's cached step loop vs model.generate."""
from __future__ import annotations

import copy
import time

import torch

from bench.run import Row

BATCH, N = 8, 16


def _best(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run(ctx, repeat: int = 3) -> list[Row]:
    from engine.inference import batching, kv, measure

    tm = ctx.engine.load("smollm2-135m-instruct")
    prompts = batching.prompts_for(BATCH)
    tok = copy.copy(tm.tokenizer)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token

    def ours():
        return batching.generate_batch(tm, prompts, N).tolist()

    def raw():
        enc = tok(prompts, add_special_tokens=False, padding=True, return_tensors="pt").to(tm.device)
        with torch.inference_mode():
            out = tm.model.generate(**enc, do_sample=False, max_new_tokens=N, min_new_tokens=N,
                                    pad_token_id=tok.pad_token_id)
        return out[:, enc.input_ids.shape[1]:].tolist()

    ours(), raw()  # warm-up
    t_ours = t_raw = float("inf")
    for _ in range(repeat):  # alternating, so load on a shared machine hits both
        t, a = _best(ours, 1)
        t_ours = min(t_ours, t)
        t, b = _best(raw, 1)
        t_raw = min(t_raw, t)
    rows = [Row(f"inference: batched generation ({BATCH} x {N} tokens) vs raw generate", t_ours, t_raw, 1.1,
                note=f"same tokens: {a == b}; {BATCH * N / t_ours:.1f} tokens/s")]

    def ours_steps():
        return kv._cached_run(tm.model, kv.prompt_ids(tm, prompts[3]), N, measure.Timer(tm.device))[2]

    def raw_steps():
        ids = kv.prompt_ids(tm, prompts[3])
        with torch.inference_mode():
            out = tm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=N,
                                    min_new_tokens=N)
        return out[0, ids.shape[1]:].tolist()

    with torch.inference_mode():
        t_o, a = _best(ours_steps, repeat)
    t_r, b = _best(raw_steps, repeat)
    rows.append(Row(f"inference: timed cached step loop ({N} tokens) vs raw generate", t_o, t_r, 1.1,
                    note=f"same tokens: {a == b}"))
    return rows

