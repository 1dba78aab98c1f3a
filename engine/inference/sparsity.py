"""Sparsity: magnitude pruning of the linear layers (torch.nn.utils.prune.l1_unstructured: the
smallest |w| of each layer set to zero) at several shares of zeros, with the perplexity of one text
and the time of one forward at each. The pruning is done on a private twin of the model whose
pruned weights are new tensors (the cached model's weights are never written), and each level is
undone before the next: the original Parameter goes back in place, bit for bit."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from ..core.lazy import torch
from ..evaluation import metrics
from .kv import prompt_ids
from .measure import SPARSITY_LEVELS, Clock, describe_device, timer_for
from .speculative import twin


@dataclass
class SparsityRow:
    target: int  # percent asked for
    zeros: float  # percent of zeros measured in the pruned weights
    perplexity: float
    forward_s: float  # one forward over the text's tokens (best of 2)


def prunable(model) -> list:
    """The nn.Linear layers inside the blocks (the output head, often the embedding's tensor, stays)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head]


def zero_share(layers) -> float:
    total = sum(m.weight.numel() for m in layers)
    return 100.0 * sum(int((m.weight == 0).sum()) for m in layers) / max(total, 1)


@contextmanager
def pruned(model, percent: float):
    """Inside: every prunable layer's weight is a new tensor with `percent`% zeros (weight_orig *
    mask, computed once: the pruning hook that would recompute it at every forward is taken off, so
    a timed forward is a plain dense one). After: each layer's original Parameter is back, untouched
    (prune.remove would write the pruned values into it, so it is not used)."""
    from torch.nn.utils import prune

    layers = prunable(model)
    for m in layers:
        prune.l1_unstructured(m, "weight", amount=percent / 100.0)
        for k, hook in list(m._forward_pre_hooks.items()):
            if isinstance(hook, prune.BasePruningMethod):
                del m._forward_pre_hooks[k]
    try:
        yield layers
    finally:
        for m in layers:
            orig = m._parameters.pop("weight_orig")
            del m._buffers["weight_mask"]
            delattr(m, "weight")
            m.weight = orig


def sparsity(tm, text: str, max_percent: int = 90, clock: Clock | None = None,
             progress=None) -> tuple[list[SparsityRow], str]:
    """Rows for 0% and each level up to max_percent; the device."""
    report = progress or (lambda f, m: None)
    ids = prompt_ids(tm, text)
    timer, model = timer_for(tm, clock), twin(tm.model)
    levels = [p for p in SPARSITY_LEVELS if p <= max_percent]
    window = min(1024, int(getattr(model.config, "max_position_embeddings", None) or 1024) // 16 * 16)
    rows = []
    with torch.inference_mode():
        model(input_ids=ids)  # warm-up
    for i, percent in enumerate(levels):
        report(i / len(levels), f"{percent}% zeros")
        with pruned(model, percent) if percent else _unpruned(model) as layers:
            with torch.inference_mode():
                seconds = min(timer.run(model, input_ids=ids)[1] for _ in range(2))
            rep = metrics.perplexity(model, tm.tokenizer, text, window, window // 2, tm.key)
            rows.append(SparsityRow(percent, zero_share(layers), rep.perplexity, seconds))
    report(1.0, "done")
    return rows, describe_device(tm.device, tm.dtype)


@contextmanager
def _unpruned(model):
    yield prunable(model)
