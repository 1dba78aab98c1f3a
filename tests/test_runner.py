"""The one training runner: the gate (one training at a time), torch's thread count put back, the
wall-time cap that ends a loop or a Trainer, and where the cap is read. Nothing here loads a model."""
from __future__ import annotations

import queue
import threading
import time

import pytest
import torch

from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.training import runner as R
from tests.conftest import torch_threads

BUSY = ("Busy: another session is training on this machine (step 3 of 10). One training runs at a time, "
        "each for at most 7 s: press Train again when it ends.")


def test_the_gate_refuses_a_second_concurrent_training_with_the_busy_message():
    gate = R.TrainingGate()
    refused = []

    def second():
        try:
            R.start(7.0, gate=gate)
        except R.TrainingBusy as exc:
            refused.append(exc)

    with R.start(7.0, gate=gate) as run:
        assert gate.busy and run.cap_seconds == 7.0
        run.progress(3, 10)
        worker = threading.Thread(target=second)
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "a refused training waited on the gate"
    assert len(refused) == 1 and isinstance(refused[0], UserInputError) and str(refused[0]) == BUSY
    assert not gate.busy and gate.progress == ""
    with R.start(7.0, gate=gate):  # free again once the first one ended
        pass


def test_every_lesson_answers_busy_through_the_one_gate(engine):
    """LoRA, SFT, the reward model, DPO and DreamBooth/textual inversion: while the gate is held each
    yields one busy update with the runner's message and loads nothing."""
    from engine.diffusion import teach as T
    from engine.training import lora as L
    from engine.training import preference as P
    from engine.training import sft as S

    pairs = P.load_pairs()[:20]
    runs = {
        "lora": lambda: L.train(engine, L.LoraSession(), ["a — b"] * 4, make(L.LoraSettings, max_steps=1)),
        "sft": lambda: S.train(engine, L.LoraSession(), S.load_train()[:4], make(S.SftSettings, max_steps=1)),
        "reward": lambda: P.train_reward(engine, P.PreferenceSession(), pairs, make(P.RewardSettings, max_steps=1)),
        "dpo": lambda: P.train_dpo(engine, P.PreferenceSession(), pairs, make(P.DPOSettings, max_steps=1)),
        "teach": lambda: T.train(engine, T.TeachSession(), T.load_symbol_set("star"), "zorb",
                                 T.TeachSettings(steps=1)),
    }
    with R.start(cap_seconds=60.0) as run:
        run.progress(1, 2)
        for name, train in runs.items():
            updates = [u[0] if isinstance(u, tuple) else u for u in train()]
            assert len(updates) == 1 and updates[0].busy and updates[0].done, name
            assert updates[0].message.startswith("Busy: another session is training on this machine (step 1 of 2)")
            assert "press Train again when it ends." in updates[0].message, name
    assert not R.GATE.busy


def test_threads_are_fitted_on_the_cpu_and_put_back_after(monkeypatch):
    gate = R.TrainingGate()
    monkeypatch.setattr(R, "fit_threads", lambda default: default + 1)
    with torch_threads(1):
        with R.start(60.0, gate=gate, on_cpu=True) as run:
            run.fit_threads()
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1 and not gate.busy
        with pytest.raises(RuntimeError, match="boom"):  # a failing run puts them back too
            with R.start(60.0, gate=gate, on_cpu=True) as run:
                run.fit_threads()
                raise RuntimeError("boom")
        assert torch.get_num_threads() == 1 and not gate.busy
        with R.start(60.0, gate=gate, on_cpu=False) as run:  # on a GPU torch's CPU threads are left alone
            run.fit_threads()
            assert torch.get_num_threads() == 1
        with R.threads_for_load(on_cpu=True):  # heavy work outside the gate (held-out scoring) too
            assert torch.get_num_threads() == 2 and not R.GATE.busy
        assert torch.get_num_threads() == 1


def test_a_tiny_cap_ends_a_loop_between_steps_and_keeps_its_steps():
    gate = R.TrainingGate()
    with R.start(0.05, gate=gate) as run:
        deadline = run.deadline()
        losses: list[float] = []
        for step in range(1, 10_000):
            ended = deadline.stop_update(step, losses, None)
            if ended is not None:
                break
            time.sleep(0.01)  # one "step"
            losses.append(1.0 / step)
    assert ended.capped and ended.stopped and ended.done and not ended.busy
    assert ended.step == len(losses) >= 1 and ended.losses is losses and ended.loss == losses[-1]
    assert ended.message == "this server's time cap of 0.05 s per training was reached"
    assert deadline.reached() and deadline.left() == 0.0


def test_a_run_makes_one_step_before_the_cap_and_stop_ends_it_first():
    deadline = R.Deadline(1e-9)
    assert deadline.stop_update(1, [], None) is None  # the first step always runs
    assert deadline.stop_update(2, [0.5], None).capped
    stop = threading.Event()
    stop.set()
    ended = deadline.stop_update(2, [0.5], stop)
    assert ended.stopped and not ended.capped and ended.message == "stopped" and ended.step == 1
    free = R.Deadline(None, 3)
    assert free.stop_update(500, [0.1], None) is None and not free.reached() and free.left() == float("inf")
    update = free.step_update(3, [0.3, 0.2, 0.1])
    assert update.done and update.loss == 0.1 and update.step == 3


# ---- fitting a run to its time budget ----------------------------------------------------------------
class FakeClock:
    """runner.now for a test: it moves only when the test says so."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def step(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(R, "now", fake)
    return fake


def test_fit_steps_is_the_floor_of_the_time_left_over_the_pace_plus_the_steps_done():
    assert R.fit_steps(40, 2, 22.0, 11.0, 300.0) == 2 + 25  # floor(278 / 11) = 25
    assert R.fit_steps(40, 2, 22.0, 11.0, 22.0 + 11.0 * 38) == 40  # exactly all
    assert R.fit_steps(40, 2, 22.0, 1.0, 300.0) == 40  # never more than requested
    assert R.fit_steps(40, 2, 400.0, 11.0, 300.0) == 2  # over the budget already: never fewer than done
    assert R.fit_steps(40, 5, 10.0, float("nan"), 300.0) == 40  # no pace yet: unchanged
    assert R.fit_steps(40, 5, 10.0, 2.0, float("inf")) == 40
    assert [R.min_steps(n) for n in (1, 2, 3, 20, 40, 41)] == [1, 1, 2, 10, 20, 21]


def test_the_budget_is_the_students_when_under_the_cap_else_the_cap():
    assert R.budget(300.0) == (300.0, "the 5 min cap")
    assert R.budget(300.0, 0) == (300.0, "the 5 min cap")
    assert R.budget(300.0, 2) == (120.0, "your 2 min time budget")
    assert R.budget(300.0, 10) == (300.0, "the 5 min cap")  # bounded by the cap
    assert R.budget(None) == (None, "no time limit")


def test_a_run_is_fitted_to_the_cap_after_its_timed_first_steps(clock):
    deadline = R.Deadline(300.0, 40)
    losses = []
    for step in (1, 2):
        assert deadline.stop_update(step, losses, None) is None
        clock.step(11.0)
        losses.append(1.0)
        update = deadline.step_update(step, losses)
    # 22 s used, 11 s/step; fitted to 95% of the cap: floor((285 - 22) / 11) = 23 more steps
    assert update.max_steps == 25 and not update.done and not update.refused
    pace = update.pace
    assert pace.fitted and pace.requested == 40 and pace.steps == 25 and pace.sec_per_step == 11.0
    assert pace.note == "fitted to the 5 min cap: 25 of 40 steps, measured 11.0 s/step"
    assert pace.left == 23 * 11.0 and 22.0 + pace.left <= 300.0
    step = 2
    while not update.done:  # the run ends at the fitted step, done (not capped), inside the cap
        step += 1
        assert deadline.stop_update(step, losses, None) is None
        clock.step(11.0)
        losses.append(1.0)
        update = deadline.step_update(step, losses)
    assert update.step == 25 and update.done and not update.stopped and not update.capped
    assert deadline.elapsed() <= 300.0


def test_the_fit_follows_the_pace_when_the_machine_slows_down(clock):
    deadline = R.Deadline(100.0, 20)
    losses = [1.0]
    for step, seconds in enumerate((2.0, 2.0, 2.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0), 1):
        clock.step(seconds)
        update = deadline.step_update(step, losses)
        assert update.pace.left <= deadline.left()  # never more than the time left under the cap
        assert deadline.elapsed() + update.pace.left <= 95.0 + 1e-9
    assert update.max_steps < 20 and not update.done


def test_a_run_where_too_few_steps_fit_is_refused_after_its_timed_steps(clock):
    deadline = R.Deadline(300.0, 40)
    losses = []
    for step in (1, 2):
        clock.step(48.0)
        losses.append(1.0)
        update = deadline.step_update(step, losses)
    # 96 s used, 48 s/step: floor((285 - 96) / 48) = 3 more steps fit, 5 of 40; half of 40 are needed
    assert update.refused and update.done and update.max_steps == 5 and update.pace.refused
    assert update.message == ("not run: at the measured 48.0 s/step only 5 of 40 steps fit in the 5 min cap, and "
                              "a run needs at least 20. Lower the batch size or the max length, ask for fewer "
                              "steps, or train when the machine is less busy. The timed steps were not kept.")


def test_a_loop_that_can_lower_its_batch_fits_every_step_at_a_smaller_one(clock):
    """The default LoRA run at the class's load: 18 s a step at batch 8, 16 of 40 steps fit in 5 min."""
    deadline = R.Deadline(300.0, 40, batch=8)
    for step in (1, 2):
        clock.step(18.0)
        update = deadline.step_update(step, [1.0])
    # 36 s used; all 40 steps need (285 - 36) / 38 = 6.55 s a step: batch floor(8 x 6.55 / 18) = 2
    assert update.pace.batch == 2 and update.pace.requested_batch == 8 and deadline.batch == 2
    assert update.max_steps == 40 and not update.refused and update.pace.sec_per_step == 4.5  # predicted
    assert update.pace.note == "fitted to the 5 min cap: all 40 steps at batch 2 (of 8), measured 18.0 s/step at batch 8"
    clock.step(7.0)  # the first step at batch 2: slower than predicted (a step's fixed costs)
    update = deadline.step_update(3, [1.0])
    assert update.pace.sec_per_step == 7.0 and update.max_steps == 3 + 34  # floor((285 - 43) / 7)
    assert update.pace.note == "fitted to the 5 min cap: 37 of 40 steps at batch 2 (of 8), measured 7.0 s/step"
    slow = R.Deadline(300.0, 40, batch=8)
    for step in (1, 2):
        clock.step(80.0)
        update = slow.step_update(step, [1.0])
    assert update.refused and slow.batch == 1 and update.message.startswith(  # floor((285 - 160) / 10) = 12 more
        "not run: at the measured 80.0 s/step at batch 8 only 14 of 40 steps fit in the 5 min cap even at batch 1")


def test_the_students_budget_fits_the_run_and_ends_it(clock):
    deadline = R.Deadline(300.0, 40, minutes=1)
    assert deadline.seconds == 60.0 and deadline.by_student
    losses = [1.0]
    for step in (1, 2, 3):  # steps of 2 s: timed until they span PROBE_SECONDS
        clock.step(2.0)
        update = deadline.step_update(step, losses)
        assert update.pace.fitted == (step == 3)
    assert update.max_steps == 3 + 25 and "your 1 min time budget" in update.pace.note  # floor((57 - 6) / 2)
    clock.step(100.0)
    ended = deadline.stop_update(3, losses, None)
    assert ended.capped and ended.message == "your time budget of 1 min was reached"


def test_the_time_left_never_exceeds_the_cap(clock):
    """The class trial read 'about 31 min left' under a 5-min cap: 40 steps at 48 s/step."""
    deadline = R.Deadline(300.0, 40, minimum=1)
    clock.step(48.0)
    first = deadline.step_update(1, [1.0])
    assert first.pace.left == 300.0 - 48.0  # 39 x 48 s = 31 min, bounded by the cap
    clock.step(48.0)
    second = deadline.step_update(2, [1.0, 0.9])
    assert second.pace.left <= 300.0 - 96.0 and second.max_steps == 2 + 3


def test_the_trainer_callback_ends_training_at_the_cap_or_on_stop():
    from transformers import TrainerControl, TrainerState

    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    state = TrainerState()
    state.global_step, state.max_steps = 4, 10
    callback = R.trainer_callback(events, stop, R.Deadline(3600.0))
    callback.on_log(None, state, TrainerControl(), logs={"loss": 0.7})
    assert events.get_nowait() == ("log", 4, {"loss": 0.7})
    assert not callback.on_step_end(None, state, TrainerControl()).should_training_stop
    assert events.get_nowait()[0] == "pace"
    stop.set()
    assert callback.on_step_end(None, state, TrainerControl()).should_training_stop
    assert events.get_nowait()[0] == "pace" and events.get_nowait() == ("stopped", 4, {})
    capped = R.trainer_callback(events, threading.Event(), R.Deadline(1e-9))
    assert capped.on_step_end(None, state, TrainerControl()).should_training_stop
    assert events.get_nowait()[0] == "pace" and events.get_nowait() == ("capped", 4, {})


def test_the_trainer_callback_fits_the_trainer_and_refuses_a_run_too_slow(clock):
    from transformers import TrainerControl, TrainerState

    events: queue.Queue = queue.Queue()
    deadline = R.Deadline(300.0, 40)
    callback = R.trainer_callback(events, threading.Event(), deadline)
    state = TrainerState()
    state.max_steps = 40
    clock.step(30.0)  # the trainer builds itself: not a step
    callback.on_train_begin(None, state, TrainerControl())
    for step in (1, 2):
        clock.step(11.0)
        state.global_step = step
        control = callback.on_step_end(None, state, TrainerControl())
    assert state.max_steps == deadline.steps == 2 + 21 and not control.should_training_stop  # (285 - 52) // 11
    kind, at, pace = events.get_nowait(), None, None
    while not events.empty():
        kind, at, pace = events.get_nowait()
    assert (kind, at) == ("pace", 2) and pace.fitted and pace.sec_per_step == 11.0
    for step in range(3, 24):
        clock.step(11.0)
        state.global_step = step
        control = callback.on_step_end(None, state, TrainerControl())
        assert control.should_training_stop == (step == 23)  # the fitted end
    slow = R.Deadline(300.0, 40)
    callback = R.trainer_callback(events, threading.Event(), slow)
    for step in (1, 2):
        clock.step(100.0)
        state.global_step = step
        control = callback.on_step_end(None, state, TrainerControl())
    assert control.should_training_stop and slow.refused
    while not events.empty():
        last = events.get_nowait()
    assert last == ("refused", 2, {})


def test_the_time_cap_comes_from_the_flag_then_the_environment():
    from engine import Engine
    from engine.core.config import DEFAULT_TRAIN_MINUTES, AppConfig

    def cap(argv, env):
        return R.cap_seconds(Engine(config=AppConfig.from_sources(argv, env)))

    assert cap([], {}) == 60 * DEFAULT_TRAIN_MINUTES
    assert cap([], {"LLM_PLAYGROUND_TRAIN_MINUTES": "0.5"}) == 30.0
    assert cap(["--train-minutes", "2"], {"LLM_PLAYGROUND_TRAIN_MINUTES": "0.5"}) == 120.0  # the flag wins
    for bad in ("abc", "0", "-1", "nan", "1e9"):
        with pytest.raises(UserInputError, match="LLM_PLAYGROUND_TRAIN_MINUTES"):
            cap([], {"LLM_PLAYGROUND_TRAIN_MINUTES": bad})


def test_fit_threads_drops_to_one_only_when_oversubscribed():
    assert R.fit_threads(2, load=1.0, cores=2) == 2
    assert R.fit_threads(2, load=2.9, cores=2) == 2
    assert R.fit_threads(2, load=9.0, cores=2) == 1
    assert R.fit_threads(8, load=20.0, cores=16) == 8


def _seconds_left(text: str) -> float | None:
    """The 'about N s left' / 'about M min N s left' of a status line, in seconds (None: none shown)."""
    import re

    found = re.search(r"about (?:(\d+) min )?(\d+) s left", text)
    return None if not found else 60 * int(found.group(1) or 0) + int(found.group(2))


def test_every_training_status_shows_a_time_left_within_the_cap(clock):
    """The class trial read 'about 31 min left' under a 5-min cap (40 steps at 48 s/step): each
    tab's status line, made from the runner's updates, never says more than the cap has left."""
    from engine.diffusion import plots as DP
    from engine.diffusion import teach as T
    from engine.training import preference as P
    from tabs import _posttraining_preference as TP
    from tabs import lora as TL
    from tabs import posttraining as TS

    deadline = R.Deadline(300.0, 40, minimum=1)
    losses, lines = [], []
    for step in range(1, 41):
        clock.step(48.0)
        losses.append(1.0 / step)
        u = deadline.step_update(step, losses)
        pu = P.RunUpdate(u.step, u.max_steps, {"loss": list(losses)}, u.seconds, u.message, done=u.done, pace=u.pace)
        lines += [TL._status(u, 100), TS._status(u, 100), TP._status(pu, "DPO", ""),
                  DP.teach_status_markdown(u, T.TeachSession(word="zorb"))]
        if u.done:
            break
        shown = {_seconds_left(line) for line in lines[-4:]}
        assert len(shown) == 1, lines[-4:]  # every tab says the same
        left = shown.pop()
        if step == 1:
            assert left is None and "timing the first steps, then fitting the run to the 5 min cap" in lines[-1]
        else:
            assert left is not None and left <= 300.0 - u.seconds, lines[-1]
    assert u.done and u.step == 5 and deadline.elapsed() <= 300.0  # 2 timed + floor((285 - 96) / 48) = 3
    assert "fitted to the 5 min cap: 5 of 40 steps, measured 48.0 s/step" in lines[-4]


def test_no_training_promises_a_duration_it_did_not_measure(engine):
    """The screen promised 'one to two minutes' (LoRA, reward model, DPO), 'about 90 seconds' (SFT) and
    'about a minute' (teaching a symbol): before the first steps are timed nothing says how long."""
    import gradio as gr

    import app

    demo = app.build_demo(engine)
    texts = " ".join(str(getattr(b, "value", "") or "") for b in demo.blocks.values()
                     if isinstance(b, gr.Markdown))
    for promise in ("one to two minutes", "about 90 seconds", "about a minute", "measured: 88 s"):
        assert promise not in texts
    assert texts.count("Its first steps are timed on this machine as it is now") >= 4  # LoRA, SFT, reward, DPO


def test_a_validation_loss_every_few_steps_is_counted_in_the_promise_not_in_the_pace(clock):
    """A loop that scores its held-out examples every 10 steps (LoRA, SFT): the time left promised
    after the first timed steps includes those scorings, the pace leaves them out, and a run that
    goes as timed ends exactly when it promised (in a class trial the promise missed four of them)."""
    deadline = R.Deadline(300.0, 40)
    deadline.periodic(10, 5.0)  # the scoring before step 1 took 5 s
    losses, promise = [1.0], None
    for step in range(1, 41):
        clock.step(3.0)
        if step % 10 == 0:
            clock.step(5.0)
            deadline.extra_done(step, 5.0)
        update = deadline.step_update(step, losses)
        if step == 2:
            assert update.pace.sec_per_step == 3.0 and update.pace.left == 38 * 3.0 + 4 * 5.0
            promise = deadline.elapsed() + update.pace.left
        if step == 12:  # the scoring at step 10 is inside the window the pace is read from
            assert update.pace.sec_per_step == 3.0 and update.pace.left == 28 * 3.0 + 3 * 5.0
    assert update.done and update.step == 40 and deadline.elapsed() == promise == 40 * 3.0 + 4 * 5.0
    short = R.Deadline(100.0, 40)  # the fit leaves room for the scorings it will make
    short.periodic(10, 5.0)
    for step in (1, 2):
        clock.step(3.0)
        update = short.step_update(step, losses)
    assert update.max_steps == 2 + (95 - 20 - 6) // 3


def test_the_status_line_promises_up_to_a_margin_over_its_estimate_and_never_past_the_cap(clock):
    deadline = R.Deadline(300.0, 40)
    for step in (1, 2):
        clock.step(3.0)
        u = deadline.step_update(step, [1.0])
    assert u.pace.left == 38 * 3.0 and u.pace.up_to == pytest.approx(38 * 3.0 * (1 + R.LOAD_MARGIN))
    assert u.pace.line(2) == ("fitted to the 5 min cap: all 40 steps, measured 3.0 s/step · about 1 min 54 s "
                              "left, up to 2 min 33 s if the machine gets busier")
    tight = R.Deadline(100.0, 40)
    for step in (1, 2):
        clock.step(3.0)
        u = tight.step_update(step, [1.0])
    assert u.pace.up_to == 100.0 - 6.0 and u.pace.left < u.pace.up_to  # the cap bounds the promise
