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
