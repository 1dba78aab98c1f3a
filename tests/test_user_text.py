"""User text is hostile: every text a listener takes goes through engine.core.errors.check_text,
which refuses a lone UTF-16 surrogate (a client can send "\\ud800" in JSON) with a message that
names the position, instead of a TypeError or UnicodeEncodeError deep in a tokenizer. (issue 25)"""
from __future__ import annotations

import inspect

import gradio as gr
import pytest
from PIL import Image

import tabs
from engine.core.errors import UserInputError, check_text

BAD = "ab\ud800cd"  # the lone surrogate is character 3
# Listeners that refuse for another reason before they read the text, with what covers their text.
BLOCKED_FIRST = {
    "lora_compare": "no adapter in the session; its prompt: test_adapter_prompt_is_checked_first",
    "attention_click": "no attention maps yet; its hidden textbox holds a clicked row, not user text",
    "clicked": "needs a click on a generated token (its event data); its texts: token_alternatives",
    "picked": "needs a click on a row of the alternatives (its event data); its texts: branch",
}
# Listeners that only compare a text with the last one seen (no parsing); the listener they chain
# to reads it, and is called here with its "new text" flag set.
COMPARE_ONLY = {"note_logits"}
NEW_FLAG_LAST = {"toy_logits_changed"}


def _is_surrogate_refusal(message: str) -> bool:
    return "position 3" in message and "U+D800" in message


def test_check_text_refuses_lone_surrogates_and_keeps_real_text():
    for text, pos in ((BAD, 3), ("\udfff", 1), ("ok " * 10 + "\udc80", 31)):
        with pytest.raises(UserInputError, match=f"position {pos} .*U\\+D[8-9A-F][0-9A-F]{{2}}"):
            check_text("text", text)
    for fine in ("naïve café 😀", "中文 テキスト", "a\u200bb", "\n", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"):
        assert check_text("text", fine, allow_empty=True) == fine


def _text_listeners(demo):
    """(api name, block fn, index of a Textbox input) for every listener with a Python function."""
    seen = set()
    for f in demo.fns.values():
        if f.fn is None or not any(isinstance(c, gr.Textbox) for c in f.inputs):
            continue
        key = (getattr(f.fn, "__wrapped__", f.fn), tuple(id(c) for c in f.inputs))
        if key in seen:
            continue
        seen.add(key)
        for i, c in enumerate(f.inputs):
            if isinstance(c, gr.Textbox):
                yield str(f.api_name), f, i


def _default(component):
    if getattr(component, "label", None) == "Dataset":  # LoRA: use the pasted text, not the bundled quotes
        return "paste"
    if isinstance(component, gr.ImageEditor):  # img2img needs a picture before it reads the prompt
        img = Image.new("RGBA", (16, 16), "white")
        return {"background": img, "layers": [], "composite": img}
    return component.value


@pytest.mark.slow  # the attention and decoding listeners load their model before reading the text
def test_every_text_listener_refuses_a_lone_surrogate_naming_its_position(engine, one_thread):
    import app

    demo = app.build_demo(engine)
    problems, checked = [], 0
    for name, f, i in _text_listeners(demo):
        params = list(inspect.signature(f.fn).parameters.values())
        if getattr(f.fn, "__name__", "") in COMPARE_ONLY:
            continue
        if name in BLOCKED_FIRST or (params and params[0].annotation in (gr.Request, "gr.Request")):
            continue  # deep-link runs (a gr.Request first) call the same listeners as the buttons
        tab_ids = [None]
        if f.inputs and isinstance(f.inputs[0], gr.State) and f.inputs[0].value == "home":
            tab_ids = [m.__name__.split(".")[-1] for m in tabs.available()][1:]  # the share link, every tab
        refusals = []
        for tab_id in tab_ids:
            args = [_default(c) for c in f.inputs]
            args[i] = BAD
            if name in NEW_FLAG_LAST:
                args[-1] = True
            if tab_id is not None:
                args[0] = tab_id
            names = list(getattr(f, "input_keyword_names", None) or [])  # inputs_kwargs come last
            positional, keywords = args[:len(args) - len(names)], dict(zip(names, args[len(args) - len(names):]))
            try:
                out = f.fn(*positional, **keywords)
                if inspect.isgenerator(out):
                    list(out)
                outcome = "no error"
            except gr.Error as exc:
                outcome = exc.message
            refusals.append(_is_surrogate_refusal(outcome))
            if not refusals[-1] and outcome != "no error":
                problems.append(f"{name}[{f.inputs[i].label}] tab={tab_id}: {outcome[:160]}")
        checked += 1
        if not any(refusals):  # a share link leaves out the fields of the other tabs
            problems.append(f"{name}[{f.inputs[i].label}]: no refusal")
    assert checked > 50
    assert not problems, "\n".join(problems)


def test_adapter_prompt_is_checked_first():
    from engine.training.lora import generate_pair

    with pytest.raises(UserInputError) as err:
        generate_pair(None, None, BAD, 0)  # refused before the model is touched
    assert _is_surrogate_refusal(str(err.value))


def test_stop_strings_are_checked_and_a_newline_stays_a_fair_stop_string():
    from engine.decoding.generation import parse_stop

    assert parse_stop("\\n|.") == ["\n", "."]
    for stop in (BAD, [BAD]):
        with pytest.raises(UserInputError, match="stop string"):
            parse_stop(stop)
