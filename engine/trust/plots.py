"""Trust & prompting: data -> plotly figures and table rows (pure functions)."""
from __future__ import annotations

import plotly.graph_objects as go

COLOURS = {"first token": "#1f77b4", "sequence": "#ff7f0e", "agreement": "#2ca02c"}


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 380) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=height, margin=dict(l=50, r=20, t=60, b=50),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def reliability_figure(result: dict | None = None, measure: str = "first token") -> go.Figure:
    """Accuracy per confidence bin against the diagonal of perfect calibration; bar width = bin."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                             line=dict(dash="dash", color="grey")))
    title = "Reliability diagram: press Run to answer the questions"
    if result:
        m = result["summary"]["measures"][measure]
        bins = [b for b in m["reliability"] if b["n"]]
        fig.add_trace(go.Bar(x=[(b["lo"] + b["hi"]) / 2 for b in bins], y=[b["accuracy"] for b in bins],
                             width=[(b["hi"] - b["lo"]) * 0.95 for b in bins], name="accuracy in the bin",
                             marker_color=COLOURS[measure], opacity=0.75, text=[f"n={b['n']}" for b in bins],
                             customdata=[[b["confidence"], b["lo"], b["hi"]] for b in bins],
                             hovertemplate="bin [%{customdata[1]:.2f}, %{customdata[2]:.2f}): accuracy %{y:.2f}, "
                                           "mean confidence %{customdata[0]:.2f}, %{text}<extra></extra>"))
        fig.add_trace(go.Scatter(x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins], mode="markers",
                                 name="(mean confidence, accuracy)", marker=dict(color="black", size=7)))
        title = (f"{measure}: ECE = {m['ece']:.3f} ({result['summary']['bins']} equal-width bins), "
                 f"Brier = {m['brier']:.3f}<br><sup>accuracy {result['summary']['accuracy']:.2f} over "
                 f"n = {result['summary']['n']} answers; bars: accuracy per bin, dots: (mean confidence, accuracy)</sup>")
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.05])
    return _layout(fig, title, "confidence", "accuracy")


def coverage_figure(curves: dict | None = None, tau: float | None = None) -> go.Figure:
    """Accuracy of the answered questions against coverage as tau rises, one line per measure."""
    fig = go.Figure()
    for measure, curve in (curves or {}).items():
        pts = [p for p in curve if p["accuracy"] is not None]
        fig.add_trace(go.Scatter(x=[p["coverage"] for p in pts], y=[p["accuracy"] for p in pts], mode="lines+markers",
                                 name=measure, line=dict(color=COLOURS.get(measure)), marker=dict(size=4),
                                 customdata=[p["tau"] for p in pts],
                                 hovertemplate="τ = %{customdata:.2f}: coverage %{x:.2f}, accuracy %{y:.2f}<extra></extra>"))
    title = "Accuracy-coverage: answer only when confidence ≥ τ"
    if tau is not None:
        title += f" (τ = {tau:.2f} marked)"
        for measure, curve in (curves or {}).items():
            at = min(curve, key=lambda p: abs(p["tau"] - tau))
            if at["accuracy"] is not None:
                fig.add_trace(go.Scatter(x=[at["coverage"]], y=[at["accuracy"]], mode="markers", showlegend=False,
                                         marker=dict(size=13, symbol="x", color=COLOURS.get(measure))))
    fig.update_xaxes(range=[0, 1.02])
    fig.update_yaxes(range=[0, 1.05])
    return _layout(fig, title, "coverage (share of questions answered)", "accuracy of the answered")


def grounding_figure(result: dict | None = None) -> go.Figure:
    fig = go.Figure()
    rows = (result or {}).get("summary", [])
    fig.add_trace(go.Bar(x=[r["condition"] for r in rows], y=[r["hallucination"] for r in rows], name="wrong (hallucination rate)",
                         marker_color="#d62728", text=[f"{r['hallucination']:.0%}" for r in rows], textposition="outside"))
    mis = [r for r in rows if r["repeats_false"] is not None]
    if mis:
        fig.add_trace(go.Bar(x=[r["condition"] for r in mis], y=[r["repeats_false"] for r in mis],
                             name="repeats the false passage", marker_color="#9467bd",
                             text=[f"{r['repeats_false']:.0%}" for r in mis], textposition="outside"))
    fig.update_yaxes(range=[0, 1.1])
    n = (result or {}).get("n")
    title = f"Hallucination rate by condition (n = {n} questions each)" if n else "Hallucination rate: press Run"
    return _layout(fig, title, "", "share of answers")


def snowball_figure(result: dict | None = None) -> go.Figure:
    fig = go.Figure()
    steps = (result or {}).get("forced_steps", [])
    labels = [f"{s['step']}:{s['token']!r}"[:18] for s in steps]
    fig.add_trace(go.Scatter(x=labels, y=[s["p_correction"] for s in steps], mode="lines+markers",
                             name="p(correction opener)", line=dict(color="#2ca02c")))
    if steps and steps[0].get("p_right") is not None:
        fig.add_trace(go.Scatter(x=labels, y=[s["p_right"] for s in steps], mode="lines+markers",
                                 name="p(first token of the right answer)", line=dict(color="#1f77b4")))
    fig.update_yaxes(rangemode="tozero")
    title = "After the forced prefix: the chance, step by step, that the model turns back" if steps else \
        "Snowballing: press Run"
    return _layout(fig, title, "step: the token the model wrote", "probability of the next token")


def prompting_figure(result: dict | None = None) -> go.Figure:
    """Accuracy with its 95% bootstrap interval per prompt variant (a curve for the few-shot k)."""
    fig = go.Figure()
    rows = (result or {}).get("rows", [])
    err = dict(type="data", symmetric=False, array=[r["ci_high"] - r["accuracy"] for r in rows],
               arrayminus=[r["accuracy"] - r["ci_low"] for r in rows])
    if result and result["dimension"] == "few-shot k":
        fig.add_trace(go.Scatter(x=[r["k"] for r in rows], y=[r["accuracy"] for r in rows], error_y=err,
                                 mode="lines+markers", name="accuracy (95% bootstrap interval)"))
        x_title = "few-shot examples k"
    else:
        fig.add_trace(go.Bar(x=[r["label"][:32] for r in rows], y=[r["accuracy"] for r in rows], error_y=err,
                             name="accuracy (95% bootstrap interval)"))
        x_title = (result or {}).get("dimension", "")
    title = "Accuracy as the prompt changes: press Run"
    if rows:
        sp = result["spread"]
        title = (f"{result['skill']} ({result['n_items']} items), {result['dimension']}<br><sup>spread "
                 f"{sp['max_minus_min']:.2f} (max − min accuracy), std {sp['std']:.2f}; bars: 95% bootstrap intervals</sup>")
    fig.update_yaxes(range=[0, 1.05])
    return _layout(fig, title, x_title, "accuracy")
