"""Class: a teacher opens a room, the class answers on their own phones, the projector shows the class
beside the model. Students join by code, link or QR code under a nickname; the host link holds the
host key. Both views refresh on their own (gr.Timer). All logic is in engine/classroom/; every
host action is checked there against the host key, for API calls too."""
from __future__ import annotations

import functools
import html
import inspect
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import gradio as gr

from engine.classroom import activities, checks, plots
from engine.core.errors import UserInputError, check_text
from engine.classroom.room import (LIMITS_TEXT, MAX_ANSWER_CHARS, MAX_NICK_CHARS, Classroom, classroom_of,
                                   suggest_nickname)
from tabs._ui import cheap_or_served, controls_for, model_picker, scratch_dir, user_errors

TITLE = "Class"
REFRESH_S = 1.5  # both views: an answer shows on the projector within this (plus one request)
EXAMPLE_PAIR = ("What is 8 + 9?", "17.", "8 + 9 is a sum of two numbers, and sums are an important part of maths.")
# Room events are a few database reads or writes and no model call: they skip the queue (a class of
# 40 polling every REFRESH_S would fill it) and run on the server's thread pool.
ROOM_GROUP = dict(queue=False)


def checked(fn):
    """user_errors(fn), every text argument checked first (a lone surrogate is refused by position,
    before the room code or the key is looked at); each listener's own checks bound the lengths."""
    params = [p for p in inspect.signature(fn).parameters.values() if p.annotation not in (gr.Request, "gr.Request")]
    named = [p.name for p in params if p.kind is not p.VAR_POSITIONAL]

    @functools.wraps(fn)
    def run(*args, **kwargs):
        for n, value in enumerate(args):
            if isinstance(value, str):
                name = named[n] if n < len(named) else f"input {n + 1}"
                check_text(name.replace("_", " "), value, max_chars=10**7, allow_empty=True)
        return fn(*args, **kwargs)
    return user_errors(run)


def page_url(request: gr.Request | None) -> str:
    """The app's address as the browser sees it (the page's Referer, else the Host header)."""
    headers = getattr(request, "headers", None) or {}
    ref = headers.get("referer") or ""
    if ref.startswith(("http://", "https://")):
        u = urlsplit(ref)
        return f"{u.scheme}://{u.netloc}{u.path}"
    return f"http://{headers.get('host') or '127.0.0.1'}/"


def join_link(base: str, code: str) -> str:
    return f"{base}?{urlencode(dict(tab='classroom', room=code))}"


def host_link(base: str, code: str, key: str) -> str:
    return f"{base}?{urlencode(dict(tab='classroom', room=code, host=key))}"


@dataclass
class _Student:
    code: gr.Textbox
    nick: gr.Textbox
    join: gr.Button
    token: gr.Textbox  # hidden: the student token the join returned
    view: gr.HTML
    guess: gr.Textbox
    send: gr.Button
    choice: gr.Radio
    sample: gr.Button
    timer: gr.Timer
    seen: gr.State  # (round number, state) last drawn: the inputs change only when it does


@dataclass
class _Host:
    create: gr.Button
    code: gr.Textbox
    key: gr.Textbox  # hidden: the host key (from the host link, or the room just made)
    base: gr.State  # the app's address, for the join link and the QR code
    links: gr.Textbox
    view: gr.HTML
    reveal: gr.Button
    leaderboard: gr.Checkbox
    timer: gr.Timer


def _student_panel() -> _Student:
    gr.Markdown("Join with the code on the projector (or open the join link / scan the QR code).")
    with gr.Row():
        code = gr.Textbox(label="Room code", max_length=16, scale=1, elem_id="class-code")
        nick = gr.Textbox(label=f"Nickname (1 to {MAX_NICK_CHARS} characters)", max_length=MAX_NICK_CHARS * 4,
                          scale=2, elem_id="class-nick")
        join = gr.Button("Join", variant="primary", scale=0, min_width=100, elem_id="class-join")
    token = gr.Textbox(visible=False, label="student token")
    view = gr.HTML("", elem_id="class-student-view")
    with gr.Row():
        guess = gr.Textbox(label=f"Your guess for the next word (1 to {MAX_ANSWER_CHARS} characters)",
                           visible=False, max_length=MAX_ANSWER_CHARS * 4, elem_id="class-guess")
        send = gr.Button("Send", variant="primary", visible=False, scale=0, min_width=100, elem_id="class-send")
    choice = gr.Radio([], label="Your answer", visible=False, elem_id="class-choice")
    sample = gr.Button("🎲 Sample: my own draw", variant="primary", visible=False, elem_id="class-sample")
    return _Student(code, nick, join, token, view, guess, send, choice, sample, gr.Timer(REFRESH_S, active=False),
                    gr.State(None))


def _open_controls(engine) -> dict:
    """The host's activity pickers: one sub-tab per activity, each with its Open button."""
    c = {}
    with gr.Tabs(overflow_behavior="wrap"):
        with gr.Tab("1. Predict the next token"):
            c["p_prompt"] = gr.Textbox("The capital of France is", label="Prompt", max_lines=2)
            c["p_model"] = model_picker(engine, "causal-lm")
            c["p_open"] = gr.Button("Open a round", variant="primary", elem_id="class-open-predict")
        with gr.Tab("2. The class is the sampler"):
            c["s_prompt"] = gr.Textbox("Once upon a time, there was a", label="Prompt", max_lines=2)
            c["s_model"] = model_picker(engine, "causal-lm")
            c.update(controls_for(activities.SamplerSettings))
            c["s_open"] = gr.Button("Open a round (move a knob, open again: the class samples again)",
                                    variant="primary", elem_id="class-open-sample")
        with gr.Tab("3. Vote on answers"):
            c["v_prompt"] = gr.Textbox(EXAMPLE_PAIR[0], label="Prompt", max_lines=2)
            with gr.Row():
                c["v_one"] = gr.Textbox(EXAMPLE_PAIR[1], label="Response 1", lines=2)
                c["v_two"] = gr.Textbox(EXAMPLE_PAIR[2], label="Response 2", lines=2)
            gr.Markdown("Students see them as A and B in random order.", elem_classes="notice")
            c["v_open"] = gr.Button("Open a round", variant="primary", elem_id="class-open-vote")
        with gr.Tab("4. Quick check"):
            c["c_key"] = gr.Dropdown(checks.choices(), value=next(iter(checks.CHECKS)), label="Question "
                                     "(its answer is computed from the real model when the round opens)")
            c["c_open"] = gr.Button("Open a round", variant="primary", elem_id="class-open-check")
    return c


def _host_panel(engine) -> tuple[_Host, dict, gr.DownloadButton, gr.DownloadButton]:
    gr.Markdown("Make a room and put this page on the projector. Keep the host link: whoever has it controls "
                "the room. Students never see it.")
    with gr.Row():
        create = gr.Button("Create a room", variant="primary", scale=0, min_width=180, elem_id="class-create")
        code = gr.Textbox(label="Room code", max_length=16, scale=1, elem_id="class-host-code")
        reveal = gr.Button("Reveal the answers", variant="secondary", scale=0, min_width=200, elem_id="class-reveal")
        leaderboard = gr.Checkbox(False, label="Show a leaderboard", scale=0, min_width=200)
    key = gr.Textbox(visible=False, label="host key")
    view = gr.HTML("", elem_id="class-projector")
    controls = _open_controls(engine)
    links = gr.Textbox(label="Links (the host link holds the host key: do not show it)", lines=2,
                       interactive=False, buttons=["copy"], elem_id="class-links")
    with gr.Row():
        csv_btn = gr.DownloadButton("⬇ answers.csv", size="sm")
        votes_btn = gr.DownloadButton("⬇ votes as preference data (.jsonl)", size="sm")
    gr.Markdown("The votes file loads in the Post-training tab's reward model and DPO (upload it there; they need "
                "at least 4 decided votes). " + LIMITS_TEXT, elem_classes="notice")
    host = _Host(create, code, key, gr.State(""), links, view, reveal, leaderboard, gr.Timer(REFRESH_S, active=False))
    return host, controls, csv_btn, votes_btn


def build(engine) -> None:
    room = classroom_of(engine)
    gr.Markdown("### Class mode: the whole class answers, the projector shows the class beside the model")
    with gr.Tabs(overflow_behavior="wrap") as roles:
        with gr.Tab("Student", id="student"):
            student = _student_panel()
        with gr.Tab("Teacher (host)", id="host"):
            host, controls, csv_btn, votes_btn = _host_panel(engine)
    _wire_student(room, student)
    _wire_host(engine, room, host, controls, csv_btn, votes_btn)
    _wire_links(roles, student, host)


# ---- the student's side ------------------------------------------------------------------------
def _inputs_for(rnd: dict | None) -> list:
    """Visibility and choices of the answer inputs for the round a student sees."""
    hidden = gr.update(visible=False)
    if rnd is None or rnd["state"] != "open":
        return [hidden, hidden, gr.update(visible=False, value=None), hidden]
    act, pub = rnd["activity"], rnd["public"]
    guess = gr.update(visible=act == "predict", value="")
    choices = ["A", "B"] if act == "vote" else pub.get("options", [])
    choice = gr.update(visible=act in ("vote", "check"), choices=choices, value=None,
                       label="Which answer is better?" if act == "vote" else "Your answer")
    return [guess, gr.update(visible=act == "predict"), choice, gr.update(visible=act == "sample")]


def _from_join_link(code: str, nick: str, request: gr.Request | None) -> tuple[str, str]:
    """Join pressed on a join link's page before the page load filled the boxes: the link's room, and
    a suggested nickname when that box is empty too. Typed values always win."""
    q = dict(getattr(request, "query_params", None) or {})
    link_room = (q.get("room") or "")[:16] if q.get("tab") == "classroom" else ""
    if (code or "").strip() or not link_room:
        return code, nick
    return link_room, nick if (nick or "").strip() else suggest_nickname()


def _student_refresh(room: Classroom):
    def refresh(code, token, seen):
        """The student's view; the answer inputs change only when the round does."""
        if not token:
            return [gr.skip()] * 7
        try:
            view = room.student_view(code, token)
        except UserInputError as exc:  # the room expired, or a stale page: say so, stop polling
            return [f"<p>{html.escape(str(exc))}</p>", *[gr.update(visible=False)] * 4, None,
                    gr.Timer(active=False)]
        page = plots.student_html(view)
        rnd = view["round"]
        now = (rnd and rnd["number"], rnd and rnd["state"])
        if seen and tuple(seen[0]) == now:
            if seen[1] == hash(page):
                return [gr.skip()] * 7
            return [page, *[gr.skip()] * 4, [now, hash(page)], gr.skip()]
        return [page, *_inputs_for(rnd), [now, hash(page)], gr.skip()]
    return refresh


def _wire_student(room: Classroom, s: _Student) -> None:
    refresh = checked(_student_refresh(room))
    outs = [s.view, s.guess, s.send, s.choice, s.sample, s.seen, s.timer]

    def drawn(code, token):
        """The view after the student's own action; the inputs stay as they are."""
        view = room.student_view(code, token)
        page = plots.student_html(view)
        rnd = view["round"]
        return page, [(rnd and rnd["number"], rnd and rnd["state"]), hash(page)]

    def join(code, nick, request: gr.Request = None):
        code, nick = _from_join_link(code, nick, request)
        token, _ = room.join(code, nick, session=getattr(request, "session_hash", "") or "")
        return token, code.strip().upper(), gr.Timer(active=True), None

    def answer(code, token, value):
        room.answer(code, token, value)
        return drawn(code, token)

    def sample(code, token):
        room.sample(code, token)
        return drawn(code, token)

    s.join.click(checked(join), inputs=[s.code, s.nick], outputs=[s.token, s.code, s.timer, s.seen],
                 api_name="class_join", show_progress_on=[s.view], **ROOM_GROUP).success(
        refresh, inputs=[s.code, s.token, s.seen], outputs=outs, api_name=False, **ROOM_GROUP)
    s.send.click(checked(answer), inputs=[s.code, s.token, s.guess], outputs=[s.view, s.seen],
                 api_name="class_answer", **ROOM_GROUP)
    s.guess.submit(checked(answer), inputs=[s.code, s.token, s.guess], outputs=[s.view, s.seen],
                   api_name=False, **ROOM_GROUP)
    s.choice.input(checked(answer), inputs=[s.code, s.token, s.choice], outputs=[s.view, s.seen],
                   api_name=False, **ROOM_GROUP)  # its choices are set per page: API clients use /class_answer
    s.sample.click(checked(sample), inputs=[s.code, s.token], outputs=[s.view, s.seen], api_name="class_sample",
                   **ROOM_GROUP)
    s.timer.tick(refresh, inputs=[s.code, s.token, s.seen], outputs=outs, api_name="class_student_refresh",
                 show_progress="hidden", **ROOM_GROUP)


# ---- the host's side ---------------------------------------------------------------------------
def _host_refresh(room: Classroom):
    def refresh(code, key, leaderboard, base, seen):
        """The projector; sent only when it changed."""
        if not key:
            return gr.skip(), gr.skip()
        page = plots.host_html(room.host_view(code, key, bool(leaderboard)), join_link(base or "/", code))
        if seen == hash(page):
            return gr.skip(), gr.skip()
        return page, hash(page)
    return refresh


def _download(text: str, name: str) -> str:
    path = scratch_dir("class") / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _wire_opens(engine, room: Classroom, h: _Host, c: dict, refresh_args: dict) -> None:
    """Each activity's Open button: checked against the host key in the engine, then the projector."""
    model_group = cheap_or_served(engine)  # one forward pass (or one server request) per new prompt
    room_in = [h.code, h.key]
    opens = [
        ("p_open", "class_open_predict", lambda code, key, prompt, model: room.open_predict(code, key, prompt, model),
         [c["p_prompt"], c["p_model"]]),
        ("s_open", "class_open_sample", lambda code, key, prompt, model, t, k, p: room.open_sample(
            code, key, prompt, model, t, k, p), [c["s_prompt"], c["s_model"], c["temperature"], c["top_k"], c["top_p"]]),
        ("v_open", "class_open_vote", lambda code, key, prompt, one, two: room.open_vote(code, key, prompt, one, two),
         [c["v_prompt"], c["v_one"], c["v_two"]]),
        ("c_open", "class_open_check", lambda code, key, check: room.open_check(code, key, check), [c["c_key"]]),
    ]
    for button, api, fn, inputs in opens:
        c[button].click(checked(_no_output(fn)), inputs=room_in + inputs, outputs=None, api_name=api,
                        **model_group).success(**refresh_args)


def _no_output(fn):
    """fn with its return value dropped, its parameter names kept (they name the API's parameters)."""
    @functools.wraps(fn)
    def run(*args):
        fn(*args)
    return run


def _wire_host(engine, room: Classroom, h: _Host, c: dict, csv_btn, votes_btn) -> None:
    seen = gr.State(None)
    refresh = checked(_host_refresh(room))
    refresh_args = dict(fn=refresh, inputs=[h.code, h.key, h.leaderboard, h.base, seen], outputs=[h.view, seen],
                        api_name=False, show_progress="hidden", **ROOM_GROUP)

    def create(request: gr.Request = None):
        code, key = room.create_room(session=getattr(request, "session_hash", "") or "")
        base = page_url(request)
        links = f"Join link: {join_link(base, code)}\nHost link: {host_link(base, code, key)}"
        return code, key, base, links, gr.Timer(active=True), None

    h.create.click(checked(create), outputs=[h.code, h.key, h.base, h.links, h.timer, seen],
                   api_name="class_create", **ROOM_GROUP).success(**refresh_args)
    _wire_opens(engine, room, h, c, refresh_args)
    h.reveal.click(checked(room.reveal), inputs=[h.code, h.key], api_name="class_reveal",
                   **ROOM_GROUP).success(**refresh_args)
    h.leaderboard.change(**refresh_args)
    h.timer.tick(**{**refresh_args, "api_name": "class_host_refresh"})
    csv_btn.click(checked(lambda code, key: _download(room.csv_text(code, key), f"class-{code}-answers.csv")),
                  inputs=[h.code, h.key], outputs=csv_btn, api_name="class_csv", **ROOM_GROUP)

    def votes(code, key):
        text, n = room.votes_jsonl(code, key)
        if n == 0:
            raise UserInputError("no revealed vote has a majority yet: open a vote, let the class vote, reveal it.")
        return _download(text, f"class-{code}-votes.jsonl")

    votes_btn.click(checked(votes), inputs=[h.code, h.key], outputs=votes_btn, api_name="class_votes",
                    **ROOM_GROUP)


def _wire_links(roles: gr.Tabs, s: _Student, h: _Host) -> None:
    """A join link (?tab=classroom&room=CODE) fills the code; a host link (...&host=KEY) opens the
    host's side of that room. Every page gets a suggested nickname."""
    def from_link(request: gr.Request):
        q = dict(getattr(request, "query_params", None) or {})
        code = (q.get("room") or "")[:16].strip().upper()
        key = (q.get("host") or "")[:200]
        nick = suggest_nickname()
        if q.get("tab") != "classroom" or not code:
            return gr.skip(), gr.skip(), nick, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if not key:
            return gr.update(selected="student"), code, nick, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        base = page_url(request)
        return (gr.update(selected="host"), gr.skip(), nick, code, key, base,
                f"Join link: {join_link(base, code)}\nHost link: {host_link(base, code, key)}", gr.Timer(active=True))

    from gradio.context import Context

    Context.root_block.load(from_link, outputs=[roles, s.code, s.nick, h.code, h.key, h.base, h.links, h.timer],
                            api_name=False, queue=False, show_progress="hidden")
