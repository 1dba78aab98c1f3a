"""Serving rows: a class pressing Generate at once, through the whole app (gradio_client), with
text generation served by vLLM's CPU build (scripts/serve_vllm.sh, 1 GiB KV cache) vs in-process;
and one request's latency through the app vs calling the server directly.

Starts one vLLM server and two apps on loopback, and stops them all at the end. Needs
.venv-vllm (bash scripts/install.sh --serve); without it the module returns no rows."""
from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

from bench.run import ROOT, Row, interleaved

KEY = "smollm2-135m-instruct"
CLASS = 32  # students pressing Generate at once
TOKENS = 16


def _start_server():
    from engine.serving import local

    return local.start(eager=os.environ.get("VLLM_EAGER", "1"))


def _stop(proc) -> None:
    from engine.serving import local

    local.stop(proc)


def _launch(engine):
    import app
    from engine.serving import local
    from gradio_client import Client

    demo = app.build_demo(engine)
    port = local.free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.launch_kwargs())
    return demo, Client(f"http://127.0.0.1:{port}/", verbose=False)


def _call(client, i: int, tokens: int = TOKENS) -> int:
    """One student's Generate (sampling, own seed); returns the tokens it generated."""
    _, stats, _ = client.predict(KEY, "raw", f"Student {i} writes a story about a dragon:", 0.8, 50, 0.9, 0.0, 1.0, 1.0,
                                 True, i, tokens, 1, "", "probability", api_name="/generate")
    return int(re.search(r"\*\*(\d+) tokens\*\*", stats).group(1))


def _class(client) -> tuple[float, int]:
    t = time.perf_counter()
    with ThreadPoolExecutor(CLASS) as pool:
        n = sum(pool.map(lambda i: _call(client, i), range(CLASS)))
    return time.perf_counter() - t, n


def run(ctx) -> list[Row]:
    if not (ROOT / ".venv-vllm" / "bin" / "python").exists():
        print("bench_serving: no .venv-vllm (bash scripts/install.sh --serve): skipped")
        return []
    from engine import Engine
    from engine.serving import ServingConfig, complete, route

    local = ctx.engine
    local.load(KEY)
    proc, url, startup = _start_server()
    demos = []
    try:
        served = Engine(device=local.device.kind, offline=True, serving=ServingConfig(url=url))
        served.cache = local.cache
        demo_s, client_s = _launch(served)
        demo_l, client_l = _launch(local)
        demos += [demo_s, demo_l]
        _call(client_s, 0)  # warm both paths
        _call(client_l, 0)
        s_sec, s_tok = _class(client_s)
        l_sec, l_tok = _class(client_l)
        rows = [Row(f"{CLASS} concurrent Generate ({TOKENS} tokens) through the app: vLLM server vs in-process",
                    s_sec, l_sec, target=1 / 8, note=f"{s_tok / s_sec:.1f} vs {l_tok / l_sec:.1f} tokens/s in all "
                    f"(x{(s_tok / s_sec) / (l_tok / l_sec):.1f}); server started in {startup:.0f} s")]

        tm = served.load(KEY)
        ids = tm.tokenizer("Student 1 writes a story about a dragon:", return_tensors="pt").input_ids[0].tolist()

        def direct():
            complete(route(tm), ids, max_tokens=TOKENS, temperature=0.8, top_k=50, top_p=0.9, seed=1, logprobs=20)

        app_t, direct_t = interleaved(lambda: _call(client_s, 1), direct, repeat=5)
        rows.append(Row(f"one Generate ({TOKENS} tokens): through the app vs calling the server directly",
                        app_t, direct_t, target=1.2))
        return rows
    finally:
        for d in demos:
            d.close()
        _stop(proc)
