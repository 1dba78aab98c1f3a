"""What the training tabs draw: the loss curve of a run (pure: data -> plotly figure)."""
from __future__ import annotations


def loss_figure(losses: list[float], max_steps: int | None = None, title: str = "Training loss"):
    import plotly.graph_objects as go

    steps = list(range(1, len(losses) + 1))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=steps, y=losses, mode="lines+markers", name="loss per step",
                             line=dict(color="#7c9cc9", width=1.5), marker=dict(size=5)))
    if len(losses) >= 3:
        smooth, ema = [], losses[0]
        for x in losses:
            ema = 0.8 * ema + 0.2 * x
            smooth.append(ema)
        fig.add_trace(go.Scatter(x=steps, y=smooth, mode="lines", name="moving average",
                                 line=dict(color="#d9534f", width=3)))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="cross-entropy loss (nats/token)",
                      template="plotly_white", height=360, margin=dict(l=60, r=20, t=50, b=50),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    if max_steps:
        fig.update_xaxes(range=[0.5, max(max_steps, 1) + 0.5])
    return fig


def lora_figure(losses: list[float], val: list | None = None, lrs: list[float] | None = None,
                planned: list[float] | None = None, max_steps: int | None = None):
    """A LoRA run side by side: the training loss per step (and its moving average) with the
    validation loss on the held-out lines (`val`: (step, loss), step 0 = before training), and the
    learning rate each step used (`lrs`) over the schedule planned for `max_steps` (`planned`)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.1,
                        subplot_titles=("loss (nats/token)", "learning rate"))
    loss = loss_figure(losses)
    for trace in loss.data:
        fig.add_trace(trace, row=1, col=1)
    if val:
        fig.add_trace(go.Scatter(x=[s for s, _ in val], y=[v for _, v in val], mode="lines+markers",
                                 name="validation loss (held-out lines)", line=dict(color="#2e7d32", width=2.5),
                                 marker=dict(size=8, symbol="diamond")), row=1, col=1)
    if planned:
        fig.add_trace(go.Scatter(x=list(range(1, len(planned) + 1)), y=planned, mode="lines", name="planned rate",
                                 line=dict(color="#9e9e9e", dash="dash")), row=1, col=2)
    if lrs:
        fig.add_trace(go.Scatter(x=list(range(1, len(lrs) + 1)), y=lrs, mode="lines+markers", name="rate used",
                                 line=dict(color="#6a1b9a", width=2), marker=dict(size=4)), row=1, col=2)
    last = max(max_steps or 0, len(losses), len(lrs or []), 1)
    for col in (1, 2):
        fig.update_xaxes(title_text="step", range=[-0.5 if col == 1 else 0.5, last + 0.5], row=1, col=col)
    fig.update_yaxes(tickformat=".1e", rangemode="tozero", row=1, col=2)
    fig.update_layout(template="plotly_white", height=380, margin=dict(l=60, r=20, t=40, b=50),
                      legend=dict(orientation="h", y=-0.22, x=0.5, xanchor="center"))
    return fig


def preference_figure(history: dict, max_steps: int | None = None, title: str = "DPO"):
    """The live curves of a preference run: the loss, and (DPO) the implicit rewards β·log π/π_ref
    of chosen and rejected with their margin, or (reward model) the margin; and the batch accuracy."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    dpo = "chosen" in history
    middle = "rewards β·log(π/π_ref) per batch" if dpo else "reward margin r(chosen) − r(rejected)"
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", middle, "pairwise accuracy per batch"))
    steps = list(range(1, len(history.get("loss", [])) + 1))
    line = dict(mode="lines+markers", marker=dict(size=4))
    fig.add_trace(go.Scatter(x=steps, y=history.get("loss", []), name="loss", line=dict(color="#d9534f"), **line),
                  row=1, col=1)
    if dpo:
        fig.add_trace(go.Scatter(x=steps, y=history.get("chosen", []), name="chosen reward",
                                 line=dict(color="#2e7d32"), **line), row=1, col=2)
        fig.add_trace(go.Scatter(x=steps, y=history.get("rejected", []), name="rejected reward",
                                 line=dict(color="#c62828"), **line), row=1, col=2)
    fig.add_trace(go.Scatter(x=steps, y=history.get("margin", []), name="margin (chosen − rejected)",
                             line=dict(color="#1565c0", dash="dot" if dpo else "solid"), **line), row=1, col=2)
    fig.add_trace(go.Scatter(x=steps, y=history.get("accuracy", []), name="accuracy", line=dict(color="#6a1b9a"),
                             **line), row=1, col=3)
    fig.add_hline(y=0.5, line=dict(color="#999", dash="dash"), row=1, col=3)
    fig.update_yaxes(range=[-0.05, 1.05], row=1, col=3)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="step", row=1, col=col)
        if max_steps:
            fig.update_xaxes(range=[0.5, max(max_steps, 1) + 0.5], row=1, col=col)
    fig.update_layout(title=title, template="plotly_white", height=340, margin=dict(l=50, r=20, t=70, b=50),
                      legend=dict(orientation="h", y=-0.25, x=0.5, xanchor="center"))
    return fig


def before_after_figure(before: dict | None, after: dict | None, title: str = "Held-out pairs"):
    """Per held-out pair, log π(chosen)/token − log π(rejected)/token with the adapter off and on:
    a bar above zero is a pair where the chosen answer is the likelier one."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for stats, name, color in ((before, "before (adapter off)", "#9e9e9e"), (after, "after (adapter on)", "#1565c0")):
        if not stats:
            continue
        gaps = [r["chosen_per_token"] - r["rejected_per_token"] for r in stats["rows"]]
        fig.add_trace(go.Bar(x=list(range(1, len(gaps) + 1)), y=gaps, marker_color=color,
                             name=f"{name}: chosen likelier in {stats['accuracy']:.0%}"))
    fig.add_hline(y=0, line=dict(color="#333"))
    fig.update_layout(title=title, template="plotly_white", height=320, barmode="group",
                      xaxis_title="held-out pair", yaxis_title="Δ log-likelihood per token (chosen − rejected)",
                      margin=dict(l=60, r=20, t=50, b=50),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return fig
