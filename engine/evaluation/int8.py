"""The weight-only int8 layer that quantization.py swaps in (in a module of its own: defining a
torch.nn.Module subclass imports torch, which quantization.py, read at the app's start, must not)."""
from __future__ import annotations

import torch


class WeightOnlyInt8Linear(torch.nn.Module):
    """nn.Linear with its weight stored as int8, one float32 scale per output row (symmetric:
    w ≈ q * scale, q in -127..127, scale = max|w_row| / 127). The input stays float32 and is
    never rounded: y = x @ (q * scale).T + b."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()  # (out, in)
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127  # (out,)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_int8", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_int8.float() * self.scale[:, None]  # (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x @ (q * scale).T == (x @ q.T) * scale: the int8 weights are widened to x's float dtype
        # for the matmul and each output column is scaled after it; x itself is never rounded.
        out = (x @ self.weight_int8.T.to(x.dtype)) * self.scale.to(x.dtype)  # (..., out)
        return out if self.bias is None else out + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=int8, activations=float"
