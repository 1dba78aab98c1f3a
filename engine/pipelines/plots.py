"""Pure views for the Pipelines tab: data -> plotly Figure or HTML. No model work here."""
from __future__ import annotations

import html

import plotly.graph_objects as go

# One colour per CoNLL entity type, readable on a projector in light and dark themes.
ENTITY_COLORS = {"PER": "#f4a261", "ORG": "#8ecae6", "LOC": "#90be6d", "MISC": "#cdb4db"}
OTHER_COLOR = "#e9c46a"


def scores_bar(labels: list[str], scores: list[float], title: str = "", x_title: str = "score",
               x_max: float | None = 1.0, highlight_first: bool = True) -> go.Figure:
    """Horizontal bars, best at the top, each labelled with its value."""
    labels = [str(x) for x in labels]
    colors = ["#2a9d8f" if (i == 0 and highlight_first) else "#8ab6d6" for i in range(len(labels))]
    fig = go.Figure(go.Bar(
        x=list(scores), y=labels, orientation="h", marker_color=colors,
        text=[f"{s:.3f}" for s in scores], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.4f}<extra></extra>",
    ))
    top = x_max if x_max is not None else (max(scores) * 1.15 if scores else 1.0)
    fig.update_layout(
        title=dict(text=title, x=0.01, font=dict(size=16)), height=max(300, 90 + 52 * len(labels)),
        margin=dict(l=10, r=40, t=50 if title else 20, b=40), font=dict(size=15),
        xaxis=dict(range=[0, top * 1.08], title=x_title), yaxis=dict(autorange="reversed", type="category", tickmode="array", tickvals=labels,
                                                           ticktext=labels, automargin=True),
        plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)",
    )
    return fig


def _color(kind: str) -> str:
    return ENTITY_COLORS.get(kind, OTHER_COLOR)


def entities_html(text: str, entities: list[dict]) -> str:
    """The text with each entity marked in its type's colour and a small 'TYPE score' tag.

    entities: dicts with start, end, type, tag and score (None when the model gives none).
    Overlapping spans (which pipelines do not produce) are skipped after the first."""
    parts, pos = [], 0
    for ent in sorted(entities, key=lambda e: (e["start"], e["end"])):
        start, end = int(ent["start"]), int(ent["end"])
        if start < pos or end <= start:
            continue
        parts.append(html.escape(text[pos:start]))
        score = ent.get("score")
        tag = html.escape(str(ent.get("tag") or ent.get("type") or ""))
        tag += f" {score:.2f}" if isinstance(score, (int, float)) else ""
        parts.append(
            f"<mark style='background:{_color(ent.get('type', ''))};color:#111;padding:1px 4px;"
            f"border-radius:4px;margin:0 1px'>{html.escape(text[start:end])}"
            f"<sup style='font-size:0.62em;font-weight:700;margin-left:3px;opacity:0.8'>{tag}</sup></mark>"
        )
        pos = end
    parts.append(html.escape(text[pos:]))
    legend = " ".join(
        f"<span style='background:{c};color:#111;padding:1px 8px;border-radius:4px;margin-right:6px'>{k}</span>"
        for k, c in ENTITY_COLORS.items()
    )
    return (f"<div class='ner-view' style='font-size:1.25em;line-height:2.1'>{''.join(parts)}</div>"
            f"<div style='margin-top:8px;font-size:0.9em'>{legend}</div>")
