"""Working folders the engine needs for a moment (a trainer's output_dir, a tokenizer converted
through save_pretrained): made by one helper and always removed when the work ends, so that
nothing a run writes stays on disk. Files served to a user go through tabs/_ui.py scratch_dir."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path


def new_work_dir(prefix: str = "work") -> Path:
    """A new, empty folder; the caller removes it with remove_work_dir in a finally block."""
    return Path(tempfile.mkdtemp(prefix=f"llm-playground-{prefix}-"))


def remove_work_dir(path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def work_dir(prefix: str = "work"):
    """A new, empty folder that is removed (with everything in it) when the block ends."""
    path = new_work_dir(prefix)
    try:
        yield path
    finally:
        remove_work_dir(path)
