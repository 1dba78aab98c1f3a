"""Post-training, preference tuning: comparison data, a reward model (Bradley–Terry) and DPO with
LoRA, both through trl, with live curves and a before/after on held-out pairs. Built inside the
Post-training tab by build_preference(engine). Per-session models live in gr.State; the shared
instruct model is never changed; one training runs at a time (the LoRA tab's gate and cap)."""
from __future__ import annotations

import gradio as gr

from engine.core.errors import UserInputError, check_text
from engine.core.settings import make
from engine.training import lora
from engine.training import plots as training_plots
from engine.training import preference, runner
from tabs._ui import (HEAVY, Plot, Share, budget_control, controls_for, data_table, duration_text, examples,
                      model_picker, notice, progress_callback, scratch_dir, train_intro, user_errors, WholeNumber)

# One training at a time (the engine's gate); a second is told at once that the machine is busy.
TRAIN = dict(concurrency_id="lora_train", concurrency_limit=2)
HEADERS = ["prompt", "chosen", "rejected", "held out"]
SOURCES = [("Bundled: the right answer is chosen; length says nothing", "bundled"),
           ("Bundled, reward-hacking lesson: the chosen answer is always the shorter one", "short"),
           ("The table below (edit it, or upload a .jsonl into it)", "table")]
BUNDLED = {"bundled": preference.PAIRS, "short": preference.SHORT_PAIRS}
ABOUT = {
    "bundled": "concise and full-sentence answers, right and wrong, mixed evenly: the chosen (right) answer is the "
               "longer one in about half of the pairs, so a reward model can only score well by telling right "
               "from wrong (arithmetic, capitals, a quote's author).",
    "short": "**reward-hacking lesson.** Every chosen answer is right *and* short; every rejected one is wrong *and* a "
             "long, hedging ramble. The data cannot tell a reward model which of the two is wanted, and preferring "
             "the shorter answer scores perfectly on it. Train on it, then score a short wrong answer against a "
             "long right one below: a reward that can be maximized without doing what was meant is how reward "
             "hacking starts.",
}
N_COMPARE = 4

METHODS = """
**Reward model (the first half of RLHF).** A scalar head on the instruct model's last token gives a
reward r(x, y) to a prompt x and a response y. Trained on comparisons with the **Bradley–Terry loss**

  loss = −log σ( r(x, y_chosen) − r(x, y_rejected) )

(σ is the logistic function): the loss is small when the chosen response gets the higher reward.
`trl.RewardTrainer`, LoRA on the backbone plus the new head.

**DPO (Direct Preference Optimization)** skips the reward model: the policy π is trained so that

  loss = −log σ( β · [ (log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x)) ] )

where π_ref is the model before tuning. β·log(π/π_ref) is the *implicit reward* of a response; the
margin is chosen − rejected. `trl.DPOTrainer` with a LoRA adapter: π_ref is the same model with the
adapter **disabled**, so no second copy is needed.
"""


def _pairs(source, table):
    return preference.load_pairs(BUNDLED[source]) if source in BUNDLED else preference.pairs_from_rows(table)


def _about(source: str, pairs) -> str:
    held = sum(p.held_out for p in pairs)
    return f"**{len(pairs)} pairs**, {held} held out: {ABOUT[source]}"


def _status(u: preference.RunUpdate, what: str, keeps: str) -> str:
    if u.busy or not u.step:
        return f"⏳ {u.message or 'Starting...'}"
    if u.refused:
        return f"⛔ {what[:1].upper()}{what[1:]} {u.message}"
    head = ("⏱️ Stopped at the time cap" if u.capped else "⏹️ Stopped" if u.stopped else
            "✅ Done" if u.done else "🏋️ Training")
    timing = u.pace.line(u.step, u.done) if u.pace else ""
    tail = f" {keeps}" if u.done else ""
    return (f"{head} ({what}): step **{u.step} / {u.max_steps}** · loss {u.history['loss'][0]:.3f} → "
            f"**{u.last('loss'):.3f}** · {duration_text(u.seconds)} so far{f' · {timing}' if timing else ''}.{tail}")


def _before_after_md(session: preference.PreferenceSession) -> str:
    b, a = session.before, session.after
    if not b or not a:
        return ""
    return (f"**Held-out pairs ({a['pairs']}): the chosen answer is the likelier one** (mean log-likelihood "
            f"per token) in **{b['accuracy']:.0%}** of them before (adapter off) → **{a['accuracy']:.0%}** after "
            f"(adapter on). Counting the whole response's log-likelihood instead: {b['accuracy_total']:.0%} → "
            f"{a['accuracy_total']:.0%} (a short answer is likelier in total just for being short). "
            f"Trained {session.dpo_steps} steps, β = {session.dpo.beta:g}.")


def _held_prompts(source, table, n: int = N_COMPARE) -> list[str]:
    _, held = preference.split(_pairs(source, table))
    seen, out = set(), []
    for p in held:
        if p.prompt not in seen:
            seen.add(p.prompt)
            out.append(p.prompt)
    return out[:n]


INTRO = ("## Preference tuning: a reward model and DPO\n"
         "After supervised fine-tuning, a model is aligned with what people *prefer*: each example "
         "is a comparison of two responses to one prompt. Train a reward model on them, or tune the "
         "instruct model directly with DPO, and watch the margins move.")


# ---- layout (each function creates its components in the current Blocks context) ---------------
def _data_panel() -> dict:
    """1. Comparison data: the source, the editable table of pairs and an upload into it."""
    gr.Markdown("### 1. Comparison data")
    source = gr.Radio(choices=SOURCES, value="bundled", label="Data")
    bundled = preference.load_pairs()  # the default set; picking a bundled set loads it into the table
    table = data_table("comparisons", value=preference.pairs_to_rows(bundled), headers=HEADERS, interactive=True,
                       wrap=True, max_height=300, label=f"Comparisons ({len(bundled)} bundled; 'held out' = yes: "
                       "measured before/after, never trained on)", column_widths=["34%", "18%", "38%", "10%"],
                       elem_id="pref-table")
    with gr.Row():
        upload = gr.File(label=f'Upload .jsonl: one {{"prompt", "chosen", "rejected"}} a line, up to '
                               f"{preference.MAX_PAIRS:,} pairs and {preference.MAX_PAIRS_BYTES // 1000:,} kB",
                         file_types=[".jsonl"])
        data_md = gr.Markdown(_about("bundled", bundled), elem_id="pref-data-about")
    with gr.Accordion("From a class room: the class's votes (Class tab, activity 3) as comparison data", open=False):
        with gr.Row():
            room_code = gr.Textbox(label="Room code", max_lines=1, max_length=16, scale=1)
            room_key = gr.Textbox(label="Host key (from the host link)", max_lines=1, max_length=64, type="password",
                                  scale=2)
            room_btn = gr.Button("Load the room's votes into the table", scale=1, elem_id="pref-room-votes")
    notice("Each prompt is the user's turn and each answer the assistant's: both trainings put them in the "
           "instruct model's chat template, as it is served. Edit a row and pick 'The table below' to train on "
           "your version.")
    return dict(source=source, table=table, upload=upload, data_md=data_md, room_code=room_code, room_key=room_key,
                room_btn=room_btn)


SCORE_PROMPT = "What is the capital of Italy?"
SCORE_RESPONSES = "Rome.\nThe capital of Italy is Rome.\nMilan.\nThe capital of Italy is Milan."


def _reward_panel(engine) -> dict:
    """2. Reward model: knobs (knobs: name -> control), training, held-out rewards, scoring responses."""
    gr.Markdown("### 2. Reward model (Bradley–Terry)")
    with gr.Row():
        knobs = controls_for(preference.RewardSettings, ["learning_rate", "max_steps", "batch_size", "r",
                                                         "max_length", "seed"])
    cap = runner.cap_seconds(engine)
    with gr.Row():
        knobs["time_budget"] = budget_control(preference.RewardSettings, cap)
        train_btn = gr.Button("Train reward model", variant="primary")
        stop_btn = gr.Button("Stop (keep what is trained)", variant="stop")
    rm_d = preference.RewardSettings()
    status = gr.Markdown(train_intro("Train reward model", runner.duration(cap)) + " The held-out pairs are "
                         "scored after it.", elem_id="pref-rm-status")
    plot = Plot(filename="reward-model-curves", initial=lambda: training_plots.preference_figure(
        {"loss": [], "margin": []}, rm_d.max_steps, "Reward model"),
                label="Reward model: loss, margin, accuracy", elem_id="pref-rm-plot")
    eval_md = gr.Markdown()
    held = data_table("held-out-rewards", headers=["prompt", "chosen", "r(chosen)", "rejected", "r(rejected)"],
                      interactive=False, wrap=True, max_height=260, label="Reward of each side of the held-out pairs",
                      column_widths=["36%", "20%", "9%", "26%", "9%"])
    with gr.Row():
        sc_prompt = gr.Textbox(value=SCORE_PROMPT, label="Prompt (the user's turn)", lines=2)
        sc_responses = gr.Textbox(value=SCORE_RESPONSES,
                                  label=f"Responses to score (one a line, up to {preference.MAX_SCORE_TEXTS})", lines=4)
    examples([["What is 12 + 30?", "42.\nThe answer is 42.\n43.\nThe answer is 43."],
              ['Who said "Art is a lie which makes us realize the truth."?',
               "Pablo Picasso.\nThose words are credited to Pablo Picasso.\nMarlon Brando.\n"
               "Those words are credited to Marlon Brando."]],
             [sc_prompt, sc_responses], labels=["arithmetic", "a quote"], label="Examples to score")
    notice("The four default responses cross right and wrong with short and long. A reward model that learned "
           "length ranks both short ones first whatever they say (train on the reward-hacking set and see); one that "
           "learned the answer ranks both 'Rome' ones first.")
    sc_btn = gr.Button("Score with the reward model")
    sc_out = data_table("rewards", headers=["response", "reward"], interactive=False, wrap=True, label="Rewards")
    return dict(knobs=knobs, train_btn=train_btn, stop_btn=stop_btn, status=status, plot=plot, eval_md=eval_md,
                held=held, sc_prompt=sc_prompt, sc_responses=sc_responses, sc_btn=sc_btn, sc_out=sc_out)


def _dpo_panel(engine) -> dict:
    """3. DPO: knobs (knobs: name -> control), training, the before/after on held-out pairs."""
    gr.Markdown("### 3. DPO with LoRA on the instruct model")
    with gr.Row():
        knobs = controls_for(preference.DPOSettings, ["beta", "learning_rate", "max_steps", "batch_size", "r",
                                                      "max_length", "seed"])
    cap = runner.cap_seconds(engine)
    with gr.Row():
        knobs["time_budget"] = budget_control(preference.DPOSettings, cap)
        train_btn = gr.Button("Train with DPO", variant="primary")
        stop_btn = gr.Button("Stop (keep what is trained)", variant="stop")
    dpo_d = preference.DPOSettings()
    status = gr.Markdown(train_intro("Train with DPO", runner.duration(cap)) + " The held-out pairs are scored "
                         "after it.", elem_id="pref-dpo-status")
    plot = Plot(filename="dpo-curves", initial=lambda: training_plots.preference_figure(
        {"loss": [], "chosen": [], "rejected": [], "margin": []}, dpo_d.max_steps), label="DPO: loss, rewards, accuracy",
        elem_id="pref-dpo-plot")
    notice("At step 1 the adapter is zero, so π = π_ref: both rewards are 0 and the loss is log 2 = 0.693. Then "
           "watch how the margin grows: the chosen reward may rise, the rejected one fall, or both fall with the "
           "rejected one faster; which of these happens depends on the data and the run.")
    ba_md = gr.Markdown(elem_id="pref-before-after")
    ba_plot = Plot(filename="dpo-before-after", initial=lambda: training_plots.before_after_figure(None, None),
                   label="Before / after on held-out pairs", elem_id="pref-ba-plot")
    return dict(knobs=knobs, train_btn=train_btn, stop_btn=stop_btn, status=status, plot=plot, ba_md=ba_md,
                ba_plot=ba_plot)


def _answers_panel() -> dict:
    """Held-out prompts answered with the DPO adapter off and on, and its download."""
    gr.Markdown("#### Held-out prompts answered with the adapter off and on (same seed)")
    with gr.Row():
        cmp_seed = WholeNumber(value=7, minimum=0, maximum=2**32 - 1, label="Seed")
        cmp_new = gr.Slider(8, 80, value=32, step=1, label="max new tokens")
        cmp_temp = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label="temperature (0 = greedy)")
    cmp_btn = gr.Button("Answer the held-out prompts", variant="primary")
    cmp_out = data_table("dpo-before-after", headers=["prompt", "adapter off (instruct model)", "adapter on (after DPO)"],
                         interactive=False, wrap=True, label="Before / after", elem_id="pref-compare",
                         column_widths=["30%", "35%", "35%"])
    with gr.Row():
        dl_btn = gr.Button("Download the DPO adapter (.zip)")
        dl_file = gr.File(label="adapter_model.safetensors + adapter_config.json (PeftModel.from_pretrained loads "
                                "it after unzipping)", interactive=False)
    return dict(seed=cmp_seed, new=cmp_new, temp=cmp_temp, btn=cmp_btn, out=cmp_out, dl_btn=dl_btn, dl_file=dl_file)


# ---- listeners (plain functions, or made for one engine; wrapped with user_errors when registered) -----
def do_source(source):
    """Picking a bundled set shows it in the table and says what it teaches; 'table' keeps the table."""
    if source not in BUNDLED:
        return gr.update(), gr.update()
    pairs = preference.load_pairs(BUNDLED[source])
    return preference.pairs_to_rows(pairs), _about(source, pairs)


def do_upload(file):
    if not file:
        return gr.update(), gr.update(), "Choose a .jsonl file."
    pairs = preference.read_pairs_file(file)
    return (preference.pairs_to_rows(pairs), "table",
            f"✅ Loaded **{len(pairs)} pairs** ({sum(p.held_out for p in pairs)} held out) into the table.")


def make_room_votes(engine):
    def do_room_votes(code, key):
        """A class room's revealed vote rounds, each with a majority, as pairs: the answer most of the
        class picked is chosen (the host key is checked as for the room's own downloads)."""
        from engine.classroom.room import classroom_of

        key = check_text("host key", key, max_chars=64, allow_empty=True)  # read first: its own message
        text, n = classroom_of(engine).votes_jsonl(code, key)
        if n < preference.MIN_PAIRS:
            raise UserInputError(f"room {str(code).strip().upper()} has {n} revealed vote round(s) with a majority: "
                                 f"training needs {preference.MIN_PAIRS} to {preference.MAX_PAIRS:,} pairs, so run "
                                 "and reveal more vote rounds in the Class tab (a tie says nothing and is left out).")
        pairs = preference.parse_pairs(text)
        return (preference.pairs_to_rows(pairs), "table",
                f"✅ Loaded the class's **{n} vote{'s' if n > 1 else ''}** into the table "
                f"({sum(p.held_out for p in pairs)} held out): the answer most students picked is *chosen*.")
    return do_room_votes


def _session(state):
    state = state if isinstance(state, preference.PreferenceSession) else preference.PreferenceSession()
    if state.training:
        raise UserInputError("this session is already training: wait for it or press Stop.")
    return state


def make_rm_train(engine):
    def do_rm_train(src, rows, lr, steps, batch, r, max_len, seed, budget, state, base=lora.BASE_KEY,
                    progress=gr.Progress()):
        s = make(preference.RewardSettings, drop_none=True, learning_rate=lr, max_steps=steps, batch_size=batch,
                 r=r, max_length=max_len, seed=seed, time_budget=budget)
        pairs = _pairs(src, rows)
        state = _session(state)
        report = progress_callback(progress)
        yield "⏳ Starting: preparing the model and the data...", training_plots.preference_figure(
            {"loss": [], "margin": []}, s.max_steps, "Reward model"), "", None, state
        for u in preference.train_reward(engine, state, pairs, s, progress=report, base_key=base):
            fig = training_plots.preference_figure(u.history, u.max_steps, "Reward model")
            if u.done and state.reward_eval:
                ev = state.reward_eval
                _, held = preference.split(pairs)
                rows_out = [[p.prompt, p.chosen, round(x["chosen"], 3), p.rejected, round(x["rejected"], 3)]
                            for p, x in zip(held, ev["rows"])]
                md = _reward_verdict(ev)
                yield (_status(u, "reward model", "Score your own responses below."), fig, md, rows_out, state)
            else:
                if u.step:
                    report(u.step / u.max_steps, f"step {u.step}/{u.max_steps}, loss {u.last('loss'):.3f}")
                yield _status(u, "reward model", ""), fig, gr.update(), gr.update(), state
    return do_rm_train


def _reward_verdict(ev: dict) -> str:
    """The held-out accuracy, and whether it is told apart from a coin flip on this many pairs."""
    lo, hi = 0.5 - ev["chance_band"], 0.5 + ev["chance_band"]
    md = (f"**Held-out pairwise accuracy: {ev['accuracy']:.0%}** of {ev['pairs']} pairs get "
          f"r(chosen) > r(rejected). A coin flip lands between {lo:.0%} and {hi:.0%} on {ev['pairs']} pairs "
          "95% of the time.")
    if lo <= ev["accuracy"] <= hi:
        md += (" This run cannot be told apart from chance: a small reward model trained for a few steps on "
               "facts it must learn pair by pair mostly memorises its training pairs. Load the "
               "reward-hacking set to see what it does learn quickly: a shortcut such as length.")
    return md


def do_stop(state):
    if not isinstance(state, preference.PreferenceSession):
        return "Nothing is training in this session."
    state.stop.set()
    return ("⏹️ Stopping after the current step; what is trained so far is kept." if state.training else
            "⏹️ Nothing was running.")


def do_score(prompt, responses, state):
    state = state if isinstance(state, preference.PreferenceSession) else None
    return [[t, round(v, 3)] for t, v in preference.score_responses(state, prompt, responses)]


def make_dpo_train(engine):
    def do_dpo_train(src, rows, beta, lr, steps, batch, r, max_len, seed, budget, state, base=lora.BASE_KEY,
                     progress=gr.Progress()):
        s = make(preference.DPOSettings, drop_none=True, beta=beta, learning_rate=lr, max_steps=steps,
                 batch_size=batch, r=r, max_length=max_len, seed=seed, time_budget=budget)
        pairs = _pairs(src, rows)
        state = _session(state)
        report = progress_callback(progress)
        empty = {"loss": [], "chosen": [], "rejected": [], "margin": []}
        yield ("⏳ Starting: preparing the model and the data...",
               training_plots.preference_figure(empty, s.max_steps), "", training_plots.before_after_figure(None, None),
               state)
        for u in preference.train_dpo(engine, state, pairs, s, progress=report, base_key=base):
            fig = training_plots.preference_figure(u.history, u.max_steps)
            if u.done and state.after:
                yield (_status(u, "DPO", "Now answer the held-out prompts below, or download the adapter."), fig,
                       _before_after_md(state), training_plots.before_after_figure(state.before, state.after), state)
            else:
                if u.step:
                    report(u.step / u.max_steps, f"step {u.step}/{u.max_steps}, loss {u.last('loss'):.3f}")
                yield _status(u, "DPO", ""), fig, gr.update(), gr.update(), state
    return do_dpo_train


def do_compare(src, rows, seed, n_new, temp, state):
    if not isinstance(state, preference.PreferenceSession):
        raise UserInputError("no DPO adapter in this session yet: train one first (Train with DPO).")
    out = preference.compare_outputs(state, _held_prompts(src, rows), seed, n_new, temp)
    def shown(text):  # an answer that is only whitespace or EOS would be an empty-looking cell
        return text if text.strip() else "(no text: the model ended the answer at once)"

    return [[r["prompt"], shown(r["base"]), shown(r["tuned"])] for r in out]


def do_download(state):
    if not isinstance(state, preference.PreferenceSession):
        raise UserInputError("no DPO adapter in this session yet: train one first (Train with DPO).")
    return str(preference.export_dpo_adapter(state, scratch_dir("dpo")))


# ---- wiring ------------------------------------------------------------------------------------------
def _wire(engine, session, base, data, reward, dpo, answers):
    rc, dc = reward["knobs"], dpo["knobs"]
    rm_inputs = [rc["learning_rate"], rc["max_steps"], rc["batch_size"], rc["r"], rc["max_length"], rc["seed"],
                 rc["time_budget"]]
    dpo_inputs = [dc["beta"], dc["learning_rate"], dc["max_steps"], dc["batch_size"], dc["r"], dc["max_length"],
                  dc["seed"], dc["time_budget"]]
    source, table = data["source"], data["table"]
    source.input(user_errors(do_source), inputs=source, outputs=[table, data["data_md"]], api_name="pref_source")
    data["upload"].upload(user_errors(do_upload), inputs=data["upload"], outputs=[table, source, data["data_md"]],
                          api_name="pref_upload")
    data["room_btn"].click(user_errors(make_room_votes(engine)), inputs=[data["room_code"], data["room_key"]],
                           outputs=[table, source, data["data_md"]], api_name="pref_room_votes",
                           show_progress_on=[table])  # a refused load marks the table, not the data's description
    reward["train_btn"].click(user_errors(make_rm_train(engine)), inputs=[source, table, *rm_inputs, session, base],
                              outputs=[reward["status"], reward["plot"], reward["eval_md"], reward["held"], session],
                              api_name="pref_reward_train", show_progress="minimal", **TRAIN)
    reward["stop_btn"].click(user_errors(do_stop), inputs=session, outputs=reward["status"],
                             api_name="pref_reward_stop", concurrency_limit=None)
    reward["sc_btn"].click(user_errors(do_score), inputs=[reward["sc_prompt"], reward["sc_responses"], session],
                           outputs=reward["sc_out"], api_name="pref_reward_score", **HEAVY)
    dpo["train_btn"].click(user_errors(make_dpo_train(engine)), inputs=[source, table, *dpo_inputs, session, base],
                           outputs=[dpo["status"], dpo["plot"], dpo["ba_md"], dpo["ba_plot"], session],
                           api_name="pref_dpo_train", show_progress="minimal", **TRAIN)
    dpo["stop_btn"].click(user_errors(do_stop), inputs=session, outputs=dpo["status"], api_name="pref_dpo_stop",
                          concurrency_limit=None)
    answers["btn"].click(user_errors(do_compare),
                         inputs=[source, table, answers["seed"], answers["new"], answers["temp"], session],
                         outputs=answers["out"], api_name="pref_dpo_compare", **HEAVY)
    answers["dl_btn"].click(user_errors(do_download), inputs=session, outputs=answers["dl_file"],
                            api_name="pref_dpo_download", **HEAVY)


def build_preference(engine) -> Share:
    gr.Markdown(INTRO)
    gr.Markdown(METHODS)
    session = gr.State(None)
    base = model_picker(engine, "causal-lm", label="Model the reward model and DPO start from (training on another "
                        "model drops what this session trained on the last one)", keys=lora.base_keys(engine),
                        elem_id="pref-base-model")
    data = _data_panel()
    reward = _reward_panel(engine)
    dpo = _dpo_panel(engine)
    answers = _answers_panel()
    _wire(engine, session, base, data, reward, dpo, answers)
    # A link can preset the knobs; training itself stays a deliberate click.
    rc, dc = reward["knobs"], dpo["knobs"]
    return Share(params={"pref_model": base, "beta": dc["beta"], "dpo_steps": dc["max_steps"],
                         "dpo_lr": dc["learning_rate"], "rm_steps": rc["max_steps"]})
