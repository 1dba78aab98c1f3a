"""Pure functions for the evaluation tab: data -> HTML or plotly Figure (no model work here)."""
from __future__ import annotations

import html
import math

import plotly.graph_objects as go  # plotly.subplots (slow to import) is imported where it is used

SURPRISAL_MAX = 16.0  # bits at which the colour saturates (p = 1/65536)


def surprisal_colour(bits: float) -> tuple[str, str]:
    """(background, text colour): pale yellow for expected tokens -> deep red for surprising ones."""
    x = max(0.0, min(bits / SURPRISAL_MAX, 1.0)) ** 0.8
    hue, light = 55 - 55 * x, 94 - 52 * x  # yellow -> red, light -> dark
    return f"hsl({hue:.0f}, 90%, {light:.0f}%)", ("#fff" if light < 58 else "#111")


def _legend() -> str:
    cells = []
    for bits in range(0, int(SURPRISAL_MAX) + 1, 2):
        bg, fg = surprisal_colour(bits)
        p = 2.0 ** -bits
        cells.append(f"<span style='background:{bg};color:{fg};padding:2px 7px' "
                     f"title='p = {p:.5g}'>{bits}{'+' if bits == SURPRISAL_MAX else ''}</span>")
    return ("<div style='font-size:0.85em;margin-bottom:6px;color:inherit'>surprisal −log₂ p (bits): "
            + "".join(cells) + " &nbsp; <i>hover a token for its probability and rank</i></div>")


def _shown(piece: str) -> str:
    if piece == "":
        return "<span style='opacity:.5'>·</span>"  # a token inside a multi-byte character
    text = html.escape(piece)
    return text.replace("\n", "↵\n")


def surprisal_html(report) -> str:
    """The text with each token on a background coloured by its surprisal; a title attribute
    (browser tooltip) gives probability, rank, entropy and the model's own top guess."""
    starts = {first: n for n, (_, _, first) in enumerate(report.windows)}
    shift = 1 if report.begin_token else 0
    parts = [_legend(), "<div class='surprisal-text' style='white-space:pre-wrap;line-height:1.9;"
             "font-size:1.05em;font-family:ui-sans-serif,system-ui;color:#111;background:#fff;"
             "padding:10px;border-radius:8px;border:1px solid #ddd'>"]
    if report.unscored:
        parts.append(f"<span style='color:#888' title='not scored: nothing comes before it'>"
                     f"{html.escape(report.unscored)}</span>")
    for tok in report.tokens:
        n = starts.get(tok.index + shift)
        if n is not None and n > 0:
            lo, hi, _ = report.windows[n]
            parts.append(f"<span style='color:#2563eb;font-weight:bold' title='pass {n + 1} starts here: the "
                         f"model sees tokens {lo}–{hi - 1} and scores only the new ones'>❘</span>")
        bg, fg = surprisal_colour(tok.surprisal_bits)
        tip = (f"{tok.piece!r}  (token id {tok.token_id})\n"
               f"p = {tok.prob:.4g}   rank {tok.rank:,}\n"
               f"surprisal = {tok.surprisal_bits:.2f} bits\n"
               f"entropy of the prediction = {tok.entropy_bits:.2f} bits\n"
               f"model's top guess: {tok.top_token!r} (p = {tok.top_prob:.3f})\n"
               f"context: {tok.context} tokens")
        parts.append(f"<span style='background:{bg};color:{fg};border-radius:3px;padding:1px 0' "
                     f"title=\"{html.escape(tip, quote=True)}\">{_shown(tok.piece)}</span>")
    parts.append("</div>")
    parts.append(_extremes(report))
    return "".join(parts)


def _extremes(report, k: int = 5) -> str:
    """The most surprising and the best-predicted tokens, with p and rank, in one line each."""
    def item(t):
        return (f"<code>{html.escape(repr(t.piece))}</code> p={t.prob:.2g}, rank {t.rank:,} "
                f"({t.surprisal_bits:.1f} bits)")
    by = sorted(report.tokens, key=lambda t: t.logprob)
    worst = " · ".join(item(t) for t in by[:k])
    best = " · ".join(item(t) for t in by[::-1][:k])
    return (f"<div style='font-size:0.88em;margin-top:6px;line-height:1.6'><b>Most surprising:</b> {worst}<br>"
            f"<b>Best predicted:</b> {best}</div>")


def arithmetic_markdown(report) -> str:
    s = report.summary()
    n = s["tokens_scored"]
    ln2 = math.log(2)
    if s["passes"] == 1:
        windows = f"one pass: all {n} tokens fit in the window of {s['window']}"
    else:
        windows = (f"{s['passes']} passes: window {s['window']} tokens, stride {s['stride']} (each pass scores "
                   f"only its new tokens, with at least {s['window'] - s['stride']} tokens of context)")
    begin = (f"`{s['begin_token']}` is put before the text, so its first token is scored too"
             if s["begin_token"] else "the first token has nothing before it and is not scored")
    return "\n".join([
        "| step | formula | value |\n|---|---|---:|",
        f"| tokens scored | N | {n} |",
        f"| total surprise | Σ −ln p(tokenᵢ \\| before) | {s['total_nll_nats']:.2f} nats |",
        f"| mean NLL (cross-entropy) | {s['total_nll_nats']:.2f} / {n} | {s['mean_nll_nats']:.4f} nats/token |",
        f"| **perplexity** | e^{s['mean_nll_nats']:.4f} | **{s['perplexity']:.3f}** |",
        f"| in bits | {s['total_nll_nats']:.2f} / ln 2 ({ln2:.4f}) | {s['total_bits']:.1f} bits |",
        f"| bits per token | {s['total_bits']:.1f} / {n} | {s['bits_per_token']:.3f} |",
        f"| **bits per byte** | {s['total_bits']:.1f} / {s['utf8_bytes']} UTF-8 bytes | **{s['bits_per_byte']:.4f}** |",
        f"| bits per character | {s['total_bits']:.1f} / {s['characters']} characters | {s['bits_per_char']:.4f} |",
        "",
        f"Perplexity {s['perplexity']:.1f} means: on average the model was as unsure as if it picked uniformly "
        f"among {s['perplexity']:.1f} tokens. Perplexity depends on the tokenizer; bits per byte does not, so "
        f"it compares models with different vocabularies. Scoring: {windows}; {begin}.",
    ])


def entropy_figure(report) -> go.Figure:
    """Surprisal of the actual token and entropy of the prediction, along the text."""
    x = [t.index for t in report.tokens]
    labels = [repr(t.piece) for t in report.tokens]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[t.surprisal_bits for t in report.tokens], name="surprisal of the actual token",
                             mode="lines+markers", line=dict(color="#dc2626", width=1), marker=dict(size=4),
                             text=labels, hovertemplate="%{text}<br>surprisal %{y:.2f} bits<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=[t.entropy_bits for t in report.tokens], name="entropy of the prediction",
                             mode="lines", line=dict(color="#2563eb", width=2), text=labels,
                             hovertemplate="before %{text}<br>entropy %{y:.2f} bits<extra></extra>"))
    shift = 1 if report.begin_token else 0
    for n, (_, _, first) in enumerate(report.windows[1:], 2):
        fig.add_vline(x=first - shift - 0.5, line=dict(color="#64748b", dash="dot"),
                      annotation_text=f"pass {n}", annotation_position="top")
    fig.update_layout(title="How unsure the model is before each token",
                      xaxis_title="token position", yaxis_title="bits", height=340, template="plotly_white",
                      margin=dict(l=50, r=20, t=50, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


def compare_figure(rows: list[dict]) -> go.Figure:
    from plotly.subplots import make_subplots

    labels = [r["label"] for r in rows]
    colours = ["#16a34a", "#f59e0b", "#dc2626", "#2563eb", "#7c3aed", "#0891b2"][:len(rows)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("perplexity (log scale)", "bits per byte"))
    fig.add_trace(go.Bar(x=labels, y=[r["perplexity"] for r in rows], marker_color=colours,
                         text=[f"{r['perplexity']:.1f}" for r in rows], textposition="outside"), 1, 1)
    fig.add_trace(go.Bar(x=labels, y=[r["bits_per_byte"] for r in rows], marker_color=colours,
                         text=[f"{r['bits_per_byte']:.2f}" for r in rows], textposition="outside"), 1, 2)
    top_ppl = max(max(r["perplexity"] for r in rows), 10.0)
    fig.update_yaxes(type="log", dtick=1, range=[0, math.log10(top_ppl) * 1.15], row=1, col=1)
    top = max(r["bits_per_byte"] for r in rows)
    fig.update_yaxes(range=[0, top * 1.2], row=1, col=2)
    fig.update_layout(showlegend=False, height=360, template="plotly_white", margin=dict(l=50, r=20, t=50, b=40))
    return fig


def toy_figure(toy: dict) -> go.Figure:
    from plotly.subplots import make_subplots

    colours = ["#dc2626" if i == toy["target_index"] else "#94a3b8" for i in range(len(toy["labels"]))]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("logits z (what the model outputs)",
                                                        "softmax probabilities p"))
    fig.add_trace(go.Bar(x=toy["labels"], y=toy["logits"], marker_color=colours,
                         text=[f"{z:.2f}" for z in toy["logits"]], textposition="outside"), 1, 1)
    fig.add_trace(go.Bar(x=toy["labels"], y=toy["probs"], marker_color=colours,
                         text=[f"{p:.3f}" for p in toy["probs"]], textposition="outside"), 1, 2)
    lo, hi = min(0.0, min(toy["logits"])), max(0.0, max(toy["logits"]))
    pad = 0.2 * (hi - lo or 1.0)
    fig.update_yaxes(range=[lo - pad, hi + pad], row=1, col=1)
    fig.update_yaxes(range=[0, 1.15], row=1, col=2)
    fig.update_layout(showlegend=False, height=320, template="plotly_white", margin=dict(l=40, r=20, t=50, b=40),
                      title=f"target = {toy['target']!r} (red): loss = −ln {toy['prob_target']:.4f} = "
                            f"{toy['loss_nats']:.4f} nats")
    return fig


def _big(log_value: float) -> str:
    """e^log_value, written out when it fits a float comfortably."""
    return f"{math.exp(log_value):.6g}" if log_value < 300 else f"e^{log_value:.2f}"


def toy_markdown(toy: dict) -> str:
    t, T = toy["target_index"], toy["temperature"]
    exps = " + ".join(f"e^{z:.2f}" for z in toy["scaled"])
    temp = f" (logits divided by temperature T = {T:g})" if T != 1 else ""
    lines = [
        f"**Softmax**: pᵢ = e^(zᵢ/T) / Σⱼ e^(zⱼ/T){temp}",
        "",
        f"Σⱼ e^(zⱼ/T) = {exps} = **{_big(toy['logsumexp'])}**",
        "",
        "**Cross-entropy loss** for the target: L = −ln p_target = −z_target/T + ln Σⱼ e^(zⱼ/T)",
        "",
        f"L = −{toy['scaled'][t]:.4f} + {toy['logsumexp']:.4f} = **{toy['loss_nats']:.4f} nats** "
        f"= {toy['loss_bits']:.4f} bits  (p_target = {toy['prob_target']:.4f})",
        "",
        f"For comparison: a uniform guess over {len(toy['labels'])} classes costs ln {len(toy['labels'])} = "
        f"{toy['uniform_loss_nats']:.4f} nats; a perfect prediction costs 0. Entropy of p: "
        f"{toy['entropy_bits']:.3f} bits. Averaging this loss over every token of a text and taking e^ of "
        f"it gives the perplexity.",
    ]
    return "\n".join(lines)


def quantization_figure(rows: list[dict]) -> go.Figure:
    from plotly.subplots import make_subplots

    names = [r["variant"] for r in rows]
    colours = {"fp32": "#2563eb", "bf16": "#7c3aed", "int8-weights": "#f59e0b", "int8-dynamic": "#dc2626"}
    fig = make_subplots(rows=1, cols=3, subplot_titles=("weights in memory (MiB)", "generation speed (tokens/s)",
                                                        "perplexity on the text"))
    for col, (key, fmt) in enumerate((("size_mb", "{:.0f}"), ("tokens_per_s", "{:.1f}"),
                                      ("perplexity", "{:.2f}")), 1):
        vals = [r[key] for r in rows]
        fig.add_trace(go.Bar(x=names, y=vals, marker_color=[colours.get(n, "#888") for n in names],
                             text=[fmt.format(v) for v in vals], textposition="outside"), 1, col)
        fig.update_yaxes(range=[0, max(vals) * 1.25], row=1, col=col)
    fig.update_layout(showlegend=False, height=340, template="plotly_white", margin=dict(l=40, r=20, t=50, b=40))
    return fig


# ---- task suite, stress test, consistency, GLTR ranks (wave 2) -----------------------------------
SUITE_COLOURS = ("#2563eb", "#f59e0b", "#16a34a", "#dc2626", "#7c3aed", "#0891b2")


def suite_figure(summaries: list[dict]) -> go.Figure:
    """acc and acc_norm per model with their bootstrap 95% intervals as error bars."""
    fig = go.Figure()
    names = [s["model"] for s in summaries]
    for metric, colour in (("acc", "#2563eb"), ("acc_norm", "#f59e0b")):
        vals = [s[metric]["value"] for s in summaries]
        fig.add_trace(go.Bar(
            name=metric, x=names, y=vals, marker_color=colour, text=[f"{v:.2f}" for v in vals],
            textposition="outside",
            error_y=dict(type="data", symmetric=False, color="#333",
                         array=[s[metric]["ci_high"] - s[metric]["value"] for s in summaries],
                         arrayminus=[s[metric]["value"] - s[metric]["ci_low"] for s in summaries])))
    n = summaries[0]["n_items"] if summaries else 0
    fig.update_layout(barmode="group", height=360, template="plotly_white", yaxis=dict(range=[0, 1.12], title="accuracy"),
                      title=f"accuracy on {n} items, bars = bootstrap 95% interval",
                      margin=dict(l=50, r=20, t=50, b=60), legend=dict(orientation="h", y=1.02, x=1, xanchor="right"))
    return fig


def suite_skill_figure(summaries: list[dict]) -> go.Figure:
    """acc per skill, one bar per model."""
    fig = go.Figure()
    for i, s in enumerate(summaries):
        skills = list(s["by_skill"])
        fig.add_trace(go.Bar(name=s["model"], x=skills, y=[s["by_skill"][k]["acc"] for k in skills],
                             marker_color=SUITE_COLOURS[i % len(SUITE_COLOURS)]))
    fig.update_layout(barmode="group", height=320, template="plotly_white", yaxis=dict(range=[0, 1.05], title="acc"),
                      title="acc per skill", margin=dict(l=50, r=20, t=50, b=60))
    return fig


def robustness_figure(result: dict) -> go.Figure:
    """Per kind of perturbation: variants that passed and that failed."""
    kinds = [c["kind"] for c in result["clusters"]]
    fig = go.Figure([
        go.Bar(name="passed", x=kinds, y=[c["variants"] - c["failures"] for c in result["clusters"]],
               marker_color="#16a34a"),
        go.Bar(name="failed", x=kinds, y=[c["failures"] for c in result["clusters"]], marker_color="#dc2626"),
    ])
    score = result["robustness"]
    fig.update_layout(barmode="stack", height=320, template="plotly_white", yaxis=dict(title="variants", dtick=1),
                      title=f"robustness {score:.0%}: variants that behaved as they should, by kind"
                      if score == score else "no variant could be made", margin=dict(l=50, r=20, t=50, b=60))
    return fig


def consistency_figure(result: dict, top: int = 5) -> go.Figure:
    """One stacked bar per temperature: the share of each answer (the top ones, the rest as 'other')."""
    rows = result["temperatures"]
    names: list[str] = []
    for r in rows:
        for g in r["groups"][:top]:
            if g["answer"] not in names:
                names.append(g["answer"])
    xs = [f"T = {r['temperature']:g}" for r in rows]
    fig = go.Figure()
    for i, name in enumerate(names):
        ys = [next((g["share"] for g in r["groups"][:top] if g["answer"] == name), 0.0) for r in rows]
        fig.add_trace(go.Bar(name=name[:40], x=xs, y=ys, marker_color=SUITE_COLOURS[i % len(SUITE_COLOURS)]
                             if i < len(SUITE_COLOURS) else None))
    other = [1 - sum(g["share"] for g in r["groups"][:top]) for r in rows]
    if any(o > 1e-9 for o in other):
        fig.add_trace(go.Bar(name="other answers", x=xs, y=other, marker_color="#bbb"))
    fig.update_layout(barmode="stack", height=360, template="plotly_white", yaxis=dict(range=[0, 1], title="share of samples"),
                      title="answers per temperature", margin=dict(l=50, r=20, t=50, b=40))
    return fig


RANK_COLOURS = {"top-10": "#9be59b", "top-100": "#ffe17a", "top-1000": "#ff9c8f", "beyond": "#d7b3ff"}


def ranks_html(report: dict, title: str = "") -> str:
    """GLTR view: every token on the colour of its rank bucket; a tooltip gives rank, p and the top guess."""
    legend = " ".join(f"<span style='background:{c};color:#111;padding:2px 7px;border-radius:3px'>{k}</span>"
                      for k, c in RANK_COLOURS.items())
    counts = " · ".join(f"{k} {v}" for k, v in report["counts"].items())
    parts = [f"<div class='gltr-view'><div style='font-weight:bold;margin-bottom:4px'>{html.escape(title)}</div>"
             f"<div style='font-size:0.85em;margin-bottom:6px'>rank of each token under {html.escape(report['model'])}: "
             f"{legend}</div><div class='gltr-text' style='white-space:pre-wrap;line-height:1.9;color:#111;"
             "background:#fff;padding:10px;border-radius:8px;border:1px solid #ddd'>"]
    if report["unscored"]:
        parts.append(f"<span style='color:#888'>{html.escape(report['unscored'])}</span>")
    for t in report["tokens"]:
        tip = f"rank {t['rank']:,} ({t['bucket']})\np = {t['p']:.4g}\nmodel's top guess: {t['top_token']!r} (p = {t['top_p']:.3f})"
        parts.append(f"<span data-bucket='{t['bucket']}' style='background:{RANK_COLOURS[t['bucket']]};"
                     f"border-radius:3px' title=\"{html.escape(tip, quote=True)}\">{_shown(t['piece'])}</span>")
    parts.append(f"</div><div style='font-size:0.85em;margin-top:4px'>{report['n_tokens']} tokens scored: {counts}</div></div>")
    return "".join(parts)


def ranks_figure(reports: list[tuple[str, dict]]) -> go.Figure:
    """Share of tokens per rank bucket, one group of bars per text."""
    fig = go.Figure()
    buckets = list(RANK_COLOURS)
    for i, (label, rep) in enumerate(reports):
        fig.add_trace(go.Bar(name=f"{label} ({rep['n_tokens']} tokens)", x=buckets,
                             y=[rep["shares"][b] for b in buckets], text=[rep["counts"][b] for b in buckets],
                             textposition="outside", marker_color=("#2563eb", "#f59e0b")[i % 2]))
    fig.update_layout(barmode="group", height=340, template="plotly_white",
                      yaxis=dict(range=[0, 1.1], title="share of tokens"), title="rank histogram (numbers = token counts)",
                      margin=dict(l=50, r=20, t=50, b=40))
    return fig
