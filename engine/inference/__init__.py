"""Inference optimization lesson: why serving is fast, each part measured live on this machine.

    measure.py      Timer (an injectable clock, CUDA-synchronized), the measured matmul peak and copy
                    bandwidth, the device's description, InferenceSettings
    kv.py           prefill vs decode, each step timed with and without the KV cache; the cache's bytes
    batching.py     tokens/s and latency per request against batch size (in-process; a server when set)
    utilization.py  achieved FLOP/s against the measured peak; the memory-bandwidth bound of decode
    quant.py        fp32 / bf16 / int8 dynamic: bytes, tokens/s, perplexity (Evaluation's code)
    speculative.py  assisted generation: acceptance, tokens per target forward, the expected-tokens formula
    sparsity.py     magnitude pruning: perplexity and forward time against the share of zeros
    lesson.py       the tab's entry points: checked knobs, the models loaded through the engine
    plots.py        data -> plotly figures and markdown
"""
from . import batching, kv, measure, plots, quant, sparsity, speculative, utilization  # noqa: F401
from .lesson import (DEFAULT_MODEL, MODELS, batching as run_batching, kv_cache, quantization,  # noqa: F401
                     sparsity as run_sparsity, speculate, utilization as run_utilization)
from .measure import SPARSITY_LEVELS, InferenceSettings, Timer  # noqa: F401
from .speculative import PAIRS, expected_tokens, simulate  # noqa: F401
