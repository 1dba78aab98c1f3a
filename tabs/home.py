"""Start here: one card per lesson (what it teaches and a link that opens it with an example),
then which device and dtype are in use, the model cache, and, folded, where every model comes
from (embedded or the Hub)."""
from __future__ import annotations

import html
from urllib.parse import urlencode

import gradio as gr

from engine.core.markdown import md_text
from engine.core.registry import dequantized_from
from tabs import TOPICS, available
from tabs._ui import user_errors

TITLE = "Start here"
STATUS_LOADING = "Reading the device and the model cache..."


def _status_markdown(engine) -> str:
    st = engine.status()
    c = st["cache"]
    mib = 2**20  # every size here in MiB (2**20 bytes)
    lines = [
        f"**Device:** `{st['device']}`  ",
        f"**Model dtype:** `{st['dtype']}` (fp32 on the CPU, fp16/bf16 on a GPU){_dequantized_note(engine)}  ",
        f"**Models from:** {'the Hugging Face Hub' if st['online'] else 'embedded packages'} "
        f"({st['online_reason']})  ",
        f"**Model cache:** {c['used_bytes'] / mib:,.0f} MiB of {c['budget_bytes'] / mib:,.0f} MiB used · "
        f"{c['hits']} hits · {c['misses']} misses · {c['evictions']} evictions",
    ]
    lines += ["", _backends_markdown(engine)]
    if c["entries"]:
        lines.append("")
        lines.append("| loaded model (most recent first) | MiB | load s |\n|---|---:|---:|")
        lines += [f"| {e['key']} | {e['mb']} | {e['load_s']} |" for e in c["entries"]]
    return "\n".join(lines)


def _dequantized_note(engine) -> str:
    """Offline, which float models are 4-bit GGUF files turned back into floats."""
    reg = engine.registry
    names = [f"{reg.get(k).title.split(' (')[0]} ({dequantized_from(reg.get(k))})" for k in reg.keys("causal-lm")
             if not (reg.online and reg.get(k).hub_id) and dequantized_from(reg.get(k)) and reg.usable(k)]
    return ("; offline weights that were quantized: " + ", ".join(names) + ", so their float numbers carry "
            "the quantization's rounding") if names else ""


def _backends_markdown(engine) -> str:
    """Which backend answers each text-generation model, and the operator's server's health."""
    st = engine.status().get("serving")
    if st is None:
        head = ("**Text generation:** in this process (transformers). The operator can point it at a vLLM "
                "server with `--openai-url`.")
    else:
        state = (f"✅ up ({st['ms']:.0f} ms), serving {', '.join(st['models']) or 'nothing'}" if st["up"]
                 else f"❌ down: {md_text(st['error'][:200])}")
        fb = "falls back to in-process while it is down" if engine.serving.fallback else "no fallback: errors while it is down"
        head = (f"**Text generation server:** `{st['url']}` · {state} · {fb}. Attention, hidden states, LoRA, "
                "quantization, beam search and the step-by-step KV-cache view always run in this process.")
    rows = ["| model | answered by | server lists it |", "|---|---|---|"]
    for b in engine.backends():
        listed = "–" if b["listed"] is None else ("yes" if b["listed"] else "no")
        who = f"{b['backend']}{' at ' + b['url'] if b['url'] else ''}"
        if b["up"] is False:  # the server is down: say what a Generate does now, not what it would do
            who = ("in-process for now (the server is down; fallback on)" if b["fallback"]
                   else f"{who}: down, its calls fail until it is back")
        rows.append(f"| {b['key']} | {who} | {listed} |")
    return head + "\n\n" + "\n".join(rows)


def _models_markdown(engine) -> str:
    head = ("| key | task | model | source now | Hub id @ revision (online) | embedded source (offline) "
            "| offline stand-in for | license | MiB |\n|---|---|---|---|---|---|---|---|---:|")
    rows = [f"| `{r['key']}` | {r['task']} | {md_text(r['model'])} | **{r['source_now']}** | {r['hub']} | "
            f"{r['embedded']} | {md_text(r['stands_in_for'])} | {md_text(r['license'])} | {r['size_mib']:,.0f} |"
            for r in engine.registry.table()]
    return "\n".join([head, *rows])


# The first thing to try in each lesson: (what to do, query of the link that opens the tab with
# it). The query uses the deep-link parameters each tab offers (its Share); a tab without them
# opens with its own example already in place.
FIRST_TRY = {
    "tokens": ("See one sentence with accents, a number, Japanese and an emoji cut by several tokenizers.",
               {"text": "naïve café, 2024, 東京 and 🦙 llamas"}),
    "embeddings": ("Find which word 'it' attends to in a sentence about a tired animal.",
                   {"text": "The animal didn't cross the street because it was too tired."}),
    "inside": ("Follow 'The capital of France is' through every block, then open the logit lens to see the "
               "layer where ' Paris' becomes the top guess.", {"prompt": "The capital of France is"}),
    "decoding": ("Look at the next-token probabilities after a prompt, then raise the temperature.",
                 {"prompt": "The capital of France is", "temperature": "1.5"}),
    "inference": ("Press 'Measure each step' and watch decode without the KV cache slow down as the text grows.",
                  {}),
    "pipelines": ("Press Generate under 'Text generation', then open the code that produced it.", {}),
    "retrieval": ("See a page of the Python docs cut into 64-token chunks that share 16 tokens (the stripes), "
                  "then ask a question under Search.", {"size": "64", "overlap": "16"}),
    "pretraining": ("Press Train from scratch and watch the samples under 'The ' turn from random characters "
                    "into words in about a minute.", {"prompt": "The "}),
    "lora": ("Train a small adapter for 20 steps and compare base and adapted continuations of 'Life is'.",
             {"prompt": "Life is", "steps": "20"}),
    "posttraining": ("Ask a base and an instruct model the same question, then see which tokens an SFT loss "
                     "counts.", {"question": "What is the capital of France?"}),
    "diffusion": ("Press Generate, then watch the denoising gallery turn noise into a digit.", {}),
    "evaluation": ("Score a sentence said twice: the second time costs the model far fewer bits.",
                   {"text": "The cat sat on the mat. The cat sat on the mat."}),
    "classroom": ("Teacher: create a room and put it on the projector; students: join with its code.", {}),
    "trust": ("Force a wrong first step ('The capital of Australia is Sydney') and watch whether the model "
              "ever corrects itself.", {"view": "snowball"}),
}

CARDS_CSS = """<style>
#lesson-cards .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(290px, 1fr)); gap: 12px; }
#lesson-cards .card { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 12px 14px;
  background: var(--background-fill-secondary); display: flex; flex-direction: column; gap: 6px; }
#lesson-cards .card h3 { margin: 0; font-size: 1.05em; }
#lesson-cards .card p { margin: 0; }
#lesson-cards .card .try { margin-top: auto; font-weight: 600; }
</style>"""


def lesson_link(tab_id: str) -> str:
    """The relative link that opens a lesson tab with its first example (app.py reads ?tab=...)."""
    return "?" + urlencode({"tab": tab_id, **FIRST_TRY.get(tab_id, ("", {}))[1]})


def lesson_cards() -> list[dict]:
    """One card per lesson in teaching order: number, title, tab id (None: not built yet), what it
    teaches, the first thing to try and its link."""
    ids = {m.TITLE: m.__name__.split(".")[-1] for m in available()}
    cards = []
    for i, (title, what) in enumerate(TOPICS, 1):
        tab_id = ids.get(title)
        first = FIRST_TRY.get(tab_id, ("", {}))[0] if tab_id else ""
        cards.append(dict(number=i, title=title, tab=tab_id, teaches=what, first_try=first,
                          link=lesson_link(tab_id) if tab_id else None))
    return cards


def _cards_html() -> str:
    parts = []
    for c in lesson_cards():
        e = html.escape
        if c["link"]:
            action = (f'<p class="try">Try first: <a href="{e(c["link"])}" target="_self" '
                      f'data-tab="{e(c["tab"])}">{e(c["first_try"])} →</a></p>')
        else:
            action = '<p class="try"><em>coming</em></p>'
        parts.append(f'<div class="card" data-tab="{e(c["tab"] or "")}"><h3>{c["number"]}. {e(c["title"])}</h3>'
                     f'<p>{e(c["teaches"])}</p>{action}</div>')
    return CARDS_CSS + '<div class="cards">' + "".join(parts) + "</div>"


def build(engine) -> None:
    gr.Markdown(
        "Learn how language models and diffusion models work by touching them. Each tab is one "
        "lesson, in teaching order: each card says what it teaches, and its link opens it with a first "
        "example. Models load on first use (you will see a progress message) and stay cached for "
        "everyone after that."
    )
    gr.HTML(_cards_html(), elem_id="lesson-cards")
    with gr.Row():
        # Filled when the page loads (below): the device is picked on first use, not at the app's start.
        status = gr.Markdown(STATUS_LOADING, elem_id="engine-status")
        refresh = gr.Button("Refresh status", size="sm", scale=0)
    with gr.Accordion("Models: where each one comes from here", open=False, elem_id="model-table-fold"):
        table = gr.Markdown(_models_markdown(engine), elem_id="model-table")

    # Register listeners
    def refresh_status():
        return _status_markdown(engine), _models_markdown(engine)

    refresh.click(user_errors(refresh_status), outputs=[status, table], api_name="engine_status")
    # The device, the cache and the server's health as of this page load, not as of the app's start.
    from gradio.context import Context

    Context.root_block.load(user_errors(refresh_status), outputs=[status, table], api_name=False,
                            queue=False, show_progress="hidden")
