"""LLM Playground: one Gradio app, a tab per topic. `python app.py --help` for the flags.

Importing this module loads no model: build_demo() only lays out the tabs, and every model
loads on first use through the engine's cache."""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import gradio as gr
import httpx

import tabs
from engine.core.config import AppConfig
from engine.core.errors import check_text
from engine.core.markdown import html_text
from engine.core.threads import HEAVY_NICE, TRAINING_NICE, at_priority
from engine.core.settings import MAX_UPLOAD_BYTES
from tabs._queue import make_fair
from tabs._ui import (MODEL_GROUPS, PLOT_FORMAT_HEAD, PLOT_FORMAT_JS, PLOT_FORMATS, Share, draw_initial_figures,
                      on_gpu, take_first_views, user_errors)

CSS = """
.notice { font-size: 0.95em; opacity: 0.85; }
footer { display: none !important; }
body.present .gradio-container { zoom: 1.3; }
/* on a projector the Decoding chart comes first: its intro paragraph and examples step aside */
body.present #decoding-intro p, body.present #decoding-examples, body.present #decoding-mode .info-text { display: none; }
.csv-download { max-width: 16em; }
#app-title { min-width: 260px !important; }  /* the title stays on one line; the controls wrap */
/* Every inline pastel background of the lessons' HTML views (token chips, chunks, probabilities)
   carries dark text, in the dark theme too, where Gradio makes the text of .prose light. */
.gradio-container .prose [style*="background:"] { color: #111; }
/* the attention heatmap keeps room for one upright label per token: on a phone it scrolls sideways */
#att-heatmap { overflow-x: auto; }
#att-heatmap .js-plotly-plot { min-width: 540px; }
/* the perplexity arithmetic breaks between words only; a phone scrolls the table sideways */
#eval-arithmetic { overflow-x: auto; }
#eval-arithmetic td { word-break: normal !important; overflow-wrap: normal !important; }
#share-link textarea { font-family: monospace; font-size: 0.85em; }
/* table headers wrap between words, never inside one ("perplexit|y") */
.gradio-container th, .gradio-container th * { word-break: normal !important; overflow-wrap: normal !important; hyphens: manual; }
"""

# Presentation mode: larger everything for a projector; also `?present=1` in the URL.
PRESENT_JS = "(on) => { document.body.classList.toggle('present', !!on); return on; }"
# A link's tab opens in the browser as the page starts (a click on its tab button, found by its
# id, never by building a selector from the URL), not when the server answers the page load: a
# lesson the user clicks meanwhile is not taken back. Its select event records the current tab.
ON_LOAD_JS = """() => {
  const q = new URLSearchParams(window.location.search);
  if (q.get('present') === '1') document.body.classList.add('present');
  const tab = q.get('tab');
  let tries = 0;
  const open = () => {
    const buttons = document.querySelectorAll('#lessons > .tab-wrapper button[role=tab]');
    const button = Array.from(buttons).find((b) => b.dataset.tabId === tab);
    if (button) { if (button.getAttribute('aria-selected') !== 'true') button.click(); }
    else if (tries++ < 100) setTimeout(open, 50);
  };
  if (tab) open();
}"""
LINK_JS = "(qs) => qs ? window.location.origin + window.location.pathname + '?' + qs : ''"


def _coerce(component, raw: str):
    """A query-string value converted to what the component holds."""
    if isinstance(component, gr.Checkbox):
        return raw.lower() in {"1", "true", "yes", "on"}
    if isinstance(component, (gr.Slider, gr.Number)):
        value = float(raw)
        if value != value or value in (float("inf"), float("-inf")):  # a slider cannot hold NaN/Inf
            raise ValueError(f"{raw!r} is not a finite number")
        low, high = getattr(component, "minimum", None), getattr(component, "maximum", None)
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"{raw!r} is outside {low} to {high}")
        return int(value) if value.is_integer() else value
    if isinstance(component, gr.CheckboxGroup) or (isinstance(component, gr.Dropdown) and component.multiselect):
        return [v for v in raw.split(",") if v]
    if isinstance(component, (gr.Dropdown, gr.Radio)) and not getattr(component, "allow_custom_value", False):
        offered = {str(v): v for v in (c[1] if isinstance(c, (list, tuple)) else c for c in component.choices or [])}
        if raw not in offered:  # e.g. a model not offered here: the input keeps its default
            raise ValueError(f"{raw!r} is not one of the choices")
        return offered[raw]
    return raw


# Gradio's cache of the files the app serves: a file older than this is removed (Gradio's
# delete_cache, and the app's own bound in size, which main() starts: bound_served_files).
SERVED_FILES_MAX_AGE_S = 7200
SERVED_FILES_SWEEP_S = 60


def build_demo(engine) -> gr.Blocks:
    # delete_cache: files made for downloads (each in its own per-request temp folder) are
    # removed from Gradio's cache after two hours.
    with gr.Blocks(title="LLM Playground", delete_cache=(3600, SERVED_FILES_MAX_AGE_S)) as demo:
        # The queue is set before any component exists: queue() rebuilds Gradio's app and its whole
        # config, which for ~1200 components costs a second of the start; on exit it is built once.
        demo.queue(default_concurrency_limit=4, max_size=64)
        make_fair(demo)  # waiting events are ordered per session: each student gets a share of the slots
        demo.app_config = engine.config  # what tabs._ui.building_config() reads during the build
        head = _header()
        shares, tab_ids = _lessons(engine, head.current_tab)
        draw_initial_figures(demo)  # the empty charts: drawn at the first page load, not while starting

        # Register listeners
        head.present.change(None, inputs=head.present, outputs=head.present, js=PRESENT_JS, api_name=False)
        head.plot_format.change(None, inputs=head.plot_format, outputs=head.plot_format, js=PLOT_FORMAT_JS,
                                api_name=False)
        param_slots = [(tid, name, comp) for tid, sh in shares.items() for name, comp in sh.params.items()]
        demo.shares, demo.share_slots = shares, param_slots  # for tests: what links fill, without a browser
        _wire_share_link(head, param_slots)
        _wire_deep_link(demo, head, tab_ids, shares, param_slots)
    # On a ZeroGPU Space every listener of the model-work groups gets a GPU (spaces.GPU);
    # anywhere else on_gpu returns the function unchanged.
    for block_fn in demo.fns.values():
        if block_fn.concurrency_id in MODEL_GROUPS and block_fn.fn is not None:
            block_fn.fn = on_gpu(block_fn.fn, zero_gpu=engine.config.zero_gpu)
        # A student's cheap click goes before heavy calls, and those before trainings, when the
        # cores are full (a lower priority per worker thread, engine.core.threads).
        if block_fn.fn is not None and block_fn.concurrency_id in PRIORITY:
            block_fn.fn = at_priority(block_fn.fn, PRIORITY[block_fn.concurrency_id])
    return demo


# nice increment per queue group (others keep the default priority)
PRIORITY = {"model": HEAVY_NICE, "lora_merge": HEAVY_NICE, "lora_train": TRAINING_NICE, "teach_train": TRAINING_NICE,
            "pretraining_train": TRAINING_NICE}


@dataclass
class _Header:
    present: gr.Checkbox
    plot_format: gr.Radio
    link_btn: gr.Button
    link_box: gr.Textbox
    query: gr.Textbox  # hidden: the query string the link button makes
    current_tab: gr.State


def _header() -> _Header:
    """The title row (presentation mode, plot format, link button), the share-link box and the
    hidden parts the links use."""
    with gr.Row(equal_height=True):
        gr.Markdown("## 🧪 LLM Playground", elem_id="app-title")
        present = gr.Checkbox(label="Presentation mode (larger text)", value=False, scale=0,
                              min_width=250)
        plot_format = gr.Radio(PLOT_FORMATS, value="png", label="📷 in a plot's toolbar saves",
                               scale=0, min_width=330, elem_id="plot-format")
        link_btn = gr.Button("🔗 Link to this view", size="sm", scale=0, min_width=180)
    link_box = gr.Textbox(label="Share this link: it reopens this tab with the same text and knobs",
                          visible=False, elem_id="share-link", buttons=["copy"])
    query = gr.Textbox(visible=False)
    current_tab = gr.State("home")
    return _Header(present, plot_format, link_btn, link_box, query, current_tab)


def _lessons(engine, current_tab: gr.State) -> tuple[dict[str, Share], set[str]]:
    """One tab per lesson module; selecting one records its id in current_tab. Returns the
    Share of each tab that offers links, and every tab id."""
    shares: dict[str, Share] = {}
    with gr.Tabs(overflow_behavior="wrap", elem_id="lessons"):  # every lesson visible: a second row, never a "..." menu
        for module in tabs.available():
            tab_id = module.__name__.split(".")[-1]
            with gr.Tab(module.TITLE, id=tab_id) as tab:
                share = module.build(engine)
            if isinstance(share, Share):
                shares[tab_id] = share
            tab.select(lambda t=tab_id: t, outputs=current_tab, api_name=False, queue=False)
            for js in take_first_views():  # its default example, drawn when the tab first opens
                tab.select(None, js=js, api_name=False, queue=False)
    return shares, {m.__name__.split(".")[-1] for m in tabs.available()}


def link_query(param_slots: list, tab_id: str, values) -> str:
    """The query string of a link to tab_id: its linkable inputs' current values (the values of
    every slot, in param_slots' order)."""
    params = {"tab": tab_id}
    for (tid, name, comp), value in zip(param_slots, values):
        if tid != tab_id or value is None:
            continue
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        params[name] = check_text(f"{name} (for the link)", text, max_chars=1_000_000, allow_empty=True)
    return urlencode(params)


def _wire_share_link(head: _Header, param_slots: list) -> None:
    """The link button: the current tab's linkable inputs as a query string, shown as a URL."""
    def make_query(tab_id, *values):
        return link_query(param_slots, tab_id, values)

    head.link_btn.click(user_errors(make_query), inputs=[head.current_tab, *[c for _, _, c in param_slots]],
                        outputs=head.query, api_name=False, queue=False).success(
        None, inputs=head.query, outputs=head.link_box, js=LINK_JS).then(
        lambda: gr.update(visible=True), outputs=head.link_box, api_name=False, queue=False)


def _query_updates(param_slots: list, request, text_fields: bool, ignored: list | None = None):
    """Updates for the linked tab's inputs: knobs first, then free text (a text change
    may trigger a run, and it must see the linked knobs, not the defaults). A value the input
    cannot hold leaves it at its default, and its reason is appended to `ignored`."""
    q = dict(request.query_params) if request is not None else {}
    tab_id = q.get("tab")
    updates = []
    for tid, name, comp in param_slots:
        is_text = isinstance(comp, gr.Textbox)
        if tid == tab_id and name in q and is_text == text_fields:
            try:
                updates.append(gr.update(value=_coerce(comp, q[name])))
            except ValueError as exc:
                updates.append(gr.update())
                if ignored is not None:
                    ignored.append(f"{name}: {exc}")
        else:
            updates.append(gr.update())
    return q, tab_id, updates


def link_notice(ignored: list[str]) -> str:
    """The notice shown when a link held values its inputs cannot take (each names the input,
    the value and why); the inputs keep their defaults."""
    shown = "; ".join(ignored[:5]) + ("; ..." if len(ignored) > 5 else "")
    return f"This link's values were not used for {len(ignored)} input(s), which keep their defaults: {shown}"


def _wire_deep_link(demo: gr.Blocks, head: _Header, tab_ids: set[str],
                    shares: dict[str, Share], param_slots: list) -> None:
    """On page load (its tab opened by ON_LOAD_JS) only the linked tab's chain runs: it
    fills the tab's inputs (knobs, then text) and, for a tab that offers it, runs it once.

    Each tab's chain starts from a State of its own (a link trigger) that the load sets only for
    the linked tab. A page load therefore updates a handful of components, not every linkable
    input of every tab: each updated component costs the browser a walk of the whole component
    tree (~1,600 nodes), and the earlier single chain, with every tab's inputs as its outputs,
    kept a new page busy for seconds."""
    by_tab: dict[str, list] = {}
    for slot in param_slots:
        by_tab.setdefault(slot[0], []).append(slot)
    linked_tabs = [tid for tid in shares if by_tab.get(tid) or shares[tid].run is not None]
    triggers = {tid: gr.State(None) for tid in linked_tabs}

    def apply_query(request: gr.Request):
        ignored: list[str] = []
        q = dict(request.query_params) if request is not None else {}
        tab_id = q.get("tab")
        if tab_id is not None and tab_id not in tab_ids:
            ignored.append(f"tab: {tab_id!r} is not one of the tabs")
        for text_fields in (False, True):  # only to name the values the linked tab cannot take
            _query_updates(by_tab.get(tab_id, []), request, text_fields=text_fields, ignored=ignored)
        if ignored:
            gr.Warning(html_text(link_notice(ignored)))
        on = gr.update(value=True) if q.get("present") == "1" else gr.update()
        fired = [time.time_ns() if tid == tab_id else gr.skip() for tid in triggers]
        return [on, *fired]

    load = demo.load(apply_query, outputs=[head.present, *triggers.values()],
                     api_name=False, js=ON_LOAD_JS)
    for tid, trigger in triggers.items():
        _wire_linked_tab(tid, trigger, by_tab.get(tid, []), shares[tid])
    for tid, sh in shares.items():
        if sh.on_load is None:
            continue

        def first_view(request: gr.Request, *inputs, _tid=tid, _load=sh.on_load, _n=len(sh.run_outputs)):
            # Read the tab from the URL itself: a page linked to this tab draws it in its own chain.
            linked = dict(request.query_params).get("tab") if request is not None else None
            if linked == _tid:
                return [gr.skip()] * _n if _n > 1 else gr.skip()
            return _load(*inputs)

        load.then(first_view, inputs=list(sh.run_inputs), outputs=sh.run_outputs, api_name=False)


def _wire_linked_tab(tab_id: str, trigger: gr.State, slots: list, share: Share) -> None:
    """One tab's link chain, started when the page load sets its trigger: the linked knobs, then
    the linked text (a text change may run the tab, and it must see the linked knobs), then the
    tab's own run."""
    knobs = [s for s in slots if not isinstance(s[2], gr.Textbox)]
    texts = [s for s in slots if isinstance(s[2], gr.Textbox)]

    def fill(chosen):
        def apply(request: gr.Request):
            updates = _query_updates(chosen, request, text_fields=chosen is texts)[2]
            return updates if len(updates) > 1 else updates[0]
        return apply

    steps = [dict(fn=fill(chosen), outputs=[c for _, _, c in chosen], show_progress="hidden")
             for chosen in (knobs, texts) if chosen]
    if share.run is not None:
        def linked_run(request: gr.Request, *inputs, _n=len(share.run_outputs)):
            # Only for a page whose URL links this tab (read from the request, as the fills above do).
            if request is None or dict(request.query_params).get("tab") != tab_id:
                return [gr.skip()] * _n if _n > 1 else gr.skip()
            return share.run(*inputs)
        steps.append(dict(fn=linked_run, inputs=list(share.run_inputs), outputs=share.run_outputs))
    chain = None
    for step in steps:
        chain = trigger.change(**step, api_name=False) if chain is None else chain.then(**step, api_name=False)


def launch_kwargs() -> dict:
    # show_error: errors raised before our listeners run (e.g. Gradio refusing 'NaN' for a
    # slider) reach the user with their message instead of a generic one.
    # head: the plot-format switch (PNG or SVG from each plot's camera button).
    # max_file_size: the app's one upload limit (it holds the biggest LoRA adapter the app trains).
    return dict(theme=gr.themes.Soft(), css=CSS, head=PLOT_FORMAT_HEAD, show_error=True,
                max_file_size=MAX_UPLOAD_BYTES)


# Gradio's launch() asks its own page once (HEAD, 3 s timeout) and, at the first timeout, raises
# "When localhost is not accessible, a shareable link must be created", even though its server is up.
# The page of ~1200 components takes 0.4-0.9 s of CPU to render; on a busy 2-core class server that is
# more than 3 s. launch_patiently() makes the same check again with a patient wait.
PAGE_CHECK_S = 120.0
PAGE_OK = (200, 401, 301, 302, 303, 307, 308)  # the statuses Gradio's check accepts (auth, redirects)


def page_answers(url: str, within_s: float = PAGE_CHECK_S) -> bool:
    """Gradio's start check, patient: the page at `url` answers HEAD with an accepted status within
    `within_s` seconds. Only slowness is waited out: a refused connection or a bad status (a proxy
    that cannot reach localhost, what Gradio's check is there for) still fails at once."""
    deadline = time.monotonic() + within_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            return httpx.head(url, timeout=min(30.0, left), verify=False).status_code in PAGE_OK
        except httpx.TimeoutException:
            continue
        except httpx.HTTPError:
            return False
    return False


def launch_patiently(demo: gr.Blocks, **kwargs) -> None:
    """demo.launch(**kwargs) that also starts on a busy machine. When Gradio's own check of its page
    gives up, its server is already listening: the page is asked again with page_answers(), and
    the start stops only if it still does not answer; then this blocks as launch() would have
    (unless prevent_thread_lock). A ValueError raised before the server runs (a bad argument)
    stands as it is."""
    try:
        demo.launch(**kwargs)
    except ValueError:
        if not (demo.is_running and demo.local_url and page_answers(demo.local_url)):
            raise
        print("* The page answered slower than Gradio's 3 s start check (a busy machine); serving it.")
        if not kwargs.get("prevent_thread_lock"):
            demo.block_thread()


def parse_args(argv=None) -> AppConfig:
    """The operator's settings: flags, then environment variables, then defaults (one frozen
    AppConfig; the flags and their variables are listed in engine/core/config.py and README)."""
    return AppConfig.from_sources(argv)


def install_signal_handlers() -> None:
    """SIGTERM (docker stop, systemd, kill) skips atexit: remove the scratch folders, then exit."""
    from engine.core.scratch import exit_on_signal

    signal.signal(signal.SIGTERM, exit_on_signal)


def bound_served_files(demo: gr.Blocks, folder, config: AppConfig):
    """Keep Gradio's cache of served files (its own folder, made by main) within the operator's
    budget, oldest first, sparing the files the page's components show from the start."""
    from engine.core import scratch

    def keep() -> set[str]:
        return set().union(*(getattr(b, "keep_in_cache", ()) for b in getattr(demo, "blocks", {}).values()))

    return scratch.trim_every(SERVED_FILES_SWEEP_S, folder, int(config.served_files_gb * 2**30),
                              SERVED_FILES_MAX_AGE_S, keep=keep)


def main(argv=None) -> None:
    from engine import Engine
    from engine.core.config import use_gradio_cache
    from engine.core.scratch import served_files_folder

    config = parse_args(argv)  # a bad value stops here, before anything starts
    install_signal_handlers()
    engine = Engine(config=config)
    if config.device not in ("auto", "cpu"):  # a GPU asked for by name but missing here stops the start
        _ = engine.device
    served = served_files_folder(config.gradio_temp_dir)  # the app's own: the bound removes only its files
    use_gradio_cache(served)
    demo = build_demo(engine)
    bound_served_files(demo, served, config)
    auth = (config.user, config.password) if config.password else None
    launch_patiently(demo, server_name=config.host, server_port=config.port, share=config.share, auth=auth,
                     prevent_thread_lock=True, **launch_kwargs())
    # The page is served from here on; the device is picked (torch imported) meanwhile, not before.
    serving = engine.serving
    print(f"LLM Playground on {engine.device.describe()}; {engine.registry.reason}"
          + (f"; text generation served by {serving.url}" if serving.enabled else ""))
    demo.block_thread()


if __name__ == "__main__":
    main()
