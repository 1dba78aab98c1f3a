"""What a task's preprocess step hands to its forward and postprocess steps. Its own module so that
tasks.py (the registry of tasks) and fallbacks.py (the offline methods) both use it without
importing each other."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Prepared:
    text: str
    settings: Any
    extra: dict = field(default_factory=dict)  # what preprocess worked out (labels, mask position, ...)
