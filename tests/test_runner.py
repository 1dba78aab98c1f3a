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


def test_a_tiny_cap_ends_a_loop_between_steps_and_keeps_its_steps():
    gate = R.TrainingGate()
    with R.start(0.05, gate=gate) as run:
        deadline = run.deadline()
        losses: list[float] = []
        for step in range(1, 10_000):
            ended = deadline.stop_update(step, 9_999, losses, None)
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
    assert deadline.stop_update(1, 5, [], None) is None  # the first step always runs
    assert deadline.stop_update(2, 5, [0.5], None).capped
    stop = threading.Event()
    stop.set()
    ended = deadline.stop_update(2, 5, [0.5], stop)
    assert ended.stopped and not ended.capped and ended.message == "stopped" and ended.step == 1
    free = R.Deadline(None)
    assert free.stop_update(500, 1000, [0.1], None) is None and not free.reached() and free.left() == float("inf")
    update = free.step_update(3, 3, [0.3, 0.2, 0.1])
    assert update.done and update.loss == 0.1 and update.step == 3


def test_the_trainer_callback_ends_training_at_the_cap_or_on_stop():
    from transformers import TrainerControl, TrainerState

    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    state = TrainerState()
    state.global_step = 4
    callback = R.trainer_callback(events, stop, R.Deadline(3600.0))
    callback.on_log(None, state, TrainerControl(), logs={"loss": 0.7})
    assert events.get_nowait() == ("log", 4, {"loss": 0.7})
    assert not callback.on_step_end(None, state, TrainerControl()).should_training_stop
    stop.set()
    assert callback.on_step_end(None, state, TrainerControl()).should_training_stop
    assert events.get_nowait() == ("stopped", 4, {})
    capped = R.trainer_callback(events, threading.Event(), R.Deadline(1e-9))
    assert capped.on_step_end(None, state, TrainerControl()).should_training_stop
    assert events.get_nowait() == ("capped", 4, {})


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
