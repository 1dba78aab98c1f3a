"""Inside one block, for one head: Q, K, V, the scores before and after the causal mask, the
softmax weights, the weighted sum of V; then what attention and the MLP add to the residual
stream, and the stream's norm per token before and after.

Q, K and V are recomputed from the block's recorded input with the model's own modules (for
SmolLM2: input RMSNorm, q/k/v projections, then RoPE on Q and K), so a student can redo one
score by hand and tests can check the weights against the model's output_attentions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.lazy import torch
from .trace import Trace, check_layer_head


@dataclass
class BlockView:
    layer: int  # 1-based
    head: int  # 1-based
    kv_head: int  # 1-based: the K/V head this query head reads (grouped-query attention)
    pieces: list[str]
    causal: bool
    rope: bool
    head_dim: int
    scale: float  # scores = Q Kᵀ x scale (1/√hd unless the model says otherwise)
    n_heads: int
    n_kv_heads: int
    q: np.ndarray  # (n, hd)
    k: np.ndarray  # (n, hd)
    v: np.ndarray  # (n, hd)
    scores: np.ndarray  # (n, n) Q Kᵀ x scale, before any mask
    masked: np.ndarray  # (n, n) the same with the future set to -inf (causal) or unchanged
    weights: np.ndarray  # (n, n) softmax of each row of `masked`
    mixed: np.ndarray  # (n, hd) weights @ V: this head's output
    model_weights: np.ndarray  # (n, n) the model's own output_attentions for this layer and head
    attn_add: np.ndarray  # (n, d) what attention adds to the stream (all heads, after o_proj)
    attn_add_recomputed: np.ndarray  # (n, d) the same from the recomputed heads
    mlp_add: np.ndarray  # (n, d)
    before: np.ndarray  # (n, d) the stream entering the block
    middle: np.ndarray  # (n, d) after attention (pre-norm: before + attn_add)
    after: np.ndarray  # (n, d) leaving the block
    shapes: dict

    def norms(self) -> list[dict]:
        """Per token: |stream before|, |what attention adds|, |what the MLP adds|, |stream after|."""
        n = lambda a: np.linalg.norm(a, axis=-1)  # noqa: E731
        rows = zip(self.pieces, n(self.before), n(self.attn_add), n(self.middle), n(self.mlp_add), n(self.after))
        return [dict(position=i, token=p, before=float(b), attention_adds=float(a), middle=float(m),
                     mlp_adds=float(f), after=float(o)) for i, (p, b, a, m, f, o) in enumerate(rows)]

    def worked_cell(self, i: int | None = None, j: int | None = None, terms: int = 4) -> dict:
        """One score worked out: the first `terms` products of q_i·k_j, the sum, the scaling, and
        that row's softmax. Defaults to the last query token and the key token it weighs most."""
        n = self.q.shape[0]
        i = n - 1 if i is None else i
        j = int(np.argmax(self.weights[i])) if j is None else j
        products = self.q[i] * self.k[j]  # (hd,)
        row = self.masked[i]
        finite = np.isfinite(row)
        exps = np.where(finite, np.exp(row - row[finite].max()), 0.0)
        return dict(i=i, j=j, query=self.pieces[i], key=self.pieces[j], q=self.q[i][:terms].tolist(),
                    k=self.k[j][:terms].tolist(), products=products[:terms].tolist(), dot=float(products.sum()),
                    sqrt_d=1 / self.scale, score=float(self.scores[i, j]), row_max=float(row[finite].max()),
                    exp=float(exps[j]), exp_sum=float(exps.sum()), weight=float(self.weights[i, j]))


def block_view(tr: Trace, layer, head) -> BlockView:
    arch = tr.arch
    if len(tr.attn_add) != arch.n_layers:  # a journey trace (adds=False) does not keep them
        raise ValueError("block_view needs a trace recorded with adds=True")
    layer, head = check_layer_head(arch, layer, head)
    li, hi = layer - 1, head - 1
    kv = arch.kv_head(hi)
    params = next(arch.model.parameters())
    x_in = tr.layer_in[li].to(params.device, params.dtype)  # (n, d)
    with torch.inference_mode():
        q, k, v, scores, masked, weights = arch.attention_weights(li, x_in)  # see engine/core/arch.py
        scale = arch.scale(li)
        v_all = v.repeat_interleave(arch.n_heads // arch.n_kv_heads, 0)  # (heads, n, hd)
        mixed = weights @ v_all  # (heads, n, hd)
        recombined = arch.merge_heads(li, mixed.to(params.dtype)).float()  # (n, d)
    cpu = lambda t: t.detach().cpu().numpy()  # noqa: E731
    before, attn_add, mlp_add = cpu(tr.layer_in[li]), cpu(tr.attn_add[li]), cpu(tr.mlp_add[li])
    after = cpu(tr.layer_out[li])
    # Pre-norm (Llama): the stream is added to. Post-norm (BERT): LayerNorm(before + attention).
    with torch.inference_mode():
        middle = cpu(arch.middle(li, tr.layer_in[li].to(params.device, params.dtype),
                                 tr.attn_add[li].to(params.device, params.dtype)).float())
    n = tr.n
    shapes = {"block input": (1, n, arch.d_model), "Q (all heads)": (1, arch.n_heads, n, arch.head_dim),
              "K, V (all K/V heads)": (1, arch.n_kv_heads, n, arch.head_dim),
              "scores, weights": (1, arch.n_heads, n, n), "weighted sum of V": (1, arch.n_heads, n, arch.head_dim),
              "attention adds (after o_proj)": (1, n, arch.d_model), "MLP adds": (1, n, arch.d_model)}
    return BlockView(layer=layer, head=head, kv_head=kv + 1, pieces=tr.pieces, causal=arch.causal,
                     rope=arch.rope, scale=scale, head_dim=arch.head_dim, n_heads=arch.n_heads,
                     n_kv_heads=arch.n_kv_heads, q=cpu(q[hi]), k=cpu(k[kv]), v=cpu(v[kv]), scores=cpu(scores[hi]),
                     masked=cpu(masked[hi]), weights=cpu(weights[hi]), mixed=cpu(mixed[hi]),
                     model_weights=cpu(tr.attentions[li, hi]), attn_add=attn_add,
                     attn_add_recomputed=cpu(recombined), mlp_add=mlp_add, before=before, middle=middle,
                     after=after, shapes=shapes)


def table(matrix: np.ndarray, row_labels: list[str], col_labels: list[str] | None = None,
          decimals: int = 3) -> tuple[list[str], list[list]]:
    """(headers, rows) of a rounded matrix with a token column first; -inf shown as '-inf'."""
    cols = col_labels or [f"d{j}" for j in range(matrix.shape[1])]
    rows = []
    for i, label in enumerate(row_labels):
        cells = [("-inf" if np.isneginf(x) else round(float(x), decimals)) for x in matrix[i]]
        rows.append([f"{i} {label!r}"[:24], *cells])
    return ["token", *cols], rows
