"""Prefill vs decode, and what the KV cache buys: one prompt generated token by token (greedy),
once with the cache (each step reads one new token and the cached keys/values) and once without
it (each step runs the whole sequence again), every forward timed. The cache's size comes from the
model's shapes (layers x 2 x kv-heads x head-dim x tokens x bytes) and is checked against the real
cache object's tensors; grouped-query attention is compared with full multi-head attention."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import UserInputError, check_text
from ..core.lazy import from_transformers, torch
from ..decoding import kvcache
from .measure import Clock, describe_device, timer_for

MAX_PROMPT_TOKENS = 256


@dataclass
class StepTimes:
    prompt_tokens: int
    prefill_s: float  # the cached run's first forward: the whole prompt at once
    cached_s: list[float]  # one decode step each (one new token, the cache read)
    uncached_s: list[float]  # one full forward each over the sequence so far
    cached_ids: list[int]
    uncached_ids: list[int]
    kv: kvcache.KVSize  # the cache after the cached run, counted from its tensors
    heads: int  # query heads: a multi-head cache would keep this many K/V heads
    device: str
    text: str = ""
    contexts: list[int] = field(default_factory=list)  # sequence length each step read

    @property
    def same_tokens(self) -> bool:
        return self.cached_ids == self.uncached_ids

    @property
    def mha_bytes(self) -> int:
        """The same cache if every query head kept its own K and V (multi-head attention)."""
        return self.kv.bytes // self.kv.kv_heads * self.heads


def prompt_ids(tm, text: str):
    text = check_text("prompt", text, max_chars=4000)
    ids = tm.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    if ids.shape[1] > MAX_PROMPT_TOKENS:
        raise UserInputError(f"prompt is {ids.shape[1]:,} tokens long: the limit is {MAX_PROMPT_TOKENS} tokens.")
    return ids.to(tm.device)  # (1, prompt_len)


def new_cache(model):
    DynamicCache = from_transformers("DynamicCache")

    return DynamicCache(config=model.config)


def _cached_run(model, ids, steps: int, timer) -> tuple[float, list[float], list[int], object]:
    cache = new_cache(model)  # filled in place by each forward
    out, prefill = timer.run(model, input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
    nxt = out.logits[0, -1].argmax()
    made, times = [int(nxt)], []
    for _ in range(steps - 1):
        out, s = timer.run(model, input_ids=nxt.view(1, 1), cache=cache, use_cache=True, logits_to_keep=1)
        nxt = out.logits[0, -1].argmax()
        made.append(int(nxt))
        times.append(s)
    return prefill, times, made, cache


def _uncached_run(model, ids, steps: int, timer) -> tuple[list[float], list[int]]:
    seq, made, times = ids, [], []
    for _ in range(steps):
        out, s = timer.run(model, input_ids=seq, use_cache=False, logits_to_keep=1)
        nxt = out.logits[0, -1].argmax()  # (vocab,) -> id
        made.append(int(nxt))
        times.append(s)
        seq = torch.cat([seq, nxt.view(1, 1)], dim=1)  # (1, len + 1)
    return times, made


def step_times(tm, text: str, new_tokens: int, clock: Clock | None = None, progress=None) -> StepTimes:
    """Greedy generation of `new_tokens` tokens after `text`, with and without the cache, each
    forward timed (the first decode step of each run is a warm-up and is timed like the rest)."""
    report = progress or (lambda f, m: None)
    ids = prompt_ids(tm, text)
    timer, model = timer_for(tm, clock), tm.model
    with torch.inference_mode():
        model(input_ids=ids[:, :2], use_cache=False, logits_to_keep=1)  # warm-up: first-call costs out of the numbers
        report(0.05, "with the KV cache")
        prefill, cached, cached_ids, cache = _cached_run(model, ids, new_tokens, timer)
        report(0.4, "without the cache: the whole sequence every step")
        uncached, uncached_ids = _uncached_run(model, ids, new_tokens, timer)
    report(1.0, "done")
    heads = int(model.config.num_attention_heads)
    p = int(ids.shape[1])
    return StepTimes(prompt_tokens=p, prefill_s=prefill, cached_s=cached, uncached_s=uncached,
                     cached_ids=cached_ids, uncached_ids=uncached_ids, kv=kvcache.kv_size(tm, cache), heads=heads,
                     device=describe_device(tm.device, tm.dtype), text=tm.tokenizer.decode(cached_ids),
                     contexts=[p + i for i in range(new_tokens)])


def cache_bytes_table(st: StepTimes, contexts=(1024, 4096, 8192, 32768), batch: int = 1) -> list[dict]:
    """The formula's bytes for longer contexts, grouped-query (the model's) and multi-head."""
    rows = []
    for n in contexts:
        gqa = st.kv.per_token * n * batch
        rows.append(dict(tokens=n, gqa_mib=gqa / 2**20, mha_mib=gqa / st.kv.kv_heads * st.heads / 2**20))
    return rows
