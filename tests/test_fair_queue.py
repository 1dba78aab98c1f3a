"""Issue 39, fair to every student: a session with a job running queues behind other sessions'
first jobs (tabs/_queue.FairQueue); cheap interactive calls have their own group; the queue shows
each waiting student a position and an estimated wait."""
from __future__ import annotations

import threading
import time

import gradio as gr
import httpx
import pytest

from conftest import free_port


@pytest.fixture
def one_slot_app():
    """A tiny app with the app's fair queue: one group of one slot whose listener records the
    order its calls start in and takes 0.4 s."""
    from tabs._queue import make_fair

    started: list[str] = []
    lock = threading.Lock()

    def work(tag):
        with lock:
            started.append(tag)
        time.sleep(0.4)
        return tag

    with gr.Blocks() as demo:
        demo.queue(default_concurrency_limit=4, max_size=64)
        make_fair(demo)
        box = gr.Textbox()
        box.submit(work, box, box, api_name="work", concurrency_id="g", concurrency_limit=1)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}/gradio_api", timeout=60)
    try:
        yield demo, http, started
    finally:
        http.close()
        demo.close()


def submit(http, session: str, tag: str) -> str:
    r = http.post("/call/work", json=dict(data=[tag], session_hash=session))
    r.raise_for_status()
    return r.json()["event_id"]


def wait_started(started: list[str], n: int, within_s: float = 30) -> None:
    """Until `n` calls have started (the order is what the tests read; the answers are not)."""
    deadline = time.monotonic() + within_s
    while len(started) < n and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_session_with_a_job_running_waits_behind_another_sessions_first_job(one_slot_app):
    demo, http, started = one_slot_app
    submit(http, "student-a", "a1")
    wait_started(started, 1)  # a1 holds the slot
    for session, tag in [("student-a", "a2"), ("student-a", "a3"), ("student-b", "b1")]:
        submit(http, session, tag)
    waiting = [e.data.data[0] for e in demo._queue.event_queue_per_concurrency_id["g"].queue]
    # the order Gradio reads its positions from is already the fair one (first come would be a2 a3 b1)
    assert waiting == ["b1", "a2", "a3"]
    wait_started(started, 4)
    assert started == ["a1", "b1", "a2", "a3"]


def test_sessions_take_turns(one_slot_app):
    demo, http, started = one_slot_app
    submit(http, "a", "a1")
    wait_started(started, 1)
    for session, tag in [("a", "a2"), ("a", "a3"), ("b", "b1"), ("b", "b2"), ("b", "b3"), ("c", "c1")]:
        submit(http, session, tag)
    wait_started(started, 7)
    assert started == ["a1", "b1", "c1", "a2", "b2", "a3", "b3"]


def test_a_lone_session_still_gets_every_free_slot():
    """Fairness never idles a slot: one session's queued jobs start as soon as a slot is free."""
    from tabs._queue import FairQueue

    class Ev:
        def __init__(self, s, t):
            self.session_hash, self.enqueue_time = s, t

    q = FairQueue.__new__(FairQueue)
    waiting = [Ev("a", 1.0), Ev("a", 2.0), Ev("a", 3.0)]
    q._reorder(waiting, running=__import__("collections").Counter({"a": 1}))
    assert [e.enqueue_time for e in waiting] == [1.0, 2.0, 3.0]


def test_the_app_orders_its_queue_fairly_and_keeps_cheap_calls_out_of_the_heavy_group(engine):
    import app
    from tabs._queue import FairQueue
    from tabs._ui import CHEAP, HEAVY

    demo = app.build_demo(engine)
    assert isinstance(demo._queue, FairQueue)
    groups = {f.api_name: (f.concurrency_id, f.concurrency_limit) for f in demo.fns.values() if f.api_name}
    for name in ("next_token", "next_token_submit", "step"):  # one forward pass or a few cached steps
        assert groups[name] == (CHEAP["concurrency_id"], CHEAP["concurrency_limit"]), name
    for name in ("rag_index", "stress_test", "task_suite", "generate", "beam_search"):
        assert groups[name] == (HEAVY["concurrency_id"], HEAVY["concurrency_limit"]), name
    assert groups["lora_train"][0] not in (CHEAP["concurrency_id"], HEAVY["concurrency_id"])
    assert groups["tokenize"][0] not in (CHEAP["concurrency_id"], HEAVY["concurrency_id"])


def test_every_queued_model_call_shows_its_queue_position_and_wait(engine):
    """Gradio sends each waiting event its position and estimated wait (live_updates: on every
    start and end); the page shows them unless the event's progress is hidden."""
    import app

    demo = app.build_demo(engine)
    assert demo._queue.live_updates
    model_groups = {"model", "interactive", "lora_train", "teach_train", "served"}
    hidden = [f.api_name for f in demo.fns.values()
              if f.concurrency_id in model_groups and f.queue and f.show_progress == "hidden"]
    assert hidden == []


def test_one_session_cannot_fill_the_shared_queue(one_slot_app):
    """A session may have MAX_WAITING_PER_SESSION events waiting; a further one is refused at once
    with a message naming the limit, and another session is still let in."""
    from tabs._queue import MAX_WAITING_PER_SESSION

    demo, http, started = one_slot_app
    submit(http, "flood", "f0")
    wait_started(started, 1)  # f0 runs; the next ones wait
    for k in range(MAX_WAITING_PER_SESSION):
        submit(http, "flood", f"f{k + 1}")
    refused = http.post("/call/work", json=dict(data=["f-extra"], session_hash="flood"))
    assert refused.status_code == 503
    assert f"the limit is {MAX_WAITING_PER_SESSION}" in refused.text
    submit(http, "student", "s1")  # the class still gets in, and goes first
    waiting = [e.data.data[0] for e in demo._queue.event_queue_per_concurrency_id["g"].queue]
    assert waiting[0] == "s1" and len(waiting) == MAX_WAITING_PER_SESSION + 1
    wait_started(started, MAX_WAITING_PER_SESSION + 2)
    assert "f-extra" not in started and len(started) == MAX_WAITING_PER_SESSION + 2
