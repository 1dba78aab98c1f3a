"""Trainings that finish (issue 39): each default training run once through its engine function,
on the machine as it is, under the server's default cap. A row compares the training time a
run took (from its clock's start to its last step) with the time it promised after its first
steps were timed (the status line's "up to": ratio <= 1, it kept its promise; the "about" estimate's
ratio is in the note), and its note gives the steps made against
the steps requested, the measured pace, the whole call (model load and held-out scoring
included) and the load average before and after.

    python -m bench training_fit                     # all five defaults
    BENCH_TRAININGS=lora,dpo python -m bench training_fit  # some of them
    BENCH_SESSIONS=8 python -m bench training_fit    # while 8 other sessions make model calls

With BENCH_SESSIONS=N, the app runs in its own process (bench_load.App) and N simulated students
click its cheap model calls (tokenize, next token, Step; bench_load.student, 1-3 s between clicks)
for as long as the trainings run; their p50/p95 are printed at the end.

Nothing here is compared with a raw library: the "raw" column is the run's own promise."""
from __future__ import annotations

import math
import os
import time

from bench.run import Row

LESSONS = ("lora", "sft", "reward", "dpo", "teach")


def _load() -> str:
    try:
        return "%.1f/%.1f/%.1f" % os.getloadavg()
    except OSError:
        return "n/a"


def _runs(engine) -> dict:
    """lesson -> a function that starts its default training and returns its update iterator."""
    from engine.diffusion import teach
    from engine.training import lora, preference, sft

    return {
        "lora": lambda: lora.train(engine, lora.LoraSession(), lora.load_quotes(), lora.LoraSettings()),
        "sft": lambda: sft.train(engine, lora.LoraSession(), sft.load_train(), sft.SftSettings()),
        "reward": lambda: preference.train_reward(engine, preference.PreferenceSession(), preference.load_pairs(),
                                                  preference.RewardSettings()),
        "dpo": lambda: preference.train_dpo(engine, preference.PreferenceSession(), preference.load_pairs(),
                                            preference.DPOSettings()),
        "teach": lambda: teach.train(engine, teach.TeachSession(), teach.load_symbol_set("star"), "zorb",
                                     teach.TeachSettings()),
    }


def measure(start_run) -> dict:
    """Run one training to its end: the promise made at its first fitted update, what it did."""
    t0 = time.perf_counter()
    promised = first_fit = estimate = None
    last = None
    for item in start_run():
        u = item[0] if isinstance(item, tuple) else item
        last = u
        if promised is None and u.pace is not None and u.pace.fitted:
            promised, first_fit = u.seconds + (0.0 if u.done else u.pace.up_to), u
            estimate = u.seconds + (0.0 if u.done else u.pace.left)
            print(f"    after step {u.step}: {u.pace.line(u.step, u.done)}", flush=True)
    call = time.perf_counter() - t0
    if promised is None and last is not None:  # never fitted (a run of 1-2 steps): its promise is the cap
        promised = last.pace.budget if last.pace is not None else math.nan
    return dict(last=last, promised=promised, first_fit=first_fit, call=call, estimate=estimate or math.nan)


class OtherSessions:
    """N students clicking the app's cheap model calls (in the app's own process) until close()."""

    def __init__(self, n: int):
        import threading
        import uuid

        from bench import bench_load as L

        self.L, self.stop, self.tally = L, threading.Event(), L.Tally()
        self.app = L.App(L.ROOT, 5)
        warm = uuid.uuid4().hex[:12]
        for api, values in L.CHEAP:  # SmolLM2 loaded in the app before the trainings start
            self.app.call(warm, api, values)
        self.threads = [threading.Thread(target=L.student, args=(self.app, uuid.uuid4().hex[:12], i, math.inf,
                                                                 self.tally, self.stop), daemon=True)
                        for i in range(n)]
        for t in self.threads:
            t.start()
        print(f"  {n} other sessions clicking tokenize / next token / Step on the app", flush=True)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        for api, got in sorted(self.tally.seconds.items()):
            print(f"  other sessions' {api}: {len(got)} calls, {self.tally.errors.get(api, 0)} errors, p50 "
                  f"{self.L.percentile(got, 50):.2f} s, p95 {self.L.percentile(got, 95):.2f} s", flush=True)
        self.app.close()


def run(ctx) -> list[Row]:
    sessions = int(os.environ.get("BENCH_SESSIONS", "0") or 0)
    others = OtherSessions(sessions) if sessions > 0 else None
    try:
        return _run_all(ctx)
    finally:
        if others is not None:
            others.close()


def _run_all(ctx) -> list[Row]:
    from engine.training import runner

    chosen = [x.strip() for x in os.environ.get("BENCH_TRAININGS", ",".join(LESSONS)).split(",") if x.strip()]
    runs = _runs(ctx.engine)
    cap = runner.cap_seconds(ctx.engine)
    rows = []
    for name in chosen:
        before = _load()
        print(f"  {name}: default run, cap {runner.duration(cap)}, load {before}", flush=True)
        r = measure(runs[name])
        u, after = r["last"], _load()
        pace = u.pace
        kind = ("refused" if u.refused else "capped" if u.capped else "stopped" if u.stopped else "done")
        per = f"{pace.sec_per_step:.1f} s/step" if pace is not None else "no pace"
        batch = f" at batch {pace.batch} of {pace.requested_batch}" if pace and pace.batch != pace.requested_batch else ""
        within = "in" if u.seconds <= pace.budget else "over"
        note = (f"{kind}: {u.step}/{pace.requested if pace else u.max_steps} steps{batch} (fitted {u.max_steps}), "
                f"{u.seconds / r['estimate']:.2f}x the estimate ('about'), "
                f"{per}, {within} the cap, call {r['call']:.0f} s, load {before} -> {after}")
        print(f"    {note}; {u.message}", flush=True)
        rows.append(Row(f"{name} default: training time / promised", u.seconds, r["promised"], target=1.0,
                        note=note))
    return rows
