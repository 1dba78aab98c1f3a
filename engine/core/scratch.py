"""Working folders the engine needs for a moment (a trainer's output_dir, a tokenizer converted
through save_pretrained): made by one helper and always removed when the work ends, so that
nothing a run writes stays on disk. Files served to a user go through tabs/_ui.py scratch_dir,
whose root is registered here with remove_at_exit.

Gradio copies every file it serves (pictures, downloads, uploads) into its own cache. app.main
gives it a folder of the app's own (served_files_folder) and keeps that folder within the
operator's budget (trim_every, trim_folder): Gradio's own delete_cache removes files by age only,
and only those of components made when the app was built.

When the process ends, every registered folder (and every work folder still in use) is removed:
at a normal exit by atexit, and on SIGTERM (docker stop, systemd, kill), which skips atexit, by
exit_on_signal, the handler app.main installs.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

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


# ---- Gradio's cache of the files the app serves ------------------------------------------------
def served_files_folder(parent: str | None = None) -> Path:
    """A new, empty folder for Gradio's cache of the files this process serves (inside `parent`,
    the operator's GRADIO_TEMP_DIR, when given), removed when the process ends."""
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="llm-playground-served-", dir=parent or None))
    remove_at_exit(path)
    return path


def trim_folder(folder, max_bytes: int, max_age_s: float, keep: Iterable[str] = (), min_age_s: float = 60.0,
                now: float | None = None) -> int:
    """Remove the files under `folder` older than max_age_s, then the oldest others until the rest
    fit in max_bytes; then the folders left empty. Ages are by ctime (a copy keeps its source's
    mtime; Gradio touches a cached file it hands out again). Spared: the paths in `keep`, and
    anything younger than min_age_s (a listener may be reading an upload). Returns the number of
    files removed."""
    now = time.time() if now is None else now
    keep = {os.path.realpath(k) for k in keep}
    files, folders, total = [], [], 0
    for path in Path(folder).rglob("*"):
        try:
            st = path.lstat()
        except OSError:  # removed meanwhile
            continue
        if stat.S_ISDIR(st.st_mode):
            folders.append((path, st.st_ctime))
            continue
        total += st.st_size  # kept files count against the budget too
        if os.path.realpath(path) not in keep:
            files.append((st.st_ctime, st.st_size, path))
    files.sort(key=lambda f: f[0])  # oldest first
    removed = 0
    for ctime, size, path in files:
        age = now - ctime
        if age < min_age_s or (age <= max_age_s and total <= max_bytes):
            break  # the rest are younger
        try:
            path.unlink()
        except OSError:
            continue
        total, removed = total - size, removed + 1
    for path, ctime in sorted(folders, key=lambda f: len(f[0].parts), reverse=True):  # deepest first
        if now - ctime >= min_age_s:  # a folder made just now is about to get its file
            with contextlib.suppress(OSError):
                path.rmdir()  # only an empty one goes
    return removed


def trim_every(every_s: float, folder, max_bytes: int, max_age_s: float,
               keep: Callable[[], Iterable[str]] = tuple) -> threading.Event:
    """trim_folder(folder, ...) every `every_s` seconds in a daemon thread, until the returned
    Event is set. keep() names the files to spare at each pass."""
    stop = threading.Event()

    def loop():
        while not stop.wait(every_s):
            try:
                trim_folder(folder, max_bytes, max_age_s, keep())
            except Exception:  # noqa: BLE001 - a failed pass must not end the bound; the next one retries
                continue

    threading.Thread(target=loop, name="trim-served-files", daemon=True).start()
    return stop
