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


METRIC_LABELS = {"hit_rate": "hit rate@{k}", "mrr": "MRR@{k}", "recall": "recall@{k}", "ndcg": "nDCG@{k}"}
METRIC_COLOURS = {"hit_rate": "#1d4ed8", "mrr": "#60a5fa", "recall": "#b45309", "ndcg": "#7c3aed"}


def quality_figure(result: dict) -> go.Figure:
    """Hit rate, MRR, recall and nDCG at k per method, grouped bars; under each method the prompt
    tokens its top k chunks cost."""
    methods = list(result["metrics"])
    ticks = [f"{m}<br>{result['metrics'][m]['prompt_tokens']:,.0f} prompt tokens" for m in methods]
    fig = go.Figure()
    for name, label in METRIC_LABELS.items():
        fig.add_trace(go.Bar(x=ticks, y=[result["metrics"][m][name] for m in methods], name=label.format(k=result["k"]),
                             marker_color=METRIC_COLOURS[name], text=[f"{result['metrics'][m][name]:.2f}" for m in methods],
                             textposition="outside"))
    size, overlap, strategy = result["settings"]
    fig.update_layout(barmode="group", yaxis=dict(range=[0, 1.15], title="score"), height=400,
                      title=f"{result['questions']} questions · {result['chunks']} chunks of {size} tokens "
                            f"(overlap {overlap}, {strategy})<br><sup>under each method: the prompt tokens of its "
                            f"top {result['k']} chunks (SmolLM2's tokenizer, mean over the questions)</sup>",
                      margin=dict(l=40, r=20, t=70, b=60))
    return fig


def sweep_figure(result: dict) -> go.Figure:
    """Top: the four scores against chunk size, a panel each, a line per method. Bottom: the prompt
    tokens the top k chunks cost at each size, with the room the Answer tab's default budget leaves."""
    from plotly.subplots import make_subplots

    k, sizes = result["k"], [p["size"] for p in result["points"]]
    titles = [label.format(k=k) for label in METRIC_LABELS.values()]
    titles.append(f"prompt tokens of the top {k} chunks (SmolLM2's tokenizer, mean over the questions)")
    fig = make_subplots(rows=2, cols=4, specs=[[{}, {}, {}, {}], [{"colspan": 4}, None, None, None]],
                        subplot_titles=titles, vertical_spacing=0.2, horizontal_spacing=0.05)
    for m, col in METHOD_COLOURS.items():
        for c, name in enumerate(METRIC_LABELS, start=1):
            fig.add_trace(go.Scatter(x=sizes, y=[p[f"{m}_{name}"] for p in result["points"]], mode="lines+markers",
                                     name=m, legendgroup=m, showlegend=c == 1, line=dict(color=col)), row=1, col=c)
        fig.add_trace(go.Scatter(x=sizes, y=[p[f"{m}_prompt_tokens"] for p in result["points"]], mode="lines+markers",
                                 name=m, legendgroup=m, showlegend=False, line=dict(color=col)), row=2, col=1)
    room = result.get("prompt_room")
    if room:
        fig.add_hline(y=room, line=dict(color="#b91c1c", dash="dash"), row=2, col=1,
                      annotation_text=f"{room} tokens: the Answer tab's default room for the prompt; past it, chunks "
                                      "are dropped", annotation_position="top left")
    fig.update_yaxes(range=[0, 1.05], row=1)
    fig.update_yaxes(title_text="tokens", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(tickvals=sizes)
    fig.update_xaxes(title_text="chunk size (MiniLM tokens)", row=2, col=1)
    fig.update_layout(title=f"Chunk size: retrieval quality and what it costs in the prompt (overlap "
                            f"{result['overlap_share']:.0%} of the size, {result['strategy']})",
                      height=620, margin=dict(l=50, r=20, t=80, b=50), legend=dict(title="method"))
    return fig


def rerank_rows(hits: list[dict]) -> list[list]:
    """Reranked hits as table rows: new rank, first-stage rank, cross-encoder score, first-stage score, chunk."""
    return [[h["rank"], h["first_rank"], round(h["score"], 4), round(h["first_score"], 4),
             f"{h['title']} #{h['chunk']}: " + h["text"][:180].replace("\n", " ")] for h in hits]


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
