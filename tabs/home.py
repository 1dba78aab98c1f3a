"""Start here: what each topic teaches, which device and dtype are in use, the model cache,
and where every model comes from (embedded or the Hub)."""
from __future__ import annotations

import gradio as gr

from tabs import TOPICS, available
from tabs._ui import user_errors

TITLE = "Start here"


def _status_markdown(engine) -> str:
    st = engine.status()
    c = st["cache"]
    mb = 2**20
    lines = [
        f"**Device:** `{st['device']}`  ",
        f"**Model dtype:** `{st['dtype']}` (fp32 on the CPU, fp16/bf16 on a GPU)  ",
        f"**Models from:** {'the Hugging Face Hub' if st['online'] else 'embedded packages'} "
        f"({st['online_reason']})  ",
        f"**Model cache:** {c['used_bytes'] / mb:,.0f} MB of {c['budget_bytes'] / mb:,.0f} MB used · "
        f"{c['hits']} hits · {c['misses']} misses · {c['evictions']} evictions",
    ]
    if c["entries"]:
        lines.append("")
        lines.append("| loaded model (most recent first) | MB | load s |\n|---|---:|---:|")
        lines += [f"| {e['key']} | {e['mb']} | {e['load_s']} |" for e in c["entries"]]
    return "\n".join(lines)


def _models_markdown(engine) -> str:
    head = ("| key | task | model | source now | Hub id @ revision (online) | embedded source (offline) "
            "| offline stand-in for | license | MB |\n|---|---|---|---|---|---|---|---|---:|")
    rows = [f"| `{r['key']}` | {r['task']} | {r['model']} | **{r['source_now']}** | {r['hub']} | "
            f"{r['embedded']} | {r['stands_in_for']} | {r['license']} | {r['size_mb']:g} |"
            for r in engine.registry.table()]
    return "\n".join([head, *rows])


def _topics_markdown() -> str:
    present = {m.TITLE for m in available()}
    rows = ["| # | Tab | What it teaches |", "|---|---|---|"]
    for i, (name, what) in enumerate(TOPICS, 1):
        mark = name if name in present else f"{name} *(coming)*"
        rows.append(f"| {i} | {mark} | {what} |")
    return "\n".join(rows)


def build(engine) -> None:
    gr.Markdown(
        "Learn how language models and diffusion models work by touching them. Each tab is one "
        "lesson, in teaching order. Models load on first use (you will see a progress message) and "
        "stay cached for everyone after that."
    )
    gr.Markdown(_topics_markdown())
    with gr.Row():
        status = gr.Markdown(_status_markdown(engine), elem_id="engine-status")
        refresh = gr.Button("Refresh status", size="sm", scale=0)
    gr.Markdown("### Models: where each one comes from here")
    table = gr.Markdown(_models_markdown(engine), elem_id="model-table")

    # Register listeners
    def refresh_status():
        return _status_markdown(engine), _models_markdown(engine)

    refresh.click(user_errors(refresh_status), outputs=[status, table], api_name="engine_status")
