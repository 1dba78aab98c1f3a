"""The one model cache: bounded in bytes, least-recently-used eviction, a lock per key.

Keys are tuples such as (model key, device, dtype, variant). Two concurrent first requests
for one key load it once: the second waits on the key's lock and then finds it cached.
Eviction drops the cache's reference, runs the garbage collector and empties the CUDA cache
so the memory really goes back.
"""
from __future__ import annotations

import gc
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Callable, Hashable

from .lazy import torch


def estimate_bytes(obj: Any, _seen: set | None = None) -> int:
    """Bytes held by tensors inside obj: a module, a tensor, a dataclass, a dict/list/tuple,
    or an object with an `nbytes` attribute. Shared tensors are counted once."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, torch.nn.Module):
        total = 0
        for t in list(obj.parameters()) + list(obj.buffers()):
            ptr = t.data_ptr()
            if ptr in seen:
                continue
            seen.add(ptr)
            total += t.numel() * t.element_size()
        return total
    if is_dataclass(obj) and not isinstance(obj, type):
        return sum(estimate_bytes(getattr(obj, f.name), seen) for f in fields(obj))
    if isinstance(obj, dict):
        return sum(estimate_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(estimate_bytes(v, seen) for v in obj)
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    # diffusers pipelines and other containers of modules
    components = getattr(obj, "components", None)
    if isinstance(components, dict):
        return estimate_bytes(components, seen)
    return 0


@dataclass
class _Entry:
    value: Any
    nbytes: int
    loaded_s: float
    last_used: float


_ALL_CACHES: "weakref.WeakSet[ModelCache]" = weakref.WeakSet()


def free_all() -> None:
    """After an out-of-memory error: drop every cached model so the next request starts clean."""
    for cache in list(_ALL_CACHES):
        cache.clear()
    release_memory()


class ModelCache:
    def __init__(self, budget_bytes: int):
        if budget_bytes <= 0:
            raise ValueError(f"cache budget must be positive, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()  # guards _entries, _key_locks and counters
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.loads_failed = 0
        _ALL_CACHES.add(self)

    # ---- public API ---------------------------------------------------------------------
    def get_or_load(self, key: Hashable, loader: Callable[[], Any],
                    size_fn: Callable[[Any], int] = estimate_bytes) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                return self._hit(key, entry)
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # only one loader per key; others wait here
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    return self._hit(key, entry)
                self.misses += 1
            start = time.perf_counter()
            try:
                value = loader()
            except BaseException:
                with self._lock:
                    self.loads_failed += 1
                raise
            nbytes = int(size_fn(value))
            now = time.time()
            with self._lock:
                self._make_room(nbytes)
                self._entries[key] = _Entry(value, nbytes, time.perf_counter() - start, now)
            return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def evict(self, key: Hashable) -> bool:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self.evictions += 1
        if entry is None:
            return False
        del entry
        release_memory()
        return True

    def clear(self) -> None:
        with self._lock:
            n = len(self._entries)
            self._entries.clear()
            self.evictions += n
        release_memory()

    def stats(self) -> dict:
        with self._lock:
            entries = [
                dict(key=" / ".join(str(k) for k in key) if isinstance(key, tuple) else str(key),
                     mb=round(e.nbytes / 2**20, 1), load_s=round(e.loaded_s, 2))
                for key, e in reversed(self._entries.items())  # most recent first
            ]
            used = sum(e.nbytes for e in self._entries.values())
            return dict(hits=self.hits, misses=self.misses, evictions=self.evictions,
                        loads_failed=self.loads_failed, used_bytes=used,
                        budget_bytes=self.budget_bytes, entries=entries)

    # ---- internals (called with self._lock held) -----------------------------------------
    def _hit(self, key, entry: _Entry):
        self.hits += 1
        entry.last_used = time.time()
        self._entries.move_to_end(key)
        return entry.value

    def _make_room(self, incoming: int) -> None:
        """Evict least-recently-used entries until `incoming` fits. A single model larger
        than the whole budget is still kept (alone) rather than refused."""
        freed = False
        while self._entries and sum(e.nbytes for e in self._entries.values()) + incoming > self.budget_bytes:
            self._entries.popitem(last=False)
            self.evictions += 1
            freed = True
        if freed:
            release_memory()


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        mps.empty_cache()
