"""Serving rows: a class pressing Generate at once, through the whole app, with text generation
served by vLLM's CPU build (scripts/serve_vllm.sh, 1 GiB KV cache) vs in-process; and one
request's latency through the app vs calling the server directly; and the same class straight at
the server with the app's sampler plugin (scripts/vllm_plugin: top-p on the top-k logits) vs vLLM's
own sampler (VLLM_PLAYGROUND_FAST_TOP_P=0, a whole-vocabulary sort per step).

Deployed as a class uses it: vLLM and each app are their own processes (`python app.py
--offline [--openai-url ...]`), and every student is a browser session. The students' load is
made by a small client that speaks the browser's protocol (the page-load event once per session,
then queue/join + the session's event stream), so that the load generator, which shares this
machine's cores with the app and the server, stays light: gradio_client opens a new HTTP client
per request and cost ~45 ms of CPU per call here, more than the app itself (~25 ms). Every
student's page is loaded before the clock starts (that creates the session's state, ~0.2 s each),
as a class opens the page before it presses Generate.

vLLM runs compiled by default, as scripts/serve_vllm.sh does for an operator (VLLM_EAGER=1: eager,
as the tests run it; it starts faster). Needs .venv-vllm (bash scripts/install.sh --serve);
without it the module returns no rows. Starts one vLLM server and two apps on loopback and
stops them all at the end."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.run import ROOT, Row, interleaved

KEY = "smollm2-135m-instruct"
CLASS = 32  # students pressing Generate at once
TOKENS = 16  # a short answer; the latency row uses it too
# and the Decoding tab's own default (max_new_tokens 40), what a class pressing Generate as it
# stands asks for; read from the engine so the row follows the tab


class Student:
    """One browser session on one app: what the page does, over one shared connection pool."""

    def __init__(self, app: "App"):
        self.app = app
        self.session = uuid.uuid4().hex[:12]

    def open_page(self) -> None:
        """The page-load events the browser sends (deep-link handling; it creates the session)."""
        for fn in self.app.loads:
            r = self.app.http.post("/run/predict", json=dict(data=[], fn_index=fn, session_hash=self.session,
                                                              event_data=None, trigger_id=0))
            r.raise_for_status()

    def generate(self, i: int, tokens: int = TOKENS) -> int:
        """One Generate click (sampling, own seed); returns the tokens it generated."""
        data = [KEY, "raw", f"Student {i} writes a story about a dragon:", 0.8, 50, 0.9, 0.0, 1.0, 1.0,
                True, i, tokens, 1, "", "probability"]
        http = self.app.http
        r = http.post("/queue/join", json=dict(data=data, fn_index=self.app.fn, trigger_id=self.app.trigger,
                                               session_hash=self.session, event_data=None))
        r.raise_for_status()
        event = r.json()["event_id"]
        with http.stream("GET", "/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") == event and msg.get("msg") == "process_completed":
                    if not msg.get("success"):
                        raise RuntimeError(f"Generate failed: {msg.get('output')}")
                    stats = msg["output"]["data"][1]
                    return int(re.search(r"\*\*(\d+) tokens\*\*", stats).group(1))
        raise RuntimeError("the app closed the event stream before Generate completed")


class App:
    """`python app.py --offline` in its own process on a free loopback port."""

    def __init__(self, openai_url: str = ""):
        import httpx

        from engine.serving import local

        port = local.free_port()
        cmd = [sys.executable, "app.py", "--offline", "--port", str(port)]
        if openai_url:
            cmd += ["--openai-url", openai_url]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        root = f"http://127.0.0.1:{port}"
        t = time.perf_counter()
        while True:
            try:
                config = httpx.get(f"{root}/config", timeout=5).json()
                break
            except (httpx.HTTPError, ValueError):
                if self.proc.poll() is not None or time.perf_counter() - t > 300:
                    self.close()
                    raise RuntimeError(f"the app did not start: {' '.join(cmd)}") from None
                time.sleep(1)
        deps = config["dependencies"]
        gen = next(d for d in deps if d.get("api_name") == "generate")
        self.fn, self.trigger = gen["id"], gen["targets"][0][0]
        self.loads = [d["id"] for d in deps if any(t[1] == "load" for t in d["targets"])
                      and not d.get("trigger_after") and d.get("queue") is False]
        self.http = httpx.Client(base_url=f"{root}{config.get('api_prefix', '/gradio_api')}", timeout=600,
                                 limits=httpx.Limits(max_connections=4 * CLASS, max_keepalive_connections=2 * CLASS))

    def class_of(self, n: int) -> list[Student]:
        students = [Student(self) for _ in range(n)]
        for s in students:
            s.open_page()
        return students

    def close(self) -> None:
        from engine.serving import local

        if getattr(self, "http", None) is not None:
            self.http.close()
        local.stop(self.proc)


def _class(students: list[Student], tokens: int) -> tuple[float, int]:
    t = time.perf_counter()
    with ThreadPoolExecutor(len(students)) as pool:
        n = sum(pool.map(lambda i: students[i].generate(i, tokens), range(len(students))))
    return time.perf_counter() - t, n


def run(ctx) -> list[Row]:
    if not (ROOT / ".venv-vllm" / "bin" / "python").exists():
        print("bench_serving: no .venv-vllm (bash scripts/install.sh --serve): skipped")
        return []
    from engine.core.settings import make
    from engine.decoding.generation import DecodingSettings
    from engine.serving import Client, Route, ServingConfig, complete, local

    eager = os.environ.get("VLLM_EAGER", "")
    proc, url, startup = local.start(eager=eager, timeout_s=600)
    apps: list[App] = []
    try:
        apps.append(App(url))
        apps.append(App())
        served, inproc = apps
        class_s, class_l = served.class_of(CLASS), inproc.class_of(CLASS)
        class_s[0].generate(0)  # warm both paths (the in-process app loads its model here)
        class_l[0].generate(0)
        mode = "eager" if eager else "compiled"
        rows = []
        for tokens in (TOKENS, make(DecodingSettings).max_new_tokens):
            s_sec, s_tok = _class(class_s, tokens)
            l_sec, l_tok = _class(class_l, tokens)
            rows.append(Row(f"{CLASS} concurrent Generate ({tokens} tokens) through the app: vLLM server ({mode}) "
                            "vs in-process", s_sec, l_sec, target=1 / 8,
                            note=f"{s_tok / s_sec:.1f} vs {l_tok / l_sec:.1f} tokens/s in all "
                            f"(x{(s_tok / s_sec) / (l_tok / l_sec):.1f}); server started in {startup:.0f} s"))
        inproc.close()  # the latency row runs on a machine with only the server and one app

        tok = ctx.engine.load(KEY).tokenizer
        ids = tok("Student 1 writes a story about a dragon:", return_tensors="pt").input_ids[0].tolist()
        direct_route = Route(Client(ServingConfig(url=url)), KEY)

        def direct():
            complete(direct_route, ids, max_tokens=TOKENS, temperature=0.8, top_k=50, top_p=0.9, seed=1, logprobs=20)

        app_t, direct_t = interleaved(lambda: class_s[1].generate(1), direct, repeat=5)
        rows.append(Row(f"one Generate ({TOKENS} tokens): through the app vs calling the server directly",
                        app_t, direct_t, target=1.2))
        tokens = make(DecodingSettings).max_new_tokens
        fast = _direct_class(tok, url, tokens)
    finally:
        for a in apps:
            a.close()
        local.stop(proc)
    # the same class straight at the server, with vLLM's own top-p (a whole-vocabulary sort per step)
    os.environ["VLLM_PLAYGROUND_FAST_TOP_P"] = "0"
    try:
        proc, url, _ = local.start(eager=eager, timeout_s=600)
    finally:
        os.environ.pop("VLLM_PLAYGROUND_FAST_TOP_P")
    try:
        own = _direct_class(tok, url, tokens)
    finally:
        local.stop(proc)
    rows.append(Row(f"{CLASS} direct requests ({tokens} tokens, top_k 50, top_p 0.9): vLLM with the app's sampler "
                    "plugin vs vLLM's own", fast[0], own[0], note=f"{fast[1] / fast[0]:.1f} vs {own[1] / own[0]:.1f} "
                    "tokens/s"))
    return rows


def _direct_class(tok, url: str, tokens: int) -> tuple[float, int]:
    """(seconds, tokens) for CLASS concurrent completions sent straight to the server, the Generate
    tab's knobs and its 20 logprobs per token."""
    from engine.serving import Client, Route, ServingConfig, complete

    r = Route(Client(ServingConfig(url=url)), KEY)

    def one(i):
        ids = tok(f"Student {i} writes a story about a dragon:", return_tensors="pt").input_ids[0].tolist()
        out = complete(r, ids, max_tokens=tokens, temperature=0.8, top_k=50, top_p=0.9, seed=i, logprobs=20)
        return out["usage"]["completion_tokens"]

    one(0)
    t = time.perf_counter()
    with ThreadPoolExecutor(CLASS) as pool:
        n = sum(pool.map(one, range(CLASS)))
    return time.perf_counter() - t, n
