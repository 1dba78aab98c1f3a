"""Typed settings with their ranges written once.

Each tab's knobs are a dataclass whose fields are made with knob(); the UI builds its
sliders from the same metadata (tabs/_ui.py: controls_for), and validate() checks values
that arrive through the API, where slider limits do not apply.

    @dataclass
    class DecodingSettings:
        temperature: float = knob(1.0, 0.0, 2.0, "Divide the logits by this", step=0.05)
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from .errors import check_choice, check_range

# The one limit on an uploaded file, for the whole app (app.py passes it to launch(), and each
# upload's label states it). It must hold the biggest file the app itself lets a user download
# and upload again: a LoRA adapter at the knobs' maxima (r = 64 on all seven linear layers of
# SmolLM2-135M) is 19.5 M fp32 numbers = 74.5 MiB. tests/test_lora.py builds that adapter.
MAX_UPLOAD_BYTES = 80 * 2**20


@dataclass(frozen=True)
class KnobInfo:
    label: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple | None = None


def knob(default: Any, minimum: float | None = None, maximum: float | None = None, help: str = "",
         *, step: float | None = None, label: str = "", choices: tuple | None = None):
    info = KnobInfo(label=label, help=help, minimum=minimum, maximum=maximum, step=step, choices=choices)
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"knob": info})
    return field(default=default, metadata={"knob": info})


def knob_info(cls, name: str) -> KnobInfo:
    for f in fields(cls):
        if f.name == name:
            info: KnobInfo = f.metadata.get("knob") or KnobInfo(label="", help="")
            if not info.label:
                info = KnobInfo(**{**info.__dict__, "label": name.replace("_", " ")})
            return info
    raise KeyError(name)


def knob_default(cls, name: str):
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:  # type: ignore[misc]
                return f.default_factory()  # type: ignore[misc]
    raise KeyError(name)


def validate(settings):
    """Check every knob of a settings instance; raise UserInputError naming the bad one."""
    for f in fields(settings):
        info: KnobInfo | None = f.metadata.get("knob")
        if info is None:
            continue
        value = getattr(settings, f.name)
        label = f.name
        if info.choices is not None:
            if isinstance(value, (list, tuple)):
                for v in value:
                    check_choice(label, v, info.choices)
            else:
                check_choice(label, value, info.choices)
        elif info.minimum is not None and info.maximum is not None and not isinstance(value, bool):
            integer = isinstance(f.default, int) and not isinstance(f.default, bool)
            object.__setattr__(settings, f.name,
                               check_range(label, value, info.minimum, info.maximum, integer=integer))
    return settings


def make(cls, **values):
    """Build and validate a settings object from loose keyword values (e.g. from the API)."""
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise TypeError(f"unknown settings for {cls.__name__}: {sorted(unknown)}")
    return validate(cls(**values))


__all__ = ["knob", "knob_info", "knob_default", "validate", "make", "KnobInfo", "dataclass", "MAX_UPLOAD_BYTES"]
