"""Timing on the device a model runs on, with a clock that a test can replace.

Every number the Inference lesson shows comes from a Timer: it reads `clock` (time.perf_counter
unless given) around the work, and on a GPU waits for the queued kernels (torch.cuda.synchronize)
before each reading, so a GPU time is the work's and not the launch's. Also here: the device's
measured matmul peak and copy bandwidth, and the knobs of the lesson (InferenceSettings).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core.lazy import torch
from ..core.settings import knob

Clock = Callable[[], float]
SPARSITY_LEVELS = (0, 10, 30, 50, 70, 90)  # percent of zeros tried, up to the knob's maximum


@dataclass
class InferenceSettings:
    new_tokens: int = knob(32, 4, 96, "Tokens generated one at a time, with and without the KV cache",
                           label="tokens to generate", step=1)
    max_batch: int = knob(16, 1, 32, "Largest batch timed (1, 2, 4, ... up to this)",
                          label="largest batch", step=1)
    batch_tokens: int = knob(16, 4, 64, "Tokens each request in a batch generates",
                             label="tokens per request", step=1)
    quant_tokens: int = knob(16, 4, 64, "Tokens generated to time each number format",
                             label="tokens to time", step=1)
    draft_tokens: int = knob(4, 1, 10, "k: tokens the draft model proposes per step",
                             label="k: draft tokens a round", step=1)
    spec_tokens: int = knob(32, 8, 96, "Tokens generated with and without the draft",
                            label="tokens to generate", step=1)
    max_sparsity: int = knob(90, 10, 90, "Highest share of zeros tried, in percent",
                             label="most zeros, %", step=10)


@dataclass
class Timer:
    """Times work on `device`: seconds by `clock`, after a synchronize on a GPU."""

    device: Any = "cpu"
    clock: Clock = field(default=time.perf_counter)

    def sync(self) -> None:
        if torch.device(self.device).type == "cuda":
            torch.cuda.synchronize()

    def now(self) -> float:
        self.sync()
        return float(self.clock())

    def run(self, fn: Callable, *args, **kwargs) -> tuple[Any, float]:
        """(fn's result, seconds it took)."""
        start = self.now()
        out = fn(*args, **kwargs)
        return out, self.now() - start


def timer_for(tm, clock: Clock | None = None) -> Timer:
    return Timer(tm.device, clock or time.perf_counter)


def describe_device(device, dtype) -> str:
    """'CPU (AVX512, 2 threads), float32' or 'NVIDIA H100 80GB HBM3, float16': where a number was measured."""
    device = torch.device(device)
    name = str(dtype).replace("torch.", "")
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, {name}"
    if device.type == "mps":
        return f"Apple GPU (MPS), {name}"
    return f"CPU ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads), {name}"


def bf16_supported(device) -> bool:
    """bfloat16 math in hardware here: a GPU that says so, or a CPU with AVX512-BF16/AMX (oneDNN)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass
class Peak:
    flops: float  # FLOP/s of the best run
    size: int  # n of the n x n matmul
    seconds: float  # best time of one matmul


@dataclass
class Bandwidth:
    bytes_per_s: float  # bytes read + written per second by a tensor copy
    megabytes: int
    seconds: float


def matmul_peak(device, dtype, clock: Clock | None = None, size: int | None = None, repeats: int = 3) -> Peak:
    """The machine's measured compute peak: the best of `repeats` n x n @ n x n matmuls (2 n^3 FLOPs)
    in `dtype` after one warm-up. n: 2048 on the CPU, 8192 on a GPU."""
    device = torch.device(device)
    n = int(size or (8192 if device.type == "cuda" else 2048))
    timer = Timer(device, clock or time.perf_counter)
    with torch.inference_mode():
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        torch.mm(a, b)  # warm-up
        best = min(timer.run(torch.mm, a, b)[1] for _ in range(repeats))
    best = max(best, 1e-12)
    return Peak(flops=2.0 * n ** 3 / best, size=n, seconds=best)


def copy_bandwidth(device, clock: Clock | None = None, megabytes: int | None = None, repeats: int = 3) -> Bandwidth:
    """The machine's measured memory bandwidth: the best of `repeats` copies of a buffer
    (counted as its bytes read + its bytes written). 256 MB on the CPU, 1 GB on a GPU."""
    device = torch.device(device)
    mb = int(megabytes or (1024 if device.type == "cuda" else 256))
    timer = Timer(device, clock or time.perf_counter)
    src = torch.empty(mb * 2**20, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up: the pages are touched once
    best = max(min(timer.run(dst.copy_, src)[1] for _ in range(repeats)), 1e-12)
    return Bandwidth(bytes_per_s=2.0 * src.numel() / best, megabytes=mb, seconds=best)
