"""torch, imported on first use: starting the app (import app, Engine, build_demo) loads none of it.

A module that needs torch only inside its functions writes

    from engine.core.lazy import torch          # in place of `import torch`
    from engine.core.lazy import F              # in place of `import torch.nn.functional as F`

and, for the decorators that used to run torch at import time,

    @no_grad                                    # in place of `@torch.no_grad()`
    @inference_mode                             # in place of `@torch.inference_mode()`

Annotations such as `-> torch.Tensor` stay as they are: every such module starts with
`from __future__ import annotations`, so they are never evaluated. Anything else torch builds at
import time (a torch.nn.Module subclass) lives in a module imported where it is used.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import threading


class LazyModule:
    """Stands for the module `name`: imports it on the first attribute read, then forwards every
    read and write to it (so `torch.Tensor`, `isinstance(x, torch.Tensor)` and pytest's
    monkeypatch.setattr(torch.cuda, ...) work as with the real module)."""

    __slots__ = ("_lazy_name", "_lazy_module")

    def __init__(self, name: str):
        object.__setattr__(self, "_lazy_name", name)
        object.__setattr__(self, "_lazy_module", None)

    def _lazy_load(self):
        module = self._lazy_module
        if module is None:
            module = importlib.import_module(self._lazy_name)
            object.__setattr__(self, "_lazy_module", module)
        return module

    def __getattr__(self, attr: str):  # only called for names the proxy itself lacks
        return getattr(self._lazy_load(), attr)

    def __setattr__(self, attr: str, value) -> None:
        setattr(self._lazy_load(), attr, value)

    def __delattr__(self, attr: str) -> None:
        delattr(self._lazy_load(), attr)

    def __dir__(self):
        return dir(self._lazy_load())

    def __repr__(self) -> str:
        state = "imported" if self._lazy_module is not None else "not imported yet"
        return f"<lazy module {self._lazy_name!r}, {state}>"


torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")


def _torch_context(name: str):
    """A decorator that runs the function inside torch.<name>(), torch's own decorator applied on
    the first call (generator functions stay generator functions: the context holds at each step)."""
    def decorate(fn):
        real = None

        def wrapped():
            nonlocal real
            if real is None:
                real = getattr(torch, name)()(fn)
            return real

        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def generator(*args, **kwargs):
                return (yield from wrapped()(*args, **kwargs))
            return generator

        @functools.wraps(fn)
        def call(*args, **kwargs):
            return wrapped()(*args, **kwargs)
        return call
    return decorate


no_grad = _torch_context("no_grad")
inference_mode = _torch_context("inference_mode")


_TRANSFORMERS_LOCK = threading.Lock()


def from_transformers(*names: str):
    """transformers' top-level names (one value, or a tuple of them), resolved one thread at a time.
    Its lazy module resolves a name by importing a submodule; two request threads doing that at once
    failed here with "cannot import name 'PreTrainedTokenizerFast' from 'transformers'" (and
    'AutoModel'). Once resolved, a name is a plain attribute and the lock is held for no time."""
    with _TRANSFORMERS_LOCK:
        import transformers

        values = tuple(getattr(transformers, name) for name in names)
    return values[0] if len(values) == 1 else values

