"""Torch's threads per call (engine.core.threads, issue 39): a call alone on a quiet machine keeps
torch's default; a call that runs beside another, or on an oversubscribed machine, takes 1 thread
for itself and puts the count back; other threads' counts are not touched."""
import threading

import pytest
import torch

from engine.core import threads as threads_mod
from engine.core.threads import ComputeSlots
from tabs._ui import user_errors


@pytest.fixture
def two_default_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_alone_on_a_quiet_machine_keeps_the_default(two_default_threads):
    slots = ComputeSlots(cores=2, load=lambda: 0.5)
    with slots.held() as n:
        assert n == 2 and torch.get_num_threads() == 2 and slots.active == 1
    assert slots.active == 0


def test_an_oversubscribed_machine_gives_one_thread_and_puts_it_back(two_default_threads):
    slots = ComputeSlots(cores=2, load=lambda: 3.1)  # above 1.5 x 2 cores
    with slots.held() as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    assert ComputeSlots(cores=2, load=lambda: 2.9).threads_for(2) == 2  # at 2.9 the default stays
    assert ComputeSlots(cores=2, load=lambda: None).threads_for(2) == 2  # no load average: default


def test_a_second_call_in_flight_takes_one_thread_without_changing_the_first(two_default_threads):
    slots = ComputeSlots(cores=2, load=lambda: 0.0)
    inside, release, seen = threading.Event(), threading.Event(), {}

    def second():
        with slots.held() as n:
            seen["second"] = (n, torch.get_num_threads())
        seen["second after"] = torch.get_num_threads()

    with slots.held() as first:
        worker = threading.Thread(target=second)
        worker.start()
        worker.join(10)
        seen["first"] = (first, torch.get_num_threads())
    assert seen["first"] == (2, 2)  # the call that was alone keeps its threads
    assert seen["second"] == (1, 1)
    assert seen["second after"] == 2 and slots.active == 0


def test_listeners_count_as_calls_in_flight_plain_and_streaming(monkeypatch, two_default_threads):
    monkeypatch.setattr(threads_mod.SLOTS, "_load", lambda: 0.0)
    gate, seen = threading.Barrier(2, timeout=10), []

    def plain():
        gate.wait()  # both listeners are in flight here
        seen.append(("plain", threads_mod.SLOTS.active, torch.get_num_threads()))
        gate.wait()
        return "ok"

    def streaming():
        gate.wait()
        yield torch.get_num_threads()
        gate.wait()
        yield "done"

    stream = user_errors(streaming)()
    worker = threading.Thread(target=lambda: seen.append(("plain out", user_errors(plain)())))
    worker.start()
    first = next(stream)
    assert list(stream) == ["done"]
    worker.join(10)
    assert ("plain out", "ok") in seen
    plain_active, plain_threads = next((a, t) for name, a, t in (s for s in seen if len(s) == 3))
    assert plain_active == 2
    assert min(first, plain_threads) == 1  # whichever started second runs on 1 thread
    assert threads_mod.SLOTS.active == 0 and torch.get_num_threads() == 2


def _nice() -> int:
    import os

    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not threads_mod.can_renice(), reason="this process may not raise a thread's priority back")
def test_background_work_runs_niced_each_step_and_gives_the_priority_back():
    base = _nice()
    plain = threads_mod.at_priority(lambda: _nice(), threads_mod.TRAINING_NICE)
    assert plain() == min(19, base + threads_mod.TRAINING_NICE) and _nice() == base

    def stream():
        yield _nice()
        yield _nice()

    steps = threads_mod.at_priority(stream, threads_mod.HEAVY_NICE)()
    first = next(steps)
    assert _nice() == base  # between steps the worker thread is back at its own priority
    seen_on_other_thread = []
    worker = threading.Thread(target=lambda: seen_on_other_thread.append((next(steps), _nice())))
    worker.start()
    worker.join(10)
    assert first == base + threads_mod.HEAVY_NICE
    assert seen_on_other_thread == [(base + threads_mod.HEAVY_NICE, base)]  # resumed elsewhere: niced there


def test_without_the_right_to_renice_nothing_changes(monkeypatch):
    monkeypatch.setitem(threads_mod._RENICE, "ok", False)
    base = _nice()
    assert threads_mod.at_priority(lambda: _nice(), threads_mod.TRAINING_NICE)() == base

