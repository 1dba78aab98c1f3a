"""The one training runner: every lesson that trains (LoRA, SFT, reward model, DPO, DreamBooth and
textual inversion) goes through here for the four things a shared CPU needs.

    gate       one training at a time in the process; a second one is refused at once (TrainingBusy,
               with the message the tabs show), so no worker thread waits on a lock
    threads    torch's thread count fitted to the machine's load while a run holds the gate, and put
               back when it ends
    time cap   each run gets at most the operator's wall time (`cap_seconds(engine)`); a loop asks its
               `Deadline` between steps, a transformers Trainer gets `trainer_callback`
    fit        a run's first steps are timed; then it is fitted to the cap, or to the student's
               smaller time budget: fewer steps (`Deadline.steps`), with an estimate of the time
               left that never exceeds the budget; a run where too few steps fit is refused

A lesson's training:

    try:
        run = runner.start(runner.cap_seconds(engine), on_cpu=engine.device.kind == "cpu")
    except runner.TrainingBusy as busy:
        yield <a busy update with str(busy)>; return
    with run:
        ... load, build the model ...
        run.fit_threads()
        deadline = run.deadline(max_steps, settings.time_budget)  # the clock starts here
        for step in range(1, max_steps + 1):
            ended = deadline.stop_update(step, losses, stop)  # Stop or the cap
            ... one optimizer step ...
            update = deadline.step_update(step, losses)  # timed, fitted; done at the fitted end
            run.progress(step, update.max_steps)
            if update.done: final = update; break
            yield update
    yield final  # after the gate is free: held-out scoring after a run does not hold it

A transformers Trainer gets `trainer_callback(events, stop, deadline)` instead of the loop's calls.
"""
from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
import time
from dataclasses import dataclass

from ..core.config import MAX_TRAIN_MINUTES
from ..core.errors import UserInputError, short_repr
from ..core.lazy import from_transformers, torch
from ..core.settings import knob
from ..core.threads import SLOTS



@dataclass(frozen=True)
class Pace:
    """Where a run stands against its time budget, as the Deadline measured it after a step."""

    requested: int  # the steps the student asked for
    steps: int  # the steps the run will make: fitted to the budget once the first steps are timed
    sec_per_step: float  # measured (nan before a step is timed)
    left: float  # estimated seconds to the last step, never more than the time left under the budget
    budget: float  # seconds: the student's time budget or the server's cap, the smaller
    budget_name: str  # "the 5-min cap" or "your 2-min time budget"
    fitted: bool = False  # the first steps are timed and the run is fitted to the budget
    refused: bool = False  # not even the fewest useful steps fit: the run was not made
    batch: int | None = None  # examples per step now (a loop that can change it: fitted too)
    requested_batch: int | None = None
    timed_at_batch: bool = True  # False until a step at a lowered batch is timed (sec_per_step: scaled)
    measured: float = math.nan  # the pace the run was fitted on (at the requested batch)
    budget_left: float = math.inf  # seconds left under the budget when this was measured

    @property
    def up_to(self) -> float:
        """The time left if the machine gets busier while the run goes: `left` plus LOAD_MARGIN of
        it, never past the budget (the promise a status line makes; `left` is its estimate)."""
        return min(self.left * (1.0 + LOAD_MARGIN), max(self.left, self.budget_left))

    @property
    def note(self) -> str:
        """'fitted to the 5 min cap: 24 of 40 steps, measured 11.0 s/step', or with a smaller batch
        '... all 40 steps at batch 4 (of 8), ...' (empty before the fit)."""
        if not self.fitted:
            return ""
        what = f"{self.steps} of {self.requested} steps" if self.steps < self.requested else f"all {self.steps} steps"
        if self.batch is not None and self.batch != self.requested_batch:
            what += f" at batch {self.batch} (of {self.requested_batch})"
        if not self.timed_at_batch:
            return (f"fitted to {self.budget_name}: {what}, measured {seconds_text(self.measured, 1)}/step at "
                    f"batch {self.requested_batch}")
        return f"fitted to {self.budget_name}: {what}, measured {seconds_text(self.sec_per_step, 1)}/step"

    def line(self, step: int, done: bool = False) -> str:
        """The time part of a status line after step `step`: the fit and the time left (the
        measured estimate, never more than the budget left), or that the speed is being measured."""
        if self.refused:
            return ""
        if done:
            return self.note
        if not self.fitted and self.requested > PROBE_STEPS and math.isfinite(self.budget):
            return f"timing the first steps, then fitting the run to {self.budget_name}"
        left = f"about {seconds_text(self.left)} left" if math.isfinite(self.left) else ""
        if left and seconds_text(self.up_to) != seconds_text(self.left):
            left += f", up to {seconds_text(self.up_to)} if the machine gets busier"
        return " · ".join(x for x in (self.note, left) if x)


@dataclass
class TrainUpdate:
    """What a step loop yields after each step (and once when it ends or cannot start)."""

    step: int
    max_steps: int  # the steps the run will make (fitted to the time budget after the first steps)
    loss: float
    losses: list
    seconds: float
    message: str = ""
    done: bool = False
    stopped: bool = False  # ended before max_steps (Stop pressed or the time cap reached)
    capped: bool = False  # ended by the time cap
    busy: bool = False  # did not start: another training holds the machine
    refused: bool = False  # ended after the timed first steps: too few steps fit (nothing is kept)
    pace: Pace | None = None


def now() -> float:
    """The training clock (a test may replace it)."""
    return time.perf_counter()


def duration(seconds: float) -> str:
    """'45 s', '5 min' or '1 min 40 s', as the cap is written in messages."""
    if seconds < 60:
        return f"{seconds:g} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes:g} min" if rest < 0.5 else f"{minutes:g} min {rest:.0f} s"


def seconds_text(seconds: float, digits: int = 0) -> str:
    """A measured time: '11 s', '2.5 s' (digits=1), '4 min 10 s'."""
    if seconds < 90:
        return f"{seconds:.{digits}f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


# ---- fitting a run to its time budget --------------------------------------------------------------
PROBE_STEPS = 2  # steps timed before a run is fitted (the first one also warms up: allocations, caches)
PROBE_SECONDS = 5.0  # ... and seconds they span: a step of 0.4 s is too short to time alone
PACE_WINDOW = 5  # the pace is the mean of the last steps (at least this many, spanning at least
#                  PROBE_SECONDS): the load changes while a run goes on
MARGIN = 0.05  # share of the budget the fit leaves free, so that a run a little slower still ends in time
# How much longer than its first estimate a run may take when the load grows while it goes: measured
# here (bench training_fit, 8 other sessions clicking model calls on 2 shared cores, other work
# starting and stopping) the five defaults took 0.72-1.32x the estimate made after their first steps.
LOAD_MARGIN = 0.35
MIN_SHARE = 0.5  # a run is made only when at least this share of the requested steps fits


def fit_steps(requested: int, done: int, elapsed: float, sec_per_step: float, budget: float) -> int:
    """Steps a run can make in `budget` seconds: floor((budget - elapsed) / sec_per_step) + done,
    never fewer than the `done` ones and never more than the `requested` ones."""
    if not sec_per_step > 0 or math.isinf(budget):
        return requested
    room = math.floor(max(0.0, budget - elapsed) / sec_per_step)
    return max(done, min(requested, done + room))


def min_steps(requested: int) -> int:
    """The fewest steps worth a run: MIN_SHARE of the requested ones (at least 1). A run cut far
    below what was asked leaves an adapter whose "after" shows nothing (in a class trial: LoRA at
    12 of 40 steps, SFT at 29 of 50, DPO at 9 of 20)."""
    return max(1, math.ceil(requested * MIN_SHARE))


def budget_knob():
    """The time-budget knob of every training's settings: minutes the run may take (0 = the cap)."""
    return knob(0.0, 0.0, MAX_TRAIN_MINUTES, "Minutes this run may take: after its first steps are timed, "
                "it makes the steps that fit (0, or more than this server's cap: the cap)", step=0.5,
                label="time budget (min)")


def budget(cap: float | None, minutes: float | None = None) -> tuple[float | None, str]:
    """(seconds, name) of a run's time budget: the student's `minutes` when set (> 0) and under the
    server's cap, else the cap."""
    if cap is None and not minutes:
        return None, "no time limit"
    if minutes and (cap is None or minutes * 60.0 < cap):
        return minutes * 60.0, f"your {duration(minutes * 60.0)} time budget"
    return cap, f"the {duration(cap)} cap"


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


@contextlib.contextmanager
def threads_for_load(on_cpu: bool = True):
    """torch's threads fitted to the load (fit_threads) for a block of heavy work that holds no gate,
    e.g. the held-out scoring after a run, then put back. Measured here at load ~10 on 2 cores:
    scoring 8 pairs with the reward model took 58-71 s with 2 threads and 4-5 s with 1."""
    before = torch.get_num_threads()
    if on_cpu:
        torch.set_num_threads(fit_threads(before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    """The clock of one run's steps, timed from when it is made. It ends the run at its time budget
    (`seconds`: the cap, or the student's budget when that is smaller; None: no limit), measures
    the pace of the first steps and then fits the run to the budget: `steps` falls from the
    `requested` ones to those that fit (refitted after each step, as the load changes), and a run
    where fewer than `minimum` fit is refused after its timed steps. Without `requested` it is
    only a cap."""

    def __init__(self, seconds: float | None, requested: int | None = None, *, minutes: float | None = None,
                 minimum: int | None = None, batch: int | None = None):
        self.seconds, self.name = budget(seconds, minutes)  # the student's budget when under the cap
        self.by_student = self.seconds != seconds
        self.requested = requested
        self.steps = requested  # fitted after PROBE_STEPS steps
        self.minimum = minimum if minimum is not None else min_steps(requested) if requested else 1
        self.start = now()
        self.first = 0.0  # elapsed when step 1 began (a Trainer builds itself first: begin())
        self.ends: list[float] = []  # elapsed at the end of each step
        self.fitted = self.refused = False
        self.batch = self.requested_batch = batch  # a loop that passes its batch size lets the fit lower it
        self.since, self.predicted = 0, math.nan  # the pace at a lowered batch: timed from step `since` on
        self.measured = math.nan  # the pace at the first fit
        self.every, self.extra_s = 0, 0.0  # work made every `every` steps (a validation loss) and its time
        self.extra_at: dict[int, float] = {}  # step -> seconds of that work inside the step's time

    def periodic(self, every: int, seconds: float) -> None:
        """The loop also does some work every `every` steps (inside those steps' time) that took
        `seconds` when first timed: the pace leaves it out and the time left counts it."""
        self.every, self.extra_s = max(0, int(every)), max(0.0, float(seconds))

    def extra_done(self, step: int, seconds: float) -> None:
        """The periodic work of step `step` took `seconds` (it also updates the expected time)."""
        self.extra_at[step] = max(0.0, float(seconds))
        self.extra_s = self.extra_at[step]

    def extra_left(self, step: int, steps: int) -> float:
        """Seconds of periodic work in steps step+1 .. steps."""
        if not self.every or steps <= step:
            return 0.0
        return self.extra_s * (steps // self.every - step // self.every)

    def begin(self) -> None:
        """Step 1 begins now (when the clock was started earlier, e.g. before building a Trainer)."""
        self.first = self.elapsed()

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
        if self.by_student:
            return f"your time budget of {duration(self.seconds)} was reached"
        return cap_message(self.seconds)

    def probed(self, step: int) -> bool:
        """Enough of the first steps are timed to fit the run: PROBE_STEPS of them, spanning at
        least PROBE_SECONDS (or every requested step)."""
        if self.requested is not None and step >= self.requested:
            return True
        return step >= PROBE_STEPS and bool(self.ends) and self.ends[-1] - self.first >= PROBE_SECONDS

    def sec_per_step(self) -> float:
        """The measured pace: the mean time of the last PACE_WINDOW steps after the first (which
        also warms up; more steps when those span less than PROBE_SECONDS), or the first step's
        time while it is the only one (nan before it). After the batch was lowered, only the steps
        at the new batch count (before one is timed: the old pace scaled by the batch)."""
        times = [self.first] + self.ends  # times[k] = the end of step k (times[0]: when step 1 began)
        low = self.since
        timed = len(times) - 1 - low
        if timed <= 0:
            return self.predicted
        if timed >= 2 and low == 0:
            low = 1
        first_low, low = low, max(low, len(times) - 1 - PACE_WINDOW)
        while low > first_low and times[-1] - times[low] < PROBE_SECONDS:
            low -= 1
        extra = sum(self.extra_at.get(k, 0.0) for k in range(low + 1, len(times)))  # counted apart
        return max(0.0, times[-1] - times[low] - extra) / (len(times) - 1 - low)

    def step_done(self, step: int) -> None:
        """Step `step` has ended: time it, and fit the run once its first steps are timed (probed)."""
        elapsed = self.elapsed()
        self.ends.append(elapsed)
        if self.requested is None or self.seconds is None or not self.probed(step):
            return
        if step >= self.requested:
            return
        target = self.seconds * (1.0 - MARGIN) - self.extra_left(step, self.requested)
        self.steps = fit_steps(self.requested, step, elapsed, self.sec_per_step(), target)
        if not self.fitted:
            self.fitted, self.measured = True, self.sec_per_step()
            if self.steps < self.requested and (self.batch or 1) > 1:
                self._lower_batch(step, elapsed, target)
            self.refused = self.steps < self.minimum

    def _lower_batch(self, step: int, elapsed: float, target: float) -> None:
        """At the first fit of a run that cannot make all its steps: the largest smaller batch at
        which they fit, if the step time is taken to scale with the batch (a step's fixed costs make
        it a little slower: the refits after the next steps, timed at the new batch, correct it)."""
        per = self.sec_per_step()
        need = (target - elapsed) / (self.requested - step)  # seconds per step for every requested step
        batch = max(1, min(self.batch - 1, math.floor(self.batch * need / per)))
        self.predicted = per * batch / self.batch
        self.batch, self.since = batch, step
        self.steps = fit_steps(self.requested, step, elapsed, self.predicted, target)

    def pace(self, step: int) -> Pace:
        """Where the run stands after step `step`."""
        per = self.sec_per_step()
        steps = self.steps if self.steps is not None else step
        left = min(per * max(0, steps - step) + self.extra_left(step, steps), self.left()) if self.ends else math.nan
        return Pace(self.requested or steps, steps, per, left, self.seconds if self.seconds is not None else math.inf,
                    self.name, self.fitted, self.refused, self.batch, self.requested_batch,
                    len(self.ends) > self.since, self.measured, self.left())

    def refusal(self) -> str:
        """Why a refused run was not made, and what would fit."""
        lowered = self.batch != self.requested_batch
        at, even = (f" at batch {self.requested_batch}", f" even at batch {self.batch}") if lowered else ("", "")
        return (f"not run: at the measured {seconds_text(self.measured, 1)}/step{at} only {self.steps} of "
                f"{self.requested} steps fit in {self.name}{even}, and a run needs at least {self.minimum}. Lower "
                "the batch size or the max length, ask for fewer steps, or train when the machine is less busy. "
                "The timed steps were not kept.")

    def stop_update(self, step: int, losses: list, stop: threading.Event | None) -> TrainUpdate | None:
        """Before step `step` of a loop: the last update when Stop is set, or when the cap is used
        up after at least one step (the run keeps what it learned); None to go on."""
        last = losses[-1] if losses else math.nan
        total = self.steps if self.steps is not None else step
        if stop is not None and stop.is_set():
            return TrainUpdate(step - 1, total, last, losses, self.elapsed(), "stopped", done=True, stopped=True,
                               pace=self.pace(step - 1))
        elapsed = self.elapsed()
        if step > 1 and self.reached(elapsed):
            return TrainUpdate(step - 1, total, last, losses, elapsed, self.message, done=True, stopped=True,
                               capped=True, pace=self.pace(step - 1))
        return None

    def step_update(self, step: int, losses: list) -> TrainUpdate:
        """The update after step `step` (its loss is the last of `losses`): the step is timed, the
        run fitted; `done` at the last step that fits, or at once when the run is refused."""
        self.step_done(step)
        pace = self.pace(step)
        if pace.refused:
            return TrainUpdate(step, pace.steps, losses[-1], losses, self.elapsed(), self.refusal(), done=True,
                               refused=True, pace=pace)
        elapsed = self.elapsed()
        if step < (self.requested or step) and step >= pace.steps and self.reached(elapsed):  # a slow last step
            return TrainUpdate(step, pace.steps, losses[-1], losses, elapsed, self.message, done=True, stopped=True,
                               capped=True, pace=pace)
        return TrainUpdate(step, pace.steps, losses[-1], losses, elapsed, done=step >= pace.steps, pace=pace)


class Run:
    """One training holding the gate, from `start` until it is closed (a `with` block): it puts
    torch's thread count back and frees the gate for the next one."""

    def __init__(self, gate: TrainingGate, cap_seconds: float, on_cpu: bool):
        self.gate, self.cap_seconds, self.on_cpu = gate, cap_seconds, on_cpu
        self.default_threads = torch.get_num_threads()

    def fit_threads(self) -> None:
        """On the CPU, torch's threads fitted to the load now (process-wide; put back at close)."""
        if self.on_cpu:  # 1 thread too while another model call runs beside this one
            torch.set_num_threads(1 if SLOTS.active > 1 else fit_threads(self.default_threads))

    def deadline(self, requested: int | None = None, minutes: float | None = None,
                 minimum: int | None = None, batch: int | None = None) -> Deadline:
        """The clock of `requested` steps, started now, fitted to the cap or the student's
        `minutes` when fewer (see Deadline); `batch`: a loop that can make its batch smaller."""
        return Deadline(self.cap_seconds, requested, minutes=minutes, minimum=minimum, batch=batch)

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
    """A transformers TrainerCallback that drives a Trainer by `deadline` (made with the requested
    steps). After each optimizer step it times the step and fits the run, then puts ("pace", step,
    Pace) on `events`; each logged step follows as ("log", step, logs). The run ends after a step on
    Stop ("stopped"), at the time cap ("capped"), when refused after its timed steps ("refused"), or
    at the fitted step count (state.max_steps lowered: the Trainer ends as at its own last step).
    The learning rate needs no refit: the trainers here use a constant schedule."""
    TrainerCallback = from_transformers("TrainerCallback")

    class Stream(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            deadline.begin()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                events.put(("log", state.global_step, dict(logs)))

        def on_step_end(self, args, state, control, **kwargs):
            step = state.global_step
            deadline.step_done(step)
            events.put(("pace", step, deadline.pace(step)))
            if deadline.steps is not None:
                state.max_steps = deadline.steps
            ended = ("stopped" if stop.is_set() else "refused" if deadline.refused else  # as Deadline.step_update:
                     "capped" if deadline.reached() and step < (deadline.requested or state.max_steps) else None)
            if ended or step >= state.max_steps:
                control.should_training_stop = True
            if ended:
                events.put((ended, step, {}))
            return control

    return Stream()


__all__ = ["TrainUpdate", "Pace", "TrainingGate", "GATE", "TrainingBusy", "Run", "Deadline", "start", "cap_seconds",
           "fit_threads", "fit_steps", "min_steps", "budget", "duration", "seconds_text", "busy_message", "cap_message",
           "trainer_callback", "now", "PROBE_STEPS", "budget_knob", "threads_for_load"]
