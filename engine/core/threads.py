"""Torch's CPU threads for each call, fitted to what else runs (issue 39).

On a CPU, torch runs each operation on a team of OpenMP threads (by default one per core).
When two calls run at once on a 2-core machine, or other processes keep the cores busy, the
teams oversubscribe the cores and their threads wait on each other. Measured here on 2 cores
at load ~10: a SmolLM2 next-token call took 3.7-4.6 s of wall time and 1.3 s of CPU with 2
threads, and 0.5-0.8 s of wall time and 0.12 s of CPU with 1 thread.

torch's thread count is set per calling thread (each Gradio worker thread keeps its own), so
a call can take 1 thread for itself without changing the others. `ComputeSlots.held()` counts
the calls in flight: a call that starts while another runs, or while the machine's load is
above 1.5 x its cores, runs on 1 thread; a call alone on a quiet machine keeps the default.

`SLOTS` is the process's one counter. It holds no user's data: like the training gate, it
describes the machine, which every session shares.

Priorities: a training or a heavy call can run at a lower CPU priority (a higher nice value, set
per thread on Linux), so a student's cheap click is served first when the cores are full.
`niced(n)` lowers the calling thread's priority for a block and puts it back; where the process
may not raise its priority again (no CAP_SYS_NICE, e.g. in a container), it does nothing, so no
worker thread is left slow.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import threading
from typing import Callable, Iterator

from .lazy import torch


def machine_load() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


class ComputeSlots:
    """The model calls in flight in this process, and the torch threads each should use."""

    def __init__(self, cores: int | None = None, load: Callable[[], float | None] = machine_load):
        self.cores = cores or os.cpu_count() or 1
        self._load = load
        self._lock = threading.Lock()
        self.active = 0

    def oversubscribed(self) -> bool:
        """True when the machine's load is above 1.5 x its cores."""
        load = self._load()
        return load is not None and load > 1.5 * self.cores

    def threads_for(self, default: int) -> int:
        """1 when another call runs beside this one or the machine is oversubscribed, else default."""
        return 1 if self.active > 1 or self.oversubscribed() else default

    @contextlib.contextmanager
    def held(self) -> Iterator[int]:
        """Count one call in flight for the block; on the CPU, set this thread's torch threads
        (threads_for) and put them back after. Yields the thread count used."""
        import torch

        with self._lock:
            self.active += 1
        before = torch.get_num_threads()
        threads = self.threads_for(before)
        if threads != before:
            torch.set_num_threads(threads)
        try:
            yield threads
        finally:
            if threads != before:
                torch.set_num_threads(before)
            with self._lock:
                self.active -= 1


SLOTS = ComputeSlots()

# nice increments per kind of work (0 = the default priority): trainings run after everything else,
# heavy model calls (an index build, an evaluation) after the cheap clicks
TRAINING_NICE = 10
HEAVY_NICE = 5
_RENICE = {}


def can_renice() -> bool:
    """Whether this process can lower a thread's priority and raise it back (probed once, on a
    throwaway thread): Linux with a per-thread nice, and the right to lower the nice value again."""
    if "ok" not in _RENICE:
        result = []

        def probe():
            tid = threading.get_native_id()
            try:
                before = os.getpriority(os.PRIO_PROCESS, tid)
                os.setpriority(os.PRIO_PROCESS, tid, min(19, before + 1))
                os.setpriority(os.PRIO_PROCESS, tid, before)
                result.append(True)
            except (OSError, AttributeError):  # PermissionError included: cannot go back
                result.append(False)

        worker = threading.Thread(target=probe, name="renice-probe", daemon=True)
        worker.start()
        worker.join(5)
        _RENICE["ok"] = bool(result and result[0])
    return _RENICE["ok"]


@contextlib.contextmanager
def niced(increment: int) -> Iterator[None]:
    """The calling thread's nice value raised by `increment` for the block (lower priority), then
    put back; nothing where can_renice() is False or increment <= 0."""
    if increment <= 0 or not can_renice():
        yield
        return
    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    os.setpriority(os.PRIO_PROCESS, tid, min(19, before + increment))
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, tid, before)


def each_step_in(context: Callable[[], contextlib.AbstractContextManager], gen) -> Iterator:
    """A generator's items, each computed inside a fresh context() on the thread that asks for it
    (a server may resume a generator on another worker thread), the generator closed at the end."""
    try:
        while True:
            with context():
                try:
                    item = next(gen)
                except StopIteration:
                    return
            yield item
    finally:
        gen.close()


def at_priority(fn: Callable, increment: int) -> Callable:
    """fn run at a lower priority (niced(increment)); a generator function stays one, each step niced."""
    if increment <= 0:
        return fn
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def steps(*args, **kwargs):
            yield from each_step_in(lambda: niced(increment), fn(*args, **kwargs))
        return steps

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with niced(increment):
            return fn(*args, **kwargs)
    return call
