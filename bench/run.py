"""One entry point for every benchmark: `python -m bench [name ...]`.

Each bench/bench_<name>.py defines `run(ctx) -> list[Row]`. A Row compares the app's way of
doing some work with the raw library doing the same work in the same run, and prints the
ratio (ours / raw; lower is better, 1.0 = no overhead) next to the target."""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass
class Row:
    name: str
    ours: float  # seconds (or bytes, see unit)
    raw: float
    target: float | None = None  # ratio we aim to stay under
    unit: str = "s"
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.raw if self.raw else float("inf")


class Context:
    """Shared by the benchmarks of one run: one offline engine, loaded lazily."""

    def __init__(self):
        self._engine = None

    @property
    def engine(self):
        if self._engine is None:
            from engine import Engine

            self._engine = Engine(device=os.environ.get("BENCH_DEVICE", "auto"), offline=True)
        return self._engine


def best_of(fn, repeat: int = 3) -> float:
    """The fastest of `repeat` timed calls (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def interleaved(ours, raw, repeat: int = 3) -> tuple[float, float]:
    """Best-of timings of two calls, alternated so that load from other processes on a shared
    machine hits both sides alike. Returns (ours seconds, raw seconds)."""
    best_ours = best_raw = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        ours()
        best_ours = min(best_ours, time.perf_counter() - t)
        t = time.perf_counter()
        raw()
        best_raw = min(best_raw, time.perf_counter() - t)
    return best_ours, best_raw


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "B":
        return f"{value / 2**20:.1f} MB"
    return f"{value:.3g} {unit}"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    names = [m.name.removeprefix("bench_") for m in pkgutil.iter_modules([str(Path(__file__).parent)])
             if m.name.startswith("bench_")]
    chosen = [n for n in names if not argv or n in argv]
    ctx = Context()
    rows: list[Row] = []
    for name in chosen:
        mod = importlib.import_module(f"bench.bench_{name}")
        print(f"# {name} ...", flush=True)
        rows.extend(mod.run(ctx))
    print()
    print(f"{'benchmark':58} {'ours':>12} {'raw':>12} {'ratio':>7} {'target':>7}  note")
    for r in rows:
        target = f"≤{r.target:g}" if r.target else "-"
        flag = "" if not r.target or r.ratio <= r.target else "  (over target)"
        print(f"{r.name:58} {fmt(r.ours, r.unit):>12} {fmt(r.raw, r.unit):>12} {r.ratio:7.3f} {target:>7}  "
              f"{r.note}{flag}")
