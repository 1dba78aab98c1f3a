"""Pure functions: the Inference lesson's measurements -> plotly figures and markdown. No model work."""
from __future__ import annotations

import plotly.graph_objects as go

from ..core.markdown import md_code, md_text
from .batching import BatchRow
from .kv import StepTimes, cache_bytes_table
from .sparsity import SparsityRow
from .speculative import Speculation, expected_tokens
from .utilization import Utilization

FONT = dict(family="Inter, Helvetica, Arial, sans-serif", size=14)
ORANGE, BLUE, GREEN, GREY = "#f28e2b", "#4e79a7", "#59a14f", "#9aa0a6"


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=17)), height=height, font=FONT,
                      margin=dict(l=10, r=10, t=70, b=10), plot_bgcolor="white", paper_bgcolor="white",
                      legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(gridcolor="#eee")
    fig.update_yaxes(gridcolor="#eee")
    return fig


def si(value: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def mib(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB" if n >= 2**20 else f"{n / 2**10:,.1f} KiB"


# --- 1. prefill vs decode, the KV cache ---------------------------------------------------------

def empty(title: str, x: str, y: str) -> go.Figure:
    fig = go.Figure()
    fig.update_xaxes(title=x)
    fig.update_yaxes(title=y)
    return _layout(fig, title)


def kv_figure(st: StepTimes | None = None) -> go.Figure:
    fig = empty("Time per generated token, with and without the KV cache", "tokens in the sequence",
                "milliseconds per token")
    if st is None:
        return fig
    fig.add_scatter(x=st.contexts, y=[s * 1e3 for s in st.uncached_s], mode="lines+markers", name="no cache: "
                    "the whole sequence again each step", line=dict(color=ORANGE))
    fig.add_scatter(x=st.contexts[1:], y=[s * 1e3 for s in st.cached_s], mode="lines+markers",
                    name="KV cache: one new token each step (decode)", line=dict(color=BLUE))
    fig.add_scatter(x=[st.prompt_tokens], y=[st.prefill_s * 1e3], mode="markers", marker=dict(size=13, color=GREEN,
                    symbol="diamond"), name=f"prefill: all {st.prompt_tokens} prompt tokens in one forward")
    fig.update_yaxes(rangemode="tozero")
    return fig


def kv_markdown(st: StepTimes) -> str:
    kvs, n = st.kv, len(st.cached_s)
    cached = sum(st.cached_s) / max(n, 1)
    uncached = sum(st.uncached_s[1:]) / max(len(st.uncached_s) - 1, 1)
    check = "equal" if kvs.formula == kvs.bytes else "**differ**"
    same = ("the same tokens, id for id" if st.same_tokens else
            "**different tokens** (float rounding in a long sequence can flip a near tie)")
    return (f"Measured on **{md_text(st.device)}**. Prompt: {st.prompt_tokens} tokens; {len(st.uncached_s)} "
            f"new tokens, greedy: {md_code(st.text)}\n\n"
            f"- prefill (the whole prompt in one forward): **{st.prefill_s * 1e3:.1f} ms** = "
            f"{st.prefill_s / st.prompt_tokens * 1e3:.2f} ms per prompt token\n"
            f"- decode with the cache: **{cached * 1e3:.1f} ms per token** on average (one token in, the cached keys "
            f"and values read)\n- without the cache: **{uncached * 1e3:.1f} ms per token** on average "
            f"({uncached / cached:.1f}× a cached step): it recomputes every earlier token, so a step costs more as "
            "the sequence grows\n"
            f"- both runs gave {same}\n\nTimings move with whatever else this machine is doing: run it again to "
            "see the spread.\n\n"
            f"**The cache's size.** layers × 2 (K and V) × kv-heads × head-dim × tokens × bytes = {kvs.layers} × 2 × "
            f"{kvs.kv_heads} × {kvs.head_dim} × {kvs.tokens} × {kvs.dtype_bytes} = **{kvs.formula:,} bytes** "
            f"({mib(kvs.formula)}); the cache object's tensors hold **{kvs.bytes:,} bytes**: {check}. "
            f"{kvs.per_token:,} bytes per token.\n\n"
            f"**Grouped-query attention.** This model has {st.heads} query heads sharing {kvs.kv_heads} K/V heads; "
            f"full multi-head attention would keep {st.heads} K/V heads: {mib(st.mha_bytes)} instead of "
            f"{mib(kvs.bytes)} here, {st.heads / kvs.kv_heads:.0f}× the memory.")


def kv_table(st: StepTimes) -> list[dict]:
    return [dict(tokens=r["tokens"], **{"grouped-query (this model), MiB": round(r["gqa_mib"], 1),
                                        "multi-head, MiB": round(r["mha_mib"], 1)}) for r in cache_bytes_table(st)]


# --- 2. batching --------------------------------------------------------------------------------

def batching_figure(rows: list[BatchRow] | None = None) -> go.Figure:
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.update_xaxes(title="batch size (requests at once)", type="log", dtick=0.30103)
    fig.update_yaxes(title="tokens/s, all requests together", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title="seconds one request waits", rangemode="tozero", secondary_y=True, showgrid=False)
    _layout(fig, "Batching: throughput against latency per request")
    for where, dash in (("in-process", None), ("server", "dot")):
        part = [r for r in rows or [] if r.where == where]
        if not part:
            continue
        x = [r.batch for r in part]
        fig.add_scatter(x=x, y=[r.tokens_per_s for r in part], mode="lines+markers", name=f"tokens/s ({where})",
                        line=dict(color=BLUE, dash=dash), secondary_y=False)
        fig.add_scatter(x=x, y=[r.latency_s for r in part], mode="lines+markers", name=f"latency ({where})",
                        line=dict(color=ORANGE, dash=dash), secondary_y=True)
    return fig


def batching_table(rows: list[BatchRow]) -> list[dict]:
    return [{"where": r.where, "batch": r.batch, "tokens each": r.new_tokens, "seconds": round(r.seconds, 2),
             "tokens/s (all)": round(r.tokens_per_s, 1), "latency per request, s": round(r.latency_s, 2),
             "padding share": f"{r.padding:.0%}"} for r in rows]


def batching_markdown(rows: list[BatchRow], where: str, note: str) -> str:
    own = [r for r in rows if r.where == "in-process"]
    if not own:
        return note
    one, best = own[0], max(own, key=lambda r: r.tokens_per_s)
    text = (f"Measured on **{md_text(where)}**, greedy, every request generating {one.new_tokens} tokens. Batch 1: "
            f"{one.tokens_per_s:.1f} tokens/s, {one.latency_s:.2f} s per request. Batch {best.batch}: "
            f"**{best.tokens_per_s:.1f} tokens/s** in all ({best.tokens_per_s / one.tokens_per_s:.1f}× batch 1), and "
            f"each request waits **{best.latency_s:.2f} s** ({best.latency_s / one.latency_s:.1f}×). One forward "
            "reads the weights once for the whole batch, so throughput grows until the arithmetic, not the "
            "memory, is the limit; each request waits for the batch. A server operator picks the point on "
            "this curve. In-process the prompts are padded to one length and all requests finish together; "
            "a serving engine such as vLLM batches continuously (requests join and leave at every step).")
    return text + (f"\n\n{note}" if note else "")


# --- 3. utilization -----------------------------------------------------------------------------

def utilization_figure(u: Utilization | None = None) -> go.Figure:
    fig = empty("Achieved FLOP/s against the measured peak", "", "FLOP/s (log scale)")
    fig.update_yaxes(type="log")
    if u is None:
        return fig
    names = ["prefill (achieved)", "decode (achieved)", f"peak: {u.peak.size}×{u.peak.size} matmul"]
    values = [u.prefill.achieved, u.decode.achieved, u.peak.flops]
    fig.add_bar(x=names, y=values, marker_color=[GREEN, BLUE, GREY], text=[si(v, "FLOP/s") for v in values],
                textposition="outside", showlegend=False)
    return fig


def utilization_markdown(u: Utilization) -> str:
    bound = u.decode_bound_tokens_per_s
    rows = "\n".join(f"| {p.name} | {p.tokens} | {p.seconds * 1e3:.1f} ms | {p.tokens_per_s:,.1f} | "
                     f"{si(p.flops_per_token, 'FLOP')} | {si(p.achieved, 'FLOP/s')} | **{u.share(p):.1%}** |"
                     for p in (u.prefill, u.decode))
    return (f"Measured on **{md_text(u.device)}**. FLOPs per token ≈ 2 × N_matmul + 4 × layers × context × d_attn "
            f"(the anatomy's formula; N_matmul = {u.n_matmul:,}).\n\n"
            "| phase | tokens | time | tokens/s | FLOPs per token | achieved | share of peak |\n|---|---|---|---|---|---|---|\n"
            f"{rows}\n\n"
            f"- peak: the best of 3 timed {u.peak.size}×{u.peak.size} matmuls = **{si(u.peak.flops, 'FLOP/s')}**\n"
            f"- memory: a {u.bandwidth.megabytes} MB copy moves **{si(u.bandwidth.bytes_per_s, 'B/s')}** (read + write)\n"
            f"- decode reads every weight once per token: {mib(u.weight_bytes)} of matmul weights ÷ "
            f"{si(u.bandwidth.bytes_per_s / 2, 'B/s')} (the read half) = at most **{bound:,.0f} tokens/s**; measured "
            f"{u.decode.tokens_per_s:,.1f} tokens/s ({u.decode.tokens_per_s / bound:.0%} of that bound)\n\n"
            f"Prefill uses {u.share(u.prefill):.1%} of the peak and decode {u.share(u.decode):.1%}: prefill does "
            f"{u.prefill.tokens} tokens' arithmetic per weight read (compute-bound); decode does one token's per "
            "weight read, so memory traffic, not arithmetic, sets its speed (memory-bound). Batching gives "
            "decode more tokens per weight read.")


# --- 4. quantization ----------------------------------------------------------------------------

def quant_table(rows: list[dict]) -> list[dict]:
    return [{"format": r["variant"], "weights, MiB": round(r["size_mb"], 1), "× fp32 size": round(r["size_vs_fp32"], 2),
             "tokens/s": round(r["tokens_per_s"], 1), "perplexity": round(r["perplexity"], 3),
             "perplexity change": f"{r['perplexity_change_pct']:+.2f}%", "what it stores": r["description"]}
            for r in rows]


def quant_markdown(rows: list[dict], device: str, note: str) -> str:
    base = next((r for r in rows if r["variant"] == "fp32"), rows[0])
    lines = [f"- **{r['variant']}**: {r['size_mb']:.0f} MiB of weights, {r['tokens_per_s']:.1f} tokens/s "
             f"({r['tokens_per_s'] / base['tokens_per_s']:.2f}× fp32), perplexity {r['perplexity']:.3f}" for r in rows]
    return (f"Measured on **{md_text(device)}** (this part always runs on the CPU: the int8 kernels are "
            f"PyTorch's CPU ones), {rows[0]['tokens_scored']} tokens scored.\n\n" + "\n".join(lines)
            + "\n\nFewer bytes per weight means less to read per decoded token; whether it is also faster depends "
            "on the kernels this CPU has. Perplexity shows what the rounding cost." + (f"\n\n{note}" if note else ""))


# --- 5. speculative decoding --------------------------------------------------------------------

def speculative_figure(sp: Speculation | None = None, k: int = 4) -> go.Figure:
    fig = empty("Expected tokens per target forward: (1 − a^(k+1)) / (1 − a)",
                "a: the chance the target accepts one draft token", "tokens per target forward")
    k = sp.k if sp else k
    alphas = [i / 100 for i in range(101)]
    for kk, color in sorted({(1, GREY), (2, GREY), (k, BLUE), (8, GREY)}):
        fig.add_scatter(x=alphas, y=[expected_tokens(a, kk) for a in alphas], mode="lines", name=f"k = {kk}",
                        line=dict(color=color, width=3 if kk == k else 1.5))
    if sp is not None and sp.rounds:
        fig.add_scatter(x=[sp.per_token_acceptance], y=[sp.tokens_per_forward], mode="markers",
                        marker=dict(size=14, color=ORANGE, symbol="diamond"), name="measured here")
    return fig


def speculative_markdown(sp: Speculation) -> str:
    same = ("**identical** to plain greedy, token for token" if sp.identical else
            "**not identical** to plain greedy (float rounding: the target scores k+1 tokens in one forward, "
            "which can flip a near tie)")
    notes = "".join(f"\n\n{n}" for n in sp.notes)
    n = len(sp.assisted_ids)
    return (f"Measured on **{md_text(sp.device)}**. Target **{md_text(sp.target)}**, draft **{md_text(sp.draft)}**, "
            f"k = {sp.k} draft tokens a round.{notes}\n\n"
            f"- acceptance: the target kept **{sp.accepted} of {sp.proposed}** proposed tokens "
            f"(**{sp.acceptance:.0%}**); per token, a ≈ {sp.per_token_acceptance:.2f}; the target checked "
            f"{sp.mean_proposed:.2f} proposed tokens a round on average\n"
            f"- **{sp.tokens_per_forward:.2f} tokens per target forward** ({n} tokens in {len(sp.rounds)} target "
            f"forwards; plain greedy needs one forward per token); the formula gives "
            f"{expected_tokens(sp.per_token_acceptance, sp.k):.2f} at this a\n"
            f"- time: plain greedy {sp.plain_s:.2f} s, assisted {sp.assisted_s:.2f} s: **{sp.speedup:.2f}×** "
            f"{'faster' if sp.speedup >= 1 else '(slower)'}\n"
            f"- one draft forward {sp.draft_forward_s * 1e3:.1f} ms, one target forward "
            f"{sp.target_forward_s * 1e3:.1f} ms (ratio {sp.draft_forward_s / max(sp.target_forward_s, 1e-12):.2f}): "
            "a draft pays off when it is much cheaper than the target and usually right\n"
            f"- the output is {same}: {md_code(sp.text)}")


# --- 6. sparsity --------------------------------------------------------------------------------

def sparsity_figure(rows: list[SparsityRow] | None = None) -> go.Figure:
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.update_xaxes(title="share of zeros in the linear layers, %")
    fig.update_yaxes(title="perplexity (log scale)", type="log", secondary_y=False)
    fig.update_yaxes(title="one forward, ms", rangemode="tozero", secondary_y=True, showgrid=False)
    _layout(fig, "Magnitude pruning: quality and speed against sparsity")
    if rows:
        x = [r.zeros for r in rows]
        fig.add_scatter(x=x, y=[r.perplexity for r in rows], mode="lines+markers", name="perplexity",
                        line=dict(color=ORANGE), secondary_y=False)
        fig.add_scatter(x=x, y=[r.forward_s * 1e3 for r in rows], mode="lines+markers", name="forward time",
                        line=dict(color=BLUE), secondary_y=True)
    return fig


def sparsity_table(rows: list[SparsityRow]) -> list[dict]:
    return [{"asked, %": r.target, "zeros measured, %": round(r.zeros, 2), "perplexity": round(r.perplexity, 3),
             "forward, ms": round(r.forward_s * 1e3, 1)} for r in rows]


def sparsity_markdown(rows: list[SparsityRow], device: str) -> str:
    dense, last = rows[0], rows[-1]
    return (f"Measured on **{md_text(device)}**. At {last.zeros:.0f}% zeros perplexity went from "
            f"{dense.perplexity:.2f} to **{last.perplexity:.2f}**, and one forward took {last.forward_s * 1e3:.1f} ms "
            f"against {dense.forward_s * 1e3:.1f} ms dense: unstructured zeros are still multiplied, because a "
            "dense matmul does not skip them. Speed needs structure the kernel can use (2:4 sparsity on recent "
            "GPUs, whole rows or heads removed) or sparse kernels; the weights were restored after each level.")
