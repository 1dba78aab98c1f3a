"""The Inference tab's entry points: each checks its knobs (InferenceSettings, through make), loads
its model(s) through the engine's cache and runs one part of the lesson, reporting progress."""
from __future__ import annotations

from ..core.errors import check_choice, check_text
from ..core.settings import make
from . import batching as _batching, kv, quant, sparsity as _sparsity, speculative, utilization as _utilization
from .measure import Clock, InferenceSettings

MODELS = ("smollm2-135m-instruct", "gemma3-270m-base")
DEFAULT_MODEL = MODELS[0]
MAX_TEXT_CHARS = 4000


def _load(engine, key: str, progress=None):
    check_choice("model", key, MODELS)
    return engine.load(key, progress=progress)


def _split(progress, share: float = 0.3):
    """Two progress callbacks: loading takes the first `share`, the work the rest."""
    report = progress or (lambda f, m: None)
    return (lambda f, m: report((f or 0) * share, m)), (lambda f, m: report(share + (f or 0) * (1 - share), m))


def kv_cache(engine, key: str, text: str, new_tokens: int, clock: Clock | None = None, progress=None) -> kv.StepTimes:
    s = make(InferenceSettings, new_tokens=new_tokens)
    text = check_text("prompt", text, max_chars=MAX_TEXT_CHARS)
    load, work = _split(progress)
    return kv.step_times(_load(engine, key, load), text, s.new_tokens, clock, work)


def batching(engine, key: str, max_batch: int, new_tokens: int, clock: Clock | None = None, progress=None):
    s = make(InferenceSettings, max_batch=max_batch, batch_tokens=new_tokens)
    load, work = _split(progress, 0.2)
    return _batching.batching(_load(engine, key, load), s.max_batch, s.batch_tokens, clock, work)


def utilization(engine, key: str, text: str, new_tokens: int, clock: Clock | None = None, progress=None):
    s = make(InferenceSettings, new_tokens=new_tokens)
    text = check_text("prompt", text, max_chars=MAX_TEXT_CHARS)
    load, work = _split(progress)
    return _utilization.utilization(_load(engine, key, load), text, s.new_tokens, clock, work)


def quantization(engine, key: str, text: str, new_tokens: int, progress=None):
    s = make(InferenceSettings, quant_tokens=new_tokens)
    check_choice("model", key, MODELS)
    return quant.compare(engine, key, check_text("text", text, max_chars=MAX_TEXT_CHARS), s.quant_tokens, progress)


def speculate(engine, target_key: str, text: str, new_tokens: int, draft_tokens: int, clock: Clock | None = None,
              progress=None) -> speculative.Speculation:
    s = make(InferenceSettings, spec_tokens=new_tokens, draft_tokens=draft_tokens)
    check_choice("target model", target_key, tuple(speculative.PAIRS))
    text = check_text("prompt", text, max_chars=MAX_TEXT_CHARS)
    report = progress or (lambda f, m: None)
    target = engine.load(target_key, progress=lambda f, m: report((f or 0) * 0.2, m))
    draft = engine.load(speculative.PAIRS[target_key], progress=lambda f, m: report(0.2 + (f or 0) * 0.1, m))
    return speculative.speculate(target, draft, text, s.spec_tokens, s.draft_tokens, clock,
                                 lambda f, m: report(0.3 + (f or 0) * 0.7, m))


def sparsity(engine, key: str, text: str, max_percent: int, clock: Clock | None = None, progress=None):
    s = make(InferenceSettings, max_sparsity=max_percent)
    text = check_text("text", text, max_chars=MAX_TEXT_CHARS)
    load, work = _split(progress, 0.2)
    return _sparsity.sparsity(_load(engine, key, load), text, s.max_sparsity, clock, work)
