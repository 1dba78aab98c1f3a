"""engine.core.settings.make: the one builder of settings from loose values (the API, the UI)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.core.errors import UserInputError
from engine.core.settings import knob, make, validate


@dataclass
class Window:
    size: int = knob(64, 16, 512, "Tokens per window", step=16)
    overlap: int = knob(8, 0, 256, "Tokens two windows share", step=8)
    note: str | None = knob("", help="Free text")

    def __post_init__(self):
        validate(self)  # the ranges first, so that a value out of range is named as such
        if self.overlap >= self.size:
            raise UserInputError(f"overlap = {self.overlap} must be smaller than size = {self.size}.")


def test_an_unknown_name_is_refused_naming_it_and_the_valid_ones():
    with pytest.raises(UserInputError) as err:
        make(Window, size=32, sise=48)
    text = str(err.value)
    assert "'sise'" in text and "Window" in text
    assert "valid names are size, overlap, note" in text
    with pytest.raises(UserInputError, match="unknown settings 'a', 'b'"):
        make(Window, b=1, a=2)


def test_values_are_checked_and_converted():
    s = make(Window, size="128", overlap=16.0)
    assert (s.size, s.overlap) == (128, 16) and isinstance(s.size, int)
    with pytest.raises(UserInputError, match=r"size = 1000 is out of range: valid values are 16 to 512"):
        make(Window, size=1000)


def test_drop_none_leaves_the_default():
    assert make(Window, drop_none=True, size=None, overlap=16, note=None) == Window(64, 16, "")
    assert make(Window, drop_none=True, note=None).note == ""
    with pytest.raises(UserInputError, match="size must be a number between 16 and 512, got None"):
        make(Window, size=None)  # without drop_none, None is a value like any other


def test_a_rule_across_fields_lives_in_post_init():
    with pytest.raises(UserInputError, match="overlap = 64 must be smaller than size = 64"):
        make(Window, size=64, overlap=64)
    with pytest.raises(UserInputError, match="overlap = 300 is out of range"):  # the range is named first
        make(Window, size=64, overlap=300)
    with pytest.raises(UserInputError, match="overlap = 64 must be smaller"):  # built directly: the same rule
        Window(size=64, overlap=64)


def test_validate_refuses_another_class():
    with pytest.raises(UserInputError, match="settings must be Window, got dict"):
        validate({"size": 64}, Window)
