"""Working folders the engine needs for a moment (a trainer's output_dir, a tokenizer converted
through save_pretrained): made by one helper and always removed when the work ends, so that
nothing a run writes stays on disk. Files served to a user go through tabs/_ui.py scratch_dir,
whose root is registered here with remove_at_exit.

When the process ends, every registered folder (and every work folder still in use) is removed:
at a normal exit by atexit, and on SIGTERM (docker stop, systemd, kill), which skips atexit, by
exit_on_signal, the handler app.main installs.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
import threading
from pathlib import Path

_AT_EXIT: set[str] = set()  # folders removed when the process ends
_LOCK = threading.RLock()  # re-entrant: the signal handler runs in the main thread, between any two lines
_REGISTERED = []  # [True] once cleanup is registered with atexit


def remove_at_exit(path) -> None:
    """Remove `path` (with everything in it) when the process ends, by atexit or by SIGTERM."""
    with _LOCK:
        _AT_EXIT.add(str(path))
        if not _REGISTERED:
            atexit.register(cleanup)
            _REGISTERED.append(True)


def cleanup() -> None:
    """Remove every registered folder now (idempotent)."""
    with _LOCK:
        paths = sorted(_AT_EXIT)
        _AT_EXIT.clear()
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def exit_on_signal(signum, frame=None) -> None:
    """A signal handler (app.main installs it for SIGTERM): the cleanup, then the exit a SIGTERM
    means (status 128 + the signal's number), through SystemExit so other atexit handlers run too."""
    cleanup()
    raise SystemExit(128 + int(signum))


def new_work_dir(prefix: str = "work") -> Path:
    """A new, empty folder; the caller removes it with remove_work_dir in a finally block."""
    path = Path(tempfile.mkdtemp(prefix=f"llm-playground-{prefix}-"))
    remove_at_exit(path)  # also when the process is stopped mid-work
    return path


def remove_work_dir(path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with _LOCK:
        _AT_EXIT.discard(str(path))


@contextlib.contextmanager
def work_dir(prefix: str = "work"):
    """A new, empty folder that is removed (with everything in it) when the block ends."""
    path = new_work_dir(prefix)
    try:
        yield path
    finally:
        remove_work_dir(path)
