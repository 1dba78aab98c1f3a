"""Decoding: how a model picks the next word. The next-token distribution raw and after each
knob, a Step button that extends the text one token at a time (reusing the KV cache), and
streaming generation of several samples side by side."""
from __future__ import annotations

import threading

import gradio as gr

from engine.decoding.generation import (MODES, DecodingSettings, StepSession, TextEnded, generate_stream,
                                        max_context)
from engine.core.errors import check_choice, check_range
from engine.core.markdown import md_code, md_text
from engine.decoding.branch import DISTRIBUTION, MAX_ALTERNATIVES, alternatives, branch
from engine.decoding.beam import BeamSettings, STEP_HEADERS, beam_search_stream, step_rows
from engine.decoding.conversation import (FACT, FORGETTING, FORGETTING_ANSWER, FORGETTING_WINDOWS, ChatSettings,
                                          chat_turn)
from engine.decoding.kvcache import kv_size
from engine.decoding.plots import (ALTERNATIVE_HEADERS, alternatives_rows, beam_summary_html, beam_tree_figure,
                                   branch_html, chat_html, context_html, distribution_figure, generation_html, kv_html,
                                   steps_html)
from engine.core.settings import knob_default, make
from tabs._ui import (CHEAP, HEAVY, Plot, cheap_or_served, heavy_or_served, Share, controls_for, model_picker, notice, on_gpu, progress_callback, seed_box,
                      data_table, examples, first_view, user_errors, WholeNumber)

TITLE = "Decoding"

KNOBS = ["temperature", "top_k", "top_p", "min_p", "typical_p", "repetition_penalty", "do_sample"]
GEN_KNOBS = ["max_new_tokens", "num_return_sequences"]
TABLE_HEADERS = ["rank", "token", "id", "raw", "repetition penalty", "temperature", "top-k", "top-p", "min-p",
                 "typical-p", "kept"]
DEFAULT_PROMPT = "The capital of France is"  # the first screen: the default knobs keep more than one token
STATE_TTL_S = 900  # a step session's KV cache (at most MAX_STEP_TOKENS) is dropped 15 min after its last use


def _settings(temperature, top_k, top_p, min_p, typical_p, repetition_penalty, do_sample, seed,
              max_new_tokens=None, num_return_sequences=None) -> DecodingSettings:
    values = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
                  repetition_penalty=repetition_penalty, do_sample=do_sample, seed=seed)
    if max_new_tokens is not None:
        values.update(max_new_tokens=max_new_tokens, num_return_sequences=num_return_sequences)
    return make(DecodingSettings, **values)


# Examples for the next-token view: (label, prompt, prompt format, knob overrides).
EXAMPLES = (
    ("Greedy: a fact", "The capital of France is", "raw", dict(do_sample=False)),
    ("Hot: temperature 1.8", "Once upon a time, in a small village,", "raw", dict(temperature=1.8, top_k=0, top_p=1.0)),
    ("Cold: temperature 0.3", "Once upon a time, in a small village,", "raw", dict(temperature=0.3, top_k=0, top_p=1.0)),
    ("Nucleus: top-p 0.5", "My favourite food is", "raw", dict(temperature=1.0, top_k=0, top_p=0.5)),
    ("Top-k 5", "My favourite food is", "raw", dict(temperature=1.0, top_k=5, top_p=1.0)),
    ("min-p 0.1", "The weather today is", "raw", dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.1)),
    ("Typical-p 0.5", "My favourite food is", "raw", dict(temperature=1.0, top_k=0, top_p=1.0, typical_p=0.5)),
    ("Repetition penalty 1.5", "I like cats. I like dogs. I like", "raw", dict(repetition_penalty=1.5)),
    ("Chat: ask the assistant", "What is the capital of France?", "chat", dict(do_sample=False)),
)


def _example_rows(model_key) -> list[list]:
    rows = []
    for _, prompt, mode, knobs in EXAMPLES:
        values = {k: knobs.get(k, knob_default(DecodingSettings, k)) for k in [*KNOBS, "seed"]}
        rows.append([model_key, mode, prompt, *values.values()])
    return rows


def _table(view) -> list[list]:
    return [[r["rank"], r["token"], r["id"], r["raw"], r["repetition penalty"], r["temperature"], r["top-k"],
             r["top-p"], r["min-p"], r["typical-p"], r["kept"]] for r in view.rows(15)]


def _greedy_line(view) -> str:
    """The greedy pick (the most likely token after the repetition penalty, the one knob greedy
    decoding applies) with its probability after all the knobs, and before them for comparison."""
    g = view.greedy_id
    name, raw_p, final = md_code(view.labels.get(g, str(g))), float(view.stages[0].probs[g]), view.final
    if bool(final.kept[g]):
        return f"**Greedy pick:** {name}, p = {float(final.probs[g]):.1%} after the knobs ({raw_p:.1%} before them)."
    return (f"**Greedy pick:** {name} ({raw_p:.1%} before the knobs): the knobs cut it, so sampling cannot draw it; "
            "greedy decoding applies only the repetition penalty, so it still picks it.")


def _summary(view) -> str:
    raw, final = view.stages[0], view.final
    lines = [_greedy_line(view)]
    if view.sampling:
        top = final.probs.topk(min(3, final.kept_count))
        best = ", ".join(f"{md_code(view.labels.get(int(i), str(int(i))))} {float(p):.1%}"
                         for p, i in zip(top.values, top.indices))
        lines.append(f"**Sampling** draws from {final.kept_count:,} of {raw.kept_count:,} tokens; "
                     f"most likely after the knobs: {best}.")
    else:
        lines.append("**Greedy** (do_sample off, or temperature 0): the knobs below change the picture, not the pick.")
    if view.served_top:
        lines.append(f"**From the server:** its top {len(view.served_top)} tokens are exact; the other "
                     f"{raw.kept_count - len(view.served_top):,} share {view.rest_mass():.2%} (the grey-blue bar), "
                     "spread evenly for the knobs, so a knob that reaches into them (or typical-p, which reads "
                     "the entropy of the whole distribution) is approximate. "
                     "Step builds the KV cache in this process.")
    return "  \n".join(lines)


def _stopped_line(session) -> str:
    """Why the stepped text ended; the message names the end-of-sequence token ('</s>' is text here)."""
    return f"**Stopped ({md_text(session.stop_reason)}):** {md_text(session.stop_message())}  \n"


def _view_outputs(session: StepSession, settings: DecodingSettings):
    view = session.view(settings)
    text = _summary(view)
    if session.finished:
        text = _stopped_line(session) + text
    return distribution_figure(view), text, _table(view)


class StepSlot:
    """One browser session's step state: its StepSession (None until the first step) and a lock.

    gr.State(StepSlot) gives each browser session its own slot on its first event, and every later
    event of that session receives this same object, so Step clicks that arrive while a step runs
    (trigger_mode="multiple") all extend the same text, one token at a time, as sequential clicks
    would, instead of being dropped or each starting a text of its own."""

    def __init__(self, session: StepSession | None = None):
        self.session = session
        self.lock = threading.Lock()  # held while the session is chosen or made, never across a yield

    def __deepcopy__(self, memo):  # Gradio deep-copies a state's first value: keep the lock
        return self

    def current(self, tm, prompt, mode, seed) -> StepSession:
        """The session for this model, prompt and format: the one in the slot, else a new one."""
        with self.lock:
            if self.session is None or not self.session.matches(tm, prompt, mode):
                self.session = StepSession(tm, prompt, mode, seed=seed, shared_prefill=True)
            return self.session


def build(engine) -> Share:
    top = _prompt_panel(engine)
    with gr.Row(elem_id="decoding-row"):
        with gr.Column(scale=1, min_width=280, elem_id="decoding-knobs") as knob_col:
            knobs = _knob_column()
        with gr.Column(scale=4, elem_id="decoding-main"):
            panes = _views_panel()
    view = gr.Textbox("next", visible=False)  # the open sub-view, for deep links
    _serving_notice(engine)
    served = heavy_or_served(engine)

    knob_inputs = [knobs[k] for k in [*KNOBS, "seed"]]
    show_next_token = _wire_next(engine, top, knobs, knob_inputs, panes["next"], cheap_or_served(engine))
    branch_wiring = _wire_generate(engine, top, knob_inputs, panes["generate"], served)
    beam_wiring = _wire_beam(engine, panes["beam"], top["model"], top["mode"], top["prompt"])
    _wire_chat(engine, panes["chat"])
    _wire_view_controls(panes["tabs"], view, knob_col, top)
    first_view(panes["next"]["run"], panes["next"]["chart"])  # the default prompt's chart, when the tab opens
    return _deep_link(top, knobs, knob_inputs, panes, view, show_next_token, beam_wiring, branch_wiring)


# What each sub-view reads of the controls around it: (the sampling knobs on the left, the model,
# prompt format and prompt above). Beam search has knobs of its own (its own repetition penalty) but
# reads the prompt; the conversation always uses SmolLM2-135M-Instruct and its own knobs.
VIEW_READS = {"next": (True, True), "generate": (True, True), "beam": (False, True), "chat": (False, False)}


def view_controls(name: str) -> list:
    """The updates for the knob column, model, prompt format and prompt when sub-view `name` opens:
    a view hides the knobs it ignores and greys out the prompt boxes it does not read."""
    knobs, prompt = VIEW_READS.get(name, (True, True))
    return [name, gr.update(visible=knobs), *[gr.update(interactive=prompt)] * 3]


def _wire_view_controls(tabs: dict, view, knob_col, top) -> None:
    outputs = [view, knob_col, top["model"], top["mode"], top["prompt"]]
    for name, tab in tabs.items():
        tab.select(lambda n=name: view_controls(n), outputs=outputs, api_name=False, queue=False,
                   show_progress="hidden")


def _prompt_panel(engine) -> dict:
    """The heading, model, prompt format, prompt and context bar above every sub-view."""
    gr.Markdown("## Decoding: how a model picks the next word\n"
                "A language model does not write words: it gives a probability to **every** token of its "
                "vocabulary. The knobs reshape that distribution before one token is picked; then the "
                "token is appended and the model is asked again.", elem_id="decoding-intro")
    parts = {}
    with gr.Row():  # one row: on a projector the chart below starts higher up
        parts["prompt"] = gr.Textbox(DEFAULT_PROMPT, label="Prompt", lines=2, max_lines=8, scale=3,
                                     elem_id="decoding-prompt")
        parts["model"] = model_picker(engine, "causal-lm", session_model=True, scale=2, min_width=220)
        parts["mode"] = gr.Radio([("Raw completion", "raw"), ("Chat template (instruct)", "chat")], value=MODES[0],
                                 label="Prompt format", info="Raw: the model continues your text. Chat: your text is "
                                 "wrapped as a user message, and the model answers as the assistant.", scale=2,
                                 min_width=220, elem_id="decoding-mode")
    parts["context"] = gr.HTML(context_html(0, 0, 0), elem_id="decoding-context")
    parts["state"] = gr.State(StepSlot, time_to_live=STATE_TTL_S)  # a StepSlot per browser session
    parts["examples"] = gr.Column(elem_id="decoding-examples")  # under the prompt; filled once the listener exists
    return parts


def _knob_column() -> dict:
    """The sampling knobs and the seed (the left column), by knob name."""
    knobs = controls_for(DecodingSettings, KNOBS, **{k: {"elem_id": f"decoding-{k}"} for k in KNOBS})
    knobs["seed"] = seed_box(knob_default(DecodingSettings, "seed"), elem_id="decoding-seed")
    return knobs


def _views_panel() -> dict:
    """The sub-views (next token, generate, beam search, conversation) as gr.Tabs, with their parts."""
    with gr.Tabs(elem_id="decoding-views", overflow_behavior="wrap") as views:
        with gr.Tab("Next token, step by step", id="next") as next_view:
            next_parts = _next_panel()
        with gr.Tab("Generate", id="generate") as gen_view:
            gen_parts = _generate_panel()
        with gr.Tab("Beam search", id="beam") as beam_view:
            beam_parts = _beam_panel()
        with gr.Tab("Conversation", id="chat") as chat_view:
            chat_parts = _chat_panel()
    return {"views": views, "next": next_parts, "generate": gen_parts, "beam": beam_parts, "chat": chat_parts,
            "tabs": {"next": next_view, "generate": gen_view, "beam": beam_view, "chat": chat_view}}


def _next_panel() -> dict:
    """The Next token sub-tab: its buttons, the steps so far, the chart and the table."""
    parts = {}
    with gr.Row():  # the buttons and the text so far beside the chart: on a projector the chart starts at the top
        with gr.Column(scale=2, min_width=300):
            with gr.Row():
                parts["run"] = gr.Button("Next token", variant="primary", elem_id="decoding-next")
                parts["step"] = gr.Button("Step: append a token", elem_id="decoding-step")
            parts["per_click"] = gr.Slider(1, 16, value=1, step=1, label="tokens per step click")
            parts["steps"] = gr.HTML(steps_html("", []), elem_id="decoding-steps")
            parts["summary"] = gr.Markdown()
        with gr.Column(scale=3, min_width=420):
            parts["chart"] = Plot(filename="next-token-distribution", label="Next-token distribution after each knob",
                                  show_label=False, elem_id="decoding-chart")
    notice("Orange is the greedy pick, grey bars are tokens a knob cut. Raise the temperature and watch the long "
           "tail grow; lower top-p and watch the nucleus shrink to a few tokens; typical-p can cut even the most likely "
           "token, when it is far less surprising than the average.")
    with gr.Accordion("Top 15 tokens after each knob (table)", open=False):
        parts["table"] = data_table("next-token-top15", headers=TABLE_HEADERS, interactive=False,
                                    elem_id="decoding-table")
    return parts


def _generate_panel() -> dict:
    """The Generate sub-tab: length and count knobs, stop strings, colouring, the samples."""
    parts = {}
    with gr.Row():
        parts["knobs"] = controls_for(DecodingSettings, GEN_KNOBS,
                                      **{k: {"elem_id": f"decoding-{k}"} for k in GEN_KNOBS})
        parts["stop"] = gr.Textbox("", label="stop strings", info="separate with | ; write a newline as \\n",
                                   max_lines=1)
        parts["color_by"] = gr.Radio(["probability", "rank"], value="probability", label="colour tokens by")
    parts["run"] = gr.Button("Generate", variant="primary", elem_id="decoding-generate")
    parts["generated"] = gr.HTML(elem_id="decoding-generated", js_on_load=CLICK_TOKEN_JS)
    parts["stats"] = gr.Markdown()
    notice("Same seed, same samples. Greedy gives the same text in every column; sampling gives "
           "different ones. Hover a token for its probability and rank; click it for its alternatives.")
    parts["texts"] = gr.State([])  # the generated ids and stop reason of each sequence (for a click)
    parts["branch"] = _branch_panel()
    return parts


# A click on a generated token names it (sequence, position) to the server; only the numbers of
# the data-seq/data-pos attributes are read, no text of the page.
CLICK_TOKEN_JS = """element.addEventListener('click', (ev) => {
  const t = ev.target.closest && ev.target.closest('.dec-tok[data-pos]');
  if (!t) return;
  element.querySelectorAll('.dec-picked').forEach(e => e.classList.remove('dec-picked'));
  t.classList.add('dec-picked');
  trigger('click', {seq: Number(t.dataset.seq), pos: Number(t.dataset.pos)});
});"""


def _branch_panel() -> dict:
    """Under Generate: a clicked token's alternatives, and a branch from one of them."""
    parts = {}
    gr.Markdown(f"### Branch from any token\nClick a token above: the table shows its top alternatives in "
                f"{DISTRIBUTION}. Pick one (click its row) and the text continues from there, beside the original.")
    with gr.Row():
        parts["ids"] = gr.Textbox(label="token ids of the clicked text", max_lines=2, scale=3,
                                  elem_id="decoding-branch-ids")
        parts["position"] = WholeNumber(0, label="position (0 = first generated token)", minimum=0,
                                      scale=1, elem_id="decoding-branch-position")
        parts["k"] = gr.Slider(1, MAX_ALTERNATIVES, value=10, step=1, label="alternatives shown", scale=1)
        parts["show"] = gr.Button("Show alternatives", scale=1, elem_id="decoding-branch-show")
    parts["point"] = gr.Markdown(elem_id="decoding-branch-point")
    with gr.Row():
        parts["table"] = data_table("token-alternatives", headers=ALTERNATIVE_HEADERS, interactive=False,
                                    elem_id="decoding-branch-table", scale=2)
        with gr.Column(scale=1, min_width=220):
            parts["token"] = WholeNumber(label="continue from token id", minimum=0,
                                       elem_id="decoding-branch-token")
            parts["run"] = gr.Button("Continue from this token", variant="primary", elem_id="decoding-branch-run")
    parts["compare"] = gr.HTML(elem_id="decoding-branch-compare")
    parts["seq"] = gr.State(0)  # the clicked sequence (for the original's column title)
    return parts


def _serving_notice(engine) -> None:
    if engine.serving.enabled:
        notice(f"Text generation server: **Next token** and **Generate** are answered by {engine.serving.url} "
               "(top-N logprobs, the whole text at once). **Step**, **Beam search** and **Conversation** need the "
               "model's KV cache and scores and run in this process. The server has no **typical-p**: Generate "
               "refuses typical_p below 1 while sampling; Step samples with it here.")


def _next_outputs(top, parts) -> list:
    return [parts["chart"], parts["summary"], parts["table"], parts["steps"], top["context"], top["state"]]


def _next_listeners(engine):
    """The next-token view's model calls: show_next_token (a fresh step session) and step (extend it)."""
    def show_next_token(model, mode, prompt, temperature, top_k, top_p, min_p, typical_p, repetition_penalty,
                        do_sample, seed, progress=gr.Progress()):
        settings = _settings(temperature, top_k, top_p, min_p, typical_p, repetition_penalty, do_sample, seed)
        tm = engine.load(model, progress=progress_callback(progress))
        session = StepSession(tm, prompt, mode, seed=settings.seed, shared_prefill=True)
        fig, text, rows = _view_outputs(session, settings)
        return (fig, text, rows, steps_html(session.text, session.steps),
                _context_with_kv(session), StepSlot(session))

    def step(model, mode, prompt, temperature, top_k, top_p, min_p, typical_p, repetition_penalty, do_sample, seed,
             n, slot, progress=gr.Progress()):
        settings = _settings(temperature, top_k, top_p, min_p, typical_p, repetition_penalty, do_sample, seed)
        n = int(make_steps(n))
        tm = engine.load(model, progress=progress_callback(progress))
        slot = slot if isinstance(slot, StepSlot) else StepSlot()
        session = slot.current(tm, prompt, mode, settings.seed)
        for i in range(n):
            try:
                session.step(settings)  # one token at a time, even while other clicks step this session
            except TextEnded:
                break  # the model ended the text: the outputs below say so
            if i < n - 1:  # the last step's text goes out with the chart, in one message
                yield (gr.skip(), gr.skip(), gr.skip(), steps_html(session.text, session.steps), gr.skip(), slot)
        fig, text, rows = _view_outputs(session, settings)
        yield (fig, text, rows, steps_html(session.text, session.steps, session.stop_reason),
               _context_with_kv(session), slot)

    return user_errors(on_gpu(show_next_token)), user_errors(on_gpu(step))


def _wire_next(engine, top, knobs, knob_inputs, parts, served):
    """Next token, Step, the redraw on a knob's release and the examples; returns show_next_token."""
    model, mode, prompt, state = top["model"], top["mode"], top["prompt"], top["state"]
    chart, summary, table = parts["chart"], parts["summary"], parts["table"]

    @user_errors
    def redraw(temperature, top_k, top_p, min_p, typical_p, repetition_penalty, do_sample, seed, slot):
        session = slot.session if isinstance(slot, StepSlot) else None
        if session is None:
            return gr.skip(), gr.skip(), gr.skip()
        settings = _settings(temperature, top_k, top_p, min_p, typical_p, repetition_penalty, do_sample, seed)
        return _view_outputs(session, settings)

    show_next_token, step = _next_listeners(engine)
    parts["run"].click(show_next_token, inputs=[model, mode, prompt, *knob_inputs],
                       outputs=_next_outputs(top, parts), api_name="next_token", **served)
    prompt.submit(show_next_token, inputs=[model, mode, prompt, *knob_inputs],
                  outputs=_next_outputs(top, parts), api_name="next_token_submit", **served)
    # "multiple": a click while a step runs is queued, not dropped (Gradio's default drops it)
    parts["step"].click(step, inputs=[model, mode, prompt, *knob_inputs, parts["per_click"], state],
                        outputs=_next_outputs(top, parts), api_name="step", trigger_mode="multiple", **CHEAP)
    gr.on([knobs[k].release for k in KNOBS if k not in ("do_sample", "seed")] + [knobs["do_sample"].change],
          redraw, inputs=[*knob_inputs, state], outputs=[chart, summary, table], api_name="redraw",
          show_progress="hidden")
    with top["examples"]:
        # Each example sets the prompt and the knobs, then shows the next-token chart (not cached:
        # the step state it starts belongs to the session).
        examples(_example_rows(model.value), [model, mode, prompt, *knob_inputs], labels=[e[0] for e in EXAMPLES],
                 fn=show_next_token, outputs=_next_outputs(top, parts),
                 label="Examples: one knob at a time (click, then try Step or Generate)")
    return show_next_token


def _wire_generate(engine, top, knob_inputs, parts, served):
    def generate(model, mode, prompt, temperature, top_k, top_p, min_p, typical_p, repetition_penalty, do_sample,
                 seed, max_new_tokens, num_return_sequences, stop, color_by, progress=gr.Progress()):
        settings = _settings(temperature, top_k, top_p, min_p, typical_p, repetition_penalty, do_sample, seed,
                             max_new_tokens, num_return_sequences)
        check_choice("color_by", color_by, ("probability", "rank"))
        tm = engine.load(model, progress=progress_callback(progress))
        shown = prompt if mode == "raw" else ""
        ctx = None
        for result in generate_stream(tm, prompt, settings, mode, stop):
            if ctx is None:
                ctx = context_html(result.prompt_tokens, settings.max_new_tokens, result.context_max)
            reasons = ", ".join(f"{i + 1}: {q.stop_reason or '…'}" for i, q in enumerate(result.sequences))
            text = (f"**{result.steps} tokens** in {result.seconds:.1f} s · {result.tokens_per_second:.1f} "
                    f"tokens/s per sequence · stop reasons: {reasons}")
            texts = [dict(ids=[t.id for t in q.tokens], stop=q.stop_reason) for q in result.sequences]
            yield generation_html(result, color_by, shown), text, ctx, texts

    generate = user_errors(on_gpu(generate, duration=120))
    gen_inputs = [parts["knobs"][k] for k in GEN_KNOBS]
    parts["run"].click(generate, inputs=[top["model"], top["mode"], top["prompt"], *knob_inputs, *gen_inputs,
                                         parts["stop"], parts["color_by"]],
                       outputs=[parts["generated"], parts["stats"], top["context"], parts["texts"]],
                       api_name="generate", **served)
    return _wire_branch(engine, top, knob_inputs, parts)


def _branch_listeners(engine):
    """token_alternatives (a generated token's top k) and branch (continue from one of them)."""
    def token_alternatives(model, mode, prompt, ids, position, k, progress=gr.Progress()):
        tm = engine.load(model, progress=progress_callback(progress))
        point = alternatives(tm, prompt, mode, ids, position, k)
        c = point.chosen
        runner_up = next(a.id for a in point.alternatives + [c] if a.id != c.id)
        text = (f"**Position {point.position}:** the text has {md_code(c.label)} there, p = {c.p:.1%} (rank {c.rank}) "
                f"in {DISTRIBUTION}, read after {point.prefix_tokens} tokens (prompt + the text before it).")
        return text, alternatives_rows(point), runner_up

    def branch_from_token(model, mode, prompt, temperature, top_k, top_p, min_p, typical_p, repetition_penalty,
                          do_sample, seed, max_new_tokens, stop, ids, position, token_id, seq=0, texts=None,
                          progress=gr.Progress()):
        settings = _settings(temperature, top_k, top_p, min_p, typical_p, repetition_penalty, do_sample, seed,
                             max_new_tokens, 1)
        tm = engine.load(model, progress=progress_callback(progress))
        br = branch(tm, prompt, mode, ids, position, token_id, settings, stop)
        seq = seq if isinstance(seq, int) else 0
        same = isinstance(texts, list) and seq < len(texts) and texts[seq].get("ids") == br.prefix_ids[
            br.prompt_tokens:] + br.original
        return branch_html(prompt if mode == "raw" else "", br, seq, texts[seq]["stop"] if same else "")

    return user_errors(on_gpu(token_alternatives)), user_errors(on_gpu(branch_from_token))


def _wire_branch(engine, top, knob_inputs, gen):
    """A click on a generated token, its alternatives, a row click and the branch; returns the listeners."""
    parts = gen["branch"]
    token_alternatives, branch_from_token = _branch_listeners(engine)

    def clicked(model, mode, prompt, ids, position, k, texts, evt: gr.EventData, progress=gr.Progress()):
        """A click on a generated token: its ids and position go into the boxes, its alternatives
        into the table."""
        seq, pos = getattr(evt, "seq", None), getattr(evt, "pos", None)
        if not isinstance(seq, int) or not isinstance(pos, int) or not 0 <= seq < len(texts or []):
            return [gr.skip()] * 6
        ids = ", ".join(map(str, texts[seq]["ids"]))
        return (ids, pos, seq, *token_alternatives(model, mode, prompt, ids, pos, k, progress))

    def picked(model, mode, prompt, temperature, top_k, top_p, min_p, typical_p, repetition_penalty, do_sample, seed,
               max_new_tokens, stop, ids, position, token_id, seq, texts, evt: gr.SelectData, progress=gr.Progress()):
        """A click on a row of the table: branch from that row's token."""
        row = evt.row_value if isinstance(evt.row_value, list) else []
        if len(row) < 3 or not isinstance(row[2], (int, float)):
            return gr.skip(), gr.skip()
        return int(row[2]), branch_from_token(model, mode, prompt, temperature, top_k, top_p, min_p, typical_p,
                                              repetition_penalty, do_sample, seed, max_new_tokens, stop, ids, position,
                                              int(row[2]), seq, texts, progress)

    alt_in = [top["model"], top["mode"], top["prompt"], parts["ids"], parts["position"], parts["k"]]
    alt_out = [parts["point"], parts["table"], parts["token"]]
    br_in = [top["model"], top["mode"], top["prompt"], *knob_inputs, gen["knobs"]["max_new_tokens"], gen["stop"],
             parts["ids"], parts["position"], parts["token"], parts["seq"], gen["texts"]]
    gen["generated"].click(user_errors(clicked), inputs=[*alt_in, gen["texts"]],
                           outputs=[parts["ids"], parts["position"], parts["seq"], *alt_out],
                           api_visibility="private", **CHEAP)
    parts["show"].click(token_alternatives, alt_in, alt_out, api_name="token_alternatives", **CHEAP)
    parts["table"].select(user_errors(picked), br_in, [parts["token"], parts["compare"]], api_visibility="private",
                          **HEAVY)
    parts["run"].click(branch_from_token, br_in, parts["compare"], api_name="branch", **HEAVY)
    return token_alternatives, branch_from_token, alt_out, parts["compare"]


def _deep_link(top, knobs, knob_inputs, panes, view, show_next_token, beam_wiring, branch_wiring) -> Share:
    """What a shared link fills and runs: the next-token chart, beam search, a branch or the chat view."""
    beam, beam_inputs, beam_outputs = beam_wiring
    token_alternatives, branch_from_token, alt_out, branch_out = branch_wiring
    next_outputs = _next_outputs(top, panes["next"])
    skip = lambda n: [gr.skip()] * n  # noqa: E731

    def linked(view, *values):
        """A deep link: ?view=beam runs beam search with the linked knobs, ?view=branch shows a
        token's alternatives and the branch from &token=, ?view=chat opens the conversation;
        anything else shows the next-token chart."""
        n = len(knob_inputs) + 3
        tail = skip(len(alt_out) + 1)
        if view == "beam":
            *_, last = beam(*values[n:n + len(beam_inputs)])
            return skip(len(next_outputs)) + list(last) + [gr.update(selected="beam")] + tail
        if view == "branch":
            max_new, stop, ids, position, token, k = values[n + len(beam_inputs):]
            point, rows, runner_up = token_alternatives(*values[:3], ids, position, k)
            token = runner_up if token is None else token
            html = branch_from_token(*values[:n], max_new, stop, ids, position, token)
            return (skip(len(next_outputs) + len(beam_outputs)) + [gr.update(selected="generate")]
                    + [point, rows, token, html])
        if view in ("chat", "generate"):
            return skip(len(next_outputs) + len(beam_outputs)) + [gr.update(selected=view)] + tail
        return list(show_next_token(*values[:n])) + skip(len(beam_outputs) + 1) + tail

    # A shared link (?tab=decoding&prompt=...&top_p=0.5) fills the knobs and shows the chart.
    gen, br = panes["generate"], panes["generate"]["branch"]
    extra = [gen["knobs"]["max_new_tokens"], gen["stop"], br["ids"], br["position"], br["token"], br["k"]]
    return Share(params={"model": top["model"], "prompt": top["prompt"], "mode": top["mode"], **{k: knobs[k] for k in [*KNOBS, "seed"]},
                         **{k: gen["knobs"][k] for k in GEN_KNOBS}, "stop": gen["stop"], "view": view,
                         **{_link_name(k, "beam"): panes["beam"]["knobs"][k] for k in BEAM_KNOBS},
                         **{_link_name(k, "chat"): panes["chat"]["knobs"][k] for k in CHAT_KNOBS},
                         "system": panes["chat"]["system"],
                         "ids": br["ids"], "position": br["position"], "token": br["token"], "alternatives": br["k"]},
                 run=linked, run_inputs=[view, top["model"], top["mode"], top["prompt"], *knob_inputs, *beam_inputs,
                                         *extra],
                 run_outputs=[*next_outputs, *beam_outputs, panes["views"], *alt_out, br["compare"]])


def _link_name(knob: str, view: str) -> str:
    """A sub-view's knob in a deep link: prefixed where the next-token view has the same name."""
    return f"{view}_{knob}" if knob in (*KNOBS, *GEN_KNOBS, "seed") else knob


def make_steps(n):
    """Steps per click from the slider or the API: 1 to 16."""
    return check_range("steps per click", n, 1, 16, integer=True)


def _context_max(session: StepSession) -> int:
    return max_context(session.tm)


# --- KV cache size of the step view ----------------------------------------------------------

def _context_with_kv(session: StepSession, new: int = 0) -> str:
    """The context bar of the step view, with the size of the session's KV cache under it."""
    size = kv_size(session.tm, session.cache)
    written = session.ids.numel() - session.prompt_len  # the stepped tokens: the model's, not the prompt's
    return context_html(session.prompt_len, new, _context_max(session), generated=written) + kv_html(size)


# --- beam search -----------------------------------------------------------------------------

BEAM_KNOBS = list(BeamSettings.__dataclass_fields__)
# (label, prompt, prompt format, beam knob overrides)
BEAM_EXAMPLES = (
    ("4 beams: a fact", "The capital of France is", "raw", dict(num_beams=4, max_new_tokens=12)),
    ("1 beam = greedy", "The capital of France is", "raw", dict(num_beams=1, max_new_tokens=12)),
    ("Chat, early stopping", "What is 2+2?", "chat", dict(num_beams=3, early_stopping="true", max_new_tokens=24)),
    ("length_penalty -1: short wins", "Name a colour.", "chat", dict(num_beams=4, length_penalty=-1.0,
                                                                   max_new_tokens=24)),
    ("Loops, then no-repeat 3-grams", "I like cats. I like dogs. I like", "raw",
     dict(num_beams=3, no_repeat_ngram_size=3, max_new_tokens=20)),
)


def _beam_example_rows(model_key) -> list[list]:
    rows = []
    for _, prompt, mode, knobs in BEAM_EXAMPLES:
        rows.append([model_key, mode, prompt, *[knobs.get(k, knob_default(BeamSettings, k)) for k in BEAM_KNOBS]])
    return rows


def _beam_panel() -> dict:
    """The Beam search sub-tab's components (inside build()'s gr.Tabs)."""
    parts = {}
    notice_text = ("Beam search keeps the <b>num_beams</b> best partial texts instead of one. Each column is a step: "
                   "every kept beam (indigo) is extended by every token and the best candidates are kept; a candidate "
                   "that ends with EOS becomes a finished hypothesis (green ◆), scored by sum of log p / "
                   "length<sup>length_penalty</sup>. Orange: the path of the winner. Same prompt and format as above.")
    gr.Markdown(f"<div class='notice'>💡 {notice_text}</div>")
    parts["knobs"] = {}
    for row in (BEAM_KNOBS[:3], BEAM_KNOBS[3:]):
        with gr.Row():
            parts["knobs"].update(controls_for(BeamSettings, row, **{k: {"elem_id": f"decoding-beam-{k}"} for k in row}))
    parts["run"] = gr.Button("Run beam search", variant="primary", elem_id="decoding-beam-run")
    parts["stats"] = gr.Markdown(elem_id="decoding-beam-stats")
    parts["tree"] = Plot(filename="beam-search-tree", label="Beam search: candidates at each step", show_label=False,
                         elem_id="decoding-beam-tree")
    parts["summary"] = gr.HTML(elem_id="decoding-beam-summary")
    with gr.Accordion("Kept beams and finished hypotheses at each step (table)", open=False):
        parts["table"] = data_table("beam-search-steps", headers=STEP_HEADERS, interactive=False,
                                    elem_id="decoding-beam-table")
    parts["examples"] = gr.Column()
    return parts


def _beam_stats(result) -> str:
    best = result.best
    head = (f"**{len(result.steps)} steps** · {sum(result.forward_tokens[1:])} cached forwards of one token per beam · "
            f"{result.seconds:.1f} s")
    if best is None:
        return head + " · searching…"
    return head + f" · stopped: {result.stop_reason} · best score {best.final:.3f} ({len(best.ids)} tokens)"


def run_beam(engine, model, mode, prompt, *values, progress=None, every: int = 4):
    """Beam search through the engine, streaming: (tree, summary, table, stats) every few steps."""
    s = make(BeamSettings, **dict(zip(BEAM_KNOBS, values)))
    tm = engine.load(model, progress=progress)
    for result in beam_search_stream(tm, prompt, s, mode):
        if result.done or len(result.steps) % every == 0:
            yield (beam_tree_figure(result), beam_summary_html(result) if result.done else gr.skip(),
                   step_rows(result) if result.done else gr.skip(), _beam_stats(result))


def _wire_beam(engine, parts, model, mode, prompt):
    inputs = [model, mode, prompt, *[parts["knobs"][k] for k in BEAM_KNOBS]]
    outputs = [parts["tree"], parts["summary"], parts["table"], parts["stats"]]

    # Named parameters (not *values), so that the API page and gradio_client name every knob.
    def beam(model, mode, prompt, num_beams, length_penalty, early_stopping, no_repeat_ngram_size,
             repetition_penalty, beam_max_new_tokens, progress=gr.Progress()):
        values = (num_beams, length_penalty, early_stopping, no_repeat_ngram_size, repetition_penalty,
                  beam_max_new_tokens)
        yield from run_beam(engine, model, mode, prompt, *values, progress=progress_callback(progress))

    assert BEAM_KNOBS == ["num_beams", "length_penalty", "early_stopping", "no_repeat_ngram_size",
                          "repetition_penalty", "max_new_tokens"], BEAM_KNOBS  # the order of beam()'s knobs

    beam = user_errors(on_gpu(beam, duration=120))
    parts["run"].click(beam, inputs=inputs, outputs=outputs, api_name="beam_search", **HEAVY)
    with parts["examples"]:
        examples(_beam_example_rows(model.value), inputs, labels=[e[0] for e in BEAM_EXAMPLES], fn=beam,
                 outputs=outputs, gpu=True, label="Examples: beam search (click one)")
    return beam, inputs, outputs


# --- conversation and the context window ------------------------------------------------------

def _chat_panel() -> dict:
    parts = {}
    gr.Markdown("<div class='notice'>💡 The model remembers nothing between turns: every turn, the app sends the "
                "<b>whole</b> conversation again, with the chat template around it. When it no longer fits the "
                "<b>context window</b>, the oldest whole turns are dropped, and what was said only there is gone. "
                "Always SmolLM2-135M-Instruct, with the knobs below (temperature 0 = greedy); the model and prompt "
                "above are for the other views.</div>")
    parts["system"] = gr.Textbox("", label="System prompt (sent first, every turn)", max_lines=4,
                                 elem_id="decoding-chat-system", placeholder=f"empty = the template's own default: "
                                 f"'{CHAT_DEFAULT_SYSTEM}'")
    parts["knobs"] = {}
    for row in (CHAT_KNOBS[:2], CHAT_KNOBS[2:4]):
        with gr.Row():
            parts["knobs"].update(controls_for(ChatSettings, row, **{k: {"elem_id": f"decoding-chat-{k}"} for k in row}))
            if "top_p" in row:
                parts["knobs"]["seed"] = seed_box(knob_default(ChatSettings, "seed"), elem_id="decoding-chat-seed")
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            parts["chatbot"] = gr.Chatbot(label="Conversation (this browser session)", height=420,
                                          elem_id="decoding-chat-log")
            parts["message"] = gr.Textbox(label="Your message", max_lines=4, elem_id="decoding-chat-message",
                                          placeholder="e.g. The secret code is 4417.")
            with gr.Row():
                parts["send"] = gr.Button("Send", variant="primary", elem_id="decoding-chat-send")
                parts["clear"] = gr.Button("New conversation", elem_id="decoding-chat-clear")
                parts["forget"] = gr.Button("▶ Example: the model forgets", elem_id="decoding-chat-forget")
            parts["compare"] = gr.Markdown(elem_id="decoding-chat-compare")
        with gr.Column(scale=3, min_width=320):
            parts["sent"] = gr.HTML(elem_id="decoding-chat-sent")
    parts["history"] = gr.State([], time_to_live=STATE_TTL_S)  # this session's turns (bounded: MAX_TURNS)
    return parts


def _chat_log(history, dropped: int = 0) -> list[dict]:
    """The chat for gr.Chatbot (which renders Markdown: the texts go through md_text); the first
    `dropped` turns struck out: the model no longer sees them."""
    out = []
    for i, t in enumerate(history):
        user, reply = md_text(t["user"]), md_text(t["assistant"])
        if i < dropped:
            user, reply = f"~~{user}~~ *(dropped from the window)*", f"~~{reply}~~"
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return out


def _dropped_now(turn) -> int:
    """How many of turn.history's first turns were not sent this turn (history may have been trimmed)."""
    trimmed = len(turn.sent.history) + 1 - len(turn.history)
    return max(0, turn.sent.kept_from - trimmed)


def _chat_model(engine, progress=None):
    return engine.load(CHAT_MODEL, progress=progress)


CHAT_MODEL = "smollm2-135m-instruct"
CHAT_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # its template's
CHAT_KNOBS = list(ChatSettings.__dataclass_fields__)


def _forgetting_summary(small: int, small_reply: str, big: int, big_reply: str, earlier: int, sent: int) -> str:
    """The two answers of the forgetting demo, as the model wrote them (md_text: a reply is text)."""
    knew, lost = FACT in big_reply, FACT not in small_reply
    return (f"**Window {small}:** turn 1 (the code) was dropped → *{md_text(small_reply)}*  \n"
            f"**Window {big}:** all {earlier} earlier turns sent ({sent} tokens) → *{md_text(big_reply)}*  \n"
            + ("The model gives the code only while the turn that said it is sent." if knew and lost else
               "(This time the two answers do not differ as expected.)"))


def _wire_chat(engine, parts):
    knobs = [parts["knobs"][k] for k in CHAT_KNOBS]
    history = parts["history"]
    assert CHAT_KNOBS == ["context_window", "max_new_tokens", "temperature", "top_p", "seed"], CHAT_KNOBS  # send()'s

    def send(message, context_window, max_new_tokens, chat_temperature, chat_top_p, chat_seed, system, turns,
             progress=gr.Progress()):
        settings = make(ChatSettings, context_window=context_window, max_new_tokens=max_new_tokens,
                        temperature=chat_temperature, top_p=chat_top_p, seed=chat_seed)
        tm = _chat_model(engine, progress_callback(progress))
        turn = chat_turn(tm, turns, message, settings, system)
        how = ("greedy (temperature 0)" if settings.temperature == 0 else
               f"sampled: temperature {settings.temperature:g}, top-p {settings.top_p:g}, seed {int(settings.seed)}")
        sent = chat_html(turn.sent, turn.reply, turn.stop_reason) + f"<div class='dec-legend'>Answer {how}.</div>"
        return _chat_log(turn.history, _dropped_now(turn)), sent, turn.history, ""

    def clear():
        return [], "", [], ""

    def forget(progress=gr.Progress()):
        """The scripted conversation at a small window (the fact's turn is dropped), then the
        last question once more with every turn sent, for comparison."""
        big, small = FORGETTING_WINDOWS
        tm = _chat_model(engine, progress_callback(progress))
        settings = make(ChatSettings, context_window=small, max_new_tokens=FORGETTING_ANSWER)
        turns: list[dict] = []
        for i, message in enumerate(FORGETTING):
            turn = chat_turn(tm, turns, message, settings)
            turns = turn.history
            # the knobs and the system prompt it ran with: greedy, the template's default system prompt
            yield (_chat_log(turns, _dropped_now(turn)), chat_html(turn.sent, turn.reply, turn.stop_reason), turns, small,
                   FORGETTING_ANSWER, 0.0, gr.skip(), gr.skip(), "", f"Turn {i + 1} of {len(FORGETTING)}…")
        full = chat_turn(tm, turns[:-1], FORGETTING[-1], make(ChatSettings, context_window=big,
                                                             max_new_tokens=FORGETTING_ANSWER))
        yield (*[gr.skip()] * (3 + len(knobs) + 1),
               _forgetting_summary(small, turn.reply, big, full.reply, len(turns) - 1, full.sent.tokens))

    send = user_errors(on_gpu(send))
    forget = user_errors(on_gpu(forget, duration=120))
    outs = [parts["chatbot"], parts["sent"], history, parts["message"]]
    ins = [parts["message"], *knobs, parts["system"], history]
    parts["send"].click(send, inputs=ins, outputs=outs, api_name="chat_send", **HEAVY)
    parts["message"].submit(send, inputs=ins, outputs=outs, api_name="chat_send_submit", **HEAVY)
    parts["clear"].click(user_errors(clear), outputs=[parts["chatbot"], parts["sent"], history, parts["compare"]],
                         api_name="chat_clear", queue=False)
    parts["forget"].click(forget,
                          outputs=[parts["chatbot"], parts["sent"], history, *knobs, parts["system"], parts["compare"]],
                          api_name="chat_forgetting", **HEAVY)
