"""One prompt's whole journey, as data for one picture: text -> token pieces -> ids -> embedding
rows (1, n, d) -> each block -> final norm -> logits (1, n, vocab) -> softmax -> the picked token
-> the decoded text with it appended. For the encoder (MiniLM) the road ends in a sentence
vector instead: mean pooling over the tokens, then L2 normalisation (what search uses)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.models import Progress, no_progress
from ..core.errors import check_text
from ..core.lazy import torch
from .trace import MAX_CHARS, Trace, load, run_trace


@dataclass
class Journey:
    model_key: str
    title: str
    causal: bool
    text: str
    ids: list[int]
    pieces: list[str]
    special: list[bool]
    d_model: int
    vocab: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    embeddings: np.ndarray  # (n, d): the rows of the embedding table for the ids
    stream_norms: np.ndarray  # (layers + 1, n): |residual stream| entering block 1, then after each block
    final: np.ndarray  # (n, d) after the final norm / last hidden state
    top: list[tuple[int, str, float]]  # (id, piece, probability) of the next token, most likely first
    picked_id: int | None
    picked: str  # the picked token's text (greedy), or "" for the encoder
    continued: str  # the prompt with the picked token appended (decoded)
    logit_stats: dict  # min/max/mean of the last position's logits
    sentence: np.ndarray | None  # (d,) encoder: the mean-pooled, normalised sentence vector
    shapes: dict


def from_trace(tr: Trace, tokenizer, top_k: int = 5) -> Journey:
    arch = tr.arch
    stream = [tr.layer_in[0]] + tr.layer_out  # layers + 1 tensors of (n, d)
    norms = torch.stack([s.norm(dim=-1) for s in stream]).numpy()  # (layers + 1, n)
    top, picked_id, picked, continued, stats, sentence = [], None, "", tr.text, {}, None
    n, d = tr.n, arch.d_model
    shapes = {"ids": (1, n), "embeddings": (1, n, d), "block": (1, n, d), "final norm": (1, n, d)}
    if tr.logits is not None:
        last = tr.logits[-1]  # (vocab,)
        probs = last.softmax(-1)
        p, i = probs.topk(top_k)
        top = [(int(t), tokenizer.decode([int(t)]), float(q)) for q, t in zip(p, i)]
        picked_id = top[0][0]
        picked = top[0][1]
        continued = tokenizer.decode(tr.ids + [picked_id])
        stats = dict(min=float(last.min()), max=float(last.max()), mean=float(last.mean()))
        shapes.update(logits=(1, n, arch.vocab), last=(arch.vocab,), probs=(arch.vocab,))
    else:
        pooled = tr.final.mean(0)  # (d,) every token counts once (one sentence, no padding)
        sentence = (pooled / pooled.norm()).numpy()
        shapes.update(pooled=(1, d), sentence=(1, d))
    return Journey(model_key=tr.model_key, title=tr.title, causal=arch.causal, text=tr.text, ids=tr.ids,
                   pieces=tr.pieces, special=tr.special, d_model=d, vocab=arch.vocab, n_layers=arch.n_layers,
                   n_heads=arch.n_heads, n_kv_heads=arch.n_kv_heads, embeddings=tr.embeddings.numpy(),
                   stream_norms=norms, final=tr.final.numpy(), top=top, picked_id=picked_id, picked=picked,
                   continued=continued, logit_stats=stats, sentence=sentence, shapes=shapes)


def journey(engine, text, model_key: str, progress: Progress = no_progress) -> tuple[Journey, Trace]:
    text = check_text("prompt", text, max_chars=MAX_CHARS)  # an empty prompt is refused before the model loads
    bundle = load(engine, model_key, progress)
    tr = run_trace(bundle, text, adds=False)
    return from_trace(tr, bundle.tokenizer), tr
