"""Inside the model: one prompt's whole journey through a real transformer (text -> pieces -> ids ->
embedding rows -> blocks -> logits -> probabilities -> the next token), one block opened up for one
head, the logit lens, static vs contextual vectors, the same architecture before training, and the
model's anatomy and cost. The engine (engine/inside/) does the model work; this file lays out and wires."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from engine import inside
from engine.inside import plots
from engine.core.markdown import md_code, md_text
from engine.core.settings import make
from tabs._ui import (HEAVY, SESSION_CHOICE, ModelSlider, Plot, Share, clamp_slider, controls_for, data_table, examples, first_view, notice, on_gpu,
                      progress_callback, user_errors, view_link)

TITLE = "Inside the model"

MODEL_CHOICES = [("Causal LM: SmolLM2-135M (writes the next token)", "smollm2-135m-instruct"),
                 ("Encoder: all-MiniLM-L6-v2 (reads, makes a sentence vector)", "minilm-l6"), SESSION_CHOICE]
DEFAULT_PROMPT = "The capital of France is"
EXAMPLES = (
    ("A fact: where does ' Paris' come from?", DEFAULT_PROMPT, "smollm2-135m-instruct"),
    ("A story start", "Once upon a time, there was a little", "smollm2-135m-instruct"),
    ("Counting", "one, two, three, four,", "smollm2-135m-instruct"),
    ("Encoder: a sentence becomes one vector", "The cat sat on the mat.", "minilm-l6"),
)
BLOCK_KNOBS = ["layer", "head"]


def _frame(headers, rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=headers)


def _block_tables(b: inside.BlockView) -> list[pd.DataFrame]:
    keys = [f"{j} {p!r}"[:14] for j, p in enumerate(b.pieces)]
    out = [_frame(*inside.table(m, b.pieces)) for m in (b.q, b.k, b.v)]
    out += [_frame(*inside.table(m, b.pieces, keys, decimals=4)) for m in (b.masked, b.weights)]
    out.append(_frame(*inside.table(b.mixed, b.pieces)))
    norms = pd.DataFrame(b.norms()).round(3)
    out.append(norms)
    return out


def _block_note(b: inside.BlockView) -> str:
    rope = "Q and K after RoPE (rotary position encoding); V is not rotated. " if b.rope else ""
    kind = ("pre-norm: stream after = before + attention adds + MLP adds" if b.rope else
            "post-norm (BERT): middle = LayerNorm(before + attention adds), after = LayerNorm(middle + MLP adds)")
    return f"{rope}{kind}.\n\n" + plots.shapes_markdown(b.shapes)


def build(engine) -> Share:
    top = _prompt_panel(model_options(engine))
    with gr.Tabs(overflow_behavior="wrap") as views:
        with gr.Tab("The journey", id="inside-journey-tab") as journey_tab:
            journey = _journey_panel()
        with gr.Tab("Inside one block", id="inside-block-tab") as block_tab:
            block = _block_panel()
        with gr.Tab("Logit lens", id="inside-lens-tab") as lens_tab:
            lens = _lens_panel()
        with gr.Tab("Static vs contextual", id="inside-static-tab") as static_tab:
            static = _static_panel()
        with gr.Tab("Before training", id="inside-untrained-tab") as untrained_tab:
            untrained = _untrained_panel()
        with gr.Tab("Anatomy & cost", id="inside-anatomy-tab") as anatomy_tab:
            anatomy = _anatomy_panel()
    view, open_view = view_link({"journey": journey_tab, "block": block_tab, "lens": lens_tab, "static": static_tab,
                                 "untrained": untrained_tab, "anatomy": anatomy_tab})

    prompt, model = top["prompt"], top["model"]
    journey_outputs = [journey["html"], journey["shapes"], block["knobs"]["layer"], block["knobs"]["head"]]
    show_journey = _wire_journey(engine, top, journey_outputs)
    first_view(top["run"], journey["html"])  # the default prompt's journey, drawn when the tab opens
    _wire_block(engine, prompt, model, block)
    _wire_lens(engine, prompt, model, lens)
    _wire_static(engine, model, static)
    _wire_untrained(engine, prompt, untrained)
    _wire_anatomy(engine, prompt, model, anatomy)
    with top["examples"]:
        examples([[p, m] for _, p, m in EXAMPLES], [prompt, model], labels=[e[0] for e in EXAMPLES],
                 fn=show_journey, outputs=journey_outputs, label="Examples: click one to see its journey")
    # ?tab=inside&prompt=...&model=...&layer=..&head=..&view=lens reopens the journey with the same
    # prompt, and the sub-view the link was made on.
    def linked(name, *inputs):
        return [*show_journey(*inputs), open_view(name)]

    return Share(params=dict(prompt=prompt, model=model, layer=block["knobs"]["layer"], head=block["knobs"]["head"],
                             view=view),
                 run=linked, run_inputs=[view, prompt, model], run_outputs=[*journey_outputs, views])


# --- layout: each function makes one part of the tab and returns its components -------------


def model_options(engine) -> list[tuple[str, str]]:
    """MODEL_CHOICES, then the causal LMs and encoders added to the registry (the operator's --model
    rows, the Hub rows when online), each labelled with its role and where it comes from."""
    extra = [k for k in inside.models(engine) if k not in inside.MODELS]
    roles = {"causal-lm": "Causal LM", "encoder": "Encoder"}
    rows = [(f"{roles[engine.registry.get(k).task]}: {engine.registry.get(k).title}", k) for k in extra]
    return MODEL_CHOICES[:2] + rows + MODEL_CHOICES[2:]


def _prompt_panel(choices: list[tuple[str, str]] = MODEL_CHOICES) -> dict:
    """The heading, the prompt and the model that every sub-tab reads."""
    gr.Markdown("## Inside the model: one prompt's whole journey\n"
                "TEXT → TOKENS → NUMBERS → MATH → NUMBERS → TOKENS → TEXT, through the app's own models, "
                "with the real tensor shapes and numbers you can check by hand. A block is a *group "
                "discussion* (attention: tokens look at each other) followed by *quiet thinking time* "
                "(the MLP: each token on its own).")
    parts = {}
    with gr.Row():
        parts["prompt"] = gr.Textbox(DEFAULT_PROMPT, label=f"Prompt (1 to {inside.MAX_TOKENS} tokens)", lines=2,
                                     scale=4, elem_id="inside-prompt")
        with gr.Column(scale=2):
            parts["model"] = gr.Radio(choices, value=inside.MODELS[0], label="Model", elem_id="inside-model")
            parts["run"] = gr.Button("Show the journey", variant="primary", elem_id="inside-run")
    parts["examples"] = gr.Column()
    return parts


def _journey_panel() -> dict:
    parts = {"html": gr.HTML(elem_id="inside-journey")}
    notice("Follow the arrows: every box is a real tensor of this forward pass, with its shape. "
           "The blocks never change the shape, only the numbers; at the end one row of logits, "
           "one number per vocabulary entry, becomes the next token.")
    with gr.Accordion("Shapes as the model returned them", open=False):
        parts["shapes"] = gr.Markdown()
    return parts


def _block_panel() -> dict:
    """One block opened up for one head: scores, mask, softmax, the residual stream, the numbers."""
    parts = {}
    with gr.Row():
        # ModelSlider: the engine checks layer and head against the model asked for, never Gradio
        # against the maximum another model's journey left on the slider (MiniLM has 12 heads, SmolLM2 9)
        parts["knobs"] = controls_for(inside.InsideSettings, BLOCK_KNOBS,
                                      **{k: {"elem_id": f"inside-{k}", "slider": ModelSlider} for k in BLOCK_KNOBS})
        parts["run"] = gr.Button("Open the block", variant="primary", elem_id="inside-block-run")
    parts["plot"] = Plot(filename="attention-inside-a-block", show_label=False, label="Scores, mask, softmax",
                         elem_id="inside-block-plot")
    parts["worked"] = gr.Markdown(elem_id="inside-worked")
    parts["norms_plot"] = Plot(filename="residual-stream-norms", show_label=False, label="Residual stream",
                               elem_id="inside-norms")
    notice("The stream grows block by block; attention and the MLP each add a vector to it. The "
           "first token often gets a huge norm: many heads dump their attention there (an 'attention sink').")
    parts["note"] = gr.Markdown()
    tables = parts["tables"] = []  # in the order _block_tables returns them
    with gr.Accordion("Numbers: Q, K, V of this head (rounded to 3 decimals)", open=False):
        tables.append(data_table("q", label="Q (one row per token)", max_height=300))
        tables.append(data_table("k", label="K (the K/V head this query head reads)", max_height=300))
        tables.append(data_table("v", label="V", max_height=300))
    with gr.Accordion("Numbers: scores after the mask, softmax weights, weighted sum of V", open=False):
        tables.append(data_table("scores-masked", label="Q·Kᵀ/√d after the mask", max_height=300))
        tables.append(data_table("attention-weights", label="softmax weights (rows sum to 1)", max_height=300))
        tables.append(data_table("weighted-sum-of-v", label="weights @ V: this head's output", max_height=300))
    with gr.Accordion("Numbers: residual stream norms per token", open=False):
        tables.append(data_table("residual-norms", label="L2 norms", max_height=300))
    return parts


def _lens_panel() -> dict:
    parts = {}
    with gr.Row():
        parts["knob"] = controls_for(inside.InsideSettings, ["lens_tokens"],
                                     lens_tokens={"elem_id": "inside-lens-tokens"})["lens_tokens"]
        parts["run"] = gr.Button("Read every layer", variant="primary", elem_id="inside-lens-run")
    parts["plot"] = Plot(filename="logit-lens", show_label=False, label="Logit lens", elem_id="inside-lens")
    parts["target_plot"] = Plot(filename="logit-lens-target", show_label=False, label="The final pick across layers",
                                elem_id="inside-lens-target")
    notice("The final norm and the unembedding are applied to the stream after every block, as if the "
           "model stopped there. Early blocks guess generic tokens; the answer appears late. After the "
           "last block the lens is exactly the model's output.")
    parts["table"] = data_table("logit-lens", label="top guess and its probability per position and block",
                                max_height=320)
    return parts


def _static_panel() -> dict:
    parts = {}
    with gr.Row():
        parts["first"] = gr.Textbox(inside.BANK[0], label="First sentence", scale=3, elem_id="inside-first")
        parts["second"] = gr.Textbox(inside.BANK[1], label="Second sentence", scale=3, elem_id="inside-second")
        parts["word"] = gr.Textbox(inside.BANK[2], label="Word in both", scale=1, elem_id="inside-word")
        parts["run"] = gr.Button("Compare", variant="primary", scale=1, elem_id="inside-drift-run")
    parts["plot"] = Plot(filename="static-vs-contextual", show_label=False, label="Cosine per layer",
                         elem_id="inside-drift")
    parts["md"] = gr.Markdown()
    return parts


def _untrained_panel() -> dict:
    parts = {"run": gr.Button("Compare with random weights", variant="primary", elem_id="inside-untrained-run")}
    parts["plot"] = Plot(filename="trained-vs-random", show_label=False, label="Trained vs random",
                         elem_id="inside-untrained")
    parts["md"] = gr.Markdown()
    return parts


def _anatomy_panel() -> dict:
    parts = {}
    with gr.Row():
        parts["run"] = gr.Button("Show the anatomy", variant="primary", elem_id="inside-anatomy-run")
        parts["cost_knob"] = controls_for(inside.InsideSettings, ["new_tokens"],
                                          new_tokens={"elem_id": "inside-new-tokens"})["new_tokens"]
        parts["cost_run"] = gr.Button("Measure the cost", elem_id="inside-cost-run")
    parts["config_md"] = gr.Markdown(elem_id="inside-config")
    parts["plot"] = Plot(filename="parameter-groups", show_label=False, label="Parameter groups",
                         elem_id="inside-anatomy")
    parts["groups"] = data_table("parameter-groups", label="parameter groups")
    parts["tensors"] = data_table("weight-tensors", label="weight tensors (* = every block)", max_height=360)
    parts["files"] = data_table("model-files", label="files in the model folder")
    parts["cost_md"] = gr.Markdown(elem_id="inside-cost")
    return parts


# --- wiring: listeners on the parts above ---------------------------------------------------


def _wire_journey(engine, top, journey_outputs):
    """The journey's run (button and Enter); returns its listener, for the examples and deep links."""
    def show_journey(prompt, model, progress=gr.Progress()):
        j, tr = inside.journey(engine, prompt, model, progress=progress_callback(progress))
        return (plots.journey_html(j), plots.shapes_markdown(tr.shapes),
                gr.Slider(maximum=j.n_layers), gr.Slider(maximum=j.n_heads))

    show_journey = user_errors(on_gpu(show_journey))
    gr.on([top["run"].click, top["prompt"].submit], show_journey, inputs=[top["prompt"], top["model"]],
          outputs=journey_outputs, api_name="inside_journey", **HEAVY)
    return show_journey


def _wire_block(engine, prompt, model, block):
    def open_block(prompt, model, layer, head, progress=gr.Progress()):
        s = make(inside.InsideSettings, layer=layer, head=head)
        tr = inside.trace(engine, prompt, model, progress=progress_callback(progress))
        b = inside.block_view(tr, s.layer, s.head)
        return (plots.block_figure(b), plots.worked_markdown(b), plots.norms_figure(b), _block_note(b),
                *_block_tables(b))

    def on_model(model, layer, head, progress=gr.Progress()):
        """The sliders' ranges follow the chosen model (their values moved inside them)."""
        n_layers, n_heads = inside.model_dims(engine, model, progress_callback(progress))
        return (gr.update(maximum=n_layers, value=clamp_slider(layer, n_layers)),
                gr.update(maximum=n_heads, value=clamp_slider(head, n_heads)))

    layer, head = block["knobs"]["layer"], block["knobs"]["head"]
    block_outputs = [block["plot"], block["worked"], block["norms_plot"], block["note"], *block["tables"]]
    block["run"].click(user_errors(on_gpu(open_block)), inputs=[prompt, model, layer, head],
                       outputs=block_outputs, api_name="inside_block", **HEAVY)
    model.change(user_errors(on_gpu(on_model)), inputs=[model, layer, head], outputs=[layer, head],
                 api_name="inside_model_dims", api_visibility="undocumented", **HEAVY)


def _wire_lens(engine, prompt, model, panel):
    def read_lens(prompt, model, positions, progress=gr.Progress()):
        s = make(inside.InsideSettings, lens_tokens=positions)
        lens, _ = inside.lens(engine, prompt, s.lens_tokens, model, progress=progress_callback(progress))
        return plots.lens_figure(lens), plots.lens_target_figure(lens), _frame(*plots.lens_rows(lens))

    panel["run"].click(user_errors(on_gpu(read_lens)), inputs=[prompt, model, panel["knob"]],
                       outputs=[panel["plot"], panel["target_plot"], panel["table"]], api_name="inside_lens", **HEAVY)


def _static_summary(d) -> str:
    """One word's static row against its contextual vectors (d: inside.Drift); the word and its
    pieces are the user's text (md_text)."""
    same = "the same ids" if d.same_ids else "different ids"
    text = (f"“{md_text(d.word)}” is {md_text(' + '.join(map(repr, d.pieces[0])))} in the first sentence and "
            f"{md_text(' + '.join(map(repr, d.pieces[1])))} in the second ({same}). Input embedding rows: cosine "
            f"**{d.row_cosine:.4f}**. After block 1: {d.cosines[1]:.3f}; after the last block: "
            f"**{d.cosines[-1]:.3f}**. The table row is static; the context makes the vector contextual.")
    if d.cosines[0] < 0.9999:
        text += (f" (Layer 0 is {d.cosines[0]:.3f}, not 1: this encoder adds a position embedding and a "
                 "LayerNorm before block 1.)")
    return text


def _untrained_summary(trained, random, vocab: int) -> str:
    """Trained against random weights: entropies and each one's continuation (model text: one code span)."""
    top = inside.max_entropy(vocab)
    return (f"**Entropy:** trained {trained.entropy:.2f} nats, random {random.entropy:.2f} nats; a uniform "
            f"guess over {vocab:,} tokens has ln({vocab:,}) = {top:.2f}. Same code, same shapes, same "
            f"{vocab:,} logits: only the numbers in the weights differ.\n\n"
            f"**Trained continues:** {md_code(repr(trained.continuation))}  \n**Random weights continue:** "
            f"{md_code(repr(random.continuation))}\n\nThe random model is SmolLM2's config with weights drawn "
            f"from its initializer (seed {inside.RANDOM_SEED}), built once and shared read-only.")


def _wire_static(engine, model, static):
    def compare_word(first, second, word, model, progress=gr.Progress()):
        d = inside.static_vs_contextual(engine, first, second, word, model, progress=progress_callback(progress))
        return plots.drift_figure(d), _static_summary(d)

    static["run"].click(user_errors(on_gpu(compare_word)),
                        inputs=[static["first"], static["second"], static["word"], model],
                        outputs=[static["plot"], static["md"]], api_name="inside_static_contextual", **HEAVY)


def _wire_untrained(engine, prompt, untrained):
    def compare_untrained(prompt, progress=gr.Progress()):
        trained, random, vocab = inside.before_training(engine, prompt, progress=progress_callback(progress))
        return plots.untrained_figure(trained, random, vocab), _untrained_summary(trained, random, vocab)

    untrained["run"].click(user_errors(on_gpu(compare_untrained)), inputs=[prompt],
                           outputs=[untrained["plot"], untrained["md"]], api_name="inside_before_training", **HEAVY)


def _wire_anatomy(engine, prompt, model, anatomy):
    def show_anatomy(model, progress=gr.Progress()):
        a = inside.anatomy(engine, model, progress=progress_callback(progress))
        groups = pd.DataFrame([dict(g, share=f"{g['share']:.1%}") for g in a.groups])
        tensors = pd.DataFrame([dict(r, shape=str(r["shape"])) for r in a.tensors])
        none = "(in this session's memory: no files)" if model == SESSION_CHOICE[1] else "(loaded from the Hub cache)"
        files = pd.DataFrame(a.files or [dict(file=none, bytes=0, kind="-")])
        return plots.config_markdown(a), plots.anatomy_figure(a), groups, tensors, files

    def measure_cost(prompt, new_tokens, progress=gr.Progress()):
        s = make(inside.InsideSettings, new_tokens=new_tokens)
        return plots.cost_markdown(inside.cost(engine, prompt, s.new_tokens, progress=progress_callback(progress)))

    anatomy["run"].click(user_errors(on_gpu(show_anatomy)), inputs=[model],
                         outputs=[anatomy["config_md"], anatomy["plot"], anatomy["groups"], anatomy["tensors"],
                                  anatomy["files"]], api_name="inside_anatomy", **HEAVY)
    anatomy["cost_run"].click(user_errors(on_gpu(measure_cost)), inputs=[prompt, anatomy["cost_knob"]],
                              outputs=anatomy["cost_md"], api_name="inside_cost", **HEAVY)
