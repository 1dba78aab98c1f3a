"""LoRA: fine-tune SmolLM2 (or a causal LM the operator added) on quotes in the browser, watch the loss
fall, and compare the base and the adapted model on the same prompt and seed. Each browser session has
its own adapter (gr.State); the shared base model is never changed; one training runs at a time."""
from __future__ import annotations

import html
import shutil

import gradio as gr

from engine.training import lora, merge, runner
from engine.training import plots as training_plots
from engine.core.errors import UserInputError
from engine.core.settings import make
from tabs._ui import (HEAVY, Plot, Share, budget_control, controls_for, data_table, duration_text, examples,
                      first_view, model_picker, notice, progress_callback, scratch_dir, seed_box, train_intro,
                      user_errors)

TITLE = "LoRA"
PREVIEW_ROWS = 12
# One training runs at a time (the engine's gate). A second one is told at once that the machine
# is busy and returns, so no worker thread waits on a lock; beyond two, Gradio's queue holds them.
TRAIN = dict(concurrency_id="lora_train", concurrency_limit=2)
SOURCES = [("Bundled quotes (Debian fortunes, BSD)", "quotes"), ("Paste text (one example a line)", "paste"),
           ("Upload .txt or .jsonl", "upload")]


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 2**10:,.0f} KiB"


def _format_html(fmt: dict) -> str:
    """One formatted example, its tokens, and a padded batch with its masks and labels."""
    esc = html.escape
    chips = "".join(
        f"<span style='display:inline-block;margin:2px;padding:1px 5px;border-radius:4px;"
        f"background:{'#f7d9a8' if t == fmt['eos'] else '#dde7f5'};font-family:monospace'>"
        f"{esc(t.replace(' ', '·'))}<sub style='opacity:.6;color:inherit'>{i}</sub></span>"
        for t, i in zip(fmt["tokens"], fmt["ids"]))
    rows = []
    for b, (ids, mask, labels) in enumerate(zip(fmt["input_ids"], fmt["attention_mask"], fmt["labels"])):
        def cells(xs, pad_check):
            return "".join(f"<td style='padding:1px 4px;{'background:#eee;color:#666' if m == 0 else ''}'>{x}</td>"
                           for x, m in zip(xs, pad_check))
        rows.append(f"<tr><th>ex {b + 1} input_ids</th>{cells(ids, mask)}</tr>"
                    f"<tr><th>attention_mask</th>{cells(mask, mask)}</tr>"
                    f"<tr><th>labels</th>{cells(labels, mask)}</tr>")
    return (
        "<div style='font-size:0.92em'>"
        f"<p><b>Formatted text</b> (what the model learns to write): <code>{esc(fmt['text'])}</code></p>"
        f"<p><b>Tokens</b> ({len(fmt['ids'])}; · marks a leading space, the orange one is EOS "
        f"<code>{esc(fmt['eos'])}</code>):<br>{chips}</p>"
        f"<p><b>A padded batch of {len(fmt['input_ids'])}</b> (lengths {fmt['lengths']}; the collator pads "
        f"to the longest with <code>{esc(fmt['pad'])}</code>, sets attention_mask 0 there and labels -100 "
        "so padding is not learned, while the real EOS keeps its label):</p>"
        f"<div style='overflow-x:auto'><table style='font-family:monospace;font-size:0.85em;border-collapse:collapse'>"
        f"{''.join(rows)}</table></div></div>"
    )


def _report_markdown(rep: dict, s) -> str:
    out_f, in_f = rep["w_shape"]
    return (
        f"**Trainable: {rep['trainable']:,}** of {rep['total']:,} parameters = **{rep['percent']:.2f}%** "
        f"({rep['n_adapted_layers']} adapted layers: {', '.join(s.target_modules)} in every block).\n\n"
        f"**One layer, `{rep['layer']}`:** the frozen weight W is {out_f}×{in_f} = {rep['w_params']:,} numbers. "
        f"LoRA adds B·A with B {out_f}×{s.r} ({rep['b_params']:,}) and A {s.r}×{in_f} ({rep['a_params']:,}): "
        f"**{rep['layer_lora']:,} trainable = {rep['layer_percent']:.1f}% of W**.  \n"
        f"Output = W·x + (alpha/r)·B·A·x with alpha/r = {s.alpha}/{s.r} = {rep['scale']:g}. B starts at zero, "
        "so before training the adapted model is exactly the base model.\n\n"
        f"**On disk:** this adapter ≈ **{_mb(rep['adapter_bytes'])}** (fp32) vs a full fine-tuned copy "
        f"≈ {_mb(rep['full_bytes'])} (fp32): {rep['full_bytes'] / rep['adapter_bytes']:,.0f}× smaller."
    )


def _settings(r, alpha, dropout, targets, lr, steps, batch, max_len, seed, budget=None, val=None, every=None,
              sched=None, warm=None):
    return make(lora.LoraSettings, drop_none=True, r=r, alpha=alpha, dropout=dropout, target_modules=targets or [],
                learning_rate=lr, max_steps=steps, batch_size=batch, max_length=max_len, seed=seed,
                time_budget=budget, val_share=val, eval_every=every, schedule=sched, warmup_steps=warm)


def _planned(s, steps: int | None = None) -> list[float]:
    """The rate of each step the schedule plans for `steps` (default: the requested ones)."""
    total = steps or s.max_steps
    return [lora.lr_at(i, total, s.learning_rate, s.schedule, s.warmup_steps) for i in range(1, total + 1)]


def _figure(state, s, u=None):
    busy = u is not None and u.busy  # another session trains: this session's last curves are not this run's
    curves = state.curves if isinstance(state, lora.LoraSession) and not busy else lora.Curves()
    steps = u.max_steps if u is not None and u.max_steps else s.max_steps
    return training_plots.lora_figure(u.losses if u is not None else [], curves.val, curves.lrs, _planned(s, steps),
                                      steps)


def _curves_text(state) -> str:
    """' · validation loss 3.10 → 2.45 on 64 held-out lines · rate 1.9e-03' (empty when not measured)."""
    curves, out = state.curves, ""
    if curves.val:
        first, last = curves.val[0][1], curves.val[-1][1]
        out += (f" · validation loss {first:.2f} → **{last:.2f}** on {len(state.held_out)} held-out lines"
                if len(curves.val) > 1 else f" · validation loss {first:.2f} before training")
    if curves.lrs:
        out += f" · rate {curves.lrs[-1]:.1e}"
    return out


def _status(u: lora.TrainUpdate, n_examples: int, state=None) -> str:
    if not u.step:
        return f"⏳ {u.message}"
    if u.refused:
        return f"⛔ {u.message[:1].upper()}{u.message[1:]}"
    head = ("⏱️ Stopped at the time cap" if u.capped else "⏹️ Stopped" if u.stopped else
            "✅ Done" if u.done else "🏋️ Training")
    timing = u.pace.line(u.step, u.done) if u.pace else ""
    tail = (f" {u.message[:1].upper()}{u.message[1:]}; the adapter trained so far is kept: compare it below "
            "or download it. Fewer steps or a smaller batch fit in the cap."
            if u.capped else
            " The adapter trained so far is kept: compare it below or download it." if u.stopped else
            " Now compare base and adapted below, or download the adapter." if u.done else "")
    curves = _curves_text(state) if isinstance(state, lora.LoraSession) else ""
    return (f"{head}: step **{u.step} / {u.max_steps}** · loss {u.losses[0]:.2f} → **{u.loss:.2f}**{curves} · "
            f"{duration_text(u.seconds)} so far{f' · {timing}' if timing else ''} · {n_examples:,} training "
            f"examples.{tail}")


INTRO = (
    "## LoRA: fine-tuning can be cheap\n"
    "Instead of changing all 135 million weights of SmolLM2, LoRA freezes them and learns a small "
    "low-rank update **B·A** beside some layers. Train one here on quotes written as "
    "`<quote> — <author>` + end-of-sequence, then give the base and the adapted model the same "
    "prompt and seed: the adapted one writes a quote, signs it and stops. The base-model picker also "
    "offers the causal LMs the operator added (`--model`); LoRA's target layers come from each one's "
    "architecture."
)


# ---- layout (each function creates its components in the current Blocks context) ---------------
def _data_panel(engine) -> dict:
    """1. Data: the base model, the dataset source, a preview of it and the training format."""
    gr.Markdown("### 1. Data")
    with gr.Row():
        with gr.Column(scale=1):
            base = model_picker(engine, "causal-lm", label="Base model (frozen; LoRA trains beside it)",
                                keys=lora.base_keys(engine), elem_id="lora-base-model")
            source = gr.Radio(choices=SOURCES, value="quotes", label="Dataset")
            pasted = gr.Textbox(label="Your examples (one a line)", lines=5, visible=False,
                                placeholder="Stay hungry, stay foolish. — Stewart Brand")
            upload = gr.File(label="Upload .txt (one example a line) or .jsonl ({\"text\": ...} or "
                                   "{\"quote\": ..., \"author\": ...}), up to 2 MB",
                             file_types=[".txt", ".jsonl"], visible=False)
            preview_btn = gr.Button("Preview data and training format", elem_id="lora-preview")
            count_md = gr.Markdown()
        with gr.Column(scale=2):
            preview = data_table("lora-data-preview", headers=["quote", "author"], label=f"First {PREVIEW_ROWS} examples",
                                   interactive=False, elem_id="lora-data-preview", wrap=True, max_height=330,
                                   column_widths=["78%", "22%"])
    format_html = gr.HTML()
    notice("Every example ends with the EOS token. That is how the adapted model learns to stop after the "
           "author, while the base model keeps rambling until it runs out of tokens.")
    return dict(base=base, source=source, pasted=pasted, upload=upload, preview_btn=preview_btn,
                count_md=count_md, preview=preview, format_html=format_html)


def _settings_panel() -> dict:
    """2. Settings: the LoRA knobs (knobs: name -> slider), the target layers and the seed."""
    gr.Markdown("### 2. Settings")
    with gr.Row():
        knobs = controls_for(lora.LoraSettings, ["r", "alpha", "dropout"])
    with gr.Row():
        targets = controls_for(lora.LoraSettings, ["target_modules"],  # the default base model's (Llama) layers
                               target_modules=dict(choices=lora.LINEAR_NAMES))["target_modules"]
    with gr.Row():
        knobs.update(controls_for(lora.LoraSettings, ["learning_rate", "max_steps", "batch_size", "max_length"]))
        seed = seed_box(42)
    with gr.Row(elem_id="lora-schedule"):
        knobs.update(controls_for(lora.LoraSettings, ["val_share", "eval_every", "schedule", "warmup_steps"]))
    notice("The validation loss is measured on lines held out of training: when it stops falling while the "
           "training loss still falls, the adapter is learning its training lines by heart. The learning rate "
           "rises over the warm-up (step s gets peak·s/(warm-up + 1)), then stays at its peak (constant) or "
           "falls to near 0 at the last step (linear, cosine); the plot beside the loss shows it.")
    inspect_btn = gr.Button("Count parameters (before training)")
    report_md = gr.Markdown()
    return dict(knobs=knobs, targets=targets, seed=seed, inspect_btn=inspect_btn, report_md=report_md)


def _train_panel(engine) -> dict:
    """3. Train: start, stop, the status line and the loss curve."""
    gr.Markdown("### 3. Train")
    with gr.Row():
        budget = budget_control(lora.LoraSettings, runner.cap_seconds(engine))
        train_btn = gr.Button("Train adapter", variant="primary")
        stop_btn = gr.Button("Stop (keep what is trained)", variant="stop")
    status_md = gr.Markdown(train_intro("Train adapter", runner.duration(runner.cap_seconds(engine))),
                            elem_id="lora-status")
    loss_plot = Plot(filename="lora-loss", initial=lambda: _figure(None, lora.LoraSettings()),
                     label="Loss and learning rate", elem_id="lora-loss")
    notice("The loss is the average surprise (cross-entropy) per next token. It falls fast at first, as the "
           "model learns the ' — Author' + EOS pattern, then slowly, as it learns the quotes' style. The "
           "green validation loss is the same measure on the held-out lines, which training never sees.")
    return dict(budget=budget, train_btn=train_btn, stop_btn=stop_btn, status_md=status_md, loss_plot=loss_plot)


def _compare_panel() -> dict:
    """4. Compare: the same prompt and seed through the base and the adapted model."""
    gr.Markdown("### 4. Compare: same prompt, same seed, adapter off vs on")
    with gr.Row():
        prompt = gr.Textbox(value="Life is", label="Prompt", scale=3)
        cmp_seed = seed_box(7, scale=1)
        max_new = gr.Slider(8, 120, value=48, step=1, label="max new tokens", scale=1)
        temperature = gr.Slider(0.0, 1.5, value=0.8, step=0.05, label="temperature (0 = greedy)", scale=1)
    examples([["Life is", 7, 48, 0.8], ["A good teacher", 7, 48, 0.8], ["The computer", 7, 48, 0.8],
              ["Never trust", 3, 48, 0.0]], [prompt, cmp_seed, max_new, temperature],
             labels=["Life is", "A good teacher", "The computer", "Never trust (greedy)"],
             label="Example prompts (after training, click one, then Compare)")
    compare_btn = gr.Button("Compare base vs adapted", variant="primary")
    with gr.Row():
        base_out = gr.Textbox(label="Base model (adapter disabled)", lines=6, elem_id="lora-base")
        adapted_out = gr.Textbox(label="Adapted model (adapter enabled)", lines=6, elem_id="lora-adapted")
    compare_md = gr.Markdown()
    notice("One model does both: peft's disable_adapter() switches B·A off, so the only difference between "
           "the two boxes is the adapter.")
    return dict(prompt=prompt, cmp_seed=cmp_seed, max_new=max_new, temperature=temperature,
                compare_btn=compare_btn, base_out=base_out, adapted_out=adapted_out, compare_md=compare_md)


def _files_panel() -> dict:
    """5. Adapter files: download this session's adapter, or upload one."""
    gr.Markdown("### 5. Adapter files")
    with gr.Row():
        with gr.Column():
            download_btn = gr.Button("Download adapter (.zip)")
            download_file = gr.File(label="adapter_model.safetensors + adapter_config.json", interactive=False)
        with gr.Column():
            adapter_upload = gr.File(label="Upload an adapter: the .zip from here or adapter_model.safetensors "
                                           f"({_mb(lora.MAX_ADAPTER_BYTES)} max, checked against the model)",
                                     file_types=[".zip", ".safetensors"])
            upload_md = gr.Markdown()
    gr.Markdown("Load the zip elsewhere with `PeftModel.from_pretrained(base_model, folder)` after unzipping.")
    with gr.Row():
        with gr.Column():
            merge_btn = gr.Button("Merge into the base and download the full model (.zip)")
            merge_md = gr.Markdown("W + (alpha/r)·B·A is written into each adapted weight of a copy of the base "
                                   f"model, saved in {merge.EXPORT_DTYPE} (about 260 MiB for SmolLM2): a model "
                                   "folder that `AutoModelForCausalLM.from_pretrained` loads, no peft needed.")
        merge_file = gr.File(label="merged-model/: config.json, model.safetensors, tokenizer files",
                             interactive=False, elem_id="lora-merged-file")
    return dict(download_btn=download_btn, download_file=download_file, adapter_upload=adapter_upload,
                upload_md=upload_md, merge_btn=merge_btn, merge_md=merge_md, merge_file=merge_file)


# ---- listeners (plain functions, or made for one engine; wrapped with user_errors when registered) -----
def show_source(src):
    return gr.update(visible=src == "paste"), gr.update(visible=src == "upload")


def show_base(engine):
    def on_base(key, ticked=None):
        """The target layers of the picked base model: its linear layers; the ticked ones kept where it has
        them all (a link's), else its family's defaults ticked."""
        names, targets = lora.base_layout(engine, lora.check_base(engine, key))
        keep = list(ticked or []) and set(ticked) <= set(names)
        return gr.update(choices=names, value=list(ticked) if keep else targets)
    return on_base


def make_preview(engine):
    def do_preview(src, text, file, max_len, base=lora.BASE_KEY, progress=gr.Progress()):
        texts = lora.dataset_texts(src, text, file)
        max_len = make(lora.LoraSettings, drop_none=True, max_length=max_len).max_length
        bundle = engine.load(lora.check_base(engine, base), progress=progress_callback(progress))
        fmt = lora.show_format(bundle.tokenizer, texts, max_len)
        rows = [list(lora.split_quote(t)) for t in texts[:PREVIEW_ROWS]]
        ids = lora.encode_examples(bundle.tokenizer, texts, max_len)
        cut = sum(1 for x in ids if x[-1] != bundle.tokenizer.eos_token_id)
        avg = sum(len(x) for x in ids) / len(ids)
        md = (f"**{len(texts):,} examples**, {avg:.0f} tokens on average with EOS"
              f"{f'; {cut} longer than max length {max_len} are cut (and lose their EOS)' if cut else ''}.")
        return md, rows, _format_html(fmt)
    return do_preview


def make_inspect(engine):
    def do_inspect(r, alpha, dropout, tmods, lr, steps, batch, max_len, seed_v, base=lora.BASE_KEY,
                   progress=gr.Progress()):
        s = _settings(r, alpha, dropout, tmods, lr, steps, batch, max_len, seed_v)
        key = lora.check_base(engine, base)
        bundle = engine.load(key, progress=progress_callback(progress))
        lora.check_trainable(bundle.model, engine.registry.get(key))
        model = lora.session_model(bundle.model, s)
        s = lora.targets_for(bundle.model, s)  # the default: the family's own query/value layers
        md = _report_markdown(lora.param_report(model, s), s)
        return md, gr.update(choices=lora.linear_layer_names(bundle.model), value=list(s.target_modules))
    return do_inspect


def make_train(engine):
    def do_train(src, text, file, r, alpha, dropout, tmods, lr, steps, batch, max_len, seed_v, budget, state,
                 val=None, every=None, sched=None, warm=None, base=lora.BASE_KEY, progress=gr.Progress()):
        s = _settings(r, alpha, dropout, tmods, lr, steps, batch, max_len, seed_v, budget, val, every, sched, warm)
        key = lora.check_base(engine, base)
        texts = lora.dataset_texts(src, text, file)
        state = state if isinstance(state, lora.LoraSession) else lora.LoraSession()
        if state.training:
            raise UserInputError("this session is already training: wait for it or press Stop.")
        report = progress_callback(progress)
        yield "⏳ Starting: preparing the model and the data...", _figure(None, s), state
        for u in lora.train(engine, state, texts, s, progress=report, base_key=key):
            if u.step:
                report(u.step / u.max_steps, f"step {u.step}/{u.max_steps}, loss {u.loss:.3f}")
            yield _status(u, state.examples or len(texts), state), _figure(state, s, u), state
    return do_train


def show_plan(lr, steps, sched, warm, state):
    """The schedule planned for these knobs, drawn before a run (a session's own run stays shown)."""
    if isinstance(state, lora.LoraSession) and (state.losses or state.training):
        return gr.update()
    try:
        s = make(lora.LoraSettings, drop_none=True, learning_rate=lr, max_steps=steps, schedule=sched,
                 warmup_steps=warm)
    except UserInputError:  # a number still being typed: the plot waits for a valid one
        return gr.update()
    return _figure(None, s)


def do_stop(state):
    if not isinstance(state, lora.LoraSession):
        return "Nothing is training in this session."
    state.stop.set()
    if not state.training:
        return "⏹️ Stopped (nothing was running yet)."
    return "⏹️ Stopping after the current step; the adapter trained so far is kept."


def _ready_adapter(state):
    if not isinstance(state, lora.LoraSession) or state.model is None:
        raise UserInputError("no adapter in this session yet: train one (step 3) or upload one (step 5).")
    if state.training:
        raise UserInputError("the adapter is still training: wait for it to finish or press Stop.")


def do_compare(text, seed_v, n_new, temp, state):
    _ready_adapter(state)
    pair = lora.generate_pair(state.model, state.tokenizer, text, seed_v, n_new, temp,
                              name=state.base_title or "the model")
    b, a = pair["base"], pair["adapted"]

    def how(x):
        return "stopped at EOS" if x["stopped_at_eos"] else "ran out of tokens (no EOS)"
    origin = (f"trained {state.steps_done} steps" if state.source == "trained" else "uploaded")
    md = (f"Base{f' ({state.base_title})' if state.base_title else ''}: {b['new_tokens']} new tokens, {how(b)}. "
          f"Adapted ({origin}, r={state.settings.r}): {a['new_tokens']} new tokens, {how(a)}.")
    return b["text"], a["text"], md


def do_download(state):
    _ready_adapter(state)
    return str(lora.export_adapter(state.model, scratch_dir("lora")))


def do_merge(state):
    """The merged model's zip, served once (Gradio copies it into its own cache while this generator
    waits at its yield), then removed: a 260 MiB file is not left in the scratch folder."""
    _ready_adapter(state)
    folder = scratch_dir("lora-merged")
    try:
        path = merge.export_merged(state.model, state.tokenizer, folder)
        size = path.stat().st_size
        yield str(path), (f"✅ Merged: W + {state.settings.alpha}/{state.settings.r}·B·A in "
                          f"{', '.join(state.settings.target_modules)} of every block, {merge.EXPORT_DTYPE}: "
                          f"{size / 2**20:,.0f} MiB. Unzip it and load the folder with "
                          "`AutoModelForCausalLM.from_pretrained('merged-model')`.")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def make_upload(engine):
    def do_upload(file, state, base=lora.BASE_KEY, progress=gr.Progress()):
        if not file:
            return "Choose a file to upload.", state
        state = state if isinstance(state, lora.LoraSession) else lora.LoraSession()
        info = lora.import_adapter(engine, state, file, progress=progress_callback(progress),
                                   base_key=lora.check_base(engine, base))
        return (f"✅ Loaded: r={info['r']}, alpha={info['alpha']}, {', '.join(info['target_modules'])}, "
                f"{info['tensors']} tensors; every name, shape and value checked. Compare it in step 4."), state
    return do_upload


# ---- wiring ------------------------------------------------------------------------------------------
def _wire(engine, session, data, settings, train, compare, files):
    c, targets = settings["knobs"], settings["targets"]
    settings_inputs = [c["r"], c["alpha"], c["dropout"], targets, c["learning_rate"], c["max_steps"],
                       c["batch_size"], c["max_length"], settings["seed"]]
    source, pasted, upload, base = data["source"], data["pasted"], data["upload"], data["base"]
    source.change(show_source, inputs=source, outputs=[pasted, upload], api_name=False, queue=False)
    preview_args = dict(fn=user_errors(make_preview(engine)), inputs=[source, pasted, upload, c["max_length"], base],
                        outputs=[data["count_md"], data["preview"], data["format_html"]], **HEAVY)
    base.change(user_errors(show_base(engine)), inputs=[base, targets], outputs=targets, api_name="lora_base",
                queue=False).success(api_name=False, **preview_args)  # the format in the new base's tokens
    data["preview_btn"].click(api_name="lora_preview", **preview_args)
    settings["inspect_btn"].click(user_errors(make_inspect(engine)), inputs=[*settings_inputs, base],
                                  outputs=[settings["report_md"], targets], api_name="lora_params", **HEAVY)
    extra = [c["val_share"], c["eval_every"], c["schedule"], c["warmup_steps"]]
    train["train_btn"].click(user_errors(make_train(engine)),
                             inputs=[source, pasted, upload, *settings_inputs, train["budget"], session, *extra, base],
                             outputs=[train["status_md"], train["loss_plot"], session], api_name="lora_train",
                             show_progress="minimal", **TRAIN)
    train["stop_btn"].click(user_errors(do_stop), inputs=session, outputs=train["status_md"], api_name="lora_stop",
                            concurrency_limit=None)
    compare["compare_btn"].click(user_errors(do_compare),
                                 inputs=[compare["prompt"], compare["cmp_seed"], compare["max_new"],
                                         compare["temperature"], session],
                                 outputs=[compare["base_out"], compare["adapted_out"], compare["compare_md"]],
                                 api_name="lora_compare", **HEAVY)
    files["download_btn"].click(user_errors(do_download), inputs=session, outputs=files["download_file"],
                                api_name="lora_download", **HEAVY)
    files["merge_btn"].click(user_errors(do_merge), inputs=session, outputs=[files["merge_file"], files["merge_md"]],
                             api_name="lora_merge", concurrency_id="lora_merge", concurrency_limit=1)
    files["adapter_upload"].upload(user_errors(make_upload(engine)), inputs=[files["adapter_upload"], session, base],
                                   outputs=[files["upload_md"], session], api_name="lora_upload", **HEAVY)


def _wire_plan(session, settings, train):
    """Redraw the planned learning rate as its knobs move (no model: answered outside the queue)."""
    c = settings["knobs"]
    knobs = [c["learning_rate"], c["max_steps"], c["schedule"], c["warmup_steps"]]
    for knob in knobs:
        knob.change(show_plan, inputs=[*knobs, session], outputs=train["loss_plot"], api_name=False, queue=False)


def build(engine) -> Share:
    gr.Markdown(INTRO)
    session = gr.State(None)
    data = _data_panel(engine)
    settings = _settings_panel()
    train = _train_panel(engine)
    compare = _compare_panel()
    files = _files_panel()
    _wire(engine, session, data, settings, train, compare, files)
    first_view(data["preview_btn"], data["preview"])  # the bundled quotes, listed when the tab opens
    _wire_plan(session, settings, train)
    # A link can preset the knobs and the prompt; training itself stays a deliberate click.
    c = settings["knobs"]
    return Share(params={"model": data["base"], "prompt": compare["prompt"], "r": c["r"], "alpha": c["alpha"],
                         "steps": c["max_steps"], "targets": settings["targets"], "lr": c["learning_rate"],
                         "val": c["val_share"],
                         "every": c["eval_every"], "schedule": c["schedule"], "warmup": c["warmup_steps"]})
