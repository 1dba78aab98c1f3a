"""Pre-training: train a small language model from nothing on a real corpus, watch its samples go
from noise to words, and fit a scaling law from the student's own runs. Logic in engine/pretraining;
each browser session keeps its model in gr.State (never shared); one training runs at a time."""
from __future__ import annotations

import math
import shutil
import time

import gradio as gr
import pandas as pd

from engine.core.errors import UserInputError, check_range
from engine.core.sessions import SESSION_MODEL_TITLE, current as current_session
from engine.core.settings import make
from engine.pretraining import data, model as pt_model, plots, scaling, train as pt_train, vocab
from engine.training import runner
from tabs._ui import (Plot, Share, budget_control, controls_for, data_table, duration_text, examples, named_inputs,
                      notice, scratch_dir, train_intro, user_errors)

TITLE = "Pre-training"
TRAIN = dict(concurrency_id="pretraining_train", concurrency_limit=2)
DRAW_EVERY_S = 1.0  # the loss plot and the samples are sent at most this often while training (and at the end)
SOURCES = [("Bundled: Python 3.11 docs, prose (2.6 MB, PSF licence)", "bundled"), ("Upload a .txt", "upload")]
PROMPT = "The "
KNOBS = ["arch", "layers", "width", "heads", "context", "learning_rate", "warmup_steps", "batch_size", "max_steps",
         "token_budget", "sample_every", "eval_every", "seed"]
DATA_KNOBS = ["tokenizer", "bpe_vocab", "val_share"]
SWEEP_KNOBS = ["token_budget", "context", "batch_size", "learning_rate", "minutes", "seed"]
COMPARE_CHARS = pt_train.HEAD_CHARS
COMPARE_HEADERS = ["tokenizer", "vocabulary", "tokens", "chars per token"]  # words: a narrow column wraps at spaces
# (tokenizer, BPE size, architecture, layers, width, heads, steps, prompt)
EXAMPLES = [["char", 512, "llama", 3, 128, 4, 300, "The "], ["char", 512, "llama", 1, 64, 2, 200, "The "],
            ["char", 512, "gpt2", 3, 128, 4, 300, "The "], ["bpe", 512, "llama", 3, 128, 4, 300, "The "],
            ["gpt2", 512, "llama", 2, 64, 4, 100, "The "]]
EXAMPLE_LABELS = ["Default: characters, Llama 3x128", "Tiny and fast: 1x64, 200 steps", "GPT-2-style 3x128",
                  "BPE of 512 tokens", "GPT-2's 50,257 tokens (slow: a huge output layer)"]

INTRO = (
    "## Pre-training: a language model from nothing\n"
    "A language model learns by predicting the next token of raw text. Nobody labels anything: the label of "
    "each position is simply the token that comes next (self-supervision). Here you build the data, pick a "
    "tokenizer, train a small transformer from random weights on the CPU (the server's, when the app runs on "
    "one), watch its samples turn from noise into words, then train several sizes and fit a scaling law to your "
    "own runs."
)


def _settings(values: dict, budget=None) -> pt_model.PretrainSettings:
    return make(pt_model.PretrainSettings, drop_none=True, time_budget=budget, **values)


def _source_text(source, upload):
    """None for the bundled corpus, else the uploaded text (bounded)."""
    if source == "bundled":
        return None
    if source != "upload":
        raise UserInputError(f"source = {source!r} is not valid: choose 'bundled' or 'upload'.")
    if not upload:
        raise UserInputError("no file uploaded: choose a .txt file, or the bundled corpus.")
    return data.read_upload(upload)


def _prepared(source, upload, s):
    text = _source_text(source, upload)
    return pt_train.prepare(text, s, "your upload")


# ---- 1. data and tokenizer ----------------------------------------------------------------------------------
def _data_panel() -> dict:
    gr.Markdown("### 1. The data and the tokenizer")
    with gr.Row():
        source = gr.Radio(SOURCES, value="bundled", label="Corpus")
        upload = gr.File(label=f"Your text (.txt, UTF-8, {data.MIN_CHARS:,} characters to "
                               f"{data.MAX_UPLOAD_BYTES / 1e6:g} MB)", file_types=[".txt"], visible=False)
    with gr.Row():
        knobs = controls_for(pt_model.PretrainSettings, DATA_KNOBS,
                             tokenizer={"choices": [(vocab.KIND_LABELS[k], k) for k in vocab.KINDS]})
        start = gr.Slider(0, 100_000, value=0, step=1, label="window start (token)",
                          info="Where in the training text the window below begins")
    prepare_btn = gr.Button("Prepare the data", variant="primary")
    data_md = gr.Markdown()
    window = gr.HTML(elem_id="pretraining-window")
    notice("Each column is one position: the model reads the input id and must predict the label under it, "
           "which is just the next id. The labels row is the input row moved one place to the left.")
    with gr.Row():
        merges = data_table("pretraining-bpe-merges", headers=["rank", "left", "right", "merged"],
                            label="BPE: the first merges, in the order learned (· is a space)", max_height=300)
        compare = data_table("pretraining-tokenizers", headers=COMPARE_HEADERS,
                             label=f"The same {COMPARE_CHARS:,} characters of training text, three tokenizers",
                             max_height=300, wrap=True, column_widths=["46%", "20%", "16%", "18%"])
    notice("A bigger vocabulary makes sequences shorter (more text per token, so more text fits in the context "
           "and each step sees more), but every token then costs an embedding row and an output logit, and "
           "each one is seen fewer times.")
    return dict(source=source, upload=upload, knobs=knobs, start=start, prepare_btn=prepare_btn, data_md=data_md,
                window=window, merges=merges, compare=compare)


def _data_md(p: pt_train.Prepared, s) -> str:
    c = data.counts(len(p.train_ids), len(p.val_ids), s.steps, s.batch_size, s.context)
    return (f"**{p.corpus}**: {p.train_chars + p.val_chars:,} characters, split into **training** "
            f"{p.train_chars:,} characters = **{c['train_tokens']:,} tokens** and **validation** (the last "
            f"{s.val_share:.0%}, never trained on) {p.val_chars:,} characters = {c['val_tokens']:,} tokens. "
            f"Tokenizer: {p.vocab.label}, {p.train_chars / max(1, c['train_tokens']):.2f} characters per token.  \n"
            f"**Dataset tokens vs training tokens:** the run in step 2 ({s.steps:,} steps x {s.batch_size} windows "
            f"x {s.context} tokens) reads **{c['training_tokens']:,} tokens** = **{c['epochs']:.2f} epochs** "
            "of the training text.")


def _compare_rows(p: pt_train.Prepared, s) -> tuple[list[list], vocab.Vocab]:
    """The three tokenizers on the first COMPARE_CHARS characters of the training text; and the BPE
    trained on them (its merges are shown when the run's own tokenizer has none)."""
    sample = p.head[:COMPARE_CHARS]
    vocabs = [vocab.char_vocab(sample), vocab.bpe_vocab(sample, s.bpe_vocab), vocab.gpt2_vocab()]
    return [[r["tokenizer"], r["vocab"], r["tokens"], round(r["chars_per_token"], 2)]
            for r in vocab.compare(sample, vocabs)], vocabs[1]


def do_prepare(source, upload, kind, bpe, val_share, start, context, steps, batch, budget_tokens):
    s = make(pt_model.PretrainSettings, tokenizer=kind, bpe_vocab=bpe, val_share=val_share, context=context,
             max_steps=steps, batch_size=batch, token_budget=budget_tokens)
    p = _prepared(source, upload, s)
    pt_train.check_fits(p, s)
    rows, sample_bpe = _compare_rows(p, s)
    own = p.vocab.kind == "bpe"
    merges = [list(m) for m in vocab.show_merges(p.vocab if own else sample_bpe)]
    top = max(0, len(p.train_ids) - s.context - 1)
    start = check_range("window start", 0 if start is None else start, 0, 100_000, integer=True)
    start = min(start, top)
    w = data.window(p.train_ids[start:start + s.context + 1].tolist(), 0, s.context, p.vocab.piece)
    where = ("the BPE this run uses, trained on the whole training text" if own else
             f"a BPE of {s.bpe_vocab:,} tokens trained on the first {COMPARE_CHARS:,} characters (the comparison's)")
    md = f"{_data_md(p, s)}  \nThe merges table shows {where}."
    return (md, plots.window_html(w, p.vocab.kind), pd.DataFrame(merges, columns=["rank", "left", "right", "merged"]),
            pd.DataFrame(rows, columns=COMPARE_HEADERS))


# ---- 2. the model and its training ------------------------------------------------------------------------
def _train_panel(engine, data_knobs: dict) -> dict:
    gr.Markdown("### 2. Train a model from random weights")
    with gr.Row():
        knobs = controls_for(pt_model.PretrainSettings, KNOBS[:5])
    with gr.Row():
        knobs.update(controls_for(pt_model.PretrainSettings, KNOBS[5:10]))
    with gr.Row():
        knobs.update(controls_for(pt_model.PretrainSettings, KNOBS[10:]))
        prompt = gr.Textbox(PROMPT, label="Sample prompt", max_length=pt_train.MAX_PROMPT_CHARS)
        budget = budget_control(pt_model.PretrainSettings, runner.cap_seconds(engine))
    size_md = gr.Markdown(elem_id="pretraining-size")
    examples(EXAMPLES, [data_knobs["tokenizer"], data_knobs["bpe_vocab"], knobs["arch"], knobs["layers"], knobs["width"],
                        knobs["heads"], knobs["max_steps"], prompt], labels=EXAMPLE_LABELS,
             label="Presets: click one, then Train from scratch")
    with gr.Row():
        train_btn = gr.Button("Train from scratch", variant="primary")
        stop_btn = gr.Button("Stop (keep the model)", variant="stop")
    status = gr.Markdown(train_intro("Train from scratch", runner.duration(runner.cap_seconds(engine))),
                         elem_id="pretraining-status")
    with gr.Row():
        with gr.Column(scale=3):
            loss_plot = Plot(filename="pretraining-loss", initial=lambda: plots.loss_curves([], []),
                             label="Loss", elem_id="pretraining-loss")
        with gr.Column(scale=2):
            samples = gr.HTML(plots.samples_html([], PROMPT), label="Samples")
    notice("At step 0 the weights are random, so the model spreads its bet evenly over the vocabulary: its loss "
           "is about ln(vocabulary size), the red line. Everything below that line is learned. The samples use "
           "the same random draws every time, so what changes between two of them is only what the model learned.")
    return dict(knobs=knobs, prompt=prompt, budget=budget, size_md=size_md, train_btn=train_btn, stop_btn=stop_btn,
                status=status, loss_plot=loss_plot, samples=samples)


def _vocab_size_guess(kind, bpe) -> int:
    """The vocabulary the model will get on the bundled corpus (an upload's characters may differ)."""
    if kind == "char":
        return vocab.char_count(data.bundled())
    return int(bpe) if kind == "bpe" else vocab.GPT2_SIZE


def do_size(kind, bpe, arch, layers, width, heads, context, batch, steps, budget_tokens):
    """The parameter count and FLOPs per token, as the knobs move."""
    try:
        s = make(pt_model.PretrainSettings, tokenizer=kind, bpe_vocab=bpe, arch=arch, layers=layers, width=width,
                 heads=heads, context=context, batch_size=batch, max_steps=steps, token_budget=budget_tokens)
    except UserInputError as exc:
        return f"⚠️ {exc}"
    v = _vocab_size_guess(kind, bpe)
    n = pt_model.size(s, v)
    total = s.steps * s.tokens_per_step
    return (f"**{n['total']:,} parameters**: {n['non_embedding']:,} in the blocks (N, non-embedding) + "
            f"{n['embedding']:,} in the embedding ({v:,} tokens x {s.width}{' + positions' if s.arch == 'gpt2' else ''}"
            f", shared with the output layer). **Training FLOPs per token ≈ {plots.fmt_flops(n['flops_per_token'])}** "
            f"(6·N + attention 6·layers·context·width + output layer 6·vocab·width). This run: {s.steps:,} steps x "
            f"{s.tokens_per_step:,} tokens = {total:,} tokens ≈ {plots.fmt_flops(total * n['flops_per_token'])}.")


def _status(u, sess: pt_train.PretrainSession, shared: bool = False) -> str:
    v = sess.prepared.vocab.size
    first, ln_v = sess.first_loss, math.log(v)
    start = (f"First loss {first:.2f} vs ln({v:,}) = {ln_v:.2f} ({(first - ln_v) / ln_v:+.1%}): a random model "
             "guesses evenly among all tokens. " if math.isfinite(first) else "")
    if u is None:
        return f"⏳ Starting: a fresh model of {sum(p.numel() for p in sess.model.parameters()):,} parameters..."
    if u.refused:
        return f"⛔ {u.message[:1].upper()}{u.message[1:]}"
    head = ("⏱️ Stopped at the time cap" if u.capped else
            "⏹️ Stopped" if u.stopped else "✅ Done" if u.done else "🏋️ Training")
    val = sess.curves.val[-1][1] if sess.curves.val else math.nan
    timing = u.pace.line(u.step, u.done) if u.pace else ""
    kept = (" The model is kept in this session: download it in step 4." if u.done and not u.stopped else
            " The model trained so far is kept: download it in step 4." if u.done else "")
    if shared:
        kept += (f" Decoding, Inside the model and Evaluation list it as “{SESSION_MODEL_TITLE}”; no other "
                 "user sees it.")
    return (f"{head}: step **{u.step} / {u.max_steps}** · {sess.tokens_seen:,} tokens · loss **{u.loss:.3f}** · "
            f"validation {val:.3f} · {duration_text(u.seconds)}{f' · {timing}' if timing else ''}.{kept}  \n{start}")


def _figures(sess: pt_train.PretrainSession):
    s = sess.settings
    return (plots.loss_curves(sess.curves.train, sess.curves.val, math.log(sess.prepared.vocab.size),
                              s.steps * s.tokens_per_step),
            plots.samples_html(sess.samples, sess.prompt))


DATA_INPUTS = ["source", "upload", "tokenizer", "bpe_vocab", "val_share"]


def make_train(engine):
    def do_train(source, upload, kind, bpe, val_share, *rest):
        *values, prompt, budget, lesson = rest
        prompt = pt_train.check_prompt(prompt)
        s = _settings({**dict(zip(KNOBS, values)), "tokenizer": kind, "bpe_vocab": bpe, "val_share": val_share},
                      budget)
        lesson = lesson if isinstance(lesson, pt_train.Lesson) else pt_train.Lesson()
        lesson.begin()
        try:
            p = _prepared(source, upload, s)
            sess = pt_train.new_session(p, s, prompt)
            lesson.run = sess
            yield lesson, _status(None, sess), *_figures(sess)
            drawn = time.monotonic()
            for u in pt_train.train(sess, runner.cap_seconds(engine), lesson.stop,
                                    on_cpu=engine.device.kind == "cpu"):
                shared = False
                if u.refused:  # the timed steps are not kept, as the message says
                    lesson.run = None
                elif u.done and sess.steps_done:  # finished or stopped with a model: the other tabs may open it
                    shared = engine.session_models.put(current_session(), *pt_train.session_model(sess))
                if u.done or time.monotonic() - drawn >= DRAW_EVERY_S:
                    drawn = time.monotonic()
                    yield lesson, _status(u, sess, shared), *_figures(sess)
                else:  # the figures are redrawn at most once a second: drawing one costs ~1/3 of a default step
                    yield lesson, _status(u, sess, shared), gr.skip(), gr.skip()
        except runner.TrainingBusy as busy:
            yield lesson, f"⏳ {busy}", gr.skip(), gr.skip()
        finally:
            lesson.training = False
    return named_inputs(do_train, [*DATA_INPUTS, *KNOBS, "prompt", "budget", "lesson"])


def do_stop(lesson):
    if not isinstance(lesson, pt_train.Lesson) or not lesson.training:
        return "Nothing is training in this session."
    lesson.stop.set()
    return "⏹️ Stopping after the current step; the model trained so far is kept."


# ---- 3. scaling law ---------------------------------------------------------------------------------------------
def _sweep_panel(engine) -> dict:
    gr.Markdown("### 3. Scaling law: train five sizes on the same tokens")
    sizes = ", ".join(f"{L}x{d}" for L, d, _ in scaling.SIZES)
    gr.Markdown(f"Models of {len(scaling.SIZES)} sizes (layers x width: {sizes}), Llama-style, on the corpus and "
                "tokenizer of step 1. The validation loss is read at 1/8, 1/4, 1/2 and all of each model's tokens, "
                "which gives a few budgets for every size.")
    with gr.Row():
        knobs = controls_for(scaling.SweepSettings, SWEEP_KNOBS)
    with gr.Row():
        sweep_btn = gr.Button("Run the sweep", variant="primary")
        stop_btn = gr.Button("Stop the sweep (keep the sizes done)", variant="stop")
    status = gr.Markdown(f"The sweep holds the machine for at most {runner.duration(scaling.SWEEP_MINUTES * 60)} "
                         f"(and this server's cap, {runner.duration(runner.cap_seconds(engine))}).",
                         elem_id="pretraining-sweep-status")
    with gr.Row():
        by_params = Plot(filename="scaling-loss-vs-params", initial=lambda: plots.scaling_params([], None),
                         label="Loss vs parameters", elem_id="pretraining-scaling-params")
        by_compute = Plot(filename="scaling-loss-vs-compute", initial=lambda: plots.scaling_compute([]),
                          label="Loss vs compute", elem_id="pretraining-scaling-compute")
    fit_md = gr.Markdown(elem_id="pretraining-fit")
    with gr.Row():
        compute = gr.Number(value=2e11, label="Your compute budget (FLOPs)", info="C = 6·N·D: read the best size "
                            "for it from your runs", minimum=1e3, maximum=1e20)
        optimal_btn = gr.Button("Find the compute-optimal size")
    optimal_md = gr.Markdown()
    table = data_table("pretraining-scaling", label="Every checkpoint of the sweep", max_height=300)
    return dict(knobs=knobs, sweep_btn=sweep_btn, stop_btn=stop_btn, status=status, by_params=by_params,
                by_compute=by_compute, fit_md=fit_md, compute=compute, optimal_btn=optimal_btn,
                optimal_md=optimal_md, table=table)


def _fit_md(res) -> tuple[str, dict | None]:
    finals = res.finals()
    try:
        fit = scaling.fit_power_law([r["params"] for r in finals], [r["val_loss"] for r in finals])
    except UserInputError as exc:
        return f"⚠️ No fit: {exc}", None
    except RuntimeError as exc:  # curve_fit found no minimum
        return f"⚠️ No fit: {exc}", None
    lo, hi = min(r["params"] for r in finals), max(r["params"] for r in finals)
    tokens = max(r["tokens"] for r in finals)
    md = (f"**Your fit:** L(N) = {fit['a']:.3g} · N^(−**{fit['alpha']:.3f}**) + {fit['c']:.3g} "
          f"(R² = {fit['r2']:.3f}, {len(finals)} sizes). **Published:** Kaplan et al. 2020 found α_N ≈ "
          f"{scaling.KAPLAN_ALPHA_N} for large models trained on enough data; Chinchilla (Hoffmann et al. 2022) "
          f"puts the compute-optimal point at about {scaling.CHINCHILLA_TOKENS_PER_PARAM:g} training tokens per "
          f"parameter.  \n*A toy regime:* your sizes run from {lo:,} to {hi:,} non-embedding parameters, at the "
          "very bottom of Kaplan et al.'s range (768 to 1.5 billion) and far below Chinchilla's (70 million to over 16 "
          f"billion). Each trained for seconds to minutes on {tokens:,} tokens of one small corpus, with one "
          f"learning rate for all sizes: the largest saw {tokens / hi:.2g} tokens per parameter, far from trained. The exponent you "
          "get here says how your runs behave, not what GPT-scale models do; expect it to move with the token "
          "budget and the seed.")
    return md, fit


def _table(res) -> pd.DataFrame:
    cols = ["layers", "width", "heads", "params", "tokens", "compute", "val_loss", "seconds"]
    return pd.DataFrame([[r[c] for c in cols] for r in res.rows], columns=cols).round(4)


def make_sweep(engine):
    def do_sweep(source, upload, kind, bpe, val_share, *rest):
        *values, lesson = rest
        sw = make(scaling.SweepSettings, **dict(zip(SWEEP_KNOBS, values)))
        s = make(pt_model.PretrainSettings, tokenizer=kind, bpe_vocab=bpe, val_share=val_share)
        lesson = lesson if isinstance(lesson, pt_train.Lesson) else pt_train.Lesson()
        lesson.begin()
        try:
            p = _prepared(source, upload, s)
            yield lesson, "⏳ Sweep started: the smallest model first...", gr.skip(), gr.skip(), gr.skip(), gr.skip()
            for done, total, res in scaling.sweep(p, sw, runner.cap_seconds(engine), lesson.stop,
                                                  on_cpu=engine.device.kind == "cpu"):
                lesson.sweep = res
                md, fit = _fit_md(res) if len(res.finals()) >= 4 else ("", None)
                state = (f"⏱️ {res.message[:1].upper()}{res.message[1:]}" if res.message else
                         f"🏋️ {done} of {total} sizes trained" if done < total else f"✅ All {total} sizes trained")
                yield (lesson, f"{state} in {duration_text(res.seconds)}.", plots.scaling_params(res.rows, fit),
                       plots.scaling_compute(res.rows), md, _table(res))
        except runner.TrainingBusy as busy:
            yield lesson, f"⏳ {busy}", gr.skip(), gr.skip(), gr.skip(), gr.skip()
        finally:
            lesson.training = False
    return named_inputs(do_sweep, [*DATA_INPUTS, *SWEEP_KNOBS, "lesson"])


def _budget_hint(rows) -> str:
    span = scaling.shared_budgets(rows)
    if span is None:
        return " No two sizes' runs reach a common budget: raise the tokens per model."
    return (f" Two sizes' runs both reach budgets between {plots.fmt_flops(span[0])} and "
            f"{plots.fmt_flops(span[1])}: pick one there.")


def do_optimal(budget, lesson):
    if not isinstance(lesson, pt_train.Lesson) or lesson.sweep is None or not lesson.sweep.rows:
        raise UserInputError("no sweep in this session yet: run the sweep first.")
    rows = lesson.sweep.rows
    best = scaling.compute_optimal(rows, budget)
    fig = plots.scaling_compute(rows, best, budget)
    if best is None:
        return f"No size's runs reach {plots.fmt_flops(budget)} between two checkpoints." + _budget_hint(rows), fig
    if len(best["compared"]) == 1:
        return (f"At {plots.fmt_flops(budget)} only one size's runs reach the budget (N = {best['params']:,}, "
                f"{best['tokens']:,.0f} tokens, validation loss {best['val_loss']:.3f}): nothing to compare it with."
                + _budget_hint(rows)), fig
    others = ", ".join(f"N = {c['params']:,}: {c['val_loss']:.3f} after {c['tokens']:,.0f} tokens"
                       for c in best["compared"])
    return (f"At {plots.fmt_flops(budget)} your runs say: **N = {best['params']:,}** non-embedding parameters "
            f"trained on **D = {best['tokens']:,.0f} tokens** reach the lowest validation loss "
            f"({best['val_loss']:.3f}) of the {len(best['compared'])} sizes whose runs reach that budget ({others}): "
            f"**{best['tokens_per_param']:.2g} tokens per parameter** "
            f"(Chinchilla: about {scaling.CHINCHILLA_TOKENS_PER_PARAM:g})."), fig


# ---- 4. the session's model ----------------------------------------------------------------------------------
def _files_panel() -> dict:
    gr.Markdown("### 4. Your model")
    with gr.Row():
        download_btn = gr.Button("Download the model (.zip)")
        download_file = gr.File(label="pretrained-model/: config.json, model.safetensors, tokenizer.json",
                                interactive=False)
    gr.Markdown("Unzip it and load it anywhere with `AutoModelForCausalLM.from_pretrained('pretrained-model')` "
                "and `AutoTokenizer.from_pretrained('pretrained-model')`. It lives in this browser session only: "
                "no other user sees it, and it is gone when the page is closed.")
    return dict(download_btn=download_btn, download_file=download_file)


def _ready(lesson) -> pt_train.PretrainSession:
    if not isinstance(lesson, pt_train.Lesson) or lesson.run is None or not lesson.run.steps_done:
        raise UserInputError("no model in this session yet: train one in step 2.")
    if lesson.training:
        raise UserInputError("the model is still training: wait for it to finish or press Stop.")
    return lesson.run


def do_download(lesson):
    sess = _ready(lesson)
    folder = scratch_dir("pretrained")
    out = pt_model.save_folder(sess.model, sess.prepared.vocab.tokenizer, folder / "pretrained-model")
    return str(pt_model.zip_folder(out, folder / "pretrained-model.zip"))


# ---- wiring -----------------------------------------------------------------------------------------------------
def _wire(engine, lesson, d, t, sw, files):
    dk, tk = d["knobs"], t["knobs"]
    data_in = [d["source"], d["upload"], dk["tokenizer"], dk["bpe_vocab"], dk["val_share"]]
    d["source"].change(lambda src: gr.update(visible=src == "upload"), inputs=d["source"], outputs=d["upload"],
                       api_name=False, queue=False)
    d["prepare_btn"].click(user_errors(do_prepare), inputs=[*data_in, d["start"], tk["context"], tk["max_steps"],
                                                            tk["batch_size"], tk["token_budget"]],
                           outputs=[d["data_md"], d["window"], d["merges"], d["compare"]], api_name="pretraining_data",
                           concurrency_id="pretraining_data", concurrency_limit=2)
    size_in = [dk["tokenizer"], dk["bpe_vocab"], tk["arch"], tk["layers"], tk["width"], tk["heads"], tk["context"],
               tk["batch_size"], tk["max_steps"], tk["token_budget"]]
    for c in size_in:
        c.change(do_size, inputs=size_in, outputs=t["size_md"], api_name=False, queue=False, show_progress="hidden")
    t["train_btn"].click(user_errors(make_train(engine)),
                         inputs=[*data_in, *[tk[k] for k in KNOBS], t["prompt"], t["budget"], lesson],
                         outputs=[lesson, t["status"], t["loss_plot"], t["samples"]], api_name="pretraining_train",
                         show_progress="minimal", **TRAIN)
    t["stop_btn"].click(user_errors(do_stop), inputs=lesson, outputs=t["status"], api_name="pretraining_stop",
                        concurrency_limit=None)
    sw["sweep_btn"].click(user_errors(make_sweep(engine)), inputs=[*data_in, *[sw["knobs"][k] for k in SWEEP_KNOBS],
                                                                     lesson],
                          outputs=[lesson, sw["status"], sw["by_params"], sw["by_compute"], sw["fit_md"], sw["table"]],
                          api_name="pretraining_sweep", show_progress="minimal", **TRAIN)
    sw["stop_btn"].click(user_errors(do_stop), inputs=lesson, outputs=sw["status"], api_name="pretraining_sweep_stop",
                         concurrency_limit=None)
    sw["optimal_btn"].click(user_errors(do_optimal), inputs=[sw["compute"], lesson],
                            outputs=[sw["optimal_md"], sw["by_compute"]], api_name="pretraining_optimal")
    files["download_btn"].click(user_errors(do_download), inputs=lesson, outputs=files["download_file"],
                                api_name="pretraining_download", concurrency_id="pretraining_download",
                                concurrency_limit=1)


def build(engine) -> Share:
    gr.Markdown(INTRO)
    lesson = gr.State(None)
    d = _data_panel()
    t = _train_panel(engine, d["knobs"])
    sw = _sweep_panel(engine)
    files = _files_panel()
    _wire(engine, lesson, d, t, sw, files)
    tk = t["knobs"]
    return Share(params={"prompt": t["prompt"], "tokenizer": d["knobs"]["tokenizer"], "layers": tk["layers"],
                         "width": tk["width"], "heads": tk["heads"], "context": tk["context"],
                         "steps": tk["max_steps"], "lr": tk["learning_rate"]})
