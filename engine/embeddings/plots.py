"""Pure functions: attention maps and embedding results -> plotly figures. No model work here."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go  # plotly.subplots (slow to import) is imported where it is used

from .attention import AttentionMaps, attends_to, matrix

FONT = dict(family="Inter, Helvetica, Arial, sans-serif", size=14)
SCALE = "Blues"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=17)), height=height, font=FONT,
                      margin=dict(l=10, r=10, t=60, b=10), plot_bgcolor="white", paper_bgcolor="white")
    return fig


def _tick_font(n: int) -> int:
    return 14 if n <= 16 else 12 if n <= 32 else 10 if n <= 64 else 7


def fitted_height(n_tokens: int) -> int:
    """A square-ish map: taller for longer texts, within what a projector shows."""
    return int(min(1100, max(560, 16 * n_tokens + 260)))


def _masked(maps: AttentionMaps, m: np.ndarray) -> np.ndarray:
    """For a causal model, show the future (above the diagonal) as blank, not as 0."""
    if not maps.causal:
        return m
    out = m.astype(float).copy()
    out[np.triu_indices(m.shape[0], k=1)] = np.nan
    return out


def heatmap(maps: AttentionMaps, layer: int, head: int | None, token: int | None = None,
            title: str | None = None, height: int | None = None, show_scale: bool = True) -> go.Figure:
    """One attention map: query tokens down the side (who looks), key tokens along the top (who is
    looked at). Positions, not labels, are the axis values so repeated words stay apart."""
    m = matrix(maps, layer, head)  # (q, k)
    n = maps.n_tokens
    height = height or fitted_height(n)
    idx = list(range(n))
    which = "mean over heads" if head is None else f"head {head}"
    hover = "query %{y}: <b>%{customdata[0]}</b><br>key %{x}: <b>%{customdata[1]}</b><br>weight %{z:.3f}<extra></extra>"
    custom = np.empty((n, n, 2), dtype=object)
    for i in idx:
        for j in idx:
            custom[i, j] = (maps.tokens[i], maps.tokens[j])
    fig = go.Figure(go.Heatmap(z=_masked(maps, m), x=idx, y=idx, customdata=custom, colorscale=SCALE, zmin=0,
                               zmax=float(np.nanmax(m)) or 1.0, hovertemplate=hover, hoverongaps=False,
                               showscale=show_scale, colorbar=dict(title=dict(text="weight"), thickness=14)))
    ticks = dict(tickmode="array", tickvals=idx, ticktext=maps.tokens, tickfont=dict(size=_tick_font(n)),
                 showgrid=False)
    fig.update_xaxes(side="top", tickangle=-90, **ticks)  # upright labels overlap on a phone (390 px)
    fig.update_yaxes(title_text="attending (query): one row per token", autorange="reversed", **ticks)
    if token is not None and 0 <= token < n:
        fig.add_shape(type="rect", x0=-0.5, x1=n - 0.5, y0=token - 0.5, y1=token + 0.5,
                      line=dict(color="#d62728", width=2))
    if maps.causal:
        fig.update_layout(plot_bgcolor="#f3f3f3")
    kind = "causal: each token sees only the past" if maps.causal else "encoder: every token sees every token"
    fig = _layout(fig, title or f"{maps.title.split(' (')[0]} · layer {layer} · {which}<br>"
                                f"<sup>{kind} · columns: the tokens attended to (keys)</sup>", height)
    fig.update_layout(margin=dict(t=130))
    return fig


def attends_bar(maps: AttentionMaps, layer: int, head: int | None, token: int,
                height: int | None = None) -> go.Figure:
    """Where one token looks, as bars in text order."""
    height = height or fitted_height(maps.n_tokens)
    ranked = attends_to(maps, layer, head, token)
    weights = {i: w for i, _, w in ranked}
    idx = list(range(maps.n_tokens))
    vals = [weights[i] for i in idx]
    top = {i for i, _, _ in ranked[:3]}
    colors = ["#d62728" if i in top else "#6baed6" for i in idx]
    labels = [f"{i}: {t}" for i, t in enumerate(maps.tokens)]
    fig = go.Figure(go.Bar(x=vals, y=labels, orientation="h", marker_color=colors,
                           hovertemplate="%{y}<br>weight %{x:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=_tick_font(maps.n_tokens)))
    fig.update_xaxes(title_text="attention weight (the row sums to 1)", range=[0, max(vals) * 1.1 or 1])
    head_txt = "mean over heads" if head is None else f"head {head}"
    return _layout(fig, f"What <b>{maps.tokens[token]}</b> (position {token}) attends to<br>"
                        f"<sup>layer {layer} · {head_txt} · top 3 in red</sup>", height)


def head_grid(maps: AttentionMaps, layer: int, height: int | None = None) -> go.Figure:
    """All heads of one layer as small multiples on one shared colour scale."""
    from plotly.subplots import make_subplots

    heads = maps.n_heads
    cols = 6 if heads % 6 == 0 else 5 if heads % 5 == 0 else 3 if heads % 3 == 0 else 4
    rows = math.ceil(heads / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"head {h + 1}" for h in range(heads)],
                        horizontal_spacing=0.02, vertical_spacing=0.08)
    per_layer = maps.weights[layer - 1]  # (heads, q, k)
    for h in range(heads):
        fig.add_trace(go.Heatmap(z=_masked(maps, per_layer[h]), coloraxis="coloraxis", hoverongaps=False,
                                 hovertemplate=f"head {h + 1}<br>query %{{y}} → key %{{x}}<br>%{{z:.3f}}"
                                               "<extra></extra>"),
                      row=h // cols + 1, col=h % cols + 1)
    fig.update_xaxes(showticklabels=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, autorange="reversed")
    fig.update_layout(coloraxis=dict(colorscale=SCALE, cmin=0, cmax=1,
                                     colorbar=dict(title=dict(text="weight"), thickness=12)))
    return _layout(fig, f"All {heads} heads of layer {layer}: each head learned its own pattern",
                   height or 190 * rows + 90)


def side_by_side(enc: AttentionMaps, enc_layer: int, causal: AttentionMaps, causal_layer: int,
                 height: int = 560) -> go.Figure:
    """Encoder vs causal attention (mean over heads) on the same text, next to each other."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=[
        f"Encoder · {enc.title.split(' (')[0]} · layer {enc_layer}: full square",
        f"Causal · {causal.title.split(' (')[0]} · layer {causal_layer}: lower triangle"])
    for col, (maps, layer) in enumerate(((enc, enc_layer), (causal, causal_layer)), start=1):
        m = matrix(maps, layer, None)  # (q, k)
        idx = list(range(maps.n_tokens))
        fig.add_trace(go.Heatmap(z=_masked(maps, m), x=idx, y=idx, coloraxis="coloraxis", hoverongaps=False,
                                 hovertemplate="query %{y} → key %{x}<br>%{z:.3f}<extra></extra>"),
                      row=1, col=col)
        ticks = dict(tickmode="array", tickvals=idx, ticktext=maps.tokens, showgrid=False,
                     tickfont=dict(size=_tick_font(maps.n_tokens)))
        fig.update_xaxes(tickangle=-60, side="top", row=1, col=col, **ticks)
        fig.update_yaxes(autorange="reversed", row=1, col=col, **ticks)
    fig.update_layout(coloraxis=dict(colorscale=SCALE, cmin=0, cmax=1,
                                     colorbar=dict(title=dict(text="weight"), thickness=12)))
    fig.update_annotations(yshift=60, font=dict(size=15))
    fig = _layout(fig, "", height)
    fig.update_layout(margin=dict(l=10, r=10, t=130, b=10), plot_bgcolor="#f3f3f3")
    return fig


def similarity_lines(sim: dict, height: int = 460) -> go.Figure:
    """Cosine similarity of the word's vectors for each sentence pair, layer by layer."""
    fig = go.Figure()
    for k, (pair, values) in enumerate(zip(sim["pairs"], sim["cosine"])):
        fig.add_trace(go.Scatter(x=sim["layers"], y=values, mode="lines+markers", name=f"S{pair[0]} ↔ S{pair[1]}",
                                 line=dict(width=3, color=PALETTE[k % len(PALETTE)]), marker=dict(size=8),
                                 hovertemplate=f"S{pair[0]} ↔ S{pair[1]}<br>layer %{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_xaxes(title_text="layer (0 = embedding layer, before any attention)", dtick=1, gridcolor="#eee")
    fig.update_yaxes(title_text="cosine similarity", gridcolor="#eee")
    fig.update_layout(legend=dict(orientation="v", x=1.01, y=1))
    return _layout(fig, f"How alike is “{sim['word']}” in two sentences, layer by layer?", height)


_POSITIONS = {  # textposition -> (dx, dy) of the label box centre from the marker, in box sizes
    "top center": (0.0, 0.5), "bottom center": (0.0, -0.5), "middle right": (0.5, 0.0), "middle left": (-0.5, 0.0),
    "top right": (0.5, 0.5), "top left": (-0.5, 0.5), "bottom right": (0.5, -0.5), "bottom left": (-0.5, -0.5)}


def label_box(x: float, y: float, text: str, size: float, position: str, scale: tuple[float, float]):
    """(x0, y0, x1, y1) in pixels of a label drawn at a marker with plotly's textposition:
    about 0.6 × font size per character, 1.3 × font size high, a 6 px gap from the marker."""
    sx, sy = scale
    w, h = 0.6 * size * len(text) + 2, 1.3 * size
    fx, fy = _POSITIONS[position]
    cx = x * sx + fx * (w + 12)
    cy = y * sy + fy * (h + 12)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(points: list[tuple[float, float, str, float, bool]], scale) -> list[str | None]:
    """A textposition per point (x, y, text, font size, must), chosen so that no two labels
    overlap: points with must=True always get one (the best free place, first come), the others
    only where a free place exists, else None (their text stays in the hover)."""
    placed, out = [], [None] * len(points)
    order = sorted(range(len(points)), key=lambda i: not points[i][4])
    for i in order:
        x, y, text, size, must = points[i]
        boxes = [(pos, label_box(x, y, text, size, pos, scale)) for pos in _POSITIONS]
        free = [(pos, b) for pos, b in boxes if not any(_overlap(b, q) for q in placed)]
        if free or must:
            pos, box = (free or boxes)[0]
            out[i] = pos
            placed.append(box)
    return out


def pca_scatter(pca: dict, word: str, height: int = 460, width: int = 620) -> go.Figure:
    """Token vectors of all sentences at one layer, projected to 2D; the chosen word stands out.
    Labels are placed so that they do not overlap (place_labels): every star of the word gets
    one; other tokens are labelled where there is room, and all show their text on hover."""
    xs, ys = pca["x"], pca["y"]
    span = lambda v: (max(v) - min(v)) or 1.0  # noqa: E731
    scale = ((width - 140) / span(xs), (height - 130) / span(ys))  # data -> pixels of the plot area
    star = [f"{pca['labels'][i]} (S{pca['sentence'][i]})" for i in range(len(xs))]
    points = [(xs[i], ys[i], star[i] if pca["is_word"][i] else pca["labels"][i], 14 if pca["is_word"][i] else 10,
               bool(pca["is_word"][i])) for i in range(len(xs))]
    where = place_labels(points, scale)
    fig = go.Figure()
    sentences = sorted(set(pca["sentence"]))
    for s in sentences:
        pts = [i for i, k in enumerate(pca["sentence"]) if k == s]
        color = PALETTE[(s - 1) % len(PALETTE)]
        others = [i for i in pts if not pca["is_word"][i]]
        fig.add_trace(go.Scatter(x=[xs[i] for i in others], y=[ys[i] for i in others],
                                 mode="markers+text", text=[pca["labels"][i] if where[i] else "" for i in others],
                                 textposition=[where[i] or "top center" for i in others],
                                 hovertext=[pca["labels"][i] for i in others],
                                 textfont=dict(size=10, color=color),
                                 marker=dict(size=6, color=color, opacity=0.45), name=f"S{s} tokens",
                                 legendgroup=f"S{s}", showlegend=False,
                                 hovertemplate="%{hovertext}<extra>S" + str(s) + "</extra>"))
        mine = [i for i in pts if pca["is_word"][i]]
        fig.add_trace(go.Scatter(x=[xs[i] for i in mine], y=[ys[i] for i in mine],
                                 mode="markers+text", text=[f"<b>{star[i]}</b>" for i in mine],
                                 textposition=[where[i] for i in mine], textfont=dict(size=14, color=color),
                                 marker=dict(size=18, color=color, symbol="star", line=dict(width=1, color="black")),
                                 name=f"“{word}” in S{s}", legendgroup=f"S{s}",
                                 hovertemplate="%{text}<extra></extra>"))
    ex = pca["explained"]
    fig.update_xaxes(title_text=f"PC 1 ({ex[0]:.0%} of variance)", zeroline=False, gridcolor="#eee")
    fig.update_yaxes(title_text=f"PC 2 ({ex[1]:.0%})", zeroline=False, gridcolor="#eee")
    return _layout(fig, f"Token vectors at layer {pca['layer']}, projected to 2D (PCA)", height)


def search_bars(result: dict, height: int = 380) -> go.Figure:
    """Embedding vs TF-IDF scores for the top passages of each ranking."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.18,
                        subplot_titles=["Embedding cosine (meaning)", "TF-IDF cosine (shared words)"])
    for col, key, color in ((1, "embedding", "#1f77b4"), (2, "tfidf", "#ff7f0e")):
        rows = result[key]
        labels = [f"#{r['passage']} {r['text'][:28]}…" for r in rows]
        fig.add_trace(go.Bar(x=[r["score"] for r in rows], y=labels, orientation="h", marker_color=color,
                             text=[f"{r['score']:.3f}" for r in rows], textposition="outside", cliponaxis=False,
                             showlegend=False,
                             hovertemplate="%{y}<br>score %{x:.3f}<extra></extra>"), row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
        fig.update_xaxes(range=[0, 1], row=1, col=col)
    if not any(r["score"] > 0 for r in result["tfidf"]):
        fig.add_annotation(text="No passage shares a word with the query:<br>every TF-IDF score is 0",
                           xref="x2 domain", yref="y2 domain", x=0.5, y=0.5, showarrow=False,
                           font=dict(size=15, color="#b35900"), bgcolor="#fff4e5")
    return _layout(fig, f"Query: “{result['query']}”", height)
