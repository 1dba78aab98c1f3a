"""Pure functions for the decoding tab: data -> plotly Figure / HTML. No model code here."""
from __future__ import annotations

import functools
import html
import json
import math

import plotly.graph_objects as go  # plotly.subplots (slow to import) is imported where it is used

from ..tokens import invisible_code

KEPT = "#4f46e5"  # indigo: still in the running
CUT_NOW = "#9ca3af"  # grey: cut by this knob
REST = "#94a3b8"  # slate: the part of the distribution a server's top N does not name
CUT_BEFORE = "#e5e7eb"  # light grey: cut by an earlier knob
GREEDY = "#f59e0b"


def distribution_figure(view, top: int = 12) -> go.Figure:
    """Small multiples: the same top tokens (by raw probability) after each knob in turn.

    Kept tokens are coloured bars at their renormalised probability; cut tokens are grey bars
    at the probability they had just before they were cut. Each panel's title says how many
    tokens survived and how much of the mass they carried. Every panel has the same probability
    axis, so a knob that flattens or sharpens the distribution shows as bars that shrink or grow.

    Redrawn on every Step click, so it is built as plain plotly JSON on a grid laid out once per
    size (_grid): make_subplots and plotly's per-property checks cost ~50 ms a call on 2 cores,
    as much as the model's forward step. tests/test_decoding checks that plotly accepts the
    result unchanged."""
    ids = view.top_ids(top)
    labels = [_tick(view.labels.get(t, str(t)), i) for i, t in enumerate(ids)]
    n_rows = (len(view.stages) + 1) // 2  # two panels a row (seven stages: the last row has one)
    layout = json.loads(_grid(n_rows, len(view.stages)))
    for note, i in zip(layout["annotations"], range(len(view.stages))):
        note["text"] = _panel_title(view.stages[i], i, view)
    traces, cut_at, tallest = [], {}, 0.05
    for i, st in enumerate(view.stages):
        labels_i, heights, colors, texts, hovers = _panel_bars(view, st, i, ids, labels, cut_at)
        axis = "" if i == 0 else str(i + 1)  # make_subplots numbers the panels row by row
        traces.append(dict(type="bar", x=labels_i, y=heights, marker=dict(color=colors), text=texts,
                           textposition="outside", cliponaxis=False, textfont=dict(size=11), hovertext=hovers,
                           hovertemplate="%{x}<br>%{hovertext}<extra></extra>", showlegend=False,
                           xaxis=f"x{axis}", yaxis=f"y{axis}"))
        tallest = max(heights + [tallest])
        layout[f"xaxis{axis}"].update(tickangle=-35, tickfont=dict(size=12, family="monospace"))
    for name in [k for k in layout if k.startswith("yaxis")]:  # one shared probability axis, room for labels
        layout[name].update(range=[0, min(1.0, tallest * 1.3) if tallest < 0.77 else 1.18], tickformat=".0%",
                            gridcolor="#eef0f4")
    # plotly's own checks were run on this shape by the test named above; skipping them per call
    # is what plotly does for its templates (Template(..., _validate=False))
    return go.Figure(dict(data=traces, layout=layout), _validate=False)


@functools.lru_cache(maxsize=8)
def _grid(n_rows: int, n_titles: int) -> str:
    """The layout of distribution_figure as JSON: a grid of n_rows x 2 panels with n_titles panel
    titles (their text set per figure), the default template, sizes and margins."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=n_rows, cols=2, subplot_titles=["-"] * n_titles, vertical_spacing=0.48 / n_rows,
                        horizontal_spacing=0.06)
    fig.update_annotations(font=dict(size=13))
    # No figure title: the tab's summary line says the same, and a title collides with the modebar.
    fig.update_layout(height=76 + 230 * n_rows, margin=dict(l=50, r=20, t=56, b=40), bargap=0.25, plot_bgcolor="white")
    return fig.layout.to_json()


def _panel_bars(view, st, i: int, ids: list[int], labels: list[str], cut_at: dict[int, int]):
    """One panel's bars: (x labels, heights, colours, bar texts, hover texts). A kept token is
    coloured at its renormalised probability; a cut one grey at the probability it had just before
    the knob that cut it (cut_at: token -> that knob's index, filled as the panels go)."""
    heights, colors, texts, hovers = [], [], [], []
    for t in ids:
        if bool(st.kept[t]):
            p = float(st.probs[t])
            heights.append(p)
            colors.append(GREEDY if (i == 0 and t == view.greedy_id) else KEPT)
            texts.append(_pct(p))
            hovers.append(f"kept · p = {p:.4f}")
        else:
            first = cut_at.setdefault(t, i)
            before = float(view.stages[first - 1].probs[t])
            heights.append(before)
            colors.append(CUT_NOW if first == i else CUT_BEFORE)
            texts.append("cut" if first == i else "")
            hovers.append(f"cut by {view.stages[first].name} (p was {before:.4f})")
    if not view.served_top:
        return labels, heights, colors, texts, hovers
    # the server named only its top N: everything else is one honest bar
    rest = view.rest_mass(i)
    return (labels + [f"rest (past {len(view.served_top)})"], heights + [rest], colors + [REST],
            texts + [_pct(rest)],
            hovers + [f"every token beyond the server's top {len(view.served_top)}: p = {rest:.4f} in all "
                      "(the server does not say how it is spread)"])


def _tick(label: str, index: int) -> str:
    label = label if len(label) <= 14 else label[:13] + "…"
    return label + "\u200b" * index  # zero-width suffix keeps repeated labels distinct


def _pct(p: float) -> str:
    if p >= 0.095:
        return f"{p:.0%}"
    if p >= 0.0095:
        return f"{p:.1%}"
    return f"{p:.2%}" if p >= 0.0001 else "<0.01%"


def _panel_title(st, index: int, view) -> str:
    if index == 0:
        if view.served_top:
            return f"<b>1. raw</b><br>{_small(f'top {len(view.served_top)} of {st.kept_count:,} from the server')}"
        return f"<b>1. raw</b><br>{_small(f'all {st.kept_count:,} tokens')}"
    head = f"<b>{index + 1}. {st.label}</b>"
    if not st.active:
        return f"{head} (off)"
    # the detail on a second, smaller line: side by side on a phone two one-line titles overlapped
    if view.served_top and st.kept_count > len(view.served_top):  # the cut falls among tokens the server did not name
        return f"{head}<br>{_small(f'reaches past the server top {len(view.served_top)} (approx.)')}"
    if st.name in ("repetition penalty", "temperature") and st.kept_count == view.stages[index - 1].kept_count:
        return f"{head}<br>{_small('reshapes, cuts nothing')}"
    return f"{head}<br>{_small(f'{st.kept_count:,} kept, {st.kept_mass:.1%} of mass')}"


def _small(text: str) -> str:
    return f"<span style='font-size:11px'>{text}</span>"


def _color(value: float) -> str:
    """A readable background from red (0) through yellow to green (1)."""
    value = max(0.0, min(1.0, value))
    hue = 120 * value
    return f"hsl({hue:.0f}, 75%, 80%)"


def _rank_value(rank: int) -> float:
    return {1: 1.0, 2: 0.7, 3: 0.55}.get(rank, 0.4 if rank <= 5 else 0.25 if rank <= 10 else 0.0)


def _marked(text: str) -> str:
    """Escaped text with each invisible character (zero-width space, no-break space, joiner, ...)
    shown as a small code-point badge, so no token is a blank chip."""
    if text.isprintable():
        return html.escape(text)
    out = []
    for ch in text:
        code = None if ch in "\n\t\r" else invisible_code(ch)
        out.append(f"<span class='dec-cp' title='{code}'>{code}</span>" if code else html.escape(ch))
    return "".join(out)


def token_spans(tokens, color_by: str = "probability", seq: int | None = None) -> str:
    """Coloured token chips; with `seq`, each carries data-seq/data-pos so a click can name it."""
    out = []
    for pos, t in enumerate(tokens):
        value = t.p_raw if color_by == "probability" else _rank_value(t.rank)
        after = "not returned by the server" if math.isnan(t.p_final) else f"{t.p_final:.3f}"
        tip = f"{(t.bytes or t.text)!r} · p = {t.p_raw:.3f} (after knobs {after}) · rank {t.rank}"
        if t.bytes:
            text = f"<span class='dec-bytes'>{html.escape(t.bytes)}</span>"
        elif t.special:
            text = f"<span class='dec-special'>{html.escape(t.text)}</span>"
        else:
            text = _marked(t.text)
        text = text.replace("\n", "↵<br>")
        where = "" if seq is None else f" data-seq='{int(seq)}' data-pos='{pos}'"
        out.append(f"<span class='dec-tok'{where} style='background:{_color(value)}' "
                   f"title='{html.escape(tip, quote=True)}'>{text}</span>")
    return "".join(out)


STYLE = """<style>
.dec-wrap{display:flex;gap:12px;flex-wrap:wrap}
/* theme colours (light or dark); a token on a pastel background gets dark text (the app's CSS) */
.dec-col{flex:1 1 300px;border:1px solid var(--border-color-primary,#d1d5db);border-radius:8px;padding:10px;background:var(--block-background-fill,#fff)}
.dec-head{font-weight:600;margin-bottom:6px;font-size:0.9em;color:var(--body-text-color-subdued,#374151)}
.dec-body{font-family:ui-monospace,monospace;font-size:15px;line-height:1.9;white-space:pre-wrap;word-break:break-word}
.dec-prompt{color:var(--body-text-color-subdued,#6b7280)}
.dec-tok{border-radius:3px;padding:1px 0;margin:0 1px}
.dec-tok[data-pos]{cursor:pointer}
.dec-tok[data-pos]:hover,.dec-tok.dec-picked{outline:2px solid #4f46e5}
.dec-fork{outline:2px solid #f59e0b;font-weight:600}
.dec-special{font-size:0.8em;color:#7c2d12;font-weight:600}
.dec-bytes{font-size:0.8em;border:1px dashed #777;border-radius:3px;padding:0 2px}
.dec-cp{font-family:system-ui,sans-serif;font-size:9px;color:#9a3412;background:#ffedd5;border:1px solid #fb923c;border-radius:3px;padding:0 2px;margin:0 1px;vertical-align:middle}
.dec-stop{margin-top:8px;font-size:0.85em;padding:2px 8px;border-radius:10px;display:inline-block;background:#eef2ff;color:#3730a3}
.dec-legend{font-size:0.85em;color:var(--body-text-color-subdued,#4b5563);margin:6px 0}
.dec-ctx{height:12px;background:#e5e7eb;border-radius:6px;overflow:hidden;margin:4px 0}
.dec-ctx>div{height:100%;float:left}
</style>"""


def _legend(color_by: str) -> str:
    if color_by == "probability":
        stops = [(0.02, "2%"), (0.2, "20%"), (0.5, "50%"), (0.9, "90%")]
        body = " ".join(f"<span class='dec-tok' style='background:{_color(v)}'>&nbsp;{t}&nbsp;</span>" for v, t in stops)
        return f"<div class='dec-legend'>colour = the model's probability of each token (before the knobs): {body}</div>"
    body = " ".join(f"<span class='dec-tok' style='background:{_color(_rank_value(r))}'>&nbsp;{t}&nbsp;</span>"
                    for r, t in [(1, "rank 1"), (2, "2"), (3, "3"), (5, "4–5"), (10, "6–10"), (11, ">10")])
    return f"<div class='dec-legend'>colour = the token's rank in the model's distribution: {body}</div>"


def generation_html(result, color_by: str = "probability", prompt: str = "") -> str:
    """The sequences side by side, each token coloured; the stop reason under each."""
    cols = []
    for i, seq in enumerate(result.sequences):
        reason = seq.stop_reason or "generating…"
        n = len(seq.tokens)
        mean_p = sum(t.p_raw for t in seq.tokens) / n if n else 0.0
        cols.append(
            f"<div class='dec-col'><div class='dec-head'>sequence {i + 1} · {n} tokens · mean p {mean_p:.2f}</div>"
            f"<div class='dec-body'><span class='dec-prompt'>{html.escape(prompt)}</span>"
            f"{token_spans(seq.tokens, color_by, seq=i)}</div>"
            f"<div class='dec-stop'>stopped: {html.escape(reason)}</div></div>")
    return STYLE + _legend(color_by) + "<div class='dec-wrap'>" + "".join(cols) + "</div>"


def alternatives_rows(point) -> list[list]:
    """The alternatives table: rank, token, id, probability (%); the token the text has is marked."""
    return [[a.rank, a.label, a.id, round(100 * a.p, 2), "← this one" if a.id == point.chosen.id else ""]
            for a in point.alternatives]


ALTERNATIVE_HEADERS = ["rank", "token", "id", "p (%)", "in the text"]


def branch_html(prompt: str, br, sequence: int, original_stop: str = "") -> str:
    """The original continuation and the branch side by side, from their common prefix (grey)."""
    head = html.escape(prompt) + f"<span class='dec-prompt' style='color:var(--body-text-color,#374151)'>{html.escape(br.prefix_text)}</span>"
    original = "".join(f"<span class='dec-tok{' dec-fork' if i == 0 else ''}'>{_marked(t)}</span>"
                       for i, t in enumerate(br.original_pieces))
    new = "".join(f"<span class='dec-tok{' dec-fork' if i == 0 else ''}' style='background:{_color(t.p_raw)}' "
                  f"title='p = {t.p_raw:.3f} · rank {t.rank}'>{_marked(t.text)}</span>"
                  for i, t in enumerate(br.tokens))
    cols = [(f"original (sequence {sequence + 1}): <code>{html.escape(br.labels[0])}</code> at position "
             f"{br.position}", original, original_stop),
            (f"branch: <code>{html.escape(br.labels[1])}</code> there instead, then {len(br.tokens) - 1} more tokens",
             new, br.stop_reason)]
    body = "".join(f"<div class='dec-col'><div class='dec-head'>{title}</div><div class='dec-body'>"
                   f"<span class='dec-prompt'>{head}</span>{text.replace(chr(10), '↵<br>')}</div>"
                   + (f"<div class='dec-stop'>stopped: {html.escape(stop)}</div>" if stop else "") + "</div>"
                   for title, text, stop in cols)
    return STYLE + "<div class='dec-wrap'>" + body + "</div>"


def steps_html(prompt_text: str, steps: list[dict], stop_reason: str = "") -> str:
    """The text built by the step button: the prompt in grey, each stepped token coloured; the
    stop reason under it once the model has ended the text."""
    spans = []
    for st in steps:
        tip = f"{st['how']} · p = {st['p_raw']:.3f} (after knobs {st['p_final']:.3f}) · rank {st['rank']}"
        label = (f"<span class='dec-bytes'>{html.escape(st['bytes'])}</span>" if st.get("bytes") else
                 _marked(st["text"]).replace("\n", "↵<br>"))
        spans.append(f"<span class='dec-tok' style='background:{_color(st['p_raw'])}' "
                     f"title='{html.escape(tip, quote=True)}'>{label}</span>")
    body = (f"<span class='dec-prompt'>{html.escape(prompt_text)}</span>" + "".join(spans)) if prompt_text else \
        "<span class='dec-prompt'>Press <b>Next token</b> to read the prompt, then <b>Step</b>.</span>"
    stop = ""
    if stop_reason:
        last = html.escape(steps[-1]["text"]) if steps else ""
        stop = (f"<div class='dec-stop'>stopped: {html.escape(stop_reason)} (the model wrote {last}, its "
                f"end-of-sequence token): press <b>Next token</b> to start over</div>")
    return STYLE + f"<div class='dec-col'><div class='dec-body'>{body}</div>{stop}</div>"


def context_html(used: int, new: int, maximum: int, generated: int = 0) -> str:
    """A bar against the model's context window: `used` prompt tokens, `generated` tokens the model
    has written so far (the step view) and `new` tokens reserved for generation. Before a model has
    read the prompt (maximum 0) the bar is empty and says when it fills."""
    if maximum <= 0:
        return (STYLE + "<div class='dec-legend'><b>Context window:</b> shown once the model has read the prompt "
                "(Next token or Generate)</div><div class='dec-ctx'></div>")
    total = used + generated + new
    parts = [f"{used:,} prompt"] + ([f"{generated:,} generated"] if generated else []) + \
        ([f"{new:,} new"] if new or not generated else [])
    bars = "".join(f"<div style='width:{max(100 * n / maximum, 0.4):.2f}%;background:{c}'></div>"
                   for n, c in ((used, "#4f46e5"), (generated, "#818cf8"), (new, "#c7d2fe")) if n or c == "#4f46e5")
    return (STYLE + f"<div class='dec-legend'><b>Context window:</b> {' + '.join(parts)} = {total:,} of "
            f"{maximum:,} tokens ({100 * total / maximum:.1f}%)</div><div class='dec-ctx'>{bars}</div>")


# --- beam search: the tree of kept hypotheses ---------------------------------------------

BEAM_KEPT = "#4f46e5"
BEAM_DONE = "#059669"  # finished hypotheses
BEAM_DROP = "#d1d5db"
BEAM_BEST = "#f59e0b"


def _best_path(result) -> set[tuple[int, int]]:
    """(step, candidate index) of every node on the best finished hypothesis's path."""
    best = result.best
    if best is None:
        return set()
    path = set()
    step = result.steps[best.step - 1]
    idx = next((i for i, c in enumerate(step.candidates) if c.final is not None and c.parent == best.parent
                and c.token == best.ids[-1]), None)
    if idx is None:
        return path
    path.add((best.step, idx))
    row = best.parent
    for t in range(best.step - 1, 0, -1):
        kept = [i for i, c in enumerate(result.steps[t - 1].candidates) if c.status == "kept"]
        path.add((t, kept[row]))
        row = result.steps[t - 1].beams[row].parent
    return path


def beam_tree_figure(result, max_steps: int = 64) -> go.Figure:
    """Every step's candidates as a column: kept beams (indigo), finished hypotheses (green),
    dropped candidates (grey); lines join each candidate to the beam it extends. The best
    finished hypothesis's path is orange."""
    fig = go.Figure()
    ypos: dict[tuple[int, int], int] = {(0, 0): 0}  # (step, beam row) -> y of its node
    best = _best_path(result)
    edge_x, edge_y, best_x, best_y = [], [], [], []
    groups = {k: ([], [], [], [], [], []) for k in ("kept", "finished", "dropped")}
    for st in result.steps[:max_steps]:
        kept_rows = 0
        for i, c in enumerate(st.candidates):
            py = ypos.get((st.step - 1, c.parent), 0)
            on_best = (st.step, i) in best
            xs, ys = (best_x, best_y) if on_best else (edge_x, edge_y)
            xs += [st.step - 1, st.step, None]
            ys += [-py, -i, None]
            kind = "kept" if c.status == "kept" else "finished" if c.status.startswith("finished") else "dropped"
            if c.status == "kept":
                ypos[(st.step, kept_rows)] = i
                kept_rows += 1
            gx, gy, gt, gh, gc, gl = groups[kind]
            gx.append(st.step)
            gy.append(-i)
            gt.append("" if kind == "dropped" else c.label if len(c.label) <= 8 else c.label[:7] + "…")
            extra = f"<br>final score {c.final:.3f}" if c.final is not None else ""
            gh.append(f"step {st.step} · {html.escape(c.label)} · from beam {c.parent + 1}<br>log p {c.logprob:.3f} · "
                      f"sum {c.score:.3f}{extra}<br>{html.escape(c.status)}")
            gc.append({"kept": BEAM_KEPT, "finished": BEAM_DONE, "dropped": BEAM_DROP}[kind])
            gl.append(BEAM_BEST if on_best else "white")
    fig.add_trace(go.Scatter(x=edge_x, y=edge_y, mode="lines", line=dict(color="#c7d2fe", width=1),
                             hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=best_x, y=best_y, mode="lines", line=dict(color=BEAM_BEST, width=3),
                             hoverinfo="skip", name="best hypothesis"))
    names = {"kept": "kept beam", "finished": "finished hypothesis", "dropped": "dropped candidate"}
    for kind, (gx, gy, gt, gh, gc, gl) in groups.items():
        fig.add_trace(go.Scatter(x=gx, y=gy, mode="markers+text", text=gt, textposition="top center",
                                 textfont=dict(family="monospace", size=11, color="#111827"),
                                 marker=dict(size=10 if kind != "dropped" else 6, color=gc, line=dict(color=gl, width=2),
                                             symbol="diamond" if kind == "finished" else "circle"),
                                 hovertext=gh, hovertemplate="%{hovertext}<extra></extra>", name=names[kind]))
    fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers+text", text=["prompt"], textposition="top center",
                             marker=dict(size=11, color="#374151"), hoverinfo="skip", showlegend=False))
    n = len(result.steps[:max_steps])
    rows = max((len(st.candidates) for st in result.steps), default=1)
    fig.update_layout(height=max(320, 42 * rows + 120), margin=dict(l=60, r=40, t=30, b=40), plot_bgcolor="white",
                      legend=dict(orientation="h", y=1.06, x=0), hovermode="closest")
    fig.update_xaxes(title="step (new token) · dropped candidates (grey): hover for their token", dtick=1,
                     range=[-0.6, n + 0.6], gridcolor="#f3f4f6")
    fig.update_yaxes(title="candidates, best first", showticklabels=False, zeroline=False, gridcolor="#f9fafb",
                     range=[-(rows - 0.5), 0.7])
    return fig


def beam_summary_html(result) -> str:
    """The finished hypotheses, best first, with both scores; the best one highlighted."""
    if not result.finished:
        return STYLE + "<div class='dec-legend'>searching…</div>"
    lp = result.settings.length_penalty
    rows = []
    for i, h in enumerate(result.finished):
        style = " style='background:#fef3c7'" if i == 0 else ""
        rows.append(f"<tr{style}><td>{i + 1}</td><td class='dec-body' style='line-height:1.4'>{_marked(h.text)}</td>"
                    f"<td>{len(h.ids)}</td><td>{h.score:.3f}</td><td><b>{h.final:.3f}</b></td><td>{h.step}</td></tr>")
    return (STYLE + f"<div class='dec-legend'>Finished hypotheses, best first. score = sum of log p / length<sup>{lp:g}"
            f"</sup> (length_penalty {lp:g}). Stopped: {html.escape(result.stop_reason)}.</div>"
            "<table class='dec-beams'><tr><th>#</th><th>text</th><th>tokens</th><th>sum log p</th><th>score</th>"
            "<th>finished at step</th></tr>" + "".join(rows) + "</table>"
            "<style>.dec-beams{border-collapse:collapse;width:100%;font-size:0.9em}.dec-beams td,.dec-beams th"
            "{border:1px solid #e5e7eb;padding:3px 6px;text-align:left;color:#111;background:#fff}"
            ".dec-beams tr[style] td{background:#fef3c7}</style>")


# --- the KV cache of the step view ----------------------------------------------------------

def human(n: float) -> str:
    """Bytes as '540.0 KiB'."""
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024:
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"


def kv_html(size) -> str:
    """One line: tokens held, the formula with the model's numbers, and the tensors' bytes."""
    return (f"<div class='dec-legend' id='decoding-kv'><b>KV cache:</b> {size.tokens:,} tokens held · 2 (K and V) × "
            f"{size.layers} layers × {size.kv_heads} KV heads × {size.head_dim} dims × {size.tokens:,} tokens × "
            f"{size.dtype_bytes} bytes = <b>{size.formula:,} bytes ({human(size.formula)})</b>; the cache's tensors "
            f"hold {size.bytes:,} bytes · {human(size.per_token)} per token</div>")


# --- the conversation: what is sent, against the window -------------------------------------

TURN_COLORS = ("#6366f1", "#0ea5e9", "#14b8a6", "#a855f7", "#ec4899", "#f97316")


def chat_html(sent, reply: str = "", stop_reason: str = "") -> str:
    """The context bar (template + kept turns + the new message + the answer's room, against the
    window), the dropped turns, and the full text sent."""
    w = sent.window
    pieces = [("system prompt, new message and template", sent.base_tokens, "#374151")]
    for i in range(sent.kept_from, len(sent.history)):
        pieces.append((f"turn {i + 1}", sent.turn_tokens[i], TURN_COLORS[i % len(TURN_COLORS)]))
    pieces.append(("room for the answer", sent.reserve, "#c7d2fe"))
    bar = "".join(f"<div title='{html.escape(label)}: {n} tokens' style='width:{100 * n / w:.2f}%;background:{c}'>"
                  f"</div>" for label, n, c in pieces)
    legend = " · ".join(f"<span style='color:{c}'>■</span> {html.escape(label)} {n}" for label, n, c in pieces)
    used = sent.tokens + sent.reserve
    head = (f"<div class='dec-legend'><b>Sent this turn:</b> {sent.tokens:,} prompt tokens + {sent.reserve} for the "
            f"answer = {used:,} of the {w:,}-token context window ({100 * used / w:.0f}%; the model itself allows "
            f"{sent.model_max:,}). {len(sent.kept)} earlier turn(s) re-sent, {len(sent.dropped)} dropped.</div>")
    dropped = ""
    if sent.dropped:
        items = "".join(f"<li><s>turn {i + 1}: {html.escape(t['user'])}</s> ({sent.turn_tokens[i]} tokens)</li>"
                        for i, t in enumerate(sent.dropped))
        dropped = (f"<div class='dec-drop'><b>Dropped to fit the window</b> (the model never sees these "
                   f"again):<ul>{items}</ul></div>")
    answer = ""
    if reply:
        answer = (f"<div class='dec-col' style='margin-top:8px'><div class='dec-head'>Reply ({html.escape(stop_reason)})"
                  f"</div><div class='dec-body'>{_marked(reply)}</div></div>")
    return (STYLE + head + f"<div class='dec-ctx' style='height:16px'>{bar}</div><div class='dec-legend'>{legend}"
            f"</div>{dropped}{answer}<details open><summary class='dec-legend'>The full prompt sent to the model "
            f"(chat template applied)</summary><pre class='dec-sent'>{html.escape(sent.text)}</pre></details>"
            "<style>.dec-sent{white-space:pre-wrap;font-size:12.5px;background:#f9fafb;color:#111;border:1px solid "
            "#e5e7eb;border-radius:6px;padding:8px;max-height:340px;overflow:auto}.dec-drop{background:#fef2f2;"
            "color:#7f1d1d;border:1px solid #fecaca;border-radius:6px;padding:4px 10px;margin:6px 0;font-size:0.9em}"
            "</style>")
