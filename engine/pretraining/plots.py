"""What the Pre-training tab draws (pure: data -> plotly figure or HTML)."""
from __future__ import annotations

import html
import math

LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=50, b=50),
              legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
SIZE_COLOURS = ("#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08306b", "#041b40")


def loss_curves(train: list, val: list, ln_vocab: float | None = None, planned_tokens: int | None = None):
    """Training loss per step and validation loss against tokens seen, with ln(vocab) as a line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if train:
        fig.add_trace(go.Scatter(x=[t for t, _ in train], y=[v for _, v in train], mode="lines", name="training loss "
                                 "(each step's batch)", line=dict(color="#7c9cc9", width=1.5)))
    if val:
        fig.add_trace(go.Scatter(x=[t for t, _ in val], y=[v for _, v in val], mode="lines+markers",
                                 name="validation loss (held-out text)", line=dict(color="#2e7d32", width=2.5),
                                 marker=dict(size=7, symbol="diamond")))
    if ln_vocab:
        fig.add_hline(y=ln_vocab, line=dict(color="#d9534f", dash="dash"),
                      annotation_text=f"ln(vocab) = {ln_vocab:.2f}: a uniform guess", annotation_position="top right")
    fig.update_layout(title="Loss against tokens seen", xaxis_title="training tokens seen",
                      yaxis_title="cross-entropy (nats/token)", height=380, **LAYOUT)
    if planned_tokens:
        fig.update_xaxes(range=[0, planned_tokens * 1.02])
    fig.update_yaxes(rangemode="tozero")
    return fig


def samples_html(samples: list, prompt: str) -> str:
    """The samples stacked, oldest first: the prompt in bold, the model's text after it."""
    if not samples:
        return "<p><i>Samples appear here as the model trains.</i></p>"
    rows = []
    for step, tokens, text in samples:
        body = text[len(prompt):] if text.startswith(prompt) else text
        rows.append(f"<tr><td style='white-space:nowrap;padding:2px 8px;vertical-align:top'>step {step}<br>"
                    f"<span style='opacity:.6'>{tokens:,} tokens</span></td><td style='font-family:monospace;"
                    f"padding:2px 8px;white-space:pre-wrap'><b>{html.escape(prompt)}</b>{html.escape(body)}</td></tr>")
    # column-reverse: a box taller than 420 px opens scrolled to its end, so the newest sample shows, the oldest above
    return ("<div id='pretraining-samples' style='max-height:420px;overflow-y:auto;display:flex;"
            "flex-direction:column-reverse'><table style='border-collapse:collapse;font-size:0.9em'>"
            + "".join(rows) + "</table></div>")


def window_html(w, kind: str) -> str:
    """A window of text: each input token with its id, and under it the label: the next token's id."""
    def cells(pieces, ids, colour):
        return "".join(f"<td style='padding:2px 4px;background:{colour};text-align:center;font-family:monospace'>"
                       f"{html.escape(p)}<br><sub>{i}</sub></td>" for p, i in zip(pieces, ids))
    return ("<div style='overflow-x:auto'><table style='border-collapse:separate;border-spacing:2px'>"
            f"<tr><th style='text-align:right'>input ids</th>{cells(w.pieces, w.input_ids, '#dde7f5')}</tr>"
            f"<tr><th style='text-align:right'>labels</th>{cells(w.label_pieces, w.labels, '#f7e3c4')}</tr>"
            "</table></div>")


def _log_axes(fig, x_title: str):
    fig.update_xaxes(type="log", title_text=x_title)
    fig.update_yaxes(type="log", title_text="validation loss (nats/token, log scale)")


def scaling_params(rows: list, fit: dict | None):
    """Final validation loss against non-embedding parameters, log-log, with the fitted power law."""
    import plotly.graph_objects as go

    finals = [r for r in rows if r["share"] == 1.0]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[r["params"] for r in finals], y=[r["val_loss"] for r in finals], mode="markers",
                             name="your runs (same token budget)", marker=dict(size=11, color="#08306b")))
    if fit and finals:
        lo, hi = min(r["params"] for r in finals), max(r["params"] for r in finals)
        xs = [lo * (hi / lo) ** (i / 40) for i in range(41)] if hi > lo else [lo]
        fig.add_trace(go.Scatter(x=xs, y=[fit["a"] * x ** (-fit["alpha"]) + fit["c"] for x in xs], mode="lines",
                                 name=f"fit: {fit['a']:.3g}·N^(-{fit['alpha']:.3f}) + {fit['c']:.3g}",
                                 line=dict(color="#d9534f", dash="dash")))
    _log_axes(fig, "non-embedding parameters N (log scale)")
    fig.update_layout(title="Loss against model size", height=380, **LAYOUT)
    return fig


def scaling_compute(rows: list, optimum: dict | None = None, budget: float | None = None):
    """Validation loss against compute C = 6·N·D, one curve per size (its checkpoints), log-log."""
    import plotly.graph_objects as go

    fig = go.Figure()
    sizes = sorted({r["params"] for r in rows})
    for i, n in enumerate(sizes):
        pts = sorted((r for r in rows if r["params"] == n), key=lambda r: r["compute"])
        fig.add_trace(go.Scatter(x=[r["compute"] for r in pts], y=[r["val_loss"] for r in pts], mode="lines+markers",
                                 name=f"N = {n:,}", line=dict(color=SIZE_COLOURS[min(i, len(SIZE_COLOURS) - 1)])))
    if budget:
        fig.add_vline(x=budget, line=dict(color="#999", dash="dot"))
    if optimum:
        fig.add_trace(go.Scatter(x=[budget], y=[optimum["val_loss"]], mode="markers", name="compute-optimal here",
                                 marker=dict(size=16, symbol="star", color="#d9534f")))
    _log_axes(fig, "compute C = 6·N·D (FLOPs, log scale)")
    fig.update_layout(title="Loss against compute", height=380, **LAYOUT)
    return fig


def fmt_flops(x: float) -> str:
    """1.2e12 -> '1.2 TFLOP'."""
    if not x or not math.isfinite(x):
        return "-"
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} FLOP"
