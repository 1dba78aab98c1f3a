"""Shared prompt prefill: the prefix caching serving engines such as vLLM do. A class clicks the same
example prompt many times; the forward over a prompt gives the same logits and the same keys and
values every time, so it runs once per (model, prompt ids) and each new Step session starts from a
copy of that result (its own cache: one student's steps never touch another's).

Bounded per model by BUDGET_BYTES (the KV tensors and the logits kept), least recently used out
first. Only the Decoding tab's sessions use it (StepSession(shared_prefill=True)); a session made
without it always runs its own prefill, so its forward count is exact."""
from __future__ import annotations

import collections
import copy
import threading
import weakref

from ..core.cache import estimate_bytes

BUDGET_BYTES = 64 * 2**20  # per model


def kv_bytes(cache) -> int:
    """Bytes of the key and value tensors a transformers Cache holds."""
    return sum(estimate_bytes(t) for layer in getattr(cache, "layers", []) for t in
               (getattr(layer, "keys", None), getattr(layer, "values", None)) if t is not None)


class PrefillCache:
    """(logits, KV cache) of a prompt's forward, per model, handed out as copies."""

    def __init__(self, budget_bytes: int = BUDGET_BYTES):
        self.budget = budget_bytes
        self._models: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, model, ids: tuple[int, ...]):
        """(logits copy, cache copy) when this model's forward over `ids` is kept, else None."""
        with self._lock:
            entries = self._models.get(model)
            found = entries.get(ids) if entries is not None else None
            if found is None:
                self.misses += 1
                return None
            entries.move_to_end(ids)
            self.hits += 1
            logits, cache, _ = found
        return logits.clone(), copy.deepcopy(cache)

    def put(self, model, ids: tuple[int, ...], logits, cache) -> None:
        """Keep a copy (the caller's cache grows with its steps; the kept one never changes)."""
        kept = copy.deepcopy(cache)
        size = kv_bytes(kept) + estimate_bytes(logits)
        if size > self.budget:
            return
        with self._lock:
            entries = self._models.setdefault(model, collections.OrderedDict())
            entries[ids] = (logits.clone(), kept, size)
            entries.move_to_end(ids)
            while sum(e[2] for e in entries.values()) > self.budget:
                entries.popitem(last=False)

    def held_bytes(self, model) -> int:
        with self._lock:
            return sum(e[2] for e in (self._models.get(model) or {}).values())


SHARED = PrefillCache()

__all__ = ["BUDGET_BYTES", "PrefillCache", "SHARED", "kv_bytes"]
