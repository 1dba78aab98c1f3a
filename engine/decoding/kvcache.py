"""How big the KV cache of a step session is.

Each layer keeps a key and a value vector per key-value head for every token read so far, so
the cache holds 2 x layers x kv_heads x head_dim x tokens numbers of the model's dtype.
cache_bytes() counts the real tensors; formula_bytes() is the formula; tests check they agree.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.lazy import torch


@dataclass
class KVSize:
    tokens: int
    layers: int
    kv_heads: int
    head_dim: int
    dtype_bytes: int
    bytes: int  # counted from the cache's tensors

    @property
    def formula(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.tokens * self.dtype_bytes

    @property
    def per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


def shape_of(config) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) from a model config."""
    layers = int(config.num_hidden_layers)
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return layers, kv_heads, head_dim


def tensors(cache) -> list[torch.Tensor]:
    """Every key and value tensor the cache holds (transformers' DynamicCache layers)."""
    out = []
    for layer in getattr(cache, "layers", []):
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(t, torch.Tensor) and t.numel():
                out.append(t)
    return out


def cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for t in tensors(cache))


def kv_size(tm, cache) -> KVSize:
    """The cache's size from its tensors, with the numbers the formula needs."""
    layers, kv_heads, head_dim = shape_of(tm.model.config)
    held = tensors(cache)
    tokens = int(held[0].shape[-2]) if held else 0
    dtype = held[0].dtype if held else next(tm.model.parameters()).dtype
    return KVSize(tokens, layers, kv_heads, head_dim, torch.empty((), dtype=dtype).element_size(),
                  cache_bytes(cache))


__all__ = ["KVSize", "kv_size", "cache_bytes", "shape_of", "tensors"]
