"""Trust & prompting: is the model as sure as it is right (calibration), does a passage in the
prompt fix its answers (grounding), does it walk back a wrong first step (snowballing), and what
the prompt alone changes (prompting). Layout and listeners only; the work is in engine/trust."""
from __future__ import annotations

import gradio as gr

from engine.core.errors import check_choice
from engine.core.settings import make
from engine.trust import calibration as cal
from engine.trust import grounding as gnd
from engine.trust import plots
from engine.trust import prompting as pr
from engine.trust import snowball as snow
from tabs._ui import (HEAVY, Plot, Share, controls_for, data_table, examples, model_picker, named_inputs, notice,
                      on_gpu, progress_callback, user_errors, view_link)

TITLE = "Trust & prompting"
INTRO = ("When should you believe an answer? **Calibration**: is the model as sure as it is right? **Grounding**: "
         "does a passage in the prompt fix its answers, and what does a false passage do? **Snowballing**: does it "
         "walk back a wrong first step? **Prompting**: what does the prompt alone change, weights untouched? "
         "Every run has a time budget and shows its progress.")
CAL_HEADERS = ["confidence", "what it measures", "ECE", "Brier", "mean confidence"]
RANK_HEADERS = ["question", "gold", "model's answer", "right", "first token", "sequence", "agreement", "samples"]
GROUND_HEADERS = ["condition", "questions", "accuracy", "hallucination rate", "answers supported by a passage",
                  "repeat the false passage", "gold passage retrieved"]
GROUND_ROW_HEADERS = ["question", "gold", "condition", "model's answer", "right", "support", "passages shown"]
STEP_HEADERS = ["step", "token written", "p(that token)", "p(correction opener)", "p(right answer's first token)"]
PROMPT_HEADERS = ["variant", "few-shot k", "accuracy", "95% interval", "example prompt (first item, right choice)"]
CAL_KNOBS = ("n_questions", "category", "samples", "temperature", "bins", "max_new_tokens", "seed", "max_seconds")
GROUND_KNOBS = ("n_questions", "top_k", "max_new_tokens", "max_seconds")
PROMPT_KNOBS = ("dimension", "skill", "n_items", "k_shot", "seed", "system_prompt", "max_seconds")
CAL_EXAMPLES = (("Every category, 32 questions", 32, "all", 3), ("Capitals only", 32, "capital", 3),
                ("Chemical symbols, 5 samples each", 24, "symbol", 5), ("Quick: 16 questions, no samples", 16, "all", 0))
GROUND_EXAMPLES = (("8 questions, top-1 passage", 8, 1), ("16 questions, top-3 passages", 16, 3),
                   ("32 questions, top-5 passages", 32, 5))
PROMPT_EXAMPLES = (("Few-shot curve, capitals", "few-shot k", "capitals"),
                   ("Instruction paraphrases, commonsense", "instruction wording", "commonsense"),
                   ("Chat template on/off, capitals", "chat template", "capitals"),
                   ("Answer format, negation", "answer format", "negation"))


def _pct(x):
    return "–" if x is None else f"{x:.0%}"


def _mark(ok: bool) -> str:
    return "✅" if ok else "❌"


# ---- calibration -------------------------------------------------------------------------------
def calibration_view(result, measure, tau):
    """Everything drawn from one run's result: cheap, so the measure and tau re-draw it at once."""
    if not result:
        return plots.reliability_figure(), plots.coverage_figure(), [], "Press **Run** first.", []
    measure = check_choice("confidence measure", measure, cal.MEASURES)
    if measure not in measured(result):
        return (plots.reliability_figure(), plots.coverage_figure(), [],
                f"**{measure}** was not measured in this run (samples k = 0): pick another confidence, or run "
                "again with k ≥ 1.", [])
    rows = result["rows"]
    y = [r["correct"] for r in rows]
    curves = {m: cal.coverage_curve([r["confidence"][m] for r in rows], y) for m in measured(result)}
    d = cal.declined(rows, measure, tau)
    ranked = [[r["question"], r["gold"], r["answer"], _mark(r["correct"]), *(round(r["confidence"][m], 3)
               for m in cal.MEASURES), " | ".join(r["samples"])] for r in cal.ranked(rows, measure)]
    text = (f"With τ = {d['tau']:.2f} on **{measure}** the model answers {d['answered']} of {len(rows)} "
            f"(coverage {d['coverage']:.0%}), accuracy of those {_pct(d['accuracy'])}; it declines "
            f"{len(d['declined'])}: {d['wrong_declined']} wrong answers avoided, {d['right_declined']} right ones lost.")
    declined = [[r["question"], r["gold"], r["answer"], _mark(r["correct"]), *(round(r["confidence"][m], 3)
                 for m in cal.MEASURES), " | ".join(r["samples"])] for r in d["declined"]]
    return plots.reliability_figure(result, measure), plots.coverage_figure(curves, d["tau"]), ranked, text, declined


def measured(result) -> tuple[str, ...]:
    """The confidences this run measured: agreement needs k >= 1 samples."""
    return cal.MEASURES if result["settings"]["samples"] else tuple(m for m in cal.MEASURES if m != "agreement")


def score_table(result) -> list[list]:
    """ECE, Brier and mean confidence per confidence; a measure the run did not take says so."""
    summ, rows = result["summary"], []
    for m in cal.MEASURES:
        if m not in measured(result):
            rows.append([m, cal.MEASURE_HELP[m], "not measured (k = 0)", "–", "–"])
            continue
        sc = summ["measures"][m]
        rows.append([m, cal.MEASURE_HELP[m], round(sc["ece"], 4), round(sc["brier"], 4),
                     round(sc["mean_confidence"], 3)])
    return rows


def make_calibration(engine):
    def run(model_key, *values, progress=gr.Progress()):
        *knob_values, measure, tau = values
        s = make(cal.CalibrationSettings, **dict(zip(CAL_KNOBS, knob_values)))
        result = cal.run(engine, model_key, s, progress_callback(progress))
        summ = result["summary"]
        table = score_table(result)
        stop = (f" The time budget ({s.max_seconds} s) ran out: {summ['n']} of {result['asked']} questions answered."
                if result["stopped"] else "")
        head = (f"**{summ['n']} questions, accuracy {summ['accuracy']:.0%}** (normalised exact or alias match), "
                f"{result['seconds']:.1f} s. ECE over {summ['bins']} equal-width bins.{stop}")
        return (result, head, table, *calibration_view(result, measure, tau))
    return named_inputs(run, ["model", *CAL_KNOBS, "measure", "tau"])


def _calibration_panel(engine) -> dict:
    gr.Markdown(f"The model answers {cal.questions.SOURCE_NOTE.split(' (')[0]} greedily, after two solved examples. "
                "Three confidences per answer; a right answer is a normalised exact match with the gold answer or "
                "one of its accepted spellings (the Evaluation tab's answer metrics).")
    with gr.Row():
        with gr.Column(scale=1):
            model = model_picker(engine, "causal-lm", label="Language model")
            btn = gr.Button("Run", variant="primary")
        with gr.Column(scale=3):
            knobs = controls_for(cal.CalibrationSettings)
    examples_box = gr.Column()
    head = gr.Markdown()
    table = data_table("calibration-scores", headers=CAL_HEADERS, label="Calibration of each confidence", wrap=True)
    with gr.Row():
        measure = gr.Radio(list(cal.MEASURES), value="first token", label="Confidence shown")
        tau = gr.Slider(0, 1, value=0.5, step=0.01, label="τ: answer only when confidence ≥ τ")
    with gr.Row():
        rel = Plot(filename="reliability-diagram", initial=plots.reliability_figure, show_label=False,
                   elem_id="trust-reliability")
        cov = Plot(filename="accuracy-coverage", initial=plots.coverage_figure, show_label=False)
    declined_md = gr.Markdown()
    declined = data_table("declined-questions", headers=RANK_HEADERS, label="Declined at this τ", wrap=True,
                          max_height=300)
    ranked = data_table("answers-ranked", headers=RANK_HEADERS, wrap=True, max_height=420,
                        label="Every answer: the confident and wrong first (the confident hallucinations)")
    notice("A small model is often sure and wrong. If the bars sit below the diagonal it is over-confident; "
           "raising τ trades coverage for accuracy only if the confidence knows something.")
    state = gr.State(None)
    view_out = [rel, cov, ranked, declined_md, declined]
    return dict(model=model, btn=btn, knobs=knobs, measure=measure, tau=tau, state=state, examples_box=examples_box,
                inputs=[model, *(knobs[n] for n in CAL_KNOBS), measure, tau],
                outputs=[state, head, table, *view_out], view_out=view_out)


def _wire_calibration(engine, c: dict) -> None:
    c["btn"].click(user_errors(on_gpu(make_calibration(engine))), inputs=c["inputs"], outputs=c["outputs"],
                   api_name="trust_calibration", **HEAVY)
    redraw = user_errors(calibration_view)
    for comp in (c["measure"], c["tau"]):
        comp.change(redraw, inputs=[c["state"], c["measure"], c["tau"]], outputs=c["view_out"],
                    api_name="trust_calibration_view" if comp is c["measure"] else "trust_calibration_tau",
                    show_progress="hidden")


# ---- grounding ---------------------------------------------------------------------------------
def make_grounding(engine):
    def run(model_key, *values, progress=gr.Progress()):
        s = make(gnd.GroundingSettings, **dict(zip(GROUND_KNOBS, values)))
        res = gnd.run(engine, model_key, s, progress_callback(progress))
        summary = [[r["condition"], r["n"], _pct(r["accuracy"]), _pct(r["hallucination"]), _pct(r["supported"]),
                    _pct(r["repeats_false"]), _pct(r["gold_retrieved"])] for r in res["summary"]]
        rows = [[r["question"], r["gold"], r["condition"], r["answer"], _mark(r["correct"]),
                 "no passage" if not r["passages"] else
                 (f"supported by [{r['supported_by']}]" if r["supported_by"] else "unsupported"),
                 " ".join(f"[{n}] {t}" for n, t in enumerate(r["passages"], 1))] for r in res["rows"]]
        return summary, plots.grounding_figure(res), rows, grounding_note(res["summary"], res["left_out"])
    return named_inputs(run, ["model", *GROUND_KNOBS])


def grounding_note(summary: list[dict], left_out: list[str]) -> str:
    """What the grounding run measured, in words: only what the summary's figures say."""
    by = {r["condition"]: r for r in summary}
    closed = by.get("closed book")
    note = ""
    if closed and "gold passage" in by:
        a, b = closed["accuracy"], by["gold passage"]["accuracy"]
        note = (f"With the gold passage accuracy is {b:.0%} against {a:.0%} closed book"
                + (": the passage helped." if b > a else ": here the passage did **not** help this model."))
    if closed and "misleading" in by:
        m = by["misleading"]
        note += (f" With the misleading passage {m['repeats_false']:.0%} of the answers repeat its false answer "
                 f"(errors the passage brought in), and {m['hallucination']:.0%} are wrong in all, against "
                 f"{closed['hallucination']:.0%} closed book.")
    if left_out:
        note += f" Time budget reached: {', '.join(left_out)} not run."
    return note.strip()


def _grounding_panel(engine) -> dict:
    gr.Markdown("The same questions four ways: closed book; with the top-k passages a MiniLM dense search finds "
                "among all bundled passages (the gold one and the other questions' passages as distractors, as in "
                "the Retrieval tab); with only the gold passage; with only a **misleading** passage that states "
                "another answer. *Supported*: the answer occurs, normalised, as whole words in a passage shown.")
    with gr.Row():
        with gr.Column(scale=1):
            model = model_picker(engine, "causal-lm", label="Language model")
            btn = gr.Button("Run", variant="primary")
        with gr.Column(scale=3):
            knobs = controls_for(gnd.GroundingSettings)
    examples_box = gr.Column()
    note = gr.Markdown()
    summary = data_table("grounding-summary", headers=GROUND_HEADERS, label="With and without retrieval",
                         wrap=True, elem_id="trust-grounding-summary")
    plot = Plot(filename="hallucination-rate", initial=plots.grounding_figure, show_label=False)
    rows = data_table("grounding-answers", headers=GROUND_ROW_HEADERS, label="Every answer", wrap=True,
                      max_height=420)
    notice("Grounding moves the error rather than removing it: compare the misleading row with the closed-book row. "
           "Every answer that repeats the false passage is an error the passage brought in.")
    return dict(btn=btn, knobs=knobs, examples_box=examples_box, inputs=[model, *(knobs[n] for n in GROUND_KNOBS)],
                outputs=[summary, plot, rows, note])


# ---- snowballing -------------------------------------------------------------------------------
def make_snowball(engine):
    def run(model_key, question, prefix, right_answer, max_new_tokens, progress=gr.Progress()):
        s = make(snow.SnowballSettings, max_new_tokens=max_new_tokens)
        r = snow.run(engine, model_key, question, prefix, right_answer, s, progress_callback(progress))
        steps = [[st["step"], st["token"], round(st["p_token"], 4), round(st["p_correction"], 4),
                  "–" if st["p_right"] is None else round(st["p_right"], 4)] for st in r["forced_steps"]]
        peak = max(r["forced_steps"], key=lambda st: st["p_correction"], default=None)
        verdict = ("" if not r["right_answer"] else
                   f"Forced: the right answer **{'appears' if r['corrected'] else 'never appears'}** in the "
                   f"continuation. Unforced: it {'appears' if r['unforced_right'] else 'does not appear'}. ")
        if peak:
            verdict += (f"The highest chance of a correction opener was {peak['p_correction']:.1%} at step "
                        f"{peak['step']} (before {peak['token']!r}).")
        return r["forced"], r["unforced"], plots.snowball_figure(r), steps, verdict
    return run


def _snowball_panel(engine) -> dict:
    first = snow.EXAMPLES[0]
    gr.Markdown("The model's answer starts with words we force on it (edit them). Does it justify the wrong step "
                "or correct it? Beside it, the same question answered freely. The chart shows, at each step after "
                "the forced prefix, the probability of a token that opens a correction ("
                + ", ".join(snow.CORRECTIONS) + ") and of the right answer's first token.")
    with gr.Row():
        with gr.Column(scale=3):
            question = gr.Textbox(first[1], label="Question", max_length=snow.MAX_QUESTION_CHARS)
            prefix = gr.Textbox(first[2], label="Forced prefix: the start of the model's answer",
                                max_length=snow.MAX_PREFIX_CHARS)
            right = gr.Textbox(first[3], label="The right answer (to watch for)", max_length=100)
        with gr.Column(scale=1):
            model = model_picker(engine, "causal-lm", label="Language model")
            knobs = controls_for(snow.SnowballSettings)
            btn = gr.Button("Run", variant="primary")
    examples_box = gr.Column()
    verdict = gr.Markdown()
    with gr.Row():
        forced = gr.Textbox(label="Forced: prefix + what the model wrote", lines=5, interactive=False)
        free = gr.Textbox(label="Unforced: the model's own answer", lines=5, interactive=False)
    plot = Plot(filename="snowballing", initial=plots.snowball_figure, show_label=False)
    steps = data_table("snowball-steps", headers=STEP_HEADERS, label="Step by step after the prefix", max_height=360)
    notice("A model conditioned on its own wrong step tends to defend it: the chance of turning back stays small.")
    inputs = [model, question, prefix, right, knobs["max_new_tokens"]]
    return dict(btn=btn, inputs=inputs, outputs=[forced, free, plot, steps, verdict], examples_box=examples_box,
                question=question, prefix=prefix, right=right)


# ---- prompting ---------------------------------------------------------------------------------
def make_prompting(engine):
    def run(model_key, *values, progress=gr.Progress()):
        s = make(pr.PromptSettings, **dict(zip(PROMPT_KNOBS, values)))
        res = pr.run(engine, model_key, s, progress_callback(progress))
        rows = [[r["label"], r["k"], round(r["accuracy"], 3), f"{r['ci_low']:.2f} – {r['ci_high']:.2f}",
                 r["example_prompt"]] for r in res["rows"]]
        sp = res["spread"]
        text = (f"**{res['skill']}**, {res['n_items']} items, {len(res['rows'])} variants of **{res['dimension']}** "
                f"in {res['seconds']:.1f} s. Spread across variants: {sp['max_minus_min']:.0%} (best: {sp['best']}, "
                f"worst: {sp['worst']}), standard deviation {sp['std']:.3f}.")
        if res["dimension"] == "instruction wording":
            text += " That spread is the model's **prompt sensitivity**: same question, same weights, other words."
        if res["left_out"]:
            text += f" Time budget reached: {', '.join(res['left_out'])} not run."
        return text, plots.prompting_figure(res), rows
    return named_inputs(run, ["model", *PROMPT_KNOBS])


def _prompting_panel(engine) -> dict:
    gr.Markdown("One skill of the Evaluation tab's task suite, scored as the suite scores (log-likelihood of each "
                "choice), while only the prompt changes. The few-shot curve's point at k is the task-suite run at k. "
                "For images, the Diffusion tab's prompt builder does the same from the prompt's side: "
                "[open it](?tab=diffusion).")
    with gr.Row():
        with gr.Column(scale=1):
            model = model_picker(engine, "causal-lm", label="Language model")
            btn = gr.Button("Run", variant="primary")
        with gr.Column(scale=3):
            knobs = controls_for(pr.PromptSettings, system_prompt=dict(max_length=pr.MAX_SYSTEM_CHARS))
    examples_box = gr.Column()
    text = gr.Markdown()
    plot = Plot(filename="prompt-sensitivity", initial=plots.prompting_figure, show_label=False,
                elem_id="trust-prompting-plot")
    table = data_table("prompt-variants", headers=PROMPT_HEADERS, label="Each variant", wrap=True, max_height=420)
    notice("Overlapping intervals mean the difference may be noise; a spread larger than the intervals is the "
           "prompt, not luck.")
    return dict(btn=btn, knobs=knobs, examples_box=examples_box, inputs=[model, *(knobs[n] for n in PROMPT_KNOBS)],
                outputs=[text, plot, table])


# ---- the tab -----------------------------------------------------------------------------------
def _wire(engine, c, g, s, p) -> None:
    _wire_calibration(engine, c)
    g["btn"].click(user_errors(on_gpu(make_grounding(engine))), inputs=g["inputs"], outputs=g["outputs"],
                   api_name="trust_grounding", **HEAVY)
    snow_fn = user_errors(on_gpu(make_snowball(engine)))
    s["btn"].click(snow_fn, inputs=s["inputs"], outputs=s["outputs"], api_name="trust_snowball", **HEAVY)
    p["btn"].click(user_errors(on_gpu(make_prompting(engine))), inputs=p["inputs"], outputs=p["outputs"],
                   api_name="trust_prompting", **HEAVY)
    with c["examples_box"]:
        examples([list(e[1:]) for e in CAL_EXAMPLES], [c["knobs"][n] for n in ("n_questions", "category", "samples")],
                 labels=[e[0] for e in CAL_EXAMPLES])
    with g["examples_box"]:
        examples([list(e[1:]) for e in GROUND_EXAMPLES], [g["knobs"][n] for n in ("n_questions", "top_k")],
                 labels=[e[0] for e in GROUND_EXAMPLES])
    with s["examples_box"]:
        examples([list(e[1:]) for e in snow.EXAMPLES], [s["question"], s["prefix"], s["right"]],
                 labels=[e[0] for e in snow.EXAMPLES])
    with p["examples_box"]:
        examples([[d, k] for _, d, k in PROMPT_EXAMPLES], [p["knobs"]["dimension"], p["knobs"]["skill"]],
                 labels=[e[0] for e in PROMPT_EXAMPLES])


def build(engine) -> Share:
    gr.Markdown(INTRO)
    with gr.Tabs(overflow_behavior="wrap") as inner:
        with gr.Tab("Calibration", id="trust-calibration") as t_cal:
            c = _calibration_panel(engine)
        with gr.Tab("Grounding", id="trust-grounding") as t_gnd:
            g = _grounding_panel(engine)
        with gr.Tab("Snowballing", id="trust-snowball") as t_snow:
            s = _snowball_panel(engine)
        with gr.Tab("Prompting", id="trust-prompting") as t_pr:
            p = _prompting_panel(engine)
    view, open_view = view_link({"calibration": t_cal, "grounding": t_gnd, "snowball": t_snow, "prompting": t_pr})
    _wire(engine, c, g, s, p)
    return Share(params={"view": view, "question": s["question"], "prefix": s["prefix"], "right": s["right"],
                         "dimension": p["knobs"]["dimension"], "skill": p["knobs"]["skill"],
                         "questions": c["knobs"]["n_questions"], "g_questions": g["knobs"]["n_questions"],
                         "items": p["knobs"]["n_items"]},
                 run=open_view, run_inputs=[view], run_outputs=[inner])
