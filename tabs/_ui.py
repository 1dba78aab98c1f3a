"""Widgets and glue shared by the tabs: error mapping, progress, controls built from settings
dataclasses, model pickers. No torch here: tabs talk to the engine only."""
from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import math
import re
import shutil
import tempfile
import threading
import time
import traceback
from pathlib import Path
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import gradio as gr
from gradio.context import LocalContext

from engine.core.errors import ModelUnavailableError, UserInputError, is_out_of_memory
from engine.core.markdown import html_text
from engine.core.scratch import remove_at_exit
from engine.core.sessions import SESSION_MODEL_KEY, SESSION_MODEL_TITLE, acting_for
from engine.core.threads import SLOTS as COMPUTE_SLOTS, each_step_in
from engine.core.settings import KnobInfo, knob_default, knob_info

log = logging.getLogger("llm_playground")

# Heavy model work shares one queue group so a class of 30 cannot start 30 forward passes at
# once on a 2-core machine; light listeners (tokenizing, plotting) run freely.
HEAVY = dict(concurrency_id="model", concurrency_limit=2)
# Cheap interactive model calls (one forward pass or a few cached steps: the next-token view, a
# Step click) have a group of their own, so they never wait behind a training, an index build or
# a long evaluation in the heavy group. Two slots: one per core of a small class server.
CHEAP = dict(concurrency_id="interactive", concurrency_limit=2)
MODEL_GROUPS = (HEAVY["concurrency_id"], CHEAP["concurrency_id"])  # on a ZeroGPU Space each gets a GPU


def heavy_or_served(engine) -> dict:
    """HEAVY for in-process model work; with an operator's server set, its own group as wide as
    the server takes requests (the batching happens there, not in this process)."""
    serving = getattr(engine, "serving", None)
    if serving is None or not serving.enabled:
        return HEAVY
    return dict(concurrency_id="served", concurrency_limit=serving.concurrency)


def cheap_or_served(engine) -> dict:
    """CHEAP for a cheap in-process model call; with an operator's server set, the served group
    (see heavy_or_served)."""
    served = heavy_or_served(engine)
    return CHEAP if served is HEAVY else served


def _one_line(exc: BaseException, limit: int = 500) -> str:
    """The error's class and message as one log line: user text inside a message cannot start
    a forged log line, and a huge value cannot flood the log."""
    text = str(exc).replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate cannot break the log
    text = text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"
    return f"{type(exc).__name__}: {text}"


def _as_gr_error(exc: BaseException) -> gr.Error:
    """The one place an exception becomes what the user sees. Its kind is decided by its type,
    never by its text. Each gr.Error is logged here once (Gradio's own traceback print is off):
    a user's mistake as one line, a real bug with its traceback. A toast reads its message as
    HTML: the text goes through html_text, so a '<mask>' in it is shown, not read as a tag."""
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, UserInputError):
        log.warning("user input refused: %s", _one_line(exc))
        return gr.Error(html_text(exc), print_exception=False)
    if isinstance(exc, ModelUnavailableError):
        log.warning("model unavailable: %s", "".join(traceback.format_exception(exc)))
        return gr.Error(html_text(exc), print_exception=False)
    if is_out_of_memory(exc):
        from engine.core.cache import free_all

        free_all()
        log.warning("out of memory, model cache emptied: %s", _one_line(exc))
        return gr.Error("The server ran out of memory for this request. Try a shorter input or "
                        "fewer samples; the model cache has been emptied.", print_exception=False)
    log.error("listener failed: %s", "".join(traceback.format_exception(exc)))
    return gr.Error(f"Something went wrong ({type(exc).__name__}). The server is still running; "
                    "please try again or change the input.", print_exception=False)


def user_errors(fn: Callable) -> Callable:
    """Wrap a listener so engine errors reach the browser as gr.Error with their message and
    anything unexpected becomes a short gr.Error instead of a stack trace. Works for plain
    functions and for generators (streaming listeners)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from _each_step_counted(fn(*args, **kwargs), _request_session(args, kwargs))
            except Exception as exc:  # noqa: BLE001 - every error becomes a message
                raise _as_gr_error(exc) from exc
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with _in_call(_request_session(args, kwargs)):
                return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _as_gr_error(exc) from exc
    return wrapper


def _request_session(args, kwargs) -> str | None:
    """The browser session of the running event: Gradio's request context, else a gr.Request argument."""
    request = LocalContext.request.get(None)
    if request is None:
        request = next((a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request)), None)
    return getattr(request, "session_hash", None)


@contextlib.contextmanager
def _in_call(session: str | None):
    """One listener call (or one step of a streaming one): a compute slot held, the engine told
    which browser session it acts for (engine.core.sessions: the session's own pre-trained model)."""
    with COMPUTE_SLOTS.held(), acting_for(session):
        yield


def _each_step_counted(gen, session: str | None = None):
    """A streaming listener's steps, each run as one call in flight (engine.core.threads): Gradio
    may resume a generator on a different worker thread, so each step sets its own thread's torch
    threads, and the stream counts as busy only while it computes."""
    return each_step_in(lambda: _in_call(session), gen)


def named_inputs(fn: Callable, names: list[str]) -> Callable:
    """fn's API parameters named after its inputs, in order (for a listener taking *values Gradio
    would say param_5, param_6, ...); its parameters with a default (progress=gr.Progress()) stay."""
    kept = [p.replace(kind=p.KEYWORD_ONLY) for p in inspect.signature(fn).parameters.values()
            if p.default is not p.empty]
    fn.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                          for n in names] + kept)
    return fn


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


SLIDER_MIN_WIDTH = 250


def control_for(cls, name: str, **overrides) -> gr.components.Component:
    """One input component for a settings field: slider for a numeric range, dropdown or
    checkbox group for choices, checkbox for a bool, number otherwise. overrides: the component's
    arguments, and slider=ModelSlider for a range that depends on the chosen model."""
    info: KnobInfo = knob_info(cls, name)
    slider = overrides.pop("slider", gr.Slider)
    default = overrides.pop("value", knob_default(cls, name))
    common = dict(label=overrides.pop("label", info.label), info=overrides.pop("info", info.help or None))
    choices = overrides.pop("choices", info.choices)  # a subset of the field's choices, e.g. per model
    common.update(overrides)
    if choices is not None:
        if isinstance(default, (list, tuple)):
            return gr.CheckboxGroup(choices=list(choices), value=list(default), **common)
        return gr.Dropdown(choices=list(choices), value=default, **common)
    if isinstance(default, bool):
        return gr.Checkbox(value=default, **common)
    if info.minimum is not None and info.maximum is not None:
        step = info.step or (1 if isinstance(default, int) else (info.maximum - info.minimum) / 100)
        # room for the label, the number box and the minimum and maximum: a row of sliders wraps onto
        # another line rather than cut "0.01" to "0.(" (Gradio's floor is 160 px)
        common.setdefault("min_width", SLIDER_MIN_WIDTH)
        return slider(minimum=info.minimum, maximum=info.maximum, step=step, value=default, **common)
    if isinstance(default, (int, float)):
        return (WholeNumber(value=default, **common) if isinstance(default, int)
                else gr.Number(value=default, **common))
    return gr.Textbox(value=str(default), **common)


def controls_for(cls, names: list[str] | None = None, **per_field) -> dict[str, Any]:
    """Components for several fields of a settings dataclass, in field order."""
    names = names or [f.name for f in fields(cls)]
    return {n: control_for(cls, n, **per_field.get(n, {})) for n in names}


def choice_label(engine, key: str) -> str:
    spec = engine.registry.get(key)
    return spec.title + (f" (offline stand-in for {spec.stands_in_for})" if spec.stands_in_for else "")


def model_choices(engine, task: str) -> list[tuple[str, str]]:
    """(label, key) pairs for a picker: the models of a task usable here now."""
    out = [(choice_label(engine, key), key) for key in engine.registry.keys(task) if engine.registry.usable(key)]
    first = getattr(getattr(engine, "config", None), "default_model", "")  # --default-model: the picker starts there
    return sorted(out, key=lambda choice: choice[1] != first) if first else out


# The model this browser session pre-trained (the Pre-training tab): one more choice in the causal-LM
# pickers of Decoding, Inside the model and Evaluation; the engine gives it to that session only.
SESSION_CHOICE = (SESSION_MODEL_TITLE, SESSION_MODEL_KEY)


def model_picker(engine, task: str, label: str = "Model", session_model: bool = False, keys=None,
                 **kwargs) -> gr.Dropdown:
    """session_model: offer SESSION_CHOICE after the registry's models. keys: offer these registry keys,
    in this order (a lesson's own model first, then the ones added to it), instead of every usable
    model of `task`."""
    choices = model_choices(engine, task) if keys is None else [(choice_label(engine, k), k) for k in keys]
    choices += [SESSION_CHOICE] if session_model else []
    value = choices[0][1] if choices else None
    return gr.Dropdown(choices=choices, value=value, label=label, **kwargs)


def seed_box(value: int = 42, **kwargs) -> gr.Number:
    return WholeNumber(value=value, minimum=0, maximum=2**32 - 1, label="Seed", info="Same seed, same sample",
                       **kwargs)


class ModelSlider(gr.Slider):
    """gr.Slider (same front end) for a layer or head number whose valid range depends on the
    model chosen. Listeners move its maximum to the model's, but Gradio would then check every
    later call against the maximum left by the previous model (after MiniLM's 6 layers,
    SmolLM2's layer 30 was refused). Here the engine checks the value against the chosen model
    (check_layer_head, whose message names the valid range), so the component checks nothing."""

    def get_block_name(self) -> str:  # the front end picks its component by this name
        return "slider"

    def get_block_class(self) -> str:
        return "slider"

    def preprocess(self, payload):
        return payload


class WholeNumber(gr.Number):
    """gr.Number(precision=0) (same front end) that refuses what is not a finite number by name:
    Gradio's own rounding failed on NaN ('cannot convert float NaN to integer') and on a string
    before any of our checks ran."""

    def __init__(self, value=None, **kwargs):
        super().__init__(value=value, precision=0, **kwargs)

    def get_block_name(self) -> str:  # the front end picks its component by this name
        return "number"

    def get_block_class(self) -> str:
        return "number"

    def preprocess(self, payload):
        if payload is not None and (isinstance(payload, bool) or not isinstance(payload, (int, float))
                                    or not math.isfinite(payload)):
            span = f" from {self.minimum:g} to {self.maximum:g}" if None not in (self.minimum, self.maximum) else ""
            raise gr.Error(f"{self.label or 'number'} = {str(payload)[:40]!r} is not a number: "
                           f"enter a whole number{span}.")
        return super().preprocess(payload)


def clamp_slider(value, top: int) -> int:
    """A slider value moved into 1..top for a newly chosen model (1 when it is not a finite number)."""
    try:
        return min(max(int(float(value)), 1), top)
    except (TypeError, ValueError, OverflowError):
        return 1


def duration_text(s: float) -> str:
    """Seconds as a training status writes them: '45 s', '2 min 5 s'."""
    return f"{s:.0f} s" if s < 90 else f"{int(s // 60)} min {int(s % 60)} s"


def budget_control(cls, cap_seconds: float) -> gr.Slider:
    """A training's time-budget knob (`time_budget` of `cls`), from a little up to this server's cap,
    set to the cap."""
    info, cap = knob_info(cls, "time_budget"), cap_seconds / 60
    step = 0.5 if cap >= 1 else cap / 4
    return gr.Slider(minimum=step, maximum=cap, step=step, value=cap, label=info.label, info=info.help)


def train_intro(button: str, cap: str) -> str:
    """What a training's status says before its first run: how its time is found (no promise).
    `cap`: this server's cap as the runner writes it ('5 min')."""
    return (f"Press **{button}**. Its first steps are timed on this machine as it is now; then the run is "
            f"fitted to the time budget (at most this server's cap, {cap}) and this line "
            "says how many steps it makes and how long they take. One training runs at a time.")


def notice(text: str) -> gr.Markdown:
    """A 'what to notice' line beside a view: plain text (a '<end_of_turn>' in it is shown as
    written, not read as a tag inside the notice's <div>)."""
    return gr.Markdown(f"<div class='notice'>💡 {html_text(text)}</div>")


def warn(exc: BaseException) -> None:
    """A warning toast with an error's message (toasts read HTML: see _as_gr_error)."""
    gr.Warning(html_text(exc))


@dataclass
class Share:
    """What a tab offers to deep links: `?tab=<id>&<param>=<value>` fills `params` when the page
    opens, then `run(*run_inputs)` renders the view into `run_outputs`, so a teacher can send
    the exact example. A tab's build(engine) returns one (or None). `on_load`, if set, renders
    the tab's first view on every page load that links elsewhere (same inputs and outputs)."""

    params: dict = field(default_factory=dict)  # query name -> input component
    run: Callable | None = None
    run_inputs: list = field(default_factory=list)
    run_outputs: list = field(default_factory=list)
    on_load: Callable | None = None


def view_link(tabs: dict) -> tuple[gr.Textbox, Callable]:
    """For a tab's inner gr.Tabs (name -> gr.Tab, the first open at start): a hidden box that
    records the open sub-view's name, for Share(params={"view": ...}), and open_view(name), the
    update that a link's run returns for the gr.Tabs (an unknown name leaves the first open)."""
    names = list(tabs)
    view = gr.Textbox(names[0], visible=False)
    for name, tab in tabs.items():
        tab.select(lambda n=name: n, outputs=view, api_name=False, queue=False)

    def open_view(name):
        return gr.update(selected=tabs[name].id) if name in tabs and name != names[0] else gr.skip()
    return view, open_view


def on_gpu(fn: Callable, duration: int = 60, zero_gpu: bool | None = None) -> Callable:
    """On a ZeroGPU Space, run fn with a GPU attached (spaces.GPU); anywhere else fn is
    returned untouched, so nothing depends on the `spaces` package. zero_gpu: the operator's
    AppConfig.zero_gpu; None (inside a tab's build): that of the app being built (see
    building_config)."""
    if zero_gpu is None:
        config = building_config()
        zero_gpu = bool(config and config.zero_gpu)
    if not zero_gpu or getattr(fn, "_on_gpu", False):
        return fn
    try:
        import spaces
    except ImportError:
        return fn
    wrapped = spaces.GPU(duration=duration)(fn)
    wrapped._on_gpu = True
    return wrapped


def building_config():
    """The AppConfig (engine.config) of the app whose layout is being built: app.build_demo
    hangs it on its gr.Blocks as `app_config`, so widgets built inside a tab can read an
    operator setting without every call passing the engine. None outside such a build."""
    from gradio.context import Context

    return getattr(Context.root_block, "app_config", None)


# ---- first views: a view shows its default example when it opens, not a blank box ------------

# In the browser, when a tab opens: if the output (element id) shows nothing yet, click the button
# (element id) once, so the view draws its default example with the button's own listener. Nothing
# runs at page load, and nothing runs for a tab nobody opens; a view already drawn (by a click or a
# link) is left as it is. The tab's content may mount a moment after the click on the tab: retry.
FIRST_VIEW_JS = """() => {
  const run = (left) => {
    const out = document.getElementById(%(output)s), btn = document.getElementById(%(button)s);
    if (!out || !btn || !out.offsetParent) { if (left > 0) setTimeout(() => run(left - 1), 150); return; }
    const drawn = out.querySelector('.js-plotly-plot, img, svg.main-svg')
      || [...out.querySelectorAll('td')].some(td => td.innerText.trim())
      || [...out.querySelectorAll('.prose, .html-container')].some(p => p.innerText.trim());
    if (!drawn && !btn.dataset.firstView) { btn.dataset.firstView = '1'; btn.click(); }
  };
  run(20);
}"""


def first_view_js(button: gr.components.Component, output: gr.components.Component) -> str:
    """FIRST_VIEW_JS for a button and the output it fills (both need an elem_id)."""
    if not button.elem_id or not output.elem_id:
        raise ValueError("first_view needs elem_ids on the button and its output")
    return FIRST_VIEW_JS % {"button": json.dumps(button.elem_id), "output": json.dumps(output.elem_id)}


def first_view(button, output, tab=None) -> None:
    """When `tab` opens (a sub-tab's gr.Tab; None: the lesson tab being built, wired by app.py after
    the lesson's build) and `output` is still empty, press `button` once: the view shows its default
    example. Runs in the browser only (no server call unless the button is pressed)."""
    js = first_view_js(button, output)
    if tab is not None:
        tab.select(None, js=js, api_name=False, queue=False)
        return
    from gradio.context import Context

    root = Context.root_block
    root.first_views = [*getattr(root, "first_views", []), js]


def take_first_views() -> list[str]:
    """The first_view scripts registered for the lesson just built (app.py wires them to its tab)."""
    from gradio.context import Context

    root = Context.root_block
    views, root.first_views = list(getattr(root, "first_views", [])), []
    return views


# ---- exports for slides: plots as 2x PNG or SVG, tables as CSV ---------------------------------

PLOT_FORMATS = [("PNG, 2× size", "png"), ("SVG", "svg")]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:60] or "plot"


def export_config(plot_json: str, filename: str) -> str:
    """A Plotly figure's JSON with the browser config that Gradio hands to Plotly.react: the
    toolbar's camera saves the figure at twice the screen size, named after the view. The page's
    plot-format switch (PLOT_FORMAT_HEAD) changes png to svg at click time. Plotly's to_json()
    never writes a "config" key, so the key is spliced in front instead of parsing the figure
    again (attention heatmaps are large and redrawn on every slider move)."""
    config = {"displaylogo": False,
              "toImageButtonOptions": {"format": "png", "scale": 2, "filename": _slug(filename)}}
    body = plot_json.strip()[1:]  # the object's members after its opening brace
    return '{"config": ' + json.dumps(config) + ("," if body.lstrip()[:1] != "}" else "") + body


class ExportPlot(gr.Plot):
    """gr.Plot (same front end and constructor) whose camera button saves a slide-ready image named
    after the view: PNG at 2x, or SVG when the header switch says so. Made by Plot() below."""

    filename = "plot"
    initial: Callable[[], Any] | None = None  # Plot(initial=...): draws the first figure at page load

    def get_block_name(self) -> str:  # the front end picks its component by this name
        return "plot"

    def get_block_class(self) -> str:
        return "plot"

    def postprocess(self, value):
        data = super().postprocess(value)
        if data is None or getattr(data, "type", None) != "plotly":
            return data
        return type(data)(type=data.type, plot=export_config(data.plot, self.filename))


def Plot(value=None, *, filename: str, initial: Callable[[], Any] | None = None,  # noqa: N802 - reads like gr.Plot
         **kwargs) -> ExportPlot:
    """A plot component whose downloads are named `filename`. The name is set after construction
    (Gradio builds a component's config from gr.Plot's constructor), so an initial figure is
    stored again, now with its export settings. `initial`, in place of a value: a function that
    draws the first figure (empty axes with their titles), shown from the page load on by
    draw_initial_figures, so that starting the app draws no figure."""
    plot = ExportPlot(**kwargs)
    plot.filename = _slug(filename)
    plot.initial = initial
    if value is not None:
        plot.value = plot.postprocess(value).model_dump()
    return plot


def draw_initial_figures(demo: gr.Blocks) -> None:
    """One page-load listener that shows every Plot(initial=...)'s first figure. The figures are
    drawn on the first page load and kept for every later one: the app's start draws none (the
    first plotly figure of a process costs a few tenths of a second)."""
    plots = [b for b in demo.blocks.values() if isinstance(b, ExportPlot) and b.initial is not None]
    if not plots:
        return
    drawn: list = []
    lock = threading.Lock()

    def draw():
        with lock:
            if not drawn:  # to_json once: each page load then only splices in the export settings
                drawn.extend(gr.Plot.postprocess(p, p.initial()) for p in plots)
        return drawn if len(drawn) > 1 else drawn[0]

    demo.load(draw, outputs=plots, api_name=False, queue=False, show_progress="hidden")


# Runs once per page. Plotly's camera button reads gd._context.toImageButtonOptions when it is
# clicked, so a capturing listener sets the chosen format just before Plotly's own handler.
PLOT_FORMAT_HEAD = """<script>
(() => {
  window.llmPlotFormat = 'png';
  document.addEventListener('click', (ev) => {
    const btn = ev.target && ev.target.closest ? ev.target.closest('.modebar-btn') : null;
    if (!btn || !/download/i.test(btn.getAttribute('data-title') || '')) return;
    const gd = btn.closest('.js-plotly-plot');
    if (gd && gd._context) {
      gd._context.toImageButtonOptions = Object.assign({}, gd._context.toImageButtonOptions,
                                                       {format: window.llmPlotFormat || 'png'});
    }
  }, true);
})();
</script>"""
PLOT_FORMAT_JS = "(f) => { window.llmPlotFormat = f; return f; }"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value):
    """A cell as written to CSV: text that a spreadsheet would run as a formula (=, +, -, @) gets
    a leading apostrophe; numbers, including negative ones, are left alone."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
            return value
        except ValueError:
            return "'" + value
    return value


# ---- files made for downloads ----------------------------------------------------------------
# A listener that returns a file path hands Gradio a file that Gradio copies into its own cache
# (which delete_cache empties) as soon as the listener returns; the original is not needed after
# that. So every download file is written into a fresh folder under ONE scratch folder of this
# process, and making a new folder deletes the old ones: those older than SCRATCH_MAX_AGE_S and
# all but the newest SCRATCH_KEEP (a listener still writing has made its folder moments ago).
# The scratch folder itself goes when the process exits.
SCRATCH_KEEP = 32
SCRATCH_MAX_AGE_S = 120.0
_scratch_lock = threading.Lock()
_scratch_root: Path | None = None


def scratch_dir(prefix: str) -> Path:
    """A new, empty folder for the files of one download. Older download folders are pruned."""
    global _scratch_root
    with _scratch_lock:
        if _scratch_root is None or not _scratch_root.is_dir():
            _scratch_root = Path(tempfile.mkdtemp(prefix="llm-playground-downloads-"))
            remove_at_exit(_scratch_root)  # at exit, and on SIGTERM (app.main's handler)
        old = []
        for child in _scratch_root.iterdir():
            try:
                old.append((child.stat().st_mtime, child))
            except OSError:  # removed meanwhile
                continue
        old.sort(reverse=True)  # newest first
        now = time.time()
        for i, (mtime, child) in enumerate(old):
            if i >= SCRATCH_KEEP - 1 or now - mtime > SCRATCH_MAX_AGE_S:
                shutil.rmtree(child, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"{_slug(prefix)}-", dir=_scratch_root))


def write_csv(frame, filename: str) -> str | None:
    """The table as a CSV file in a scratch folder (see scratch_dir; Gradio keeps its own copy)."""
    if frame is None or len(frame) == 0:
        return None
    path = scratch_dir("table") / f"{_slug(filename)}.csv"
    frame.map(csv_safe).to_csv(path, index=False)
    return str(path)


def data_table(filename: str, **kwargs) -> gr.Dataframe:
    """A read-only table with a '⬇ CSV' button under it that always holds the table shown."""
    scale, min_width = kwargs.pop("scale", None), kwargs.pop("min_width", 160)
    kwargs.setdefault("interactive", False)
    with gr.Column(scale=scale or 1, min_width=min_width):
        frame = gr.Dataframe(**kwargs)
        button = gr.DownloadButton(f"⬇ {_slug(filename)}.csv", size="sm", visible=False,
                                   elem_classes=["csv-download"])

    def refresh(value):
        path = write_csv(value, filename)
        return gr.update(value=path, visible=path is not None)

    frame.change(refresh, inputs=frame, outputs=button, api_name=False, queue=False, show_progress="hidden")
    return frame


def examples(rows: list[list], inputs: list, *, labels: list[str] | None = None, fn: Callable | None = None,
             outputs: list | None = None, cache: bool = False, columns: list[int] | None = None,
             gpu: bool = False, label: str = "Examples: click one") -> gr.Examples:
    """Examples under a view. A click fills the inputs; with fn it also runs fn into outputs. With
    cache=True (only for cheap, deterministic listeners) the result is kept the first time anyone
    clicks that example (Gradio's lazy cache) and shown at once to everyone afterwards. gpu=True
    for model work: on a ZeroGPU Space fn then runs with a GPU attached (see on_gpu)."""
    kw = dict(examples=rows, inputs=inputs, label=label, example_labels=labels, visible_columns=columns,
              examples_per_page=12, cache_examples=bool(fn is not None and cache))
    if fn is not None:
        fn = on_gpu(fn) if gpu else fn
        kw.update(fn=fn, outputs=outputs, run_on_click=True)
        if cache:
            kw.update(cache_mode="lazy")
    ex = gr.Examples(**kw)
    ex.dataset.example_fn = fn  # for the tests: GPU wrapping, and that cached listeners are deterministic
    ex.dataset.cached_with = (fn, rows) if fn is not None and cache else None
    return ex
