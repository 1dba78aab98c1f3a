"""Decoding rows: our generation loop vs transformers' model.generate with the same settings
and tokens; the step path (one cached forward per token, plus the knob view) vs one generate
call; tokens per second in the notes. Greedy/sampled tokens are checked equal, not assumed.
And a Step click through the whole app (its own process, the browser's protocol) vs one raw
cached forward of the same model here."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import torch

from bench.run import ROOT, Row

PROMPT = "Once upon a time, in a small village by the sea,"
N = 32


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _interleaved(ours, raw, repeat: int):
    """Best of `repeat` for each, alternating so that load on a shared machine hits both."""
    best_o = best_r = float("inf")
    out_o = out_r = None
    for _ in range(repeat):
        t, out_o = _timed(ours)
        best_o = min(best_o, t)
        t, out_r = _timed(raw)
        best_r = min(best_r, t)
    return best_o, best_r, out_o, out_r


def run(ctx, repeat: int = 3) -> list[Row]:
    from engine.core.settings import make
    from engine.decoding import generation
    tm = ctx.engine.load("smollm2-135m-instruct")
    rows = []

    def raw_generate(settings, n):
        def go():
            ids = tm.tokenizer(PROMPT, return_tensors="pt").input_ids.to(tm.device)
            if settings.do_sample:
                torch.manual_seed(settings.seed)
            with torch.inference_mode():
                out = tm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=settings.do_sample,
                                        temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p,
                                        repetition_penalty=settings.repetition_penalty, max_new_tokens=N,
                                        num_return_sequences=n)
            return out[:, ids.shape[1]:].tolist()
        return go

    # 1. sampling, one sequence, same seed: the same tokens from both
    s = make(generation.DecodingSettings, do_sample=True, temperature=0.8, top_k=50, top_p=0.9, max_new_tokens=N,
             num_return_sequences=1, seed=1234)
    ours_t, raw_t, res, raw_ids = _interleaved(lambda: generation.generate(tm, PROMPT, s), raw_generate(s, 1), repeat)
    same = [[t.id for t in q.tokens] for q in res.sequences] == raw_ids
    ntok = len(res.sequences[0].tokens)
    rows.append(Row(f"generate {ntok} tokens (sampling, seed): engine vs model.generate", ours_t, raw_t, target=1.1,
                    note=f"same tokens: {'yes' if same else 'NO'}; {ntok / ours_t:.1f} vs {ntok / raw_t:.1f} tok/s"))

    # 2. four sequences side by side (batched) vs num_return_sequences=4
    s4 = make(generation.DecodingSettings, do_sample=True, temperature=0.8, top_k=50, top_p=0.9, max_new_tokens=N,
              num_return_sequences=4, seed=99)
    ours_t, raw_t, res, raw_ids = _interleaved(lambda: generation.generate(tm, PROMPT, s4), raw_generate(s4, 4),
                                               max(1, repeat - 1))
    same = [[t.id for t in q.tokens] for q in res.sequences] == raw_ids
    total = sum(len(q.tokens) for q in res.sequences)
    rows.append(Row("generate 4 sequences side by side vs num_return_sequences=4", ours_t, raw_t, target=1.1,
                    note=f"same tokens: {'yes' if same else 'NO (EOS in a row)'}; {total / ours_t:.1f} vs "
                         f"{total / raw_t:.1f} tok/s in all"))

    # 3. the step path: 32 steps, each one cached forward + the six-stage view, vs one generate of 32
    g = make(generation.DecodingSettings, do_sample=False, max_new_tokens=N, num_return_sequences=1)

    def steps():
        session = generation.StepSession(tm, PROMPT, "raw")
        for _ in range(N):
            session.step(g)
            session.view(g)
        return session

    ours_t, raw_t, session, raw_ids = _interleaved(steps, raw_generate(g, 1), repeat)
    same = session.ids[session.prompt_len:].tolist() == raw_ids[0]
    single = max(session.forward_tokens[1:])
    rows.append(Row(f"{N} steps (step path + knob view) vs one generate of {N}", ours_t, raw_t, target=1.5,
                    note=f"same tokens: {'yes' if same else 'NO'}; each step read {single} token; "
                         f"{N / ours_t:.1f} steps/s"))

    # 4. what the browser adds on top of a step: the plotly figure (no raw counterpart; vs the step itself)
    from engine.decoding.plots import distribution_figure

    view = session.view(make(generation.DecodingSettings, top_p=0.5))
    fig_t = min(_timed(lambda: distribution_figure(view))[0] for _ in range(repeat))
    step_t = min(_timed(lambda: session.step(g))[0] for _ in range(repeat))
    rows.append(Row("distribution figure (6 panels) vs one cached step", fig_t, step_t, target=None,
                    note="plot cost per Step click in the browser"))
    run_beam(ctx, rows, repeat)
    run_app_step(ctx, rows)
    return rows


def run_beam(ctx, rows: list[Row], repeat: int = 3) -> None:
    """Beam search through the engine (every step's hypotheses kept) vs model.generate(num_beams=4)."""
    from engine.core.settings import make
    from engine.decoding import beam
    from engine.decoding import generation
    tm = ctx.engine.load("smollm2-135m-instruct")
    s = make(beam.BeamSettings, num_beams=4, max_new_tokens=N)
    _, ids = generation.encode(tm, PROMPT, "raw", reserve=N)

    def raw():
        with torch.inference_mode():
            out = tm.model.generate(ids, attention_mask=torch.ones_like(ids), **beam.generate_kwargs(s))
        return out[0, ids.shape[1]:].tolist()

    ours_t, raw_t, res, raw_ids = _interleaved(lambda: beam.beam_search(tm, PROMPT, s), raw, repeat)
    same = res.best.ids == raw_ids[:len(res.best.ids)] and len(raw_ids) == len(res.best.ids)
    rows.append(Row(f"beam search, 4 beams, {N} tokens: engine (all steps kept) vs generate(num_beams=4)", ours_t,
                    raw_t, target=1.2, note=f"same best beam: {'yes' if same else 'NO'}; {len(res.steps)} steps"))


class _App:
    """`python app.py --offline` in its own process on a free loopback port, driven as the browser
    drives it: the page-load events once (they open the session), then per click queue/join and
    the session's event stream until the click's last message. gradio_client is not used: its own
    threads and polling cost ~60 ms a call here, more than the app's queue (~10 ms)."""

    def __init__(self):
        import httpx

        from engine.serving import local

        port = local.free_port()
        self.proc = subprocess.Popen([sys.executable, "app.py", "--offline", "--port", str(port)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        root, t = f"http://127.0.0.1:{port}", time.perf_counter()
        while True:
            try:
                config = httpx.get(f"{root}/config", timeout=5).json()
                break
            except (httpx.HTTPError, ValueError):
                if self.proc.poll() is not None or time.perf_counter() - t > 300:
                    self.close()
                    raise RuntimeError("bench_decoding: the app did not start") from None
                time.sleep(1)
        self.deps = {d.get("api_name"): d for d in config["dependencies"]}
        self.http = httpx.Client(base_url=f"{root}{config.get('api_prefix', '/gradio_api')}", timeout=600)
        self.session = uuid.uuid4().hex[:12]
        for d in config["dependencies"]:
            if any(t[1] == "load" for t in d["targets"]) and not d.get("trigger_after") and d.get("queue") is False:
                self.http.post("/run/predict", json=dict(data=[], fn_index=d["id"], session_hash=self.session,
                                                          event_data=None, trigger_id=0)).raise_for_status()

    def click(self, api_name: str, data: list) -> list:
        """One event; returns its output data once the click is complete (the chart is in it)."""
        dep = self.deps[api_name]
        r = self.http.post("/queue/join", json=dict(data=data, fn_index=dep["id"], trigger_id=dep["targets"][0][0],
                                                     session_hash=self.session, event_data=None))
        r.raise_for_status()
        event = r.json()["event_id"]
        with self.http.stream("GET", "/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                msg = json.loads(line[5:]) if line.startswith("data:") else {}
                if msg.get("event_id") == event and msg.get("msg") == "process_completed":
                    if not msg.get("success"):
                        raise RuntimeError(f"{api_name} failed: {msg.get('output')}")
                    return msg["output"]["data"]
        raise RuntimeError(f"the app closed the event stream before {api_name} completed")

    def close(self) -> None:
        from engine.serving import local

        if getattr(self, "http", None) is not None:
            self.http.close()
        local.stop(self.proc)


def run_app_step(ctx, rows: list[Row], clicks: int = 12) -> None:
    """Step clicks (one token each, greedy) from click to the chart's data back, vs a raw
    transformers forward of one token over a DynamicCache here, alternated click by click. The
    browser's drawing of the chart is not in it: Gradio mounts a new Plotly chart for every new
    figure, and its page work per event grows with the number of components in the app."""
    from transformers import DynamicCache

    tm = ctx.engine.load("smollm2-135m-instruct")
    knobs = [1.0, 50, 1.0, 0.0, 1.0, 1.0, False, 7]  # temperature .. seed: greedy
    app = _App()
    try:
        app.click("next_token", [tm.key, "raw", PROMPT, *knobs])  # loads the model there; the step session starts
        ids = tm.tokenizer(PROMPT, return_tensors="pt").input_ids.to(tm.device)
        cache = DynamicCache(config=tm.model.config)
        with torch.inference_mode():
            state = [tm.model(ids, cache=cache, use_cache=True)]

        def raw():
            with torch.inference_mode():
                nxt = state[0].logits[:, -1].argmax(-1, keepdim=True)  # (1, 1)
                state[0] = tm.model(nxt, cache=cache, use_cache=True)

        ours, theirs, out = [], [], None
        # raw runs in a worker thread, as the app's listeners do: on this busy 2-core machine a forward
        # from the main thread was 2-4x slower than the same forward from a thread (OpenMP contention).
        # A pause before each timing lets the other process's OpenMP threads stop spinning first.
        with ThreadPoolExecutor(1) as worker:
            for _ in range(clicks):
                time.sleep(0.3)
                t = time.perf_counter()
                out = app.click("step", [tm.key, "raw", PROMPT, *knobs, 1, None])
                ours.append(time.perf_counter() - t)
                time.sleep(0.3)
                t = time.perf_counter()
                worker.submit(raw).result()
                theirs.append(time.perf_counter() - t)
    finally:
        app.close()
    stepped = out[3].count("class='dec-tok'")
    med = sorted(ours)[len(ours) // 2], sorted(theirs)[len(theirs) // 2]
    rows.append(Row("Step click through the app (queue, chart, round trip) vs one raw cached forward", min(ours),
                    min(theirs), target=1.5, note=f"{stepped} of {clicks} tokens stepped; medians "
                    f"{med[0] * 1000:.0f} vs {med[1] * 1000:.0f} ms (x{med[0] / med[1]:.2f}); best of {clicks}"))
