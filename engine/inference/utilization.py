"""Utilization: how much of the machine's compute one forward uses. FLOPs per token come from the
anatomy code (engine.inside.flops_per_token: 2 x matmul weights + attention), times the measured
tokens/s; the peak is a timed large matmul in the same dtype; for decode, the memory-bandwidth
bound is the weight bytes read per token over the measured copy bandwidth."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.lazy import torch
from ..inside import flops_per_token
from .kv import new_cache, prompt_ids
from .measure import Bandwidth, Clock, Peak, copy_bandwidth, describe_device, matmul_peak, timer_for


@dataclass
class Phase:
    name: str  # "prefill" or "decode"
    tokens: int
    seconds: float
    flops_per_token: float
    tokens_per_s: float

    @property
    def achieved(self) -> float:  # FLOP/s
        return self.flops_per_token * self.tokens_per_s


@dataclass
class Utilization:
    prefill: Phase
    decode: Phase
    peak: Peak
    bandwidth: Bandwidth
    weight_bytes: int  # matmul weights read once per decode step
    n_matmul: int
    device: str

    def share(self, phase: Phase) -> float:
        return phase.achieved / self.peak.flops

    @property
    def decode_bound_tokens_per_s(self) -> float:
        """The most decode steps per second memory allows: every weight read once per token."""
        return self.bandwidth.bytes_per_s / 2 / self.weight_bytes  # copy bandwidth counts read + write


def matmul_weights(model) -> tuple[int, int]:
    """(weights in matrix multiplies per token, their bytes): every nn.Linear weight, the output
    head included (even when it shares the embedding's tensor), as the anatomy's N_matmul."""
    n = b = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            n += m.weight.numel()
            b += m.weight.numel() * m.weight.element_size()
    return n, b


def _d_attn(config) -> int:
    heads = int(config.num_attention_heads)
    return heads * int(getattr(config, "head_dim", None) or config.hidden_size // heads)


def utilization(tm, text: str, decode_tokens: int = 16, clock: Clock | None = None, progress=None,
                peak_size: int | None = None, copy_mb: int | None = None) -> Utilization:
    """Prefill of `text` (one forward) and `decode_tokens` cached steps after it, timed; the peak
    and the bandwidth at their default sizes unless peak_size / copy_mb are given."""
    report = progress or (lambda f, m: None)
    ids = prompt_ids(tm, text)
    model, timer, p = tm.model, timer_for(tm, clock), int(ids.shape[1])
    n_matmul, weight_bytes = matmul_weights(model)
    layers, d_attn = int(model.config.num_hidden_layers), _d_attn(model.config)
    with torch.inference_mode():
        model(input_ids=ids, use_cache=False)  # warm-up
        report(0.1, "prefill")
        cache = new_cache(model)  # filled in place by each forward
        out, prefill_s = timer.run(model, input_ids=ids, cache=cache, use_cache=True)  # logits for every token
        nxt = out.logits[:, -1:].argmax(-1)  # (1, 1)
        report(0.3, "decode")
        start = timer.now()
        for _ in range(decode_tokens):
            out = model(input_ids=nxt, cache=cache, use_cache=True)
            nxt = out.logits[:, -1:].argmax(-1)  # (1, 1)
        decode_s = timer.now() - start
    report(0.6, "the machine's peak: a large matmul")
    peak = matmul_peak(tm.device, tm.dtype, clock, peak_size)
    report(0.85, "the machine's memory bandwidth: a large copy")
    bandwidth = copy_bandwidth(tm.device, clock, copy_mb)
    report(1.0, "done")
    prefill = Phase("prefill", p, prefill_s, flops_per_token(n_matmul, layers, d_attn, (p + 1) / 2), p / prefill_s)
    decode = Phase("decode", decode_tokens, decode_s,
                   flops_per_token(n_matmul, layers, d_attn, p + decode_tokens / 2), decode_tokens / decode_s)
    return Utilization(prefill=prefill, decode=decode, peak=peak, bandwidth=bandwidth, weight_bytes=weight_bytes,
                       n_matmul=n_matmul, device=describe_device(tm.device, tm.dtype))
