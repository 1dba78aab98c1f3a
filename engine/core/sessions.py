"""Models that belong to one browser session (a model the student pre-trained), and which session
a call acts for. The tabs name the session for each listener call (tabs/_ui.user_errors sets it from
the web request); the engine reads it here and never sees the web framework. Engine.load resolves
SESSION_MODEL_KEY to the calling session's own model: another session gets a UserInputError.
Bounded: at most MAX_SESSIONS sessions and MAX_BYTES of weights, the least recently used dropped first;
one model per session (a new one replaces the old)."""
from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any, Iterator

from .errors import UserInputError

SESSION_MODEL_KEY = "session-pretrained"
SESSION_MODEL_TITLE = "Your pre-trained model (this session only)"
MAX_SESSIONS = 32
MAX_BYTES = 2 * 1024**3
NO_MODEL = ("This session has no pre-trained model yet: train one in the Pre-training tab (each browser "
            "session sees only the model it trained there).")

_SESSION: ContextVar[str | None] = ContextVar("llm_playground_session", default=None)


def current() -> str | None:
    """The session the running call acts for (None outside a web request)."""
    return _SESSION.get()


@contextlib.contextmanager
def acting_for(session: str | None) -> Iterator[None]:
    """Run the block as `session` (the web request's session hash)."""
    token = _SESSION.set(session or None)
    try:
        yield
    finally:
        _SESSION.reset(token)


class SessionModels:
    """session -> (model, its bytes); thread-safe, LRU, bounded in sessions and in bytes."""

    def __init__(self, max_sessions: int = MAX_SESSIONS, max_bytes: int = MAX_BYTES):
        self.max_sessions, self.max_bytes = max_sessions, max_bytes
        self._lock = threading.Lock()
        self._models: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.evictions = 0

    def put(self, session: str | None, model: Any, nbytes: int = 0) -> bool:
        """Keep `model` as `session`'s own (replacing its last one). False without a session
        (a call from outside a web request), or for a model bigger than the whole store."""
        if not session or nbytes > self.max_bytes:
            return False
        with self._lock:
            self._models.pop(session, None)
            self._models[session] = (model, nbytes)
            while len(self._models) > self.max_sessions or self.nbytes > self.max_bytes:
                self._models.popitem(last=False)
                self.evictions += 1
        return True

    def get(self, session: str | None) -> Any:
        """`session`'s model; a UserInputError when it has none (or another session asks)."""
        with self._lock:
            held = self._models.get(session) if session else None
            if held is not None:
                self._models.move_to_end(session)
        if held is None:
            raise UserInputError(NO_MODEL)
        return held[0]

    @property
    def nbytes(self) -> int:
        return sum(n for _, n in self._models.values())

    def __contains__(self, session) -> bool:
        with self._lock:
            return session in self._models

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)
