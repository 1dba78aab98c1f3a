"""Inference optimization: why serving is fast. Prefill vs decode and the KV cache, batching,
utilization, quantization, speculative decoding and sparsity, each measured live on the machine the
app runs on. The engine (engine/inference/) does the model work and the timing; this file lays out
and wires."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from engine import inference
from engine.inference import plots
from tabs._ui import HEAVY, Plot, Share, controls_for, data_table, examples, notice, on_gpu, progress_callback, \
    user_errors, view_link

TITLE = "Inference"

MODEL_CHOICES = [("SmolLM2-135M-Instruct", "smollm2-135m-instruct"), ("Gemma 3 270M base", "gemma3-270m-base")]
PAIR_CHOICES = [("Target Gemma 3 270M base, draft SmolLM2-135M (different tokenizers)", "gemma3-270m-base")]
DEFAULT_PROMPT = ("Once upon a time, in a small village at the edge of a great forest, there lived an old clockmaker "
                  "who repaired every clock in the valley. One winter morning a stranger knocked on his door and")
DEFAULT_TEXT = ("The sun is the star at the centre of the solar system. It is a nearly perfect ball of hot plasma, "
                "heated to incandescence by nuclear fusion reactions in its core. The sun radiates this energy "
                "from its surface mainly as visible light and infrared radiation, and it is by far the most "
                "important source of energy for life on Earth.")
EXAMPLES = (
    ("A story (about 40 tokens)", DEFAULT_PROMPT),
    ("A fact (5 tokens: the cache barely matters yet)", "The capital of France is"),
    ("Counting (easy for a draft)", "1, 2, 3, 4, 5, 6, 7, 8,"),
    ("A longer prompt: prefill grows", "Explain to a ten-year-old, in three short sentences, why the sky looks blue "
                                       "during the day and red at sunset, and what light has to do with it."),
)
VIEWS = ("kv", "batching", "utilization", "quantization", "speculative", "sparsity")


def build(engine) -> Share:
    top = _top_panel()
    tabs, panels = {}, {}
    with gr.Tabs(overflow_behavior="wrap") as views:
        for name, label, panel in (("kv", "Prefill, decode & KV cache", _kv_panel),
                                   ("batching", "Batching", _batching_panel),
                                   ("utilization", "Utilization", _utilization_panel),
                                   ("quantization", "Quantization", _quant_panel),
                                   ("speculative", "Speculative decoding", _speculative_panel),
                                   ("sparsity", "Sparsity", _sparsity_panel)):
            with gr.Tab(label, id=f"inference-{name}-tab") as tabs[name]:
                panels[name] = panel()
    view, open_view = view_link(tabs)
    _wire_kv(engine, top, panels["kv"])
    _wire_batching(engine, top, panels["batching"])
    _wire_utilization(engine, top, panels["utilization"])
    _wire_quant(engine, top, panels["quantization"])
    _wire_speculative(engine, top, panels["speculative"])
    _wire_sparsity(engine, top, panels["sparsity"])
    with top["examples"]:
        examples([[p] for _, p in EXAMPLES], [top["prompt"]], labels=[e[0] for e in EXAMPLES],
                 label="Examples: click one, then press a Measure button")
    return Share(params=dict(prompt=top["prompt"], model=top["model"], view=view), run=open_view,
                 run_inputs=[view], run_outputs=[views])


# --- layout ---------------------------------------------------------------------------------


def _top_panel() -> dict:
    gr.Markdown("## Inference: why serving is fast\n"
                "Making a model answer faster and cheaper, measured here, on the machine this app runs on: "
                "every number below is a timing taken when you press the button, never a published figure. "
                "Each part names the device and number format it measured.")
    parts = {}
    with gr.Row():
        parts["prompt"] = gr.Textbox(DEFAULT_PROMPT, label=f"Prompt (1 to {inference.kv.MAX_PROMPT_TOKENS} tokens)",
                                     lines=2, scale=4, elem_id="inference-prompt")
        parts["model"] = gr.Radio(MODEL_CHOICES, value=inference.DEFAULT_MODEL, label="Model", scale=2,
                                  elem_id="inference-model")
    parts["examples"] = gr.Column()
    return parts


def _run_row(knobs: list[str], button: str, name: str) -> dict:
    parts = {}
    with gr.Row():
        parts["knobs"] = controls_for(inference.InferenceSettings, knobs,
                                      **{k: {"elem_id": f"inference-{name}-{k.replace('_', '-')}"} for k in knobs})
        parts["run"] = gr.Button(button, variant="primary", elem_id=f"inference-{name}-run")
    return parts


def _kv_panel() -> dict:
    notice("Prefill reads the whole prompt in one forward. Decode then makes one token per forward. With the "
           "KV cache each step computes keys and values for the new token only and reads the rest from memory; "
           "without it every step runs the whole sequence again.")
    parts = _run_row(["new_tokens"], "Measure each step", "kv")
    parts["plot"] = Plot(filename="kv-cache-step-times", initial=plots.kv_figure, show_label=False,
                         label="Time per token", elem_id="inference-kv-plot")
    parts["md"] = gr.Markdown(elem_id="inference-kv-md")
    parts["table"] = data_table("kv-cache-bytes", label="the cache at longer contexts (batch 1, the formula)")
    return parts


def _batching_panel() -> dict:
    notice("Many requests in one forward: the weights are read once for the whole batch. Throughput rises; "
           "each request waits longer. Batches of 1, 2, 4, ... up to the maximum, greedy, padded prompts.")
    parts = _run_row(["max_batch", "batch_tokens"], "Measure the batches", "batching")
    parts["plot"] = Plot(filename="batching-throughput-latency", initial=plots.batching_figure, show_label=False,
                         label="Batching", elem_id="inference-batching-plot")
    parts["md"] = gr.Markdown(elem_id="inference-batching-md")
    parts["table"] = data_table("batching", label="each batch")
    return parts


def _utilization_panel() -> dict:
    notice("Utilization: how much of the machine's compute a forward uses. Achieved FLOP/s = FLOPs per token × "
           "tokens/s, against the peak of a large matmul timed now in the same number format.")
    parts = _run_row(["new_tokens"], "Measure utilization", "utilization")
    parts["plot"] = Plot(filename="utilization", initial=plots.utilization_figure, show_label=False,
                         label="Utilization", elem_id="inference-utilization-plot")
    parts["md"] = gr.Markdown(elem_id="inference-utilization-md")
    return parts


def _quant_panel() -> dict:
    notice("Fewer bytes per weight: fp32 (4), bf16 (2), int8 dynamic (1, activations rounded at run time). "
           "Weight memory, speed and perplexity of the same text, side by side (Evaluation's quantization code).")
    parts = {"text": gr.Textbox(DEFAULT_TEXT, label="Text to score", lines=3, elem_id="inference-quant-text")}
    parts.update(_run_row(["quant_tokens"], "Compare the formats", "quantization"))
    parts["table"] = data_table("quantization-speed-memory", label="each number format")
    parts["md"] = gr.Markdown(elem_id="inference-quantization-md")
    return parts


def _speculative_panel() -> dict:
    notice("A small draft model proposes k tokens; the target checks all of them in one forward and keeps the "
           "ones it agrees with, plus one of its own. Greedy output stays the target's own, token for token.")
    parts = {"pair": gr.Dropdown(PAIR_CHOICES, value=PAIR_CHOICES[0][1], label="Target and draft",
                                 elem_id="inference-pair")}
    parts.update(_run_row(["draft_tokens", "spec_tokens"], "Measure speculative decoding", "speculative"))
    parts["plot"] = Plot(filename="speculative-expected-tokens", initial=plots.speculative_figure, show_label=False,
                         label="Expected tokens", elem_id="inference-speculative-plot")
    parts["md"] = gr.Markdown(elem_id="inference-speculative-md")
    return parts


def _sparsity_panel() -> dict:
    notice("Magnitude pruning: the smallest weights of every linear layer set to zero (torch.nn.utils.prune), "
           "on a private copy; the original weights come back after each level.")
    parts = {"text": gr.Textbox(DEFAULT_TEXT, label="Text to score", lines=3, elem_id="inference-sparsity-text")}
    parts.update(_run_row(["max_sparsity"], "Prune and measure", "sparsity"))
    parts["plot"] = Plot(filename="sparsity-perplexity", initial=plots.sparsity_figure, show_label=False,
                         label="Sparsity", elem_id="inference-sparsity-plot")
    parts["md"] = gr.Markdown(elem_id="inference-sparsity-md")
    parts["table"] = data_table("sparsity", label="each level")
    return parts


# --- wiring ---------------------------------------------------------------------------------


def _listen(panel: dict, fn, inputs: list, outputs: list, api_name: str) -> None:
    panel["run"].click(user_errors(on_gpu(fn, duration=180)), inputs=inputs, outputs=outputs, api_name=api_name,
                       **HEAVY)


def _wire_kv(engine, top, panel):
    def measure_kv(model, prompt, new_tokens, progress=gr.Progress()):
        st = inference.kv_cache(engine, model, prompt, new_tokens, progress=progress_callback(progress))
        return plots.kv_figure(st), plots.kv_markdown(st), pd.DataFrame(plots.kv_table(st))

    _listen(panel, measure_kv, [top["model"], top["prompt"], panel["knobs"]["new_tokens"]],
            [panel["plot"], panel["md"], panel["table"]], "inference_kv_cache")


def _wire_batching(engine, top, panel):
    def measure_batching(model, max_batch, new_tokens, progress=gr.Progress()):
        rows, where, note = inference.run_batching(engine, model, max_batch, new_tokens,
                                                   progress=progress_callback(progress))
        return (plots.batching_figure(rows), plots.batching_markdown(rows, where, note),
                pd.DataFrame(plots.batching_table(rows)))

    knobs = panel["knobs"]
    _listen(panel, measure_batching, [top["model"], knobs["max_batch"], knobs["batch_tokens"]],
            [panel["plot"], panel["md"], panel["table"]], "inference_batching")


def _wire_utilization(engine, top, panel):
    def measure_utilization(model, prompt, new_tokens, progress=gr.Progress()):
        u = inference.run_utilization(engine, model, prompt, new_tokens, progress=progress_callback(progress))
        return plots.utilization_figure(u), plots.utilization_markdown(u)

    _listen(panel, measure_utilization, [top["model"], top["prompt"], panel["knobs"]["new_tokens"]],
            [panel["plot"], panel["md"]], "inference_utilization")


def _wire_quant(engine, top, panel):
    def compare_formats(model, text, new_tokens, progress=gr.Progress()):
        rows, device, note = inference.quantization(engine, model, text, new_tokens,
                                                    progress=progress_callback(progress))
        return pd.DataFrame(plots.quant_table(rows)), plots.quant_markdown(rows, device, note)

    _listen(panel, compare_formats, [top["model"], panel["text"], panel["knobs"]["quant_tokens"]],
            [panel["table"], panel["md"]], "inference_quantization")


def _wire_speculative(engine, top, panel):
    def measure_speculative(pair, prompt, draft_tokens, new_tokens, progress=gr.Progress()):
        sp = inference.speculate(engine, pair, prompt, new_tokens, draft_tokens, progress=progress_callback(progress))
        return plots.speculative_figure(sp), plots.speculative_markdown(sp)

    knobs = panel["knobs"]
    _listen(panel, measure_speculative, [panel["pair"], top["prompt"], knobs["draft_tokens"], knobs["spec_tokens"]],
            [panel["plot"], panel["md"]], "inference_speculative")


def _wire_sparsity(engine, top, panel):
    def prune_and_measure(model, text, max_sparsity, progress=gr.Progress()):
        rows, device = inference.run_sparsity(engine, model, text, max_sparsity, progress=progress_callback(progress))
        return (plots.sparsity_figure(rows), plots.sparsity_markdown(rows, device),
                pd.DataFrame(plots.sparsity_table(rows)))

    _listen(panel, prune_and_measure, [top["model"], panel["text"], panel["knobs"]["max_sparsity"]],
            [panel["plot"], panel["md"], panel["table"]], "inference_sparsity")
