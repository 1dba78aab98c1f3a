"""Quantization for speed and memory: fp32, bf16 (where the hardware does bfloat16 math) and int8
dynamic, side by side: weight bytes, tokens/s and perplexity of the same text. The variants, their
timing and their perplexity are Evaluation's own (engine.evaluation.quantization); this module
picks the variants this machine supports and says which it left out. Runs on the CPU."""
from __future__ import annotations

from ..evaluation import quantization
from .measure import bf16_supported, describe_device

WANTED = ("fp32", "bf16", "int8-dynamic")


def variants_here() -> tuple[list[str], str]:
    """The variants to run, and a note on any left out."""
    if bf16_supported("cpu"):
        return list(WANTED), ""
    return [v for v in WANTED if v != "bf16"], ("bf16 left out: this CPU has no bfloat16 instructions "
                                                 "(AVX512-BF16 or AMX), so bf16 would only be emulated.")


def compare(engine, key: str, text: str, new_tokens: int, progress=None) -> tuple[list[dict], str, str]:
    """(Evaluation's rows, the device, a note)."""
    from ..core.lazy import torch

    wanted, note = variants_here()
    rows = quantization.quantization_compare(engine, key, text, variants=wanted, new_tokens=new_tokens,
                                             progress=progress)
    return rows, describe_device("cpu", torch.float32).rsplit(",", 1)[0], note
