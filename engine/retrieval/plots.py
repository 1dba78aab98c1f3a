"""Retrieval views: data -> HTML / plotly figures. Pure functions."""
from __future__ import annotations

import html

import plotly.graph_objects as go

PALETTE = ("#fde68a", "#bfdbfe", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa")
METHOD_COLOURS = {"dense": "#2563eb", "sparse": "#f59e0b", "hybrid": "#16a34a"}
MAX_VIEW_CHARS = 12_000


def chunk_spans_html(text: str, chunks: list, max_chars: int = MAX_VIEW_CHARS, limit_tokens: int | None = None) -> str:
    """The document with each chunk as a coloured span; text that two chunks share (the overlap)
    is striped in both colours and underlined. Hover shows which chunks hold a piece."""
    end_view = min(len(text), max_chars)
    cuts = sorted({0, end_view, *[c.start for c in chunks if c.start < end_view],
                   *[min(c.end, end_view) for c in chunks if c.start < end_view]})
    parts = []
    for a, b in zip(cuts, cuts[1:]):
        if b <= a:
            continue
        holders = [c for c in chunks if c.start <= a and c.end >= b]
        piece = html.escape(text[a:b])
        if not holders:
            parts.append(f"<span style='color:#888'>{piece}</span>")
            continue
        cols = [PALETTE[c.index % len(PALETTE)] for c in holders]
        title = " + ".join(f"chunk {c.index} ({c.n_tokens} tokens)" for c in holders)
        if len(holders) == 1:
            style = f"background:{cols[0]}"
        else:
            title += ": overlap"
            stripes = ", ".join(f"{col} {i * 8}px {(i + 1) * 8}px" for i, col in enumerate(cols[:2]))
            style = (f"background:repeating-linear-gradient(135deg, {stripes});"
                     "border-bottom:2px solid #b91c1c")
        parts.append(f"<span class='rag-chunk' style='{style}' title='{html.escape(title, quote=True)}'>{piece}</span>")
    more = (f"<div style='color:#666;margin-top:6px'>… {len(text) - end_view:,} more characters not shown "
            f"(the chunk table lists every chunk).</div>" if end_view < len(text) else "")
    legend = ("<div style='margin-bottom:6px;font-size:0.9em'>Each colour is one chunk; "
              "<span style='background:repeating-linear-gradient(135deg,#fde68a 0 8px,#bfdbfe 8px 16px);"
              "border-bottom:2px solid #b91c1c'>striped, underlined</span> text belongs to two chunks (the overlap); "
              "grey text is in no chunk.</div>")
    return (f"<div id='rag-chunk-view' style='white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:0.85em;"
            f"line-height:1.6;max-height:520px;overflow:auto;border:1px solid #ddd;padding:8px;border-radius:6px'>"
            f"{legend}{''.join(parts)}{more}</div>")


def map_figure(points: dict, hits: dict | None = None, title: str = "") -> go.Figure:
    """2D PCA of the chunk embeddings: a dot per chunk coloured by document, the query as a star,
    each method's retrieved chunks ringed."""
    fig = go.Figure()
    docs = list(dict.fromkeys(points["doc"]))
    for i, d in enumerate(docs):
        idx = [k for k, dd in enumerate(points["doc"]) if dd == d]
        fig.add_trace(go.Scattergl(x=[points["x"][k] for k in idx], y=[points["y"][k] for k in idx], mode="markers",
                                   name=d, text=[points["label"][k] for k in idx], hoverinfo="text",
                                   marker=dict(size=5, opacity=0.45), legendgroup="docs", showlegend=len(docs) <= 12))
    for method, hs in (hits or {}).items():
        ids = [h["id"] for h in hs]
        fig.add_trace(go.Scatter(x=[points["x"][i] for i in ids], y=[points["y"][i] for i in ids], mode="markers",
                                 name=f"retrieved: {method}", text=[f"{method} #{h['rank']}: {points['label'][h['id']]}"
                                                                   for h in hs], hoverinfo="text",
                                 marker=dict(size={"dense": 18, "sparse": 14, "hybrid": 10}.get(method, 12),
                                             color="rgba(0,0,0,0)",
                                             line=dict(width=2.5, color=METHOD_COLOURS.get(method, "#000")))))
    fig.add_trace(go.Scatter(x=[points["query"][0]], y=[points["query"][1]], mode="markers+text", name="query",
                             text=["query"], textposition="top center",
                             marker=dict(symbol="star", size=20, color="#dc2626", line=dict(width=1, color="#000"))))
    ex = points.get("explained", [0, 0])
    fig.update_layout(title=title or "Chunk embeddings, 2D PCA (query projected on the same axes)",
                      xaxis_title=f"PC1 ({ex[0]:.1%} of the total variance)", yaxis_title=f"PC2 ({ex[1]:.1%})",
                      height=520, margin=dict(l=40, r=20, t=50, b=40), legend=dict(font=dict(size=10)))
    return fig


def quality_figure(result: dict) -> go.Figure:
    methods = list(result["metrics"])
    fig = go.Figure()
    for name, label in (("hit_rate", f"hit rate@{result['k']}"), ("mrr", f"MRR@{result['k']}")):
        fig.add_trace(go.Bar(x=methods, y=[result["metrics"][m][name] for m in methods], name=label,
                             text=[f"{result['metrics'][m][name]:.2f}" for m in methods], textposition="outside"))
    size, overlap, strategy = result["settings"]
    fig.update_layout(barmode="group", yaxis=dict(range=[0, 1.1], title="score"), height=360,
                      title=f"{result['questions']} questions · {result['chunks']} chunks of {size} tokens "
                            f"(overlap {overlap}, {strategy})", margin=dict(l=40, r=20, t=50, b=40))
    return fig


def sweep_figure(result: dict) -> go.Figure:
    fig = go.Figure()
    sizes = [p["size"] for p in result["points"]]
    for m, col in METHOD_COLOURS.items():
        fig.add_trace(go.Scatter(x=sizes, y=[p[f"{m}_hit_rate"] for p in result["points"]], mode="lines+markers",
                                 name=f"{m} hit rate@{result['k']}", line=dict(color=col)))
        fig.add_trace(go.Scatter(x=sizes, y=[p[f"{m}_mrr"] for p in result["points"]], mode="lines+markers",
                                 name=f"{m} MRR", line=dict(color=col, dash="dot")))
    fig.update_layout(title=f"Chunk size matters: retrieval quality vs chunk size (overlap "
                            f"{result['overlap_share']:.0%} of the size, {result['strategy']})",
                      xaxis=dict(title="chunk size (tokens)", tickvals=sizes), yaxis=dict(title="score", range=[0, 1.05]),
                      height=400, margin=dict(l=40, r=20, t=50, b=40))
    return fig


def prompt_html(built: dict) -> str:
    """The prompt as the model gets it, the token budget as a bar, and the dropped chunks."""
    used = built["tokens"] + built["max_new_tokens"]
    share = min(1.0, used / built["budget"])
    bar = (f"<div style='background:#eee;border-radius:4px;height:14px;width:100%'>"
           f"<div style='background:#2563eb;height:14px;border-radius:4px;width:{share * 100:.1f}%'></div></div>")
    head = (f"<b>Prompt: {built['tokens']} tokens</b> + {built['max_new_tokens']} for the answer = {used} of the "
            f"budget of {built['budget']} tokens · {len(built['included'])} chunks in, {len(built['dropped'])} dropped")
    dropped = ""
    if built["dropped"]:
        items = "".join(f"<li><s>{html.escape(d['title'])} #{d['chunk']}</s> ({d['tokens']} tokens): would make "
                        f"{html.escape(d['reason'])}</li>" for d in built["dropped"])
        dropped = f"<div style='color:#b91c1c'>Dropped, over the budget:<ul>{items}</ul></div>"
    sources = "".join(f"<li>[{s['n']}] {html.escape(s['title'])}, chunk {s['chunk']}</li>" for s in built["sources"])
    return (f"<div id='rag-prompt'>{head}{bar}{dropped}<div>Sources cited in the prompt:<ol style='list-style:none'>"
            f"{sources}</ol></div><pre style='white-space:pre-wrap;max-height:300px;overflow:auto;font-size:0.8em;"
            f"border:1px solid #ddd;padding:6px'>{html.escape(built['prompt'])}</pre></div>")


def answer_html(title: str, ground: dict, done: bool, elem: str) -> str:
    """An answer with its content words found in the retrieved chunks highlighted green, the
    others (not in any chunk) underlined orange."""
    spans = []
    for piece, kind in ground["pieces"]:
        p = html.escape(piece)
        if kind == "grounded":
            spans.append(f"<mark style='background:#bbf7d0'>{p}</mark>")
        elif kind == "new":
            spans.append(f"<span style='border-bottom:2px solid #f59e0b'>{p}</span>")
        else:
            spans.append(p)
    status = "" if done else " <i>(writing…)</i>"
    cited = ", ".join(f"[{n}]" for n in ground["cited"]) or "none"
    return (f"<div id='{elem}' style='border:1px solid #ddd;border-radius:6px;padding:10px;min-height:140px'>"
            f"<b>{html.escape(title)}</b>{status}<div style='white-space:pre-wrap;margin:8px 0'>{''.join(spans)}</div>"
            f"<div style='font-size:0.85em;color:#555'>{ground['grounded_words']} of {ground['content_words']} content "
            f"words found in the retrieved chunks ({ground['share']:.0%}) · sources cited: {cited}</div></div>")
