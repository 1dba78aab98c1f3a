"""What the Diffusion tab draws from plain data: labelled image grids (sweeps), the pipeline
diagram with the tensor shapes of the last run, and the "Teach it a new symbol" views (the word's
split, the training status, the loss). Pure functions: data in, image, HTML or Markdown out."""
from __future__ import annotations

import html
import math

from PIL import Image, ImageDraw, ImageFont

from ..core.markdown import md_code, md_text


def _font(size: int):
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def grid_image(cells: list[list[Image.Image]], row_labels: list[str], col_labels: list[str],
               title: str = "", cell: int = 160) -> Image.Image:
    """Images in a grid with labelled axes, white background, readable on a slide."""
    font, small = _font(20), _font(17)
    left, top, pad = 150, 80 if title else 44, 8
    rows, cols = len(cells), len(cells[0])
    width = left + cols * (cell + pad) + pad
    height = top + rows * (cell + pad) + pad
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        while len(title) > 10 and draw.textlength(title, font=font) > width - left - pad:
            title = title[:-5] + "..."
        draw.text((left, 12), title, fill="black", font=font)
    for c, label in enumerate(col_labels):
        x = left + c * (cell + pad) + cell // 2
        draw.text((x, top - 12), label, fill="#333", font=small, anchor="ms")
    for r, label in enumerate(row_labels):
        y = top + r * (cell + pad) + cell // 2
        draw.text((left - 12, y), label, fill="#333", font=small, anchor="rm")
        for c, img in enumerate(cells[r]):
            tile = img.convert("RGB")
            tile = tile.resize((cell, cell), Image.NEAREST if tile.width <= cell else Image.LANCZOS)
            grid.paste(tile, (left + c * (cell + pad), top + r * (cell + pad)))
    return grid


# --- the pipeline explained ------------------------------------------------------------------
def pipeline_diagram_html(shapes: list[tuple[str, str, str]], kind: str = "pixel") -> str:
    """Boxes and arrows: prompt -> tokenizer -> text encoder -> U-Net x steps -> (VAE) -> image."""
    stages = {name: (shape, what) for name, shape, what in shapes}
    boxes = [
        ("Prompt + negative prompt", "prompt", "#eef2ff"),
        ("Tokenizer (CLIP BPE)", "token ids", "#e0f2fe"),
        ("Text encoder (CLIP)", "text embeddings", "#dcfce7"),
        ("U-Net + scheduler, repeated", "latents", "#fef9c3"),
        ("VAE decoder" if kind == "latent" else "no VAE: pixels", "image", "#fee2e2"),
    ]
    parts = []
    for i, (title, stage, colour) in enumerate(boxes):
        shape, what = stages.get(stage, ("", ""))
        parts.append(
            f"<div style='background:{colour};border:1px solid #94a3b8;border-radius:10px;padding:10px 12px;"
            f"min-width:150px;flex:1;color:#111'><div style='font-weight:600'>{title}</div>"
            f"<div style='font-size:0.8em;color:#475569;margin-top:4px'>{stage}</div>"
            f"<div style='font-family:monospace;font-size:1.1em;margin:2px 0 4px'>{_esc(shape or '(generate to see)')}</div>"
            f"<div style='font-size:0.85em;color:#374151'>{_esc(what)}</div></div>")
        if i < len(boxes) - 1:
            parts.append("<div style='align-self:center;font-size:1.6em;color:#64748b'>&rarr;</div>")
    return ("<div style='display:flex;gap:6px;align-items:stretch;flex-wrap:wrap'>" + "".join(parts) + "</div>")


def _esc(text: str) -> str:
    return html.escape(str(text), quote=False)


def teach_loss_figure(losses: list[float], max_steps: int | None = None):
    """The loss of a "Teach it a new symbol" run: the noise-prediction MSE (instance + weighted
    class term when prior preservation is on), per step with its moving average."""
    from ..training import plots as training_plots

    fig = training_plots.loss_figure(losses, max_steps, title="Teaching loss")
    fig.update_layout(yaxis_title="MSE of the predicted noise", height=300)
    return fig


def split_markdown(info: dict) -> str:
    """How the text encoder cuts the taught word (teach.word_split's dict), and what that means."""
    cells = " · ".join(f"{md_code(p.replace('</w>', '⟨/w⟩'))} ({i})" for p, i in zip(info["pieces"], info["ids"]))
    text = f"**{md_text(info['word'])}** → {len(info['ids'])} token(s): {cells}"
    if info["known"]:
        text += ("  \n⚠ **This is an existing word of the model's vocabulary**: DreamBooth would overwrite "
                 "what it means; textual inversion refuses it. Pick a made-up word.")
    else:
        text += ("  \nDreamBooth and LoRA bind the symbol to these pieces; textual inversion adds the whole "
                 "word as one new token.")
    return text


def teach_status_markdown(u, session) -> str:
    """One line on a teaching run from its update (training.lora.TrainUpdate) and session (teach.TeachSession)."""
    if u.busy:
        return u.message
    if u.refused:
        return f"**Not run**: {u.message.removeprefix('not run: ')}"
    head = "Done" if u.done and not u.stopped else "Stopped" if u.stopped else "Training"
    loss = f"loss {u.loss:.4f}" if not math.isnan(u.loss) else "no step yet"
    kept = f" ({u.message}; the {u.step} steps trained are kept)" if u.stopped else ""
    timing = u.pace.line(u.step, u.done) if u.pace is not None else ""
    timing = f" · {timing}" if timing else ""
    return (f"**{head}**: step {u.step} / {u.max_steps} · {loss} · {u.seconds:.1f} s{timing}{kept}. "
            f"Prompt with **a {md_text(session.word)}**.")


# --- the denoising loop seen from the scheduler (Diffusion Explainer) ---------------------------
SIGNAL, NOISE = "#2563eb", "#dc2626"


def noise_schedule_figure(alphas_cumprod: list[float], visited: list[int], caption: str = ""):
    """The noise schedule over all training timesteps: ᾱ_t, the signal level √ᾱ_t and the noise
    level √(1−ᾱ_t) of x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, with the timesteps a run visits marked on
    the signal and noise curves. The t axis runs from 999 (pure noise) on the left to 0, the
    order the steps run in."""
    import plotly.graph_objects as go

    t = list(range(len(alphas_cumprod)))
    signal = [math.sqrt(a) for a in alphas_cumprod]
    noise = [math.sqrt(max(1.0 - a, 0.0)) for a in alphas_cumprod]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t, y=list(alphas_cumprod), name="ᾱ_t", mode="lines",
                             line=dict(color="#94a3b8", dash="dot", width=2)))
    fig.add_trace(go.Scatter(x=t, y=signal, name="signal √ᾱ_t", mode="lines", line=dict(color=SIGNAL, width=3)))
    fig.add_trace(go.Scatter(x=t, y=noise, name="noise √(1−ᾱ_t)", mode="lines", line=dict(color=NOISE, width=3)))
    steps = list(range(1, len(visited) + 1))
    label = f"the {len(visited)} step{'s' if len(visited) != 1 else ''} this run makes"
    for name, levels, colour, legend in (("signal", signal, SIGNAL, True), ("noise", noise, NOISE, False)):
        fig.add_trace(go.Scatter(
            x=list(visited), y=[levels[v] for v in visited], customdata=steps, mode="markers",
            name=label, legendgroup="visited", showlegend=legend,
            marker=dict(color="white", size=10, line=dict(color=colour, width=2.5)),
            hovertemplate=f"step %{{customdata}} at t = %{{x}}<br>{name} level %{{y:.3f}}<extra></extra>"))
    fig.update_layout(title=caption or "Noise schedule", template="plotly_white", height=340,
                      margin=dict(l=60, r=20, t=60, b=50), yaxis=dict(title="level", range=[-0.03, 1.03]),
                      xaxis=dict(title="timestep t (999 = pure noise; a run goes left to right)",
                                 autorange="reversed"),
                      legend=dict(orientation="h", y=1.0, x=1, xanchor="right", yanchor="bottom"))
    return fig


def step_pair_image(noisy: Image.Image, clean: Image.Image, gap: int = 8) -> Image.Image:
    """x_t and the predicted clean image x̂₀ of one step side by side, labelled above each."""
    font = _font(max(14, noisy.height // 12))
    ascent, descent = font.getmetrics()
    head = ascent + descent + 8  # the labels' band: nothing of them reaches the pictures
    pair = Image.new("RGB", (noisy.width + gap + clean.width, head + max(noisy.height, clean.height)), "white")
    draw = ImageDraw.Draw(pair)
    for x, img, label in ((0, noisy, "x_t (noisy input)"), (noisy.width + gap, clean, "x̂₀ (predicted clean)")):
        pair.paste(img.convert("RGB"), (x, head))
        draw.text((x + img.width // 2, 4 + ascent), label, fill="#111", font=font, anchor="ms")
    return pair
