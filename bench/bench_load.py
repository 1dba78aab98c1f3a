"""Load bench (issue 39): a class on one server. The app runs in its own process on loopback
(`python app.py --offline`). N simulated students (24, then 40), each a session of its own,
first open the page together (the page and its load event, as a browser does; timed, but before
the clock), then for the measured window click the cheap interactive calls in turn (Tokens'
tokenize, Decoding's next-token view and Step on the cached SmolLM2; the next-token prompts are the
lesson's example prompts, and one click in four a student's own text) with a 1-3 s think time
between clicks, while one LoRA training runs (restarted when it ends) and one other student builds
Retrieval indexes back to back (a new chunk size each time, so none is cached). It prints p50/p95
seconds per endpoint from the click to the answer, a trivial request's time (the server's own
responsiveness) and the load average. Target: p95 <= 10 s for the cheap calls while the training
runs.

The students speak the app's HTTP API (POST /gradio_api/call/<name>, then its event stream) over
one shared connection pool, so the load generator, which shares the machine's cores with the app,
stays light (gradio_client would fetch the 1.4 MB page config per student).

`python -m bench load` runs it with the defaults; `python -m bench.bench_load --help` for the
options (--root DIR measures another checkout's app.py, e.g. the code before a change).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.run import ROOT, Row

STUDENTS = (24, 40)
WINDOW_S = 60.0  # measured seconds per class size
THINK_S = (1.0, 3.0)  # a student's pause between clicks, uniform
TARGET_P95_S = 10.0
KEY = "smollm2-135m-instruct"
# (endpoint, its API values): what a student clicks, in turn from a random start
CHEAP = [
    ("tokenize", dict(text="The students read a story about a dragon and a tiny robot.", key="tok-gpt2",
                      max_render=800)),
    ("next_token", dict(model=KEY, mode="raw", prompt="The capital of France is")),
    ("step", dict(model=KEY, mode="raw", prompt="Once upon a time", n=1)),
]
INDEX_SIZES = (96, 112, 144, 160, 176, 192, 208, 224)  # chunk sizes the index builder cycles through


class App:
    """`python app.py --offline` from `root`, on a free loopback port, until close(). A start that
    fails (older code gave up under load: "When localhost is not accessible...") is retried, and
    said so."""

    def __init__(self, root: Path, train_minutes: float, attempts: int = 4):
        import httpx

        started = time.perf_counter()
        for attempt in range(1, attempts + 1):
            if self._start(root, train_minutes):
                break
            print(f"  start {attempt} failed: {self.last_line}", flush=True)
        else:
            raise RuntimeError(f"the app in {root} did not start in {attempts} attempts")
        self.start_s, self.attempts = time.perf_counter() - started, attempt
        base = f"http://127.0.0.1:{self.port}"
        info = httpx.get(base + "/gradio_api/info", timeout=60).json()["named_endpoints"]
        self.params = {name.lstrip("/"): [p["parameter_name"] for p in ep["parameters"]]
                       for name, ep in info.items()}
        self.defaults = {name.lstrip("/"): [p.get("parameter_default") for p in ep["parameters"]]
                         for name, ep in info.items()}
        self.http = httpx.Client(base_url=base + "/gradio_api", timeout=900,
                                 limits=httpx.Limits(max_connections=200, max_keepalive_connections=100))
        self.base = base
        deps = httpx.get(base + "/config", timeout=120).json()["dependencies"]
        # the event a page sends as it opens (the deep-link reader, no inputs): it creates the session's state
        self.page_load = next(d["id"] for d in deps if any(t[1] == "load" for t in d["targets"])
                              and not d.get("trigger_after") and not d.get("inputs"))

    def open_page(self, session: str) -> float:
        """What a browser does when a student opens the page: the page itself, then its load event
        (queued, as the browser sends it). Returns its seconds."""
        started = time.perf_counter()
        self.http.get(self.base + "/").raise_for_status()
        r = self.http.post("/queue/join", json=dict(data=[], fn_index=self.page_load, session_hash=session,
                                                    event_data=None, trigger_id=None))
        r.raise_for_status()
        event_id = r.json()["event_id"]
        with self.http.stream("GET", "/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                        return time.perf_counter() - started
        raise RuntimeError("the page's load event did not complete")

    def _start(self, root: Path, train_minutes: float) -> bool:
        import tempfile

        import httpx

        from engine.serving import local

        self.port = local.free_port()
        cmd = [sys.executable, "app.py", "--offline", "--port", str(self.port), "--train-minutes", str(train_minutes)]
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(cmd, cwd=root, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        started = time.perf_counter()
        while self.proc.poll() is None and time.perf_counter() - started < 400:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/", timeout=30).status_code == 200:
                    time.sleep(5)  # a start check that fails ends the process a moment later
                    if self.proc.poll() is None:
                        return True
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().splitlines() if line.strip()]
        self.last_line = lines[-1][:200] if lines else "(no output)"
        self.close()
        return False

    def call(self, session: str, api: str, values: dict) -> float:
        """One call as a student's click: POST, then its event stream until it completes.
        Returns the seconds from the click to the answer; raises on an error answer."""
        data = [values.get(name, default) for name, default in zip(self.params[api], self.defaults[api])]
        started = time.perf_counter()
        r = self.http.post(f"/call/{api}", json=dict(data=data, session_hash=session))
        r.raise_for_status()
        event_id = r.json()["event_id"]
        kind = None
        with self.http.stream("GET", f"/call/{api}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    if kind == "error":
                        raise RuntimeError(f"/{api} answered an error: {line[5:].strip()[:200]}")
                    return time.perf_counter() - started
        raise RuntimeError(f"/{api}: the event stream closed before an answer")

    def close(self) -> None:
        from engine.serving import local

        if getattr(self, "http", None) is not None:
            self.http.close()
        local.stop(self.proc)
        self.log.close()


@dataclass
class Tally:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, api: str, seconds: float | None) -> None:
        with self.lock:
            if seconds is None:
                self.errors[api] = self.errors.get(api, 0) + 1
            else:
                self.seconds.setdefault(api, []).append(seconds)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def example_prompts() -> list[str]:
    """The Decoding lesson's own example prompts (raw format): what a class clicks."""
    from tabs.decoding import EXAMPLES

    return list(dict.fromkeys(prompt for _, prompt, mode, _ in EXAMPLES if mode == "raw"))


def next_prompt(i: int, turn: int, examples: list[str]) -> str:
    """Student i's prompt for a next-token click: one of the lesson's examples, or, one click in four,
    a text of the student's own that no one else sends (so it always costs its own forward)."""
    if turn % 4 == 3:
        return f"Student {i} wonders what comes after the number {turn} in"
    return examples[(i + turn) % len(examples)]


def student(app: App, session: str, i: int, until: float, tally: Tally, stop: threading.Event | None = None) -> None:
    """Student i clicks the cheap calls in turn until `until` (or until `stop` is set)."""
    rng = random.Random(i)
    turn = rng.randrange(len(CHEAP))
    examples = example_prompts()
    time.sleep(rng.uniform(0, THINK_S[1]))  # a class does not click in the same instant
    while time.perf_counter() < until and not (stop is not None and stop.is_set()):
        api, values = CHEAP[turn % len(CHEAP)]
        if api == "next_token":
            values = dict(values, prompt=next_prompt(i, turn, examples))
        turn += 1
        try:
            tally.add(api, app.call(session, api, dict(values, seed=i)))
        except Exception:  # noqa: BLE001 - counted, the student goes on
            tally.add(api, None)
        time.sleep(rng.uniform(*THINK_S))


def background(app: App, until: float, tally: Tally) -> None:
    """One LoRA training (restarted when it ends) and one student building indexes back to back,
    each in a session of its own, until `until` or until the app closes."""

    def loop(name: str, session: str, values_of):
        for k in range(10**6):
            if time.perf_counter() >= until:
                break
            try:
                tally.add(f"{name} (background)", app.call(session, name, values_of(k)))
            except Exception:  # noqa: BLE001 - counted; a refused start is retried a little later
                tally.add(f"{name} (background)", None)
                time.sleep(5)

    threads = [threading.Thread(target=loop, args=("lora_train", uuid.uuid4().hex[:12], lambda k: {}), daemon=True),
               threading.Thread(target=loop, args=("rag_index", uuid.uuid4().hex[:12],
                                                   lambda k: dict(size=INDEX_SIZES[k % len(INDEX_SIZES)],
                                                                  overlap=16)), daemon=True)]
    for t in threads:
        t.start()


def ping(app: App, until: float, tally: Tally) -> None:
    """The server's own responsiveness: a trivial request (the queue's size) once a second."""
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            app.http.get("/queue/status").raise_for_status()
            tally.add("(server ping)", time.perf_counter() - started)
        except Exception:  # noqa: BLE001
            tally.add("(server ping)", None)
        time.sleep(1)


def open_pages(app: App, n: int, tally: Tally) -> list[str]:
    """n students open the page at once (a class at the start of a lesson); each page-open is
    tallied. The clock of the class starts after."""
    sessions = [uuid.uuid4().hex[:12] for _ in range(n)]

    def one(session):
        try:
            tally.add("open the page (before)", app.open_page(session))
        except Exception:  # noqa: BLE001
            tally.add("open the page (before)", None)

    threads = [threading.Thread(target=one, args=(s,), daemon=True) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return sessions


def one_class(app: App, n: int, window_s: float) -> tuple[Tally, str]:
    tally = Tally()
    sessions = open_pages(app, n, tally)
    until = time.perf_counter() + window_s
    threads = [threading.Thread(target=student, args=(app, s, i, until, tally), daemon=True)
               for i, s in enumerate(sessions)]
    for t in threads:
        t.start()
    threading.Thread(target=ping, args=(app, until, tally), daemon=True).start()
    loads = []
    while any(t.is_alive() for t in threads):
        if time.perf_counter() < until:
            loads.append(os.getloadavg()[0])
        time.sleep(2)
    return tally, f"load average (1 min) during the window: {min(loads):.1f}-{max(loads):.1f}" if loads else ""


def report(n: int, tally: Tally, load: str) -> list[Row]:
    print(f"\n{n} students, {load}")
    print(f"  {'endpoint':28} {'calls':>6} {'errors':>6} {'p50 s':>8} {'p95 s':>8}")
    rows = []
    for api in sorted(set(tally.seconds) | set(tally.errors)):
        got = tally.seconds.get(api, [])
        p50, p95 = (statistics.median(got), percentile(got, 95)) if got else (float("nan"),) * 2
        print(f"  {api:28} {len(got):6d} {tally.errors.get(api, 0):6d} {p50:8.2f} {p95:8.2f}")
        if got and not api.startswith(("open", "(")):
            rows.append(Row(f"load: {n} students, /{api} p95 vs p50 (s)", p95, p50, unit="s",
                            note=f"p95 {p95:.2f} s (target <= {TARGET_P95_S:g} s), {len(got)} calls, "
                            f"{tally.errors.get(api, 0)} errors; {load}"))
    return rows


def report_background(tally: Tally) -> None:
    print("\nin the background meanwhile (finished calls; the one running at the end is not counted):")
    for api, got in sorted(tally.seconds.items()):
        print(f"  {api:28} {len(got):6d} calls, {tally.errors.get(api, 0)} errors, "
              f"seconds each: {', '.join(f'{x:.0f}' for x in got)}")


def measure(root: Path = ROOT, students=STUDENTS, window_s: float = WINDOW_S, train_minutes: float = 5) -> list[Row]:
    print(f"# load bench: app from {root}; students {list(students)}, {window_s:g} s each; "
          f"think time {THINK_S[0]:g}-{THINK_S[1]:g} s; uptime: {' '.join(map(str, os.getloadavg()))}", flush=True)
    app = App(root, train_minutes)
    try:
        print(f"  the app answered {app.start_s:.0f} s after it was first started ({app.attempts} start(s))",
              flush=True)
        warm = uuid.uuid4().hex[:12]
        for api, values in CHEAP:  # SmolLM2 is loaded and cached before the clock starts
            app.call(warm, api, values)
        # one training and one index builder run through every class size; closing the app ends them
        busy = Tally()
        background(app, time.perf_counter() + len(students) * (window_s + 120), busy)
        time.sleep(5)  # the training and the index build have started
        rows = []
        for n in students:
            tally, load = one_class(app, n, window_s)
            rows += report(n, tally, load)
        report_background(busy)
        return rows
    finally:
        app.close()


def run(ctx) -> list[Row]:
    return measure()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app.py is started")
    parser.add_argument("--students", type=int, nargs="+", default=list(STUDENTS))
    parser.add_argument("--seconds", type=float, default=WINDOW_S, help="measured seconds per class size")
    parser.add_argument("--train-minutes", type=float, default=5, help="the app's training time cap")
    args = parser.parse_args(argv)
    measure(args.root.resolve(), args.students, args.seconds, args.train_minutes)


if __name__ == "__main__":
    main()
