"""Inside the model: one prompt's whole journey through a real transformer (text -> pieces -> ids ->
embedding rows -> blocks -> logits -> probabilities -> the next token), one block opened up for one
head, the logit lens, static vs contextual vectors, the same architecture before training, and the
model's anatomy and cost. The engine (engine/inside/) does the model work; this file lays out and wires."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from engine import inside
from engine.inside import plots
from engine.core.settings import make
from tabs._ui import HEAVY, Plot, Share, controls_for, data_table, examples, notice, on_gpu, progress_callback, user_errors

TITLE = "Inside the model"

MODEL_CHOICES = [("Causal LM: SmolLM2-135M (writes the next token)", "smollm2-135m-instruct"),
                 ("Encoder: all-MiniLM-L6-v2 (reads, makes a sentence vector)", "minilm-l6")]
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
    gr.Markdown("## Inside the model: one prompt's whole journey\n"
                "TEXT → TOKENS → NUMBERS → MATH → NUMBERS → TOKENS → TEXT, through the app's own models, "
                "with the real tensor shapes and numbers you can check by hand. A block is a *group "
                "discussion* (attention: tokens look at each other) followed by *quiet thinking time* "
                "(the MLP: each token on its own).")
    with gr.Row():
        prompt = gr.Textbox(DEFAULT_PROMPT, label=f"Prompt (1 to {inside.MAX_TOKENS} tokens)", lines=2, scale=4,
                            elem_id="inside-prompt")
        with gr.Column(scale=2):
            model = gr.Radio(MODEL_CHOICES, value=inside.MODELS[0], label="Model", elem_id="inside-model")
            run = gr.Button("Show the journey", variant="primary", elem_id="inside-run")
    example_box = gr.Column()
    with gr.Tabs():
        with gr.Tab("The journey", id="inside-journey-tab"):
            journey = gr.HTML(elem_id="inside-journey")
            notice("Follow the arrows: every box is a real tensor of this forward pass, with its shape. "
                   "The blocks never change the shape, only the numbers; at the end one row of logits, "
                   "one number per vocabulary entry, becomes the next token.")
            with gr.Accordion("Shapes as the model returned them", open=False):
                shapes = gr.Markdown()
        with gr.Tab("Inside one block", id="inside-block-tab"):
            with gr.Row():
                knobs = controls_for(inside.InsideSettings, BLOCK_KNOBS,
                                     **{k: {"elem_id": f"inside-{k}"} for k in BLOCK_KNOBS})
                block_btn = gr.Button("Open the block", variant="primary", elem_id="inside-block-run")
            block_plot = Plot(filename="attention-inside-a-block", show_label=False, label="Scores, mask, softmax",
                              elem_id="inside-block-plot")
            worked = gr.Markdown(elem_id="inside-worked")
            norms_plot = Plot(filename="residual-stream-norms", show_label=False, label="Residual stream",
                              elem_id="inside-norms")
            notice("The stream grows block by block; attention and the MLP each add a vector to it. The "
                   "first token often gets a huge norm: many heads dump their attention there (an 'attention sink').")
            block_note = gr.Markdown()
            with gr.Accordion("Numbers: Q, K, V of this head (rounded to 3 decimals)", open=False):
                q_table = data_table("q", label="Q (one row per token)", max_height=300)
                k_table = data_table("k", label="K (the K/V head this query head reads)", max_height=300)
                v_table = data_table("v", label="V", max_height=300)
            with gr.Accordion("Numbers: scores after the mask, softmax weights, weighted sum of V", open=False):
                s_table = data_table("scores-masked", label="Q·Kᵀ/√d after the mask", max_height=300)
                w_table = data_table("attention-weights", label="softmax weights (rows sum to 1)", max_height=300)
                m_table = data_table("weighted-sum-of-v", label="weights @ V: this head's output", max_height=300)
            with gr.Accordion("Numbers: residual stream norms per token", open=False):
                n_table = data_table("residual-norms", label="L2 norms", max_height=300)
        with gr.Tab("Logit lens", id="inside-lens-tab"):
            with gr.Row():
                lens_knob = controls_for(inside.InsideSettings, ["lens_tokens"],
                                         lens_tokens={"elem_id": "inside-lens-tokens"})["lens_tokens"]
                lens_btn = gr.Button("Read every layer", variant="primary", elem_id="inside-lens-run")
            lens_plot = Plot(filename="logit-lens", show_label=False, label="Logit lens", elem_id="inside-lens")
            target_plot = Plot(filename="logit-lens-target", show_label=False, label="The final pick across layers",
                               elem_id="inside-lens-target")
            notice("The final norm and the unembedding are applied to the stream after every block, as if the "
                   "model stopped there. Early blocks guess generic tokens; the answer appears late. After the "
                   "last block the lens is exactly the model's output.")
            lens_table = data_table("logit-lens", label="top guess and its probability per position and block",
                                    max_height=320)
        with gr.Tab("Static vs contextual", id="inside-static-tab"):
            with gr.Row():
                first = gr.Textbox(inside.BANK[0], label="First sentence", scale=3, elem_id="inside-first")
                second = gr.Textbox(inside.BANK[1], label="Second sentence", scale=3, elem_id="inside-second")
                word = gr.Textbox(inside.BANK[2], label="Word in both", scale=1, elem_id="inside-word")
                drift_btn = gr.Button("Compare", variant="primary", scale=1, elem_id="inside-drift-run")
            drift_plot = Plot(filename="static-vs-contextual", show_label=False, label="Cosine per layer",
                              elem_id="inside-drift")
            drift_md = gr.Markdown()
        with gr.Tab("Before training", id="inside-untrained-tab"):
            untrained_btn = gr.Button("Compare with random weights", variant="primary", elem_id="inside-untrained-run")
            untrained_plot = Plot(filename="trained-vs-random", show_label=False, label="Trained vs random",
                                  elem_id="inside-untrained")
            untrained_md = gr.Markdown()
        with gr.Tab("Anatomy & cost", id="inside-anatomy-tab"):
            with gr.Row():
                anatomy_btn = gr.Button("Show the anatomy", variant="primary", elem_id="inside-anatomy-run")
                cost_knob = controls_for(inside.InsideSettings, ["new_tokens"],
                                         new_tokens={"elem_id": "inside-new-tokens"})["new_tokens"]
                cost_btn = gr.Button("Measure the cost", elem_id="inside-cost-run")
            config_md = gr.Markdown(elem_id="inside-config")
            anatomy_plot = Plot(filename="parameter-groups", show_label=False, label="Parameter groups",
                                elem_id="inside-anatomy")
            groups_table = data_table("parameter-groups", label="parameter groups")
            tensors_table = data_table("weight-tensors", label="weight tensors (* = every block)", max_height=360)
            files_table = data_table("model-files", label="files in the model folder")
            cost_md = gr.Markdown(elem_id="inside-cost")

    # Register listeners
    def show_journey(prompt, model, progress=gr.Progress()):
        j, tr = inside.journey(engine, prompt, model, progress=progress_callback(progress))
        return (plots.journey_html(j), plots.shapes_markdown(tr.shapes),
                gr.Slider(maximum=j.n_layers), gr.Slider(maximum=j.n_heads))

    def open_block(prompt, model, layer, head, progress=gr.Progress()):
        s = make(inside.InsideSettings, layer=layer, head=head)
        tr = inside.trace(engine, prompt, model, progress=progress_callback(progress))
        b = inside.block_view(tr, s.layer, s.head)
        return (plots.block_figure(b), plots.worked_markdown(b), plots.norms_figure(b), _block_note(b),
                *_block_tables(b))

    def read_lens(prompt, model, positions, progress=gr.Progress()):
        s = make(inside.InsideSettings, lens_tokens=positions)
        lens, _ = inside.lens(engine, prompt, s.lens_tokens, model, progress=progress_callback(progress))
        return plots.lens_figure(lens), plots.lens_target_figure(lens), _frame(*plots.lens_rows(lens))

    def compare_word(first, second, word, model, progress=gr.Progress()):
        d = inside.static_vs_contextual(engine, first, second, word, model, progress=progress_callback(progress))
        same = "the same ids" if d.same_ids else "different ids"
        text = (f"“{d.word}” is {' + '.join(map(repr, d.pieces[0]))} in the first sentence and "
                f"{' + '.join(map(repr, d.pieces[1]))} in the second ({same}). Input embedding rows: cosine "
                f"**{d.row_cosine:.4f}**. After block 1: {d.cosines[1]:.3f}; after the last block: "
                f"**{d.cosines[-1]:.3f}**. The table row is static; the context makes the vector contextual.")
        if d.cosines[0] < 0.9999:
            text += (f" (Layer 0 is {d.cosines[0]:.3f}, not 1: this encoder adds a position embedding and a "
                     "LayerNorm before block 1.)")
        return plots.drift_figure(d), text

    def compare_untrained(prompt, progress=gr.Progress()):
        trained, random, vocab = inside.before_training(engine, prompt, progress=progress_callback(progress))
        top = inside.max_entropy(vocab)
        text = (f"**Entropy:** trained {trained.entropy:.2f} nats, random {random.entropy:.2f} nats; a uniform "
                f"guess over {vocab:,} tokens has ln({vocab:,}) = {top:.2f}. Same code, same shapes, same "
                f"{vocab:,} logits: only the numbers in the weights differ.\n\n"
                f"**Trained continues:** `{trained.continuation!r}`  \n**Random weights continue:** "
                f"`{random.continuation!r}`\n\nThe random model is SmolLM2's config with weights drawn from its "
                f"initializer (seed {inside.RANDOM_SEED}), built once and shared read-only.")
        return plots.untrained_figure(trained, random, vocab), text

    def show_anatomy(model, progress=gr.Progress()):
        a = inside.anatomy(engine, model, progress=progress_callback(progress))
        groups = pd.DataFrame([dict(g, share=f"{g['share']:.1%}") for g in a.groups])
        tensors = pd.DataFrame([dict(r, shape=str(r["shape"])) for r in a.tensors])
        files = pd.DataFrame(a.files or [dict(file="(loaded from the Hub cache)", bytes=0, kind="-")])
        return plots.config_markdown(a), plots.anatomy_figure(a), groups, tensors, files

    def measure_cost(prompt, new_tokens, progress=gr.Progress()):
        s = make(inside.InsideSettings, new_tokens=new_tokens)
        return plots.cost_markdown(inside.cost(engine, prompt, s.new_tokens, progress=progress_callback(progress)))

    show_journey = user_errors(on_gpu(show_journey))
    journey_outputs = [journey, shapes, knobs["layer"], knobs["head"]]
    block_outputs = [block_plot, worked, norms_plot, block_note, q_table, k_table, v_table, s_table, w_table,
                     m_table, n_table]
    gr.on([run.click, prompt.submit], show_journey, inputs=[prompt, model], outputs=journey_outputs,
          api_name="inside_journey", **HEAVY)
    block_btn.click(user_errors(on_gpu(open_block)), inputs=[prompt, model, knobs["layer"], knobs["head"]],
                    outputs=block_outputs, api_name="inside_block", **HEAVY)
    lens_btn.click(user_errors(on_gpu(read_lens)), inputs=[prompt, model, lens_knob],
                   outputs=[lens_plot, target_plot, lens_table], api_name="inside_lens", **HEAVY)
    drift_btn.click(user_errors(on_gpu(compare_word)), inputs=[first, second, word, model],
                    outputs=[drift_plot, drift_md], api_name="inside_static_contextual", **HEAVY)
    untrained_btn.click(user_errors(on_gpu(compare_untrained)), inputs=[prompt],
                        outputs=[untrained_plot, untrained_md], api_name="inside_before_training", **HEAVY)
    anatomy_btn.click(user_errors(on_gpu(show_anatomy)), inputs=[model],
                      outputs=[config_md, anatomy_plot, groups_table, tensors_table, files_table],
                      api_name="inside_anatomy", **HEAVY)
    cost_btn.click(user_errors(on_gpu(measure_cost)), inputs=[prompt, cost_knob], outputs=cost_md,
                   api_name="inside_cost", **HEAVY)
    with example_box:
        examples([[p, m] for _, p, m in EXAMPLES], [prompt, model], labels=[e[0] for e in EXAMPLES],
                 fn=show_journey, outputs=journey_outputs, label="Examples: click one to see its journey")
    # ?tab=inside&prompt=...&model=...&layer=..&head=.. reopens the journey with the same prompt.
    return Share(params=dict(prompt=prompt, model=model, layer=knobs["layer"], head=knobs["head"]),
                 run=show_journey, run_inputs=[prompt, model], run_outputs=journey_outputs)
