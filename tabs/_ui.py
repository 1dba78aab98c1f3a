"""Widgets and glue shared by the tabs: error mapping, progress, controls built from settings
dataclasses, model pickers. No torch here: tabs talk to the engine only."""
from __future__ import annotations

import functools
import inspect
import logging
import traceback
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import gradio as gr

from engine.errors import ModelUnavailableError, UserInputError
from engine.settings import KnobInfo, knob_default, knob_info

log = logging.getLogger("llm_playground")

# Heavy model work shares one queue group so a class of 30 cannot start 30 forward passes at
# once on a 2-core machine; light listeners (tokenizing, plotting) run freely.
HEAVY = dict(concurrency_id="model", concurrency_limit=2)


def _as_gr_error(exc: BaseException) -> gr.Error:
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, (UserInputError, ModelUnavailableError)):
        return gr.Error(str(exc))
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        from engine.cache import free_all

        free_all()
        return gr.Error("The server ran out of memory for this request. Try a shorter input or "
                        "fewer samples; the model cache has been emptied.")
    log.error("listener failed: %s", "".join(traceback.format_exception(exc)))
    return gr.Error(f"Something went wrong ({type(exc).__name__}). The server is still running; "
                    "please try again or change the input.")


def user_errors(fn: Callable) -> Callable:
    """Wrap a listener so engine errors reach the browser as gr.Error with their message and
    anything unexpected becomes a short gr.Error instead of a stack trace. Works for plain
    functions and for generators (streaming listeners)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every error becomes a message
                raise _as_gr_error(exc) from exc
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _as_gr_error(exc) from exc
    return wrapper


def progress_callback(progress: gr.Progress | None) -> Callable[[float | None, str], None]:
    """Turn gr.Progress into the engine's plain callback(fraction, message)."""
    def report(fraction, message):
        if progress is None:
            return
        try:
            progress(fraction if fraction is not None else 0.0, desc=message)
        except Exception:  # progress is best effort (e.g. when called through the API)
            pass
    return report


def control_for(cls, name: str, **overrides) -> gr.components.Component:
    """One input component for a settings field: slider for a numeric range, dropdown or
    checkbox group for choices, checkbox for a bool, number otherwise."""
    info: KnobInfo = knob_info(cls, name)
    default = overrides.pop("value", knob_default(cls, name))
    common = dict(label=overrides.pop("label", info.label), info=overrides.pop("info", info.help or None))
    common.update(overrides)
    if info.choices is not None:
        if isinstance(default, (list, tuple)):
            return gr.CheckboxGroup(choices=list(info.choices), value=list(default), **common)
        return gr.Dropdown(choices=list(info.choices), value=default, **common)
    if isinstance(default, bool):
        return gr.Checkbox(value=default, **common)
    if info.minimum is not None and info.maximum is not None:
        step = info.step or (1 if isinstance(default, int) else (info.maximum - info.minimum) / 100)
        return gr.Slider(minimum=info.minimum, maximum=info.maximum, step=step, value=default, **common)
    if isinstance(default, (int, float)):
        return gr.Number(value=default, precision=0 if isinstance(default, int) else None, **common)
    return gr.Textbox(value=str(default), **common)


def controls_for(cls, names: list[str] | None = None, **per_field) -> dict[str, Any]:
    """Components for several fields of a settings dataclass, in field order."""
    names = names or [f.name for f in fields(cls)]
    return {n: control_for(cls, n, **per_field.get(n, {})) for n in names}


def model_choices(engine, task: str) -> list[tuple[str, str]]:
    """(label, key) pairs for a picker: the models of a task usable here now."""
    out = []
    for key in engine.registry.keys(task):
        spec = engine.registry.get(key)
        if not engine.registry.usable(key):
            continue
        label = spec.title + (f" (offline stand-in for {spec.stands_in_for})" if spec.stands_in_for else "")
        out.append((label, key))
    return out


def model_picker(engine, task: str, label: str = "Model", **kwargs) -> gr.Dropdown:
    choices = model_choices(engine, task)
    value = choices[0][1] if choices else None
    return gr.Dropdown(choices=choices, value=value, label=label, **kwargs)


def seed_box(value: int = 42, **kwargs) -> gr.Number:
    return gr.Number(value=value, precision=0, minimum=0, maximum=2**32 - 1, label="Seed",
                     info="Same seed, same sample", **kwargs)


def notice(text: str) -> gr.Markdown:
    """A 'what to notice' line beside a view."""
    return gr.Markdown(f"<div class='notice'>💡 {text}</div>")


@dataclass
class Share:
    """What a tab offers to deep links: `?tab=<id>&<param>=<value>` fills `params` when the page
    opens, then `run(*run_inputs)` renders the view into `run_outputs`, so a teacher can send
    the exact example. A tab's build(engine) returns one (or None)."""

    params: dict = field(default_factory=dict)  # query name -> input component
    run: Callable | None = None
    run_inputs: list = field(default_factory=list)
    run_outputs: list = field(default_factory=list)


def on_gpu(fn: Callable, duration: int = 60) -> Callable:
    """On a ZeroGPU Space, run fn with a GPU attached (spaces.GPU); anywhere else fn is
    returned untouched, so nothing depends on the `spaces` package."""
    import os

    if not os.environ.get("SPACES_ZERO_GPU") or getattr(fn, "_on_gpu", False):
        return fn
    try:
        import spaces
    except ImportError:
        return fn
    wrapped = spaces.GPU(duration=duration)(fn)
    wrapped._on_gpu = True
    return wrapped
