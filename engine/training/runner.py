"""The one training runner: every lesson that trains (LoRA, SFT, reward model, DPO, DreamBooth and
textual inversion) goes through here for the three things a shared CPU needs.

    gate       one training at a time in the process; a second one is refused at once (TrainingBusy,
               with the message the tabs show), so no worker thread waits on a lock
    threads    torch's thread count fitted to the machine's load while a run holds the gate, and put
               back when it ends
    time cap   each run gets at most the operator's wall time (`cap_seconds(engine)`); a loop asks its
               `Deadline` between steps, a transformers Trainer gets `trainer_callback`

A lesson's training:

    try:
        run = runner.start(on_cpu=engine.device.kind == "cpu")
    except runner.TrainingBusy as busy:
        yield <a busy update with str(busy)>; return
    with run:
        ... load, build the model ...
        run.fit_threads()
        deadline = run.deadline()  # the clock starts here
        for step in ...:
            ended = deadline.stop_update(step, max_steps, losses, stop)  # Stop or the cap
            ...
            run.progress(step, max_steps)

The Deadline is the one clock of a run's steps: where a step-time estimate (time left, a run
fitted to the cap) will be measured.
"""
from __future__ import annotations

import math
import os
import queue
import threading
import time
from dataclasses import dataclass

from ..core.errors import UserInputError, short_repr
from ..core.lazy import torch


@dataclass
class TrainUpdate:
    """What a step loop yields after each step (and once when it ends or cannot start)."""

    step: int
    max_steps: int
    loss: float
    losses: list
    seconds: float
    message: str = ""
    done: bool = False
    stopped: bool = False  # ended before max_steps (Stop pressed or the time cap reached)
    capped: bool = False  # ended by the time cap
    busy: bool = False  # did not start: another training holds the machine


def now() -> float:
    """The training clock (a test may replace it)."""
    return time.perf_counter()


def duration(seconds: float) -> str:
    """'45 s' or '5 min', as the cap is written in messages."""
    return f"{seconds:g} s" if seconds < 60 else f"{seconds / 60:g} min"


def cap_seconds(engine) -> float:
    """Seconds one training may run: the operator's --train-minutes (AppConfig.train_minutes,
    range-checked when the config was read). The one place the cap is read."""
    return float(engine.config.train_minutes) * 60.0


def fit_threads(default: int, load: float | None = None, cores: int | None = None) -> int:
    """Torch threads for the next training steps: 1 when the CPU is oversubscribed (1-minute
    load above 1.5 x cores), else `default`. Measured here on 2 shared cores at load ~9: a
    SmolLM2 step took ~44 s with 2 OpenMP threads (they wait on each other) and ~10 s with 1;
    on a free machine 2 threads take ~1.5 s."""
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            return default
    return 1 if load > 1.5 * cores else default


class TrainingGate:
    """At most one training at a time in this process (a CPU has no room for two), each for at
    most `cap_seconds` of wall time. A training that finds the gate taken does not wait for it:
    it says who is ahead and returns, so no worker thread sits on a lock. Not per-user state:
    one gate guards one machine."""

    def __init__(self):
        self._lock = threading.Lock()
        self.progress = ""

    def try_enter(self) -> bool:
        return self._lock.acquire(blocking=False)

    def leave(self) -> None:
        self.progress = ""
        self._lock.release()

    @property
    def busy(self) -> bool:
        return self._lock.locked()


GATE = TrainingGate()


class TrainingBusy(UserInputError):
    """Another training holds the gate; the message says who is ahead and what the cap is."""


def busy_message(gate: TrainingGate, cap_seconds: float) -> str:
    ahead = f" ({gate.progress})" if gate.progress else ""
    return (f"Busy: another session is training on this machine{ahead}. One training runs at a time, each "
            f"for at most {duration(cap_seconds)}: press Train again when it ends.")


def cap_message(cap_seconds: float) -> str:
    return f"this server's time cap of {duration(cap_seconds)} per training was reached"


class Deadline:
    """The wall-time cap of one run's steps, timed from when it is made (None: no cap)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.start = now()

    def elapsed(self) -> float:
        return now() - self.start

    def left(self) -> float:
        """Seconds before the cap (inf without one)."""
        return math.inf if self.seconds is None else max(0.0, self.seconds - self.elapsed())

    def reached(self, elapsed: float | None = None) -> bool:
        """True once the cap is used up (`elapsed` when the caller has just read the clock)."""
        if self.seconds is None:
            return False
        return (self.elapsed() if elapsed is None else elapsed) >= self.seconds

    @property
    def message(self) -> str:
        return cap_message(self.seconds)

    def stop_update(self, step: int, max_steps: int, losses: list,
                    stop: threading.Event | None) -> TrainUpdate | None:
        """Before step `step` of a loop: the last update when Stop is set, or when the cap is used
        up after at least one step (the run keeps what it learned); None to go on."""
        last = losses[-1] if losses else math.nan
        if stop is not None and stop.is_set():
            return TrainUpdate(step - 1, max_steps, last, losses, self.elapsed(), "stopped", done=True, stopped=True)
        elapsed = self.elapsed()
        if step > 1 and self.reached(elapsed):
            return TrainUpdate(step - 1, max_steps, last, losses, elapsed, self.message, done=True, stopped=True,
                               capped=True)
        return None

    def step_update(self, step: int, max_steps: int, losses: list) -> TrainUpdate:
        """The update after step `step` (its loss is the last of `losses`)."""
        return TrainUpdate(step, max_steps, losses[-1], losses, self.elapsed(), done=step == max_steps)


class Run:
    """One training holding the gate, from `start` until it is closed (a `with` block): it puts
    torch's thread count back and frees the gate for the next one."""

    def __init__(self, gate: TrainingGate, cap_seconds: float, on_cpu: bool):
        self.gate, self.cap_seconds, self.on_cpu = gate, cap_seconds, on_cpu
        self.default_threads = torch.get_num_threads()

    def fit_threads(self) -> None:
        """On the CPU, torch's threads fitted to the load now (process-wide; put back at close)."""
        if self.on_cpu:
            torch.set_num_threads(fit_threads(self.default_threads))

    def deadline(self) -> Deadline:
        """The cap's clock, started now."""
        return Deadline(self.cap_seconds)

    def progress(self, step: int, max_steps: int) -> None:
        """What a refused training is told about this one."""
        self.gate.progress = f"step {step} of {max_steps}"

    def close(self) -> None:
        torch.set_num_threads(self.default_threads)
        self.gate.leave()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start(cap_seconds: float, *, on_cpu: bool = True, gate: TrainingGate | None = None) -> Run:
    """Take the one-training gate for a run of at most `cap_seconds` (`cap_seconds(engine)`).
    Raises TrainingBusy at once when another training holds it."""
    gate = gate or GATE
    if not gate.try_enter():
        raise TrainingBusy(busy_message(gate, cap_seconds))
    try:
        return Run(gate, cap_seconds, on_cpu)
    except BaseException:
        gate.leave()
        raise


def trainer_callback(events: queue.Queue, stop: threading.Event, deadline: Deadline):
    """A transformers TrainerCallback: each logged step goes to `events` as ("log", step, logs);
    Stop or the time cap end training after a step, put as ("stopped" or "capped", step, {})."""
    from transformers import TrainerCallback

    class Stream(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                events.put(("log", state.global_step, dict(logs)))

        def on_step_end(self, args, state, control, **kwargs):
            if stop.is_set():
                control.should_training_stop = True
                events.put(("stopped", state.global_step, {}))
            elif deadline.reached():
                control.should_training_stop = True
                events.put(("capped", state.global_step, {}))
            return control

    return Stream()


__all__ = ["TrainUpdate", "TrainingGate", "GATE", "TrainingBusy", "Run", "Deadline", "start", "cap_seconds",
           "fit_threads", "duration", "busy_message", "cap_message", "trainer_callback", "now"]
