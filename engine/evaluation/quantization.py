"""The same causal LM in fp32, bf16 and two kinds of int8, side by side on the CPU.

Each variant is a copy built on demand from a float32 CPU model (never the shared cached model
itself, which stays as it is):

    bf16          every weight cast to bfloat16 (and the math runs in bf16)
    int8-weights  weight-only: the nn.Linear weights in the blocks stored as int8 with one scale per
                  output row; activations stay float32 (each matmul uses the int8 weights times
                  their scales, so only weight rounding costs accuracy)
    int8-dynamic  weights + activations: PyTorch's dynamic quantization of the same layers (int8
                  weights, one scale per output row, and each layer's input rounded to 8 bits at run
                  time with one scale for the whole tensor, so a few large activations make every
                  other one coarse)

Copies go into engine.cache under their own variant keys, so the cache's byte budget and LRU apply
to them, and free_variants() drops them.
"""
from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass

from ..core.device import pick_device
from ..core.errors import UserInputError, check_range, check_text
from ..core.lazy import no_grad, torch
from ..core.models import weights_origin
from ..core.settings import knob, knob_info
from .metrics import perplexity

TIMING_PROMPT_TOKENS = 32  # the prompt for timing: the text's first tokens
VARIANTS = ("fp32", "bf16", "int8-weights", "int8-dynamic")
# What each variant quantizes (the table's "what it quantizes" column).
DESCRIPTIONS = {
    "fp32": "nothing: 4 bytes per weight, float32 math (the reference)",
    "bf16": "weights and math in bfloat16: 2 bytes per weight, fewer mantissa bits",
    "int8-weights": "weights only: 1 byte per block weight + a scale per row; activations stay float32",
    "int8-dynamic": "weights + activations: int8 weights, and each layer's input rounded to int8 at run time",
}


@dataclass
class QuantizationSettings:
    new_tokens: int = knob(16, 1, 64, "Tokens generated (greedy) to time each variant", step=1)


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of weights held by a model, counting packed int8 Linear weights and shared
    (tied) tensors once."""
    seen, total, keep = set(), 0, []  # keep: unpacked int8 weights are temporaries; holding them
    # stops a later one from reusing a freed address and being skipped as "already counted"

    def add(t):
        nonlocal total
        if t is None or t.data_ptr() in seen:
            return
        keep.append(t)
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()

    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            weight, bias = packed._weight_bias()
            add(weight)
            add(bias)
        for t in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
            add(t)
    return total


def _block_linears(model: torch.nn.Module) -> list[str]:
    """Names of the nn.Linear layers to quantize: all but the output head, which shares its weight
    with the token embedding (tied), so keeping it float costs no memory, and which is the layer
    most hurt by int8."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head]


def quantize_int8_weights(model: torch.nn.Module) -> torch.nn.Module:
    """Weight-only int8 (in place, returns the model): every block nn.Linear becomes a
    WeightOnlyInt8Linear. Activations are not quantized."""
    from .int8 import WeightOnlyInt8Linear  # a torch.nn.Module subclass: defined only when needed

    for name in _block_linears(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, WeightOnlyInt8Linear(getattr(parent, child)))
    return model


def quantize_int8_dynamic(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization (returns a new model): every nn.Linear inside the transformer
    blocks gets int8 weights with one scale per output channel, and its input activations are
    quantized on the fly. The output head stays float: it shares its weight with the token
    embedding (tied), so keeping it costs no memory, and it is the layer most hurt by int8."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name in _block_linears(model)}
    with warnings.catch_warnings():  # torch.ao.quantization announces its own deprecation
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=False)


def build_variant(base: torch.nn.Module, variant: str) -> torch.nn.Module:
    """A new model: a deep copy of the float32 CPU `base`, converted. base is not touched."""
    if variant not in VARIANTS:
        raise UserInputError(f"variant = {variant!r} is not valid: choose from {', '.join(VARIANTS)}.")
    if variant.startswith("int8") and not _block_linears(base):  # GPT-2's blocks are Conv1D, not nn.Linear
        kind = getattr(getattr(base, "config", None), "model_type", type(base).__name__)
        raise UserInputError(f"variant = {variant!r} is not available for model type {kind!r}: its blocks have no "
                             "nn.Linear layer to quantize (GPT-2 uses Conv1D). Choose fp32 or bf16.")
    # nn.Module.to, not the transformers override: the GGUF-derived float copy still carries a
    # quantization_config in its config, and transformers then refuses .float()/.to(dtype).
    clone = torch.nn.Module.to(copy.deepcopy(base), "cpu", torch.float32).eval()
    if variant == "bf16":
        return torch.nn.Module.to(clone, torch.bfloat16)
    if variant == "int8-weights":
        return quantize_int8_weights(clone).eval()
    if variant == "int8-dynamic":
        return quantize_int8_dynamic(clone).eval()
    return clone


def _cache_key(key: str, variant: str) -> tuple:
    return (key, "cpu", variant, "eval-quantization")


def float_cpu_model(engine, key: str, progress=None):
    """The float32 CPU TextModel for `key`: the shared cached one when the engine runs on the
    CPU in fp32, else a separate CPU load cached under a CPU key."""
    if engine.device.kind == "cpu" and engine.device.dtype == torch.float32:
        return engine.load(key, progress=progress)
    import importlib

    spec = engine.registry.get(key)
    cpu = pick_device("cpu")

    def loader():
        module, func = spec.loader.split(":")
        return getattr(importlib.import_module(module), func)(engine.registry.resolve(key), cpu, "default",
                                                              progress or (lambda f, m: None))

    return engine.cache.get_or_load((spec.key, "cpu", "float32", "default"), loader)


def variant_model(engine, key: str, variant: str, progress=None) -> torch.nn.Module:
    """The model of one variant, built on first use and cached; fp32 is the float CPU model."""
    if variant not in VARIANTS:
        raise UserInputError(f"variant = {variant!r} is not valid: choose from {', '.join(VARIANTS)}.")
    bundle = float_cpu_model(engine, key, progress)
    if variant == "fp32":
        return bundle.model
    cache_key = _cache_key(key, variant)
    if progress and cache_key not in engine.cache:
        progress(None, f"Building the {variant} copy (first use, a few seconds)...")
    return engine.cache.get_or_load(cache_key, lambda: build_variant(bundle.model, variant), size_fn=model_bytes)


def free_variants(engine, key: str) -> int:
    """Drop the bf16/int8 copies from the cache; returns how many were freed."""
    return sum(engine.cache.evict(_cache_key(key, v)) for v in VARIANTS if v != "fp32")


@no_grad
def tokens_per_second(model, tokenizer, prompt: str, new_tokens: int) -> tuple[float, str]:
    """Greedy generation of exactly `new_tokens` tokens (KV cache on) after the first
    TIMING_PROMPT_TOKENS tokens of `prompt`; returns (tokens/s, text)."""
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids[:, :TIMING_PROMPT_TOKENS]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs = dict(do_sample=False, pad_token_id=pad, attention_mask=torch.ones_like(ids))
    model.generate(ids, max_new_tokens=2, min_new_tokens=2, **kwargs)  # warm-up
    start = time.perf_counter()
    out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
    seconds = time.perf_counter() - start
    return new_tokens / seconds, tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def quantization_compare(engine, key: str, text: str, variants=VARIANTS, new_tokens: int = 16,
                         window: int = 512, stride: int = 256, progress=None) -> list[dict]:
    """One row per variant: weight memory, generation speed and perplexity of `text`."""
    text = check_text("text", text, max_chars=4000)
    limits = knob_info(QuantizationSettings, "new_tokens")
    new_tokens = check_range("new tokens", new_tokens, limits.minimum, limits.maximum, integer=True)
    variants = [variants] if isinstance(variants, str) else list(variants or [])
    if not variants:
        raise UserInputError(f"variants is empty: choose one or more of {', '.join(VARIANTS)}.")
    for v in variants:
        if v not in VARIANTS:
            raise UserInputError(f"variant = {v!r} is not valid: choose from {', '.join(VARIANTS)}.")
    ordered = [v for v in VARIANTS if v in variants]
    report = progress or (lambda f, m: None)
    reference = float_cpu_model(engine, key, progress)
    tokenizer, origin = reference.tokenizer, weights_origin(reference.source)
    rows = []
    for n, variant in enumerate(ordered):
        step = lambda f, m, n=n: report((n + (f or 0) * 0.99) / len(ordered), f"{variant}: {m}")  # noqa: E731
        model = variant_model(engine, key, variant, step)
        step(0.3, "timing generation")
        speed, sample = tokens_per_second(model, tokenizer, text, new_tokens)
        step(0.6, "scoring the text")
        rep = perplexity(model, tokenizer, text, window, stride, key)
        about = DESCRIPTIONS[variant] + (f"; these weights are a {origin}, so the GGUF's rounding is already in "
                                          "them" if origin and variant == "fp32" else "")
        rows.append(dict(variant=variant, description=about, size_mb=model_bytes(model) / 2**20,
                         tokens_per_s=speed, perplexity=rep.perplexity, bits_per_byte=rep.bits_per_byte,
                         tokens_scored=rep.n_tokens, sample=sample))
    report(1.0, "done")
    base = next((r for r in rows if r["variant"] == "fp32"), None)
    for r in rows:
        r["size_vs_fp32"] = r["size_mb"] / base["size_mb"] if base else None
        r["perplexity_change_pct"] = 100 * (r["perplexity"] / base["perplexity"] - 1) if base else None
    return rows
