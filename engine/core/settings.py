"""Typed settings with their ranges written once.

Each tab's knobs are a dataclass whose fields are made with knob(); the UI builds its
sliders from the same metadata (tabs/_ui.py: controls_for), and validate() checks values
that arrive through the API, where slider limits do not apply. make(cls, **values) is the one
builder from loose values; a rule that spans two fields (or that a range cannot say) lives in
the class's __post_init__, as in peft's LoraConfig.

    @dataclass
    class ChunkSettings:
        size: int = knob(128, 16, 512, "Tokens per chunk", step=16)
        overlap: int = knob(32, 0, 256, "Tokens that consecutive chunks share", step=8)

        def __post_init__(self):
            validate(self)  # the ranges first, so that a value out of range is named as such
            if self.overlap >= self.size:
                raise UserInputError(...)

    make(ChunkSettings, size=64, overlap=8)
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from .errors import UserInputError, check_choice, check_range

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


def _check_field(f, value):
    """One knob's value checked against its field's metadata: a choice among the choices; a
    number finite and inside [minimum, maximum], and whole where the default is an int (then
    returned as an int). Nothing is converted before it is checked: 2.9 steps is refused, never
    cut to 2. A bool where a number belongs is refused too (JSON true is not a step count)."""
    info: KnobInfo | None = f.metadata.get("knob")
    if info is None:
        return value
    if info.choices is not None:
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            check_choice(f.name, v, info.choices)
        return value
    if info.minimum is None or info.maximum is None or isinstance(f.default, bool):
        return value
    integer = isinstance(f.default, int)
    if isinstance(value, bool):
        kind = "whole number" if integer else "number"
        raise UserInputError(f"{f.name} must be a {kind} between {info.minimum} and {info.maximum}, got {value!r}.")
    return check_range(f.name, value, info.minimum, info.maximum, integer=integer)


def check_knob(cls, name: str, value):
    """The one check of one knob's value, as validate() checks it inside a settings object: for
    values that are not a settings field themselves (each cell of a sweep, a rank the tab doubles
    into alpha). Returns the checked value (a whole number as an int); KeyError for an unknown name."""
    for f in fields(cls):
        if f.name == name:
            return _check_field(f, value)
    raise KeyError(name)


def validate(settings, expected: type | None = None):
    """Check every knob of a settings instance; raise UserInputError naming the bad one.
    expected: the class the caller needs (anything else is refused, named by its type)."""
    if expected is not None and not isinstance(settings, expected):
        raise UserInputError(f"settings must be {expected.__name__}, got {type(settings).__name__}.")
    for f in fields(settings):
        if f.metadata.get("knob") is not None:
            object.__setattr__(settings, f.name, _check_field(f, getattr(settings, f.name)))
    return settings


def make(cls, *, drop_none: bool = False, **values):
    """The one builder of a settings object from loose keyword values (the API, the UI, tests):
    an unknown name is a UserInputError that lists the valid ones; drop_none=True leaves out the
    values that are None, so the field's default applies; the class's __post_init__ checks its
    rules that span fields; then validate() checks every knob's range or choices."""
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UserInputError(f"unknown setting{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(repr(n) for n in unknown)} for {cls.__name__}: "
                             f"valid names are {', '.join(names)}.")
    if drop_none:
        values = {k: v for k, v in values.items() if v is not None}
    return validate(cls(**values))


__all__ = ["knob", "knob_info", "knob_default", "check_knob", "validate", "make", "KnobInfo", "dataclass", "MAX_UPLOAD_BYTES"]
