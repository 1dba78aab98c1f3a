"""A small client for an OpenAI-compatible completions server (vLLM, llama.cpp's server, SGLang,
TGI's Messages API where they support logprobs), and the operator setting that points the app's
causal-LM paths at it.

The setting is the operator's, never a user's: a URL from app.py's --openai-url flag or the
LLM_PLAYGROUND_OPENAI_URL environment variable, read once into engine.core.config.AppConfig. A registry row's `served_as` names the served
model that stands for that local model. Engine.load() hangs a Route on the TextModel it hands out
(tm.extra["serving"]); an engine function asks use_server(tm) at its top and, when that gives a
Route, answers through the server.

What comes back from the server is read as token ids (vLLM's return_tokens_as_token_ids), so the
app's own tokenizer decodes them exactly as the in-process path does. Logprobs are the raw model's
(vLLM's default logprobs mode), limited to the top N per position (the server's --max-logprobs).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..core.errors import ModelUnavailableError, UserInputError

HEALTH_TTL_S = 2.0  # a health answer is reused this long, so a class does not probe per click


class ServerDownError(ModelUnavailableError):
    """The operator's server does not answer; the message names its URL and the way out."""


@dataclass(frozen=True)
class ServingConfig:
    """Where the causal-LM paths go. url = "" means in-process (the default)."""

    url: str = ""
    api_key: str = ""
    fallback: bool = False  # operator allows in-process when the server is down
    top_logprobs: int = 20  # N: logprobs per position the server returns (vLLM --max-logprobs)
    timeout_s: float = 120.0
    concurrency: int = 32  # app requests in flight on served endpoints at once

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @classmethod
    def from_app(cls, config) -> "ServingConfig":
        """The server named in the app's settings (engine.core.config.AppConfig, which has
        checked that the URL is http(s)); the URL always ends in /v1."""
        url = config.openai_url.strip().rstrip("/")
        if url and not url.endswith("/v1"):
            url += "/v1"
        return cls(url=url, api_key=config.openai_api_key, fallback=config.openai_fallback,
                   top_logprobs=config.openai_top_logprobs)


class Client:
    """One connection pool per server (httpx, thread-safe), shared by all requests."""

    def __init__(self, config: ServingConfig):
        import httpx

        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        limits = httpx.Limits(max_connections=max(config.concurrency * 2, 8))
        self._http = httpx.Client(base_url=config.url, headers=headers, timeout=config.timeout_s, limits=limits)
        self._health: tuple[float, dict] | None = None
        self._lock = threading.Lock()

    def health(self, fresh: bool = False) -> dict:
        """{"up": bool, "url", "models": [...], "ms": round trip, "error": ""}; cached HEALTH_TTL_S."""
        with self._lock:
            if not fresh and self._health and time.monotonic() - self._health[0] < HEALTH_TTL_S:
                return self._health[1]
        start = time.perf_counter()
        try:
            r = self._http.get("/models", timeout=5.0)
            r.raise_for_status()
            models = [m.get("id", "") for m in r.json().get("data", [])]
            out = dict(up=True, url=self.config.url, models=models, error="")
        except Exception as exc:  # any failure to answer is "down"; the kind is in the message
            out = dict(up=False, url=self.config.url, models=[], error=f"{type(exc).__name__}: {exc}")
        out["ms"] = round((time.perf_counter() - start) * 1000, 1)
        with self._lock:
            self._health = (time.monotonic(), out)
        return out

    def down_error(self, why: str) -> ServerDownError:
        how = ("the operator can start it with `bash scripts/serve_vllm.sh`, or start the app with "
               "--openai-fallback to run in-process while it is down")
        return ServerDownError(f"The text-generation server at {self.config.url} does not answer ({why}): {how}.")

    def completions(self, payload: dict) -> dict:
        """POST /completions; a connection failure or a server error becomes ServerDownError."""
        import httpx

        try:
            r = self._http.post("/completions", json=payload)
        except httpx.HTTPError as exc:
            with self._lock:
                self._health = None
            raise self.down_error(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code >= 400:
            detail = r.text[:300]
            if r.status_code == 400:  # the server refused the request itself (e.g. too long)
                raise UserInputError(f"the server at {self.config.url} refused the request: {detail}")
            raise self.down_error(f"HTTP {r.status_code}: {detail}")
        return r.json()

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True)
class Route:
    """A local model served remotely: which client, and the served model's name."""

    client: Client = field(compare=False)
    served_as: str

    @property
    def url(self) -> str:
        return self.client.config.url

    @property
    def top_n(self) -> int:
        return self.client.config.top_logprobs

    def describe(self) -> str:
        return f"{self.served_as} at {self.url}"


def route(tm) -> Route | None:
    """The Route Engine.load() hung on this model, or None (in-process)."""
    extra = getattr(tm, "extra", None) or {}
    return extra.get("serving")


def use_server(tm) -> Route | None:
    """The Route to use now: None when in-process. A down server raises ServerDownError naming
    its URL, unless the operator allowed the fallback (then None: in-process this time)."""
    r = route(tm)
    if r is None:
        return None
    h = r.client.health()
    if h["up"]:
        return r
    if r.client.config.fallback:
        return None
    raise r.client.down_error(h["error"])


def token_id(label: str) -> int:
    """vLLM's return_tokens_as_token_ids spelling 'token_id:123' -> 123."""
    return int(str(label).rsplit(":", 1)[-1])


def complete(r: Route, prompt, *, max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
             top_k: int = 0, min_p: float = 0.0, repetition_penalty: float = 1.0, n: int = 1,
             seed: int | None = None, stop: list[str] | None = None, logprobs: int | None = None,
             echo: bool = False, prompt_logprobs: int | None = None, min_tokens: int = 0) -> dict:
    """One /completions call with the sampling knobs the app has. prompt: text or token ids.
    Returns the server's JSON. top_k 0 = off (sent as -1, vLLM's spelling). min_tokens: no end of
    sequence before that many tokens (vLLM's parameter, as transformers' min_new_tokens)."""
    payload = dict(model=r.served_as, prompt=prompt, max_tokens=int(max_tokens), temperature=float(temperature),
                   top_p=float(top_p), top_k=int(top_k) if top_k > 0 else -1, min_p=float(min_p),
                   repetition_penalty=float(repetition_penalty), n=int(n), echo=bool(echo),
                   return_tokens_as_token_ids=True, skip_special_tokens=False, add_special_tokens=False)
    if seed is not None:
        payload["seed"] = int(seed)
    if stop:
        payload["stop"] = list(stop)
    if min_tokens:
        payload["min_tokens"] = int(min_tokens)
    if logprobs is not None:
        payload["logprobs"] = int(min(logprobs, r.top_n))
    if prompt_logprobs is not None:
        payload["prompt_logprobs"] = int(min(prompt_logprobs, r.top_n))
    return r.client.completions(payload)


def choice_tokens(choice: dict) -> list[dict]:
    """Per generated token of one choice: {"id", "logprob", "top": {id: logprob}} (top-N, raw)."""
    lp = choice.get("logprobs") or {}
    out = []
    for tok, logprob, top in zip(lp.get("tokens") or [], lp.get("token_logprobs") or [],
                                 lp.get("top_logprobs") or []):
        out.append(dict(id=token_id(tok), logprob=float(logprob),
                        top={token_id(k): float(v) for k, v in (top or {}).items()}))
    return out


__all__ = ["ServingConfig", "Client", "Route", "ServerDownError", "route", "use_server", "complete",
           "choice_tokens", "token_id"]
