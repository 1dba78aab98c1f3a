"""Pure functions: the tab's data -> HTML and plotly figures. No model work here."""
from __future__ import annotations

import base64
import math
import zlib
from html import escape

import numpy as np
import plotly.graph_objects as go  # plotly.subplots (slow to import) is imported where it is used

from ..core.markdown import md_code
from ..tokens import CSS as TOKENS_CSS
from ..tokens import Piece, piece_html
from .anatomy import Anatomy, Cost
from .block import BlockView
from .journey import Journey
from .lens import Drift, Lens, Prediction

FONT = dict(family="Inter, Helvetica, Arial, sans-serif", size=14)
ORANGE, BLUE, GREY = "#f28e2b", "#4e79a7", "#9aa0a6"


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=17)), height=height, font=FONT,
                      margin=dict(l=10, r=10, t=70, b=10), plot_bgcolor="white", paper_bgcolor="white")
    return fig


def _shape(shape) -> str:
    return "(" + ", ".join(f"{s:,}" if isinstance(s, int) else str(s) for s in shape) + ")"


def _label(piece: str) -> str:
    return piece.replace("\n", "\\n") if piece.strip() else repr(piece)


# --- a heat strip as a small PNG (one pixel per number; the browser scales it up) -------------------

def _png(index: np.ndarray, palette: np.ndarray) -> bytes:
    """A minimal PNG writer for an (h, w) uint8 array of palette indices and a (256, 3) uint8
    palette (colour type 3: one byte per pixel, a third of what RGB would compress; no imaging
    library needed)."""
    h, w = index.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), index], axis=1).tobytes()  # filter 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 3, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", palette.astype(np.uint8).tobytes())
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def _diverging_lut() -> np.ndarray:
    """256 colours: blue (-1) - white (0) - red (+1)."""
    t = np.linspace(-1, 1, 256)[:, None]
    white, red, blue = np.array([255, 255, 255]), np.array([200, 40, 40]), np.array([40, 80, 190])
    return np.where(t >= 0, white + (red - white) * t, white + (blue - white) * (-t)).round().astype(np.uint8)


LUT = _diverging_lut()


def diverging_index(matrix: np.ndarray) -> np.ndarray:
    """(h, w) numbers -> (h, w) indices into LUT, scaled to the 99th percentile of |x|."""
    m = np.asarray(matrix, dtype=np.float32)
    scale = float(np.percentile(np.abs(m), 99)) or 1.0
    return np.clip((m / scale + 1) * 127.5, 0, 255).astype(np.uint8)  # (h, w)


def diverging_rgb(matrix: np.ndarray) -> np.ndarray:
    """(h, w) numbers -> (h, w, 3) colours: what strip_img's PNG shows."""
    return LUT[diverging_index(matrix)]


def strip_img(matrix: np.ndarray, row_px: int = 14, alt: str = "") -> str:
    png = base64.b64encode(_png(diverging_index(matrix), LUT)).decode()
    h = max(row_px, min(matrix.shape[0] * row_px, 360))
    return (f'<img class="strip" alt="{escape(alt)}" src="data:image/png;base64,{png}" '
            f'style="height:{h}px">')


# --- the journey -------------------------------------------------------------------------------------

JOURNEY_CSS = """<style>
/* theme colours (light or dark); light backgrounds below set dark text of their own */
.jr{font-family:system-ui,sans-serif;color:var(--body-text-color,#1d1d1f);display:flex;flex-wrap:wrap;align-items:stretch;gap:6px 0}
.jr .card{border:1px solid var(--border-color-primary,#d6d6e0);border-radius:10px;padding:8px 10px;background:var(--block-background-fill,#fff);min-width:150px;max-width:440px;
 box-shadow:0 1px 2px rgba(0,0,0,.05)}
.jr .card h4{margin:0 0 4px;font-size:14px;font-weight:700}
.jr .card .sub{font-size:12px;color:var(--body-text-color-subdued,#666);margin-top:4px;line-height:1.35}
.jr .arrow{display:flex;flex-direction:column;align-items:center;justify-content:center;min-width:74px;padding:0 2px}
.jr .arrow .a{font-size:24px;color:#8a8fa3;line-height:1}
.jr .arrow code{font-size:11.5px;background:#eef2ff;color:#3730a3;border-radius:4px;padding:1px 4px;white-space:nowrap}
.jr .arrow i{font-size:11px;color:var(--body-text-color-subdued,#777);font-style:normal;text-align:center}
.jr .ids{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;word-break:break-all}
.jr .strip{image-rendering:pixelated;width:100%;min-width:220px;border:1px solid #ccc;display:block}
.jr .sg{display:flex;gap:4px;align-items:flex-start}
.jr .sg .lab{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:10.5px;line-height:14px;text-align:right;
 white-space:pre;color:var(--body-text-color-subdued,#444)}
.jr .blocks{display:grid;grid-template-columns:repeat(10,1fr);gap:3px;min-width:300px}
.jr .blk{border:1px solid #b9c3e6;background:#f3f5ff;color:#1d1d1f;border-radius:4px;font-size:10.5px;text-align:center;padding:1px 0 0}
.jr .blk div{background:#4e79a7;height:3px;margin-top:2px}
.jr .bar{display:flex;align-items:center;gap:6px;font-size:12.5px;margin:2px 0}
.jr .bar span.b{display:inline-block;height:10px;background:#4e79a7;border-radius:2px}
.jr .bar.pick span.b{background:#f28e2b}
.jr .out{font-size:16px;line-height:1.5}
.jr .out b{background:#ffe3c2;color:#111;border-radius:4px;padding:0 3px}
.jr .tk{line-height:1.9}
</style>"""


def _arrow(shape: str, note: str = "") -> str:
    return (f'<div class="arrow"><span class="a">➜</span><code>{escape(shape)}</code>'
            f'<i>{escape(note)}</i></div>')


def _probs_caption(j) -> str:
    """Which sum is 1 (all of them) and how much the ones shown carry."""
    shown = sum(p for _, _, p in j.top)
    return (f"the top {len(j.top)} of {j.vocab:,}: all {j.vocab:,} probabilities sum to 1; these {len(j.top)} "
            f"sum to {shown:.2f}")


def _card(title: str, body: str, sub: str = "", style: str = "") -> str:
    sub_html = f'<div class="sub">{sub}</div>' if sub else ""
    return f'<div class="card" style="{style}"><h4>{escape(title)}</h4>{body}{sub_html}</div>'


def _pieces_html(j: Journey, show_ids: bool) -> str:
    chips = "".join(piece_html(Piece(tid, text, "special" if sp else "text"), show_ids=show_ids)
                    for tid, text, sp in zip(j.ids, j.pieces, j.special))
    return f'<div class="tkv tk">{chips}</div>'


def _strip_with_labels(matrix: np.ndarray, pieces: list[str], alt: str) -> str:
    img = strip_img(matrix, alt=alt)
    if len(pieces) > 24:
        return img
    labels = "\n".join(escape(_label(p))[:12] for p in pieces)
    return f'<div class="sg"><div class="lab">{labels}</div><div style="flex:1">{img}</div></div>'


def journey_html(j: Journey) -> str:
    n, d = len(j.ids), j.d_model
    parts = [_card("1 · Text", f'<div class="out">{escape(j.text)}</div>', f"{len(j.text)} characters"),
             _arrow("tokenizer", "cut into pieces"),
             _card("2 · Token pieces", _pieces_html(j, show_ids=False), f"{n} tokens (· marks a space)"),
             _arrow(_shape((1, n)), "look up each id"),
             _card("3 · Ids", f'<div class="ids">{escape(str(j.ids))}</div>',
                   f"input_ids, shape {_shape((1, n))}; the model never sees letters"),
             _arrow(_shape((1, n, d)), "one table row per id"),
             _card("4 · Embedding rows", _strip_with_labels(j.embeddings, j.pieces, "embedding rows"),
                   f"{n} rows × {d} numbers of the embedding table "
                   f"({j.vocab:,} × {d}); red = positive, blue = negative", style="min-width:260px")]
    last = j.stream_norms[1:, -1]  # (layers,) |stream| of the last token after each block
    top = float(last.max()) or 1.0
    blocks = "".join(f'<div class="blk" title="block {i + 1}: |stream| of the last token = {v:.1f}">{i + 1}'
                     f'<div style="width:{max(8, 100 * v / top):.0f}%"></div></div>' for i, v in enumerate(last))
    attn = (f"{j.n_heads} query heads, {j.n_kv_heads} K/V heads" if j.n_kv_heads != j.n_heads
            else f"{j.n_heads} heads")
    parts += [_arrow(_shape((1, n, d)), "the residual stream"),
              _card(f"5 · {j.n_layers} blocks", f'<div class="blocks">{blocks}</div>',
                    f"each block: attention (the tokens talk, {attn}) then an MLP (each token thinks alone); "
                    f"each adds to the stream, whose shape stays {_shape((1, n, d))}. Bars: size of the last "
                    "token's vector after each block.", style="min-width:320px")]
    if j.causal:
        probs_html = "".join(
            f'<div class="bar{" pick" if k == 0 else ""}"><span class="b" style="width:{max(2, 120 * p):.0f}px"></span>'
            f'{escape(_label(t))} <b>{p:.1%}</b></div>' for k, (_, t, p) in enumerate(j.top))
        st = j.logit_stats
        parts += [_arrow(_shape((1, n, d)), "final RMSNorm"),
                  _card("6 · Final norm", _strip_with_labels(j.final, j.pieces, "after the final norm"),
                        "each vector rescaled to a steady size", style="min-width:240px"),
                  _arrow(_shape((1, n, j.vocab)), f"lm_head: × ({d}, {j.vocab:,})"),
                  _card("7 · Logits", f'<div class="ids">{j.vocab:,} numbers per position</div>',
                        f"one score per vocabulary entry; the last position predicts what comes next: "
                        f"from {st['min']:.1f} to {st['max']:.1f}", style="max-width:260px"),
                  _arrow(_shape((j.vocab,)), "softmax: exp, then ÷ sum"),
                  _card("8 · Probabilities", probs_html, _probs_caption(j)),
                  _arrow("argmax", "greedy pick"),
                  _card("9 · Picked token", '<div class="tkv tk">' + piece_html(Piece(j.picked_id, j.picked, "text"))
                        + "</div>", f"id {j.picked_id}, the most likely one"),
                  _arrow("decode", "append, then repeat"),
                  _card("10 · Text", f'<div class="out">{escape(j.text)}<b>{escape(j.picked)}</b></div>',
                        "the new token joins the prompt and the whole road runs again")]
    else:
        parts += [_arrow(_shape((1, n, d)), "last hidden state"),
                  _card("6 · Contextual vectors", _strip_with_labels(j.final, j.pieces, "last hidden state"),
                        "one vector per token, now shaped by the whole sentence", style="min-width:240px"),
                  _arrow(_shape((1, d)), "mean over tokens, ÷ length"),
                  _card("7 · Sentence vector", strip_img(j.sentence[None], row_px=22, alt="sentence vector"),
                        f"{d} numbers, length 1: what semantic search compares by cosine. An encoder has no "
                        "next-token head: it reads, it does not write.", style="min-width:260px")]
    return TOKENS_CSS + JOURNEY_CSS + f'<div class="jr">{"".join(parts)}</div>'


def shapes_markdown(shapes: dict) -> str:
    width = max(len(k) for k in shapes)
    lines = [f"{k + ':':<{width + 1}} {v}" for k, v in shapes.items()]
    return "```\n" + "\n".join(lines) + "\n```"


# --- inside one block ------------------------------------------------------------------------------

def _tick(pieces: list[str]) -> list[str]:
    return [f"{i} {_label(p)}"[:14] for i, p in enumerate(pieces)]


def block_figure(b: BlockView) -> go.Figure:
    from plotly.subplots import make_subplots

    n = len(b.pieces)
    titles = ("① scores Q·Kᵀ/√d", "② after the causal mask" if b.causal else "② mask (none: an encoder sees all)",
              "③ after softmax (rows sum to 1)")
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.06)
    masked = np.where(np.isneginf(b.masked), np.nan, b.masked)
    ticks = _tick(b.pieces)
    lo, hi = float(np.min(b.scores)), float(np.max(b.scores))
    for col, (z, scale, zr) in enumerate(((b.scores, "Purples", (lo, hi)), (masked, "Purples", (lo, hi)),
                                          (b.weights, "Blues", (0, 1))), start=1):
        text = None
        if n <= 10:
            text = [["−∞" if (col == 2 and np.isnan(v)) else f"{v:.2f}" for v in row] for row in z]
        fig.add_trace(go.Heatmap(z=z, x=ticks, y=ticks, colorscale=scale, zmin=zr[0], zmax=zr[1],
                                 showscale=col == 3, text=text, texttemplate="%{text}" if text else None,
                                 textfont=dict(size=11), hoverongaps=False,
                                 hovertemplate="query %{y}<br>key %{x}<br>%{z:.4f}<extra></extra>",
                                 colorbar=dict(title=dict(text="weight"), thickness=12)), row=1, col=col)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=11))
    fig.update_yaxes(showticklabels=False, row=1, col=2)
    fig.update_yaxes(showticklabels=False, row=1, col=3)
    fig.update_xaxes(tickangle=-50, tickfont=dict(size=11))
    rope = ", after RoPE" if b.rope else ""
    gqa = f" · reads K/V head {b.kv_head} of {b.n_kv_heads}" if b.n_kv_heads != b.n_heads else ""
    return _layout(fig, f"Block {b.layer}, head {b.head}{gqa}: query token (row) looks at key token (column)"
                   f"{rope}", min(720, 260 + 34 * n))


def norms_figure(b: BlockView) -> go.Figure:
    rows = b.norms()
    x = _tick(b.pieces)
    fig = go.Figure()
    for key, name, colour in (("before", "stream before", GREY), ("attention_adds", "attention adds", BLUE),
                              ("mlp_adds", "MLP adds", ORANGE), ("after", "stream after", "#59a14f")):
        fig.add_bar(x=x, y=[r[key] for r in rows], name=name, marker_color=colour,
                    hovertemplate="%{x}<br>" + name + ": %{y:.2f}<extra></extra>")
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.12, x=0))
    fig.update_yaxes(title="vector length (L2 norm, log scale)", gridcolor="#eee", type="log", dtick=1)
    fig.update_xaxes(tickangle=-40)
    return _layout(fig, f"Block {b.layer}: the residual stream per token, and what each part adds", 430)


def _num(x: float) -> str:
    return f"{x:+.4f}"


def _divisor(b) -> str:
    """√d, or what the model divides by instead (Gemma 3: √query_pre_attn_scalar; GPT-2 may also divide by the layer)."""
    scale = getattr(b, "scale", None) or b.head_dim ** -0.5
    return f"√{b.head_dim}" if abs(1 / scale - b.head_dim ** 0.5) < 1e-6 else "the model's own divisor"


def worked_markdown(b: BlockView) -> str:
    c = b.worked_cell()
    prods = " + ".join(f"({_num(q)})·({_num(k)})" for q, k in zip(c["q"], c["k"]))
    first = f"{c['products'][0]:.4f}" + "".join(f" {'−' if p < 0 else '+'} {abs(p):.4f}" for p in c["products"][1:])
    rope = " Q and K are shown *after* RoPE (the rotation that encodes each token's position)." if b.rope else ""
    gqa = ""
    if b.n_kv_heads != b.n_heads:
        group = b.n_heads // b.n_kv_heads
        gqa = (f"\n\n**Grouped-query attention:** this model has {b.n_heads} query heads but only {b.n_kv_heads} "
               f"K/V heads; each K/V head is shared by {group} query heads, so query head {b.head} reads "
               f"K/V head {b.kv_head} (heads {(b.kv_head - 1) * group + 1} to {b.kv_head * group}).")
    mask = ("Keys after the query are masked to −∞ (the future is hidden), so the softmax gives them 0."
            if b.causal else "No mask: an encoder lets every token see every other token.")
    return (f"**One cell by hand:** query token {c['i']} {md_code(_label(c['query']))} and key token {c['j']} "
            f"{md_code(_label(c['key']))}, head size d = {b.head_dim}.{rope}\n\n"
            f"q·k = {prods} + … ({b.head_dim} products in all)  \n"
            f"&nbsp;&nbsp;&nbsp;&nbsp;= {first} + … = **{c['dot']:.4f}**  \n"
            f"score = q·k / {_divisor(b)} = {c['dot']:.4f} / {c['sqrt_d']:.4g} = **{c['score']:.4f}**  \n"
            f"softmax: exp(score − row max) / Σ = exp({c['score']:.4f} − {c['row_max']:.4f}) / {c['exp_sum']:.4f} "
            f"= {c['exp']:.4f} / {c['exp_sum']:.4f} = **{c['weight']:.4f}**  \n"
            f"{mask} The weighted sum of V for this token is Σⱼ weightⱼ · vⱼ (table below); the "
            f"{b.n_heads} heads' sums are joined and multiplied by the output matrix: that is what attention "
            f"adds to the stream.{gqa}")


# --- logit lens ------------------------------------------------------------------------------------

def lens_figure(L: Lens) -> go.Figure:
    rows = [f"{p} {_label(L.pieces[p])}"[:16] for p in L.positions]
    z = L.top_probs.T  # (positions, layers)
    text = [[_label(L.top_pieces[layer][k])[:8] for layer in range(len(L.layers))] for k in range(len(L.positions))]
    fig = go.Figure(go.Heatmap(z=z, x=L.layers, y=rows, text=text, texttemplate="%{text}", textfont=dict(size=12),
                               colorscale="YlOrRd", zmin=0, zmax=1, colorbar=dict(title=dict(text="p(top)"), thickness=12),
                               hovertemplate="after block %{x}<br>at %{y}<br>top guess %{text}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="token read")
    fig.update_xaxes(title="after block", dtick=1)
    return _layout(fig, "Logit lens: the top next-token guess if the model stopped after each block", 160 + 44 * len(rows))


def lens_target_figure(L: Lens) -> go.Figure:
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=L.layers, y=L.target_probs, mode="lines+markers", name=f"p({_label(L.target)})",
                    line=dict(color=ORANGE, width=3))
    fig.add_scatter(x=L.layers, y=L.target_ranks, mode="lines", name="its rank (right axis, 1 = top)",
                    line=dict(color=BLUE, dash="dot"), secondary_y=True)
    fig.update_yaxes(title=f"p({_label(L.target)})", range=[0, 1], gridcolor="#eee", secondary_y=False)
    fig.update_yaxes(title="rank", type="log", autorange="reversed", secondary_y=True, showgrid=False, dtick=1)
    fig.update_xaxes(title="after block", dtick=2)
    fig.update_layout(legend=dict(orientation="h", y=1.14, x=0))
    first = L.first_top_layer
    when = f"first the top guess after block {first}" if first else "never the top guess"
    return _layout(fig, f"The model's final pick “{_label(L.target)}” at the last position: {when}", 400)


def lens_rows(L: Lens) -> tuple[list[str], list[list]]:
    headers = ["position", "token", *[f"L{layer}" for layer in L.layers]]
    rows = []
    for k, p in enumerate(L.positions):
        rows.append([p, _label(L.pieces[p]),
                     *[f"{_label(L.top_pieces[li][k])} {L.top_probs[li, k]:.2f}" for li in range(len(L.layers))]])
    return headers, rows


# --- static vs contextual, before training -----------------------------------------------------------

def drift_figure(d: Drift) -> go.Figure:
    layers = list(range(len(d.cosines)))
    fig = go.Figure(go.Scatter(x=layers, y=d.cosines, mode="lines+markers", line=dict(color=BLUE, width=3),
                               name="cosine", hovertemplate="layer %{x}: cosine %{y:.4f}<extra></extra>"))
    fig.add_scatter(x=[0], y=[d.row_cosine], mode="markers+text", marker=dict(color=ORANGE, size=14, symbol="star"),
                    text=[f"embedding rows: {d.row_cosine:.4f}"], textposition="bottom right", name="input embedding rows")
    fig.update_yaxes(title="cosine similarity of the two vectors", range=[min(0.0, min(d.cosines) - 0.05), 1.08],
                     gridcolor="#eee")
    fig.update_xaxes(title="layer (0 = what enters block 1)", dtick=2 if len(layers) > 12 else 1)
    fig.update_layout(legend=dict(orientation="h", y=1.12, x=0))
    return _layout(fig, f"“{escape(d.word)}” in two sentences: same row in, different vectors out", 420)


def untrained_figure(trained: Prediction, random: Prediction, vocab: int) -> go.Figure:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=(f"{trained.label}: entropy {trained.entropy:.2f} nats",
                                        f"{random.label}: entropy {random.entropy:.2f} nats"))
    for col, pred, colour in ((1, trained, ORANGE), (2, random, GREY)):
        fig.add_bar(x=[f"{k + 1} {_label(t)}"[:14] for k, (t, _) in enumerate(pred.top)], y=[p for _, p in pred.top],
                    marker_color=colour, showlegend=False, text=[f"{p:.1e}" if p < 0.01 else f"{p:.0%}" for _, p in pred.top],
                    textposition="outside", row=1, col=col)
        note = dict(annotation_text=f"uniform 1/{vocab:,}", annotation_position="bottom right") if col == 2 else {}
        fig.add_hline(y=1 / vocab, line=dict(dash="dash", color="#555"), row=1, col=col, **note)
    fig.update_yaxes(type="log", range=[-5.5, 0.3], dtick=1, gridcolor="#eee")
    fig.update_yaxes(title="probability (log scale)", col=1)
    fig.update_xaxes(tickangle=-40)
    return _layout(fig, f"Next token after the same prompt · a uniform guess has entropy ln({vocab:,}) = "
                   f"{math.log(vocab):.2f} nats", 440)


# --- anatomy and cost ------------------------------------------------------------------------------

def anatomy_figure(a: Anatomy) -> go.Figure:
    groups = [g for g in a.groups if g["parameters"] or g["note"]]
    fig = go.Figure(go.Bar(y=[g["group"] for g in groups], x=[g["parameters"] for g in groups], orientation="h",
                           marker_color=[BLUE, ORANGE, "#59a14f", GREY, "#b07aa1"][: len(groups)],
                           text=[f"{g['parameters'] / 1e6:.2f} M · {g['share']:.1%}" if g["parameters"] else "tied: 0"
                                 for g in groups], textposition="auto"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="parameters", gridcolor="#eee")
    return _layout(fig, f"{a.title}: where the {a.total / 1e6:.1f} M parameters are", 330)


def _origin(a: Anatomy) -> str:
    return f" ({a.origin})" if a.origin else ""


def config_markdown(a: Anatomy) -> str:
    rows = "\n".join(f"| `{k}` | {escape(str(v))} | {m} |" for k, m, v in a.config)
    tied = (" The output layer (lm_head) **shares** the embedding table (tied weights), so it adds no "
            "parameters, but it still costs a matrix multiply per token." if a.tied else "")
    files = ", ".join(f"`{f['file']}`" for f in a.files if f["kind"] == "tokenizer") or "none found"
    return (f"**{a.title}** · `{a.model_class}` · {a.num_parameters:,} parameters "
            f"(`model.num_parameters()`), {a.bytes_in_memory / 2**20:.0f} MiB in memory{_origin(a)}.{tied}\n\n"
            f"| config field | value | what it means |\n|---|---|---|\n{rows}\n\n"
            f"**Folder:** `{escape(a.folder)}` · tokenizer files: {files}")


def _si(x: float, unit: str) -> str:
    for div, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f} {prefix}{unit}"
    return f"{x:.2f} {unit}"


def cost_markdown(c: Cost) -> str:
    util = (f"about **{c.utilization:.2%}** of this GPU's dense peak ({_si(c.peak, 'FLOP/s')})" if c.peak else
            f"the peak FLOP/s of this device ({escape(c.device)}) is not known here, so no utilization is "
            "given: a CPU's peak depends on its cores, clock and vector units")
    return (f"**{c.formula}**\n\n"
            f"- N_matmul = {c.n_matmul:,} weights used in matrix multiplies per token: the blocks' attention and "
            f"MLP matrices plus the unembedding ({c.unembedding:,} = vocab × d_model, paid every token even though "
            "it is tied to the input table, which is only looked up)\n"
            f"- attention over the context: 4 × {c.n_layers} layers × ctx × {c.d_attn} (d_attn) — q·k and the "
            f"weighted sum of V for every earlier token\n"
            f"- at the run's average context ({c.prompt_tokens} prompt + up to {c.new_tokens} new tokens): "
            f"{_si(c.flops_weights, 'FLOP')} (weights) + {_si(c.flops_attention_avg, 'FLOP')} (attention) = "
            f"**{_si(c.flops_per_token, 'FLOP')} per token** ≈ 2 × parameters, as the rule of thumb says\n"
            f"- measured here: {c.new_tokens} tokens in {c.seconds:.2f} s = **{c.tokens_per_second:.1f} tokens/s** "
            f"(greedy, KV cache, batch 1, eager attention, on {escape(c.device)})\n"
            f"- achieved ≈ {_si(c.achieved, 'FLOP/s')} (an estimate from the formula); {util}. At batch 1 a "
            "small model is limited by memory traffic and Python overhead, not arithmetic.")
