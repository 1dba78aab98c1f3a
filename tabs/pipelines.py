"""Pipelines: the six classic tasks with their real knobs, and the Python that does the same.

Layout first (one sub-tab per task: input, model picker, knobs | result, raw output, code),
then the listeners. All model work goes through engine.pipelines.tasks.run(); this file only turns
plain results into views."""
from __future__ import annotations

import gradio as gr

from engine.core.markdown import md_text
from engine.pipelines import tasks as T
from engine.pipelines.plots import entities_html, scores_bar
from tabs._ui import (HEAVY, Plot, controls_for, data_table, examples, notice, progress_callback, seed_box,
                      user_errors)

TITLE = "Pipelines"

INTRO = (
    "## Pipelines: one line of code per task\n"
    "transformers' `pipeline()` hides three steps: **preprocess** (tokenize), **forward** (run the "
    "model) and **postprocess** (turn numbers into labels and text). Pick a task, change a knob, "
    "run it, then open *Show code* to copy the exact call."
)


def _picker(engine, task: str) -> tuple[gr.Dropdown, gr.Markdown]:
    options = T.model_options(engine, task)
    value = T.default_model(engine, task) or (options[0][1] if options else None)
    dd = gr.Dropdown(choices=[(label, key) for label, key, _ in options], value=value, label="Model",
                     elem_id=f"pipe-model-{task}")
    info = gr.Markdown(T.describe_model(engine, task, value) if value else "", elem_id=f"pipe-info-{task}")
    return dd, info


def _result_views(task: str) -> tuple[gr.Markdown, gr.JSON, gr.Code]:
    status = gr.Markdown(elem_id=f"pipe-status-{task}")
    with gr.Accordion("Raw output (what the pipeline returns)", open=False):
        raw = gr.JSON(label="output", elem_id=f"pipe-raw-{task}")
    with gr.Accordion("Show code", open=False):
        code = gr.Code(language="python", label="Python", elem_id=f"pipe-code-{task}")
    return status, raw, code


# (prompt, max_new_tokens, temperature, num_return_sequences)
GENERATION_EXAMPLES = (
    (T.TASKS["text-generation"].example, 40, 0.7, 2),
    ("Once upon a time, a robot", 40, 0.0, 1),
    ("In the year 2050, cities will", 40, 1.2, 3),
)
# (text, labels, multi_label, template)
ZERO_SHOT_EXAMPLES = (
    (T.TASKS["zero-shot-classification"].example, "sports, politics, cooking, technology", False,
     "This example is about {}."),
    ("Preheat the oven and knead the dough for ten minutes.", "sports, politics, cooking, technology", False,
     "This example is about {}."),
    ("I loved this film: the acting was superb!", "positive, negative", False, "The sentiment of this review is {}."),
    ("The new phone has a great camera but the battery dies by noon.", "camera, battery, price, screen", True,
     "This review talks about the {}."),
)
FILL_MASK_EXAMPLES = (
    T.TASKS["fill-mask"].example,
    "I drink a cup of [MASK] every morning.",
    "The doctor told her to take the [MASK] twice a day.",
)
SUMMARIZATION_EXAMPLES = (
    T.TASKS["summarization"].example,
    "Honeybees visit flowers to collect nectar and pollen. As they move from flower to flower, they carry pollen "
    "with them, which fertilises the plants. Many crops, such as apples, almonds and cherries, depend on this. "
    "In recent years bee numbers have fallen because of disease, pesticides and the loss of wild flowers, and "
    "farmers in some regions now rent hives to make sure their orchards are pollinated.",
)
NER_EXAMPLES = (
    T.TASKS["ner"].example,
    "Tim Cook opened Apple's new office in Berlin in March.",
    "The United Nations met in Geneva to discuss the Paris Agreement.",
)
# (text, source language, target language)
TRANSLATION_EXAMPLES = (
    (T.TASKS["translation"].example, "en", "fr"),
    ("I would like a cup of coffee, please.", "en", "de"),
    ("Le chat dort sur le canapé.", "fr", "en"),
)


def _inputs(engine, task: str, text_label: str, lines: int, button: str, knobs: list[str] | None = None,
            knobs_first: bool = False, seed: bool = False):
    """The left column of a task's tab: its example text, the model picker and what it stands for,
    the task's knobs (all, or the named ones; a seed as a number box), the run button, and a slot
    for the examples."""
    spec = T.TASKS[task]
    text = gr.Textbox(spec.example, label=text_label, lines=lines)
    if knobs_first:
        controls = controls_for(spec.settings_cls, knobs)
    model, info = _picker(engine, task)
    if not knobs_first:
        controls = controls_for(spec.settings_cls, knobs)
    if seed:
        controls["seed"] = seed_box()
    run = gr.Button(button, variant="primary")
    return text, model, info, controls, run, gr.Column()


def _status(res: T.TaskResult) -> str:
    line = f"Ran in {res.seconds:.2f} s with `{res.model_key}`."
    if res.fallback_for:
        line += f"  \n⚠️ Offline fallback standing in for `{res.fallback_for}`."
    if res.extra.get("served_by"):
        line += (f"  \nAnswered by the text generation server ({res.extra['served_by']}), not this process; "
                 "the code below is what runs in-process.")
    return line


def build(engine) -> None:
    gr.Markdown(INTRO)
    with gr.Tabs():
        # ---- 1. text generation --------------------------------------------------------
        with gr.Tab("Text generation"):
            with gr.Row():
                with gr.Column(scale=1):
                    gen_text, gen_model, gen_info, gen_knobs, gen_btn, gen_ex = _inputs(
                        engine, "text-generation", "Prompt", 3, "Generate",
                        ["max_new_tokens", "temperature", "num_return_sequences"], seed=True)
                with gr.Column(scale=1):
                    gen_out = gr.Markdown(label="Continuations", elem_id="pipe-gen-out")
                    notice("Temperature 0 always gives the same text; above 0 each sequence is a new sample. "
                           "The prompt stays at the start of each result.")
                    gen_status, gen_raw, gen_code = _result_views("text-generation")

        # ---- 2. zero-shot classification ----------------------------------------------
        with gr.Tab("Zero-shot classification"):
            with gr.Row():
                with gr.Column(scale=1):
                    zs_text, zs_model, zs_info, zs_knobs, zs_btn, zs_ex = _inputs(
                        engine, "zero-shot-classification", "Text", 3, "Classify")
                with gr.Column(scale=1):
                    zs_plot = Plot(filename="zero-shot-scores", label="Scores per label", elem_id="pipe-zs-plot")
                    notice("No training on these labels: each one is turned into a sentence with the "
                           "template and compared with the text. multi_label off: the scores share 1.0; "
                           "on: each label is judged on its own.")
                    zs_status, zs_raw, zs_code = _result_views("zero-shot-classification")

        # ---- 3. fill-mask ------------------------------------------------------------------
        with gr.Tab("Fill-mask"):
            with gr.Row():
                with gr.Column(scale=1):
                    fm_text, fm_model, fm_info, fm_knobs, fm_btn, fm_ex = _inputs(
                        engine, "fill-mask", "Text with one [MASK]", 2, "Fill the mask")
                with gr.Column(scale=1):
                    fm_plot = Plot(filename="fill-mask-candidates", label="Candidates", elem_id="pipe-fm-plot")
                    notice("A masked language model sees the words on both sides of [MASK] at once; "
                           "top_k is how many of its guesses you see.")
                    fm_status, fm_raw, fm_code = _result_views("fill-mask")

        # ---- 4. summarization ----------------------------------------------------------
        with gr.Tab("Summarization"):
            with gr.Row():
                with gr.Column(scale=1):
                    sum_text, sum_model, sum_info, sum_knobs, sum_btn, sum_ex = _inputs(
                        engine, "summarization", "Text", 8, "Summarize")
                with gr.Column(scale=1):
                    sum_out = gr.Textbox(label="Summary", lines=5, elem_id="pipe-sum-out")
                    notice("min_length and max_length count tokens, not words: the summary stops at "
                           "max_length even mid-sentence.")
                    sum_status, sum_raw, sum_code = _result_views("summarization")

        # ---- 5. NER -----------------------------------------------------------------------
        with gr.Tab("Named entities"):
            with gr.Row():
                with gr.Column(scale=1):
                    ner_text, ner_model, ner_info, ner_knobs, ner_btn, ner_ex = _inputs(
                        engine, "ner", "Text", 3, "Find entities")
                with gr.Column(scale=1):
                    ner_html = gr.HTML(elem_id="pipe-ner-html")
                    ner_table = data_table("entities", headers=["word", "type", "tag", "score", "start", "end"],
                                             label="Entities", interactive=False, elem_id="pipe-ner-table")
                    notice("PER person, ORG organisation, LOC place, MISC other names. With "
                           "aggregation 'none' a BERT model shows every word piece with its B-/I- tag; the "
                           "other strategies merge pieces into whole entities.")
                    ner_status, ner_raw, ner_code = _result_views("ner")

        # ---- 6. translation ----------------------------------------------------------------
        with gr.Tab("Translation"):
            with gr.Row():
                with gr.Column(scale=1):
                    # the language pair comes first: it picks the model
                    tr_text, tr_model, tr_info, tr_knobs, tr_btn, tr_ex = _inputs(
                        engine, "translation", "Text", 3, "Translate", knobs_first=True)
                with gr.Column(scale=1):
                    tr_out = gr.Textbox(label="Translation", lines=4, elem_id="pipe-tr-out")
                    notice("Each OPUS-MT model knows one direction; T5 was trained on several and is told "
                           "which by a text prefix ('translate English to French: ').")
                    tr_status, tr_raw, tr_code = _result_views("translation")

    # Register listeners ---------------------------------------------------------------------
    def describe(task):
        def fn(key):
            return T.describe_model(engine, task, key) if key else ""
        return user_errors(fn)

    for task, dd, info in (("text-generation", gen_model, gen_info),
                           ("zero-shot-classification", zs_model, zs_info), ("fill-mask", fm_model, fm_info),
                           ("summarization", sum_model, sum_info), ("ner", ner_model, ner_info),
                           ("translation", tr_model, tr_info)):
        dd.change(describe(task), dd, info, api_visibility="private")

    @user_errors
    def run_generation(text, key, max_new_tokens, temperature, n, seed, progress=gr.Progress()):
        res = T.run(engine, "text-generation", key, text, progress=progress_callback(progress),
                    max_new_tokens=max_new_tokens, temperature=temperature, num_return_sequences=n,
                    seed=seed)
        md = "\n\n".join(f"**{i}.** {md_text(r['generated_text'])}" for i, r in enumerate(res.data, 1))
        return md, _status(res), res.data, res.code

    gen_btn.click(run_generation, [gen_text, gen_model, *gen_knobs.values()],
                  [gen_out, gen_status, gen_raw, gen_code], api_name="pipeline_text_generation", **HEAVY)

    @user_errors
    def run_zero_shot(text, key, labels, multi_label, template, progress=gr.Progress()):
        res = T.run(engine, "zero-shot-classification", key, text, progress=progress_callback(progress),
                    candidate_labels=labels, multi_label=multi_label, hypothesis_template=template)
        d = res.data
        x_title = "cosine similarity (each label alone)" if (res.fallback_for and res.extra.get("multi_label")) \
            else "score"
        fig = scores_bar(d["labels"], d["scores"], title="multi_label: each label on its own"
                         if res.extra.get("multi_label") else "Scores share 1.0", x_title=x_title)
        return fig, _status(res), d, res.code

    zs_btn.click(run_zero_shot, [zs_text, zs_model, *zs_knobs.values()], [zs_plot, zs_status, zs_raw, zs_code],
                 api_name="pipeline_zero_shot_classification", **HEAVY)

    @user_errors
    def run_fill_mask(text, key, top_k, progress=gr.Progress()):
        res = T.run(engine, "fill-mask", key, text, progress=progress_callback(progress), top_k=top_k)
        fig = scores_bar([r["token_str"] for r in res.data], [r["score"] for r in res.data],
                         title=f"top_k = {len(res.data)}")
        return fig, _status(res), res.data, res.code

    fm_btn.click(run_fill_mask, [fm_text, fm_model, *fm_knobs.values()], [fm_plot, fm_status, fm_raw, fm_code],
                 api_name="pipeline_fill_mask", **HEAVY)

    @user_errors
    def run_summarization(text, key, min_length, max_length, progress=gr.Progress()):
        res = T.run(engine, "summarization", key, text, progress=progress_callback(progress),
                    min_length=min_length, max_length=max_length)
        extra = res.extra
        status = _status(res) + (f"  \nInput {extra.get('input_tokens')} tokens -> summary "
                                 f"{extra.get('summary_tokens')} tokens.")
        return res.data[0]["summary_text"], status, res.data, res.code

    sum_btn.click(run_summarization, [sum_text, sum_model, *sum_knobs.values()],
                  [sum_out, sum_status, sum_raw, sum_code], api_name="pipeline_summarization", **HEAVY)

    @user_errors
    def run_ner(text, key, strategy, progress=gr.Progress()):
        res = T.run(engine, "ner", key, text, progress=progress_callback(progress),
                    aggregation_strategy=strategy)
        rows = [[e["word"], e["type"], e["tag"], "n/a" if e["score"] is None else f"{e['score']:.3f}",
                 e["start"], e["end"]] for e in res.data]
        status = _status(res)
        if res.data and all(e["score"] is None for e in res.data):
            status += "  \nspaCy gives no confidence score per entity, so none is shown."
        return entities_html(text, res.data), rows, status, res.data, res.code

    ner_btn.click(run_ner, [ner_text, ner_model, *ner_knobs.values()],
                  [ner_html, ner_table, ner_status, ner_raw, ner_code], api_name="pipeline_ner", **HEAVY)

    @user_errors
    def run_translation(text, key, source, target, progress=gr.Progress()):
        res = T.run(engine, "translation", key, text, progress=progress_callback(progress),
                    source_language=source, target_language=target)
        return res.data[0]["translation_text"], _status(res), res.data, res.code

    tr_btn.click(run_translation, [tr_text, tr_model, *tr_knobs.values()], [tr_out, tr_status, tr_raw, tr_code],
                 api_name="pipeline_translation", **HEAVY)

    # Examples. Cached (the first click computes, later clicks show it at once): the deterministic,
    # fast tasks. Generation samples and summarization is slow: a click runs or only fills them.
    with gen_ex:
        examples([[t, gen_model.value, n, temp, k, 42] for t, n, temp, k in GENERATION_EXAMPLES],
                 [gen_text, gen_model, *gen_knobs.values()], fn=run_generation,
                 outputs=[gen_out, gen_status, gen_raw, gen_code], columns=[0, 2, 3, 4], gpu=True)
    with zs_ex:
        examples([[t, zs_model.value, labels, multi, template] for t, labels, multi, template in ZERO_SHOT_EXAMPLES],
                 [zs_text, zs_model, *zs_knobs.values()], fn=run_zero_shot,
                 outputs=[zs_plot, zs_status, zs_raw, zs_code], cache=True, columns=[0, 2, 3], gpu=True)
    with fm_ex:
        examples([[t, fm_model.value, 5] for t in FILL_MASK_EXAMPLES], [fm_text, fm_model, *fm_knobs.values()],
                 fn=run_fill_mask, outputs=[fm_plot, fm_status, fm_raw, fm_code], cache=True, columns=[0],
                 gpu=True)
    with sum_ex:
        examples([[t] for t in SUMMARIZATION_EXAMPLES], [sum_text], label="Examples: click one, then Summarize")
    with ner_ex:
        examples([[t, ner_model.value, "simple"] for t in NER_EXAMPLES], [ner_text, ner_model, *ner_knobs.values()],
                 fn=run_ner, outputs=[ner_html, ner_table, ner_status, ner_raw, ner_code], cache=True, columns=[0],
                 gpu=True)
    with tr_ex:
        examples([list(e) for e in TRANSLATION_EXAMPLES], [tr_text, *tr_knobs.values()],
                 label="Examples: click one, then Translate")

    def pick_for_pair(source, target, current):
        key = T.model_for_pair(source, target)
        return gr.update(value=key) if key and key != current else gr.update()

    for knob in tr_knobs.values():
        knob.change(pick_for_pair, [*tr_knobs.values(), tr_model], tr_model, api_visibility="private")
