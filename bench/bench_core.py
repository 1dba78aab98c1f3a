"""Foundation rows: app start vs a bare Blocks app; cached model hit vs cold load; memory
held by loaded models vs the cache budget."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

from bench.run import ROOT, Row, best_of
from tabs import ORDER

# The bare app has as many tabs as ours, each with one Markdown: what any Gradio app of that shape pays.
BARE = ("import gradio as gr\nwith gr.Blocks() as d:\n    with gr.Tabs():\n"
        "        for n in range(%d):\n            with gr.Tab(str(n)): gr.Markdown(str(n))\n"
        "d.launch(server_port={port})\n" % len(ORDER))
APP = "import sys; sys.argv=['app.py','--offline','--port','{port}']\nimport app; app.main()\n"


def _time_to_200(code: str, port: int, timeout: float = 120.0) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code.format(port=port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"no HTTP 200 on port {port} within {timeout} s")
    finally:
        proc.terminate()
        proc.wait(10)


def run(ctx) -> list[Row]:
    from tests.conftest import free_port

    rows = [Row("app start: launch to first HTTP 200 vs bare gr.Blocks",
                _time_to_200(APP, free_port()), _time_to_200(BARE, free_port()), target=1.5,
                note=f"subprocess, import included (the app imports torch and draws its empty charts after "
                     f"its page answers); bare app: {len(ORDER)} tabs of one Markdown")]
    from engine import Engine
    from engine.core.models import load_causal_lm

    engine = ctx.engine
    key = "smollm2-135m-instruct"
    source = engine.registry.resolve(key)
    engine.load(key)  # make sure the float copy exists so the cold load is the steady-state one
    cold = best_of(lambda: load_causal_lm(source, engine.device), repeat=1)
    hit = best_of(lambda: engine.load(key), repeat=5)
    rows.append(Row("SmolLM2: cached hit vs cold load (float copy)", hit, cold, target=0.01))
    used = engine.cache.used_bytes
    rows.append(Row("model memory held vs cache budget", used, engine.cache.budget_bytes, target=1.0, unit="B",
                    note=f"{len(engine.cache.stats()['entries'])} model(s) loaded"))
    fresh = Engine(device=engine.device.kind, offline=True, cache_bytes=200 * 2**20)
    fresh.load("minilm-l6")
    rows.append(Row("MiniLM in a 200 MB cache: held vs budget", fresh.cache.used_bytes,
                    fresh.cache.budget_bytes, target=1.0, unit="B"))
    return rows
