"""Batching: many requests in one forward. Greedy generation of the same number of tokens for
batches of 1, 2, 4, ... requests (prompts of different lengths, left-padded to one length), each
batch timed: aggregate tokens/s against the latency each request waits. With the operator's
OpenAI-compatible server set (vLLM: continuous batching), the same requests go there at once."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..core.lazy import torch
from ..serving import client as serving
from .measure import Clock, describe_device, timer_for

# Requests of different lengths, so a batch needs padding (cycled for batches larger than this).
PROMPTS = (
    "The capital of France is",
    "Write one sentence about the sea.",
    "List three colours:",
    "Once upon a time, in a small village at the edge of a forest, there lived",
    "The best way to learn a language is",
    "Explain what a CPU does in one line.",
    "Q: What is 12 + 7? A:",
    "A haiku about autumn:",
)
CAP_S = 120.0  # no larger batch starts after this many seconds of timing


@dataclass
class BatchRow:
    batch: int
    seconds: float
    new_tokens: int  # per request
    tokens_per_s: float  # all requests together
    latency_s: float  # what one request waits (in-process: the whole batch)
    padding: float  # share of the prompt slots that are padding
    where: str  # "in-process" or "server"


def batch_sizes(max_batch: int) -> list[int]:
    sizes, b = [], 1
    while b <= max_batch:
        sizes.append(b)
        b *= 2
    return sizes if sizes[-1] == max_batch else sizes + [max_batch]


def prompts_for(batch: int) -> list[str]:
    return [PROMPTS[i % len(PROMPTS)] for i in range(batch)]


def left_pad(tokenizer, prompts: list[str], device) -> tuple:
    """(input_ids, attention_mask), each (batch, longest): pad ids on the left, mask 0 there, so
    every row's last position is its own last token (the shared tokenizer is not changed)."""
    rows = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask


def generate_batch(tm, prompts: list[str], new_tokens: int):
    """Greedy generation of exactly `new_tokens` tokens for every prompt in one padded batch;
    returns the (batch, new_tokens) new ids."""
    ids, mask = left_pad(tm.tokenizer, prompts, tm.device)
    pad = tm.tokenizer.pad_token_id if tm.tokenizer.pad_token_id is not None else tm.tokenizer.eos_token_id
    with torch.inference_mode():
        out = tm.model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=new_tokens,
                                min_new_tokens=new_tokens, pad_token_id=pad)
    return out[:, ids.shape[1]:]


def _in_process(tm, batch: int, new_tokens: int, timer) -> BatchRow:
    prompts = prompts_for(batch)
    _, mask = left_pad(tm.tokenizer, prompts, "cpu")
    _, s = timer.run(generate_batch, tm, prompts, new_tokens)
    return BatchRow(batch=batch, seconds=s, new_tokens=new_tokens, tokens_per_s=batch * new_tokens / s,
                    latency_s=s, padding=float(1 - mask.float().mean()), where="in-process")


def _served(route, tm, batch: int, new_tokens: int, timer) -> BatchRow:
    """`batch` requests sent at once; each request's own latency, the tokens the server reports (exactly
    `new_tokens` each, as in-process: no end of sequence before that)."""
    prompts = [tm.tokenizer(p, add_special_tokens=False).input_ids for p in prompts_for(batch)]

    def one(ids):
        answer, s = timer.run(serving.complete, route, ids, max_tokens=new_tokens, min_tokens=new_tokens)
        return s, int((answer.get("usage") or {}).get("completion_tokens") or new_tokens)

    with ThreadPoolExecutor(max_workers=batch) as pool:
        (results, s) = timer.run(lambda: list(pool.map(one, prompts)))
    made = sum(n for _, n in results)
    return BatchRow(batch=batch, seconds=s, new_tokens=new_tokens, tokens_per_s=made / s,
                    latency_s=sum(t for t, _ in results) / batch, padding=0.0, where="server")


def batching(tm, max_batch: int, new_tokens: int, clock: Clock | None = None, progress=None,
             cap_s: float = CAP_S) -> tuple[list[BatchRow], str, str]:
    """Rows for each batch size (in-process, then through the server when one is set); the device;
    a note when the time cap stopped the sweep early."""
    report = progress or (lambda f, m: None)
    timer, sizes = timer_for(tm, clock), batch_sizes(max_batch)
    route = serving.use_server(tm)
    generate_batch(tm, prompts_for(1), 2)  # warm-up
    rows, note, start = [], "", timer.now()
    for i, b in enumerate(sizes):
        if timer.now() - start > cap_s:
            note = f"Stopped before batch {b}: the sweep had run {cap_s:.0f} s."
            break
        report(i / len(sizes), f"batch {b}")
        rows.append(_in_process(tm, b, new_tokens, timer))
        if route is not None:
            rows.append(_served(route, tm, min(b, route.client.config.concurrency), new_tokens, timer))
    report(1.0, "done")
    where = describe_device(tm.device, tm.dtype) + (f"; server: {route.describe()}" if route else "")
    return rows, where, note
