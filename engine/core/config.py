"""AppConfig: every operator setting of the app in one frozen dataclass, built once (app.main)
from the command line, then the environment, then the defaults, and handed down as
engine.config. No other module of the app reads os.environ.

Each field's metadata names its flag, its environment variable, its kind and range, and its
help: the argparse parser (build_parser), the reading (AppConfig.from_sources) and the README's
flag table (flag_table) are all made from it, so a setting is written once.

Also here: the only places the app writes the process environment, for libraries that read
their settings from it (child_env for a child process, temporary_env for tiktoken, mark_offline
for huggingface_hub and transformers).
"""
from __future__ import annotations

import argparse
import math
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from .errors import UserInputError

TRUE_WORDS = ("1", "true", "yes", "on")
DEVICES = ("auto", "cpu", "cuda", "mps")
DB_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://")  # the Class tab's database URLs
DEFAULT_TRAIN_MINUTES, MAX_TRAIN_MINUTES = 5.0, 24 * 60.0  # as engine/training/lora.py
MAX_CACHE_GB = 4096.0


def truthy(value: str | bool | None) -> bool:
    """The one reading of an on/off setting: 1, true, yes or on (any case, spaces around
    ignored) is on; anything else, an unset variable included, is off."""
    if isinstance(value, bool):
        return value
    return (value or "").strip().lower() in TRUE_WORDS


def _span(low: float, high: float, integer: bool, low_open: bool) -> str:
    if integer:
        return f"a whole number from {low:g} to {high:g}"
    return f"a number {'above' if low_open else 'from'} {low:g} {'and at most' if low_open else 'to'} {high:g}"


def ranged_number(name: str, raw, low: float, high: float, *, integer: bool = False,
                  low_open: bool = False) -> float | int:
    """`raw` (text or a number) as a number from `low` to `high` (above `low` with low_open).
    The error names the setting, the value and the valid range; NaN and infinities are refused."""
    span = _span(low, high, integer, low_open)
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise UserInputError(f"{name} = {raw!r} is not a number: give {span}.") from None
    if not math.isfinite(value):
        raise UserInputError(f"{name} = {raw!r} is not a finite number: give {span}.")
    if integer and not value.is_integer():
        raise UserInputError(f"{name} = {raw!r} is not a whole number: give {span}.")
    if value > high or value < low or (low_open and value == low):
        raise UserInputError(f"{name} = {raw!r} is out of range: give {span}.")
    return int(value) if integer else value


def default_home() -> str:
    """Where the app keeps files it derives locally, unless LLM_PLAYGROUND_HOME says otherwise."""
    return str(Path.home() / ".cache" / "llm-playground")


def _setting(default=None, *, help: str, flag: str | None = None, env: str | None = None, kind: str = "text",
             low: float | None = None, high: float | None = None, low_open: bool = False, shown: str | None = None,
             example: str = "", metavar: str | None = None, secret: bool = False, factory=None):
    """A field of AppConfig. kind: text, url (http/https), dburl (DB_SCHEMES), bool, int, float, choice (DEVICES), list.
    shown: the default as the README and --help say it (when the value itself says little)."""
    meta = dict(help=help, flag=flag, env=env, kind=kind, low=low, high=high, low_open=low_open, shown=shown,
                example=example, metavar=metavar, secret=secret)
    if factory is not None:
        return field(default_factory=factory, repr=not secret, metadata=meta)
    return field(default=default, repr=not secret, metadata=meta)


@dataclass(frozen=True)
class AppConfig:
    """The operator's settings (never a user's). Flags win over the environment, the
    environment over the defaults. Fields marked wave 3 are read but not used yet."""

    host: str = _setting("127.0.0.1", flag="--host", env="GRADIO_SERVER_NAME", metavar="ADDRESS",
                         help="address the web server listens on (0.0.0.0: every network interface)")
    port: int = _setting(7860, flag="--port", env="GRADIO_SERVER_PORT", kind="int", low=1, high=65535,
                         metavar="N", help="port of the web server")
    share: bool = _setting(False, flag="--share", kind="bool", help="create a public gradio.live link")
    password: str = _setting("", env="LLM_PLAYGROUND_PASSWORD", secret=True, shown="unset: no login",
                             help="require a login with this password")
    user: str = _setting("student", env="LLM_PLAYGROUND_USER", help="the login name when a password is set")
    device: str = _setting("auto", flag="--device", kind="choice",
                           help="where models run: auto (cuda, else mps, else cpu), cpu, cuda or mps")
    offline: bool = _setting(False, flag="--offline", kind="bool", help="never use the Hub; embedded models only")
    hub_offline: bool = _setting(False, env="HF_HUB_OFFLINE", kind="bool",
                                 help="set (1/true/yes/on): offline as with --offline; unset: the app "
                                      "checks once at start whether huggingface.co answers")
    cache_gb: float | None = _setting(None, flag="--cache-gb", env="LLM_PLAYGROUND_CACHE_GB", kind="float",
                                      low=0, high=MAX_CACHE_GB, low_open=True, metavar="GIB",
                                      shown="half the free RAM, or 80% of a GPU's free memory",
                                      help="model cache budget in GiB")
    train_minutes: float = _setting(DEFAULT_TRAIN_MINUTES, flag="--train-minutes", env="LLM_PLAYGROUND_TRAIN_MINUTES",
                                    kind="float", low=0, high=MAX_TRAIN_MINUTES, low_open=True, metavar="N",
                                    help="wall-time cap of one training in minutes (LoRA, SFT, preference tuning)")
    openai_url: str = _setting("", flag="--openai-url", env="LLM_PLAYGROUND_OPENAI_URL", kind="url", metavar="URL",
                               example="http://127.0.0.1:8000/v1", shown="in-process",
                               help="an OpenAI-compatible server (e.g. vLLM: scripts/serve_vllm.sh) that answers "
                                    "the text-generation paths, e.g. http://127.0.0.1:8000/v1")
    openai_api_key: str = _setting("", env="LLM_PLAYGROUND_OPENAI_API_KEY", secret=True, shown="unset",
                                   help="bearer token for that server")
    openai_fallback: bool = _setting(False, flag="--openai-fallback", env="LLM_PLAYGROUND_OPENAI_FALLBACK", kind="bool",
                                     help="run in-process while that server is down (else its calls fail with an error naming it)")
    openai_top_logprobs: int = _setting(20, env="LLM_PLAYGROUND_OPENAI_TOP_LOGPROBS", kind="int", low=1, high=100,
                                        help="logprobs per position the server returns (vLLM's --max-logprobs)")
    qdrant_url: str = _setting("", env="LLM_PLAYGROUND_QDRANT_URL", kind="url", example="http://127.0.0.1:6333",
                               shown="in the app's process",
                               help="a Qdrant server or cluster for the Retrieval tab's vectors")
    qdrant_api_key: str = _setting("", env="LLM_PLAYGROUND_QDRANT_API_KEY", secret=True, shown="unset",
                                   help="API key of that Qdrant server")
    served_files_gb: float = _setting(1.0, flag="--served-files-gb", env="LLM_PLAYGROUND_SERVED_FILES_GB",
                                      kind="float", low=0, high=MAX_CACHE_GB, low_open=True, metavar="GIB",
                                      help="disk budget in GiB of Gradio's cache of the files the app serves "
                                           "(pictures, downloads, uploads): past it the oldest are removed, and any "
                                           "older than two hours")
    gradio_temp_dir: str = _setting("", env="GRADIO_TEMP_DIR", shown="the system's temp folder",
                                    help="where the app makes the folder of that cache (Gradio's own variable)")
    home: str = _setting(factory=default_home, env="LLM_PLAYGROUND_HOME", shown="~/.cache/llm-playground",
                         help="folder for files the app derives (float copies of GGUF weights)")
    zero_gpu: bool = _setting(False, env="SPACES_ZERO_GPU", kind="bool",
                              help="set by a ZeroGPU Space: each model call gets a GPU (spaces.GPU)")
    class_db: str | None = _setting(None, flag="--class-db", env="LLM_PLAYGROUND_CLASS_DB", metavar="URL", kind="dburl",
                                    shown="SQLite file classroom.sqlite3 in the home folder",
                                    example="postgresql://USER:PASSWORD@HOST:5432/DATABASE", secret=True,
                                    help="the Class tab's database: sqlite:///FILE, or postgresql://USER:PASSWORD@HOST"
                                         ":PORT/DATABASE so that several app processes (replicas) share its rooms")
    models: tuple[str, ...] = _setting((), flag="--model", env="LLM_PLAYGROUND_MODELS", kind="list", metavar="MODEL",
                                       shown="none",
                                       help="a model to add: [ROLE=]SOURCE, ROLE one of causal-lm (the default), "
                                            "pair (BASE+INSTRUCT), encoder, tokenizer; SOURCE a Hub id (owner/name"
                                            "@revision), a folder save_pretrained wrote, or a .gguf file. The flag "
                                            "once per model, or comma-separated in the variable (README: Use your "
                                            "own model)")
    default_model: str = _setting("", flag="--default-model", env="LLM_PLAYGROUND_DEFAULT_MODEL", metavar="KEY",
                                  shown="the embedded SmolLM2-135M-Instruct",
                                  help="the causal LM the pickers start on: a registry key, e.g. smollm2-1.7b-instruct "
                                       "on a GPU Space or own-NAME for a model added with --model")

    @property
    def class_db_url(self) -> str:
        """class_db, or unset: a SQLite file in the home folder."""
        return self.class_db or f"sqlite:///{Path(self.home) / 'classroom.sqlite3'}"

    @classmethod
    def from_sources(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> "AppConfig":
        """The settings from `argv` (default sys.argv[1:]), then `environ` (default this process's
        environment; an empty variable counts as unset), then the defaults. A bad value raises
        UserInputError naming the flag or variable; a bad flag exits as argparse does."""
        args = vars(build_parser().parse_args(argv))
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            meta, given = f.metadata, args.get(f.name)
            if given is not None:
                values[f.name] = _convert(f.name, meta["flag"], given)
            elif meta["env"] and environ.get(meta["env"], ""):
                values[f.name] = _convert(f.name, meta["env"], environ[meta["env"]])
        return cls(**values)


def _convert(name: str, source: str, raw):
    """One raw value (a flag's or a variable's) as the field `name` holds it."""
    meta = AppConfig.__dataclass_fields__[name].metadata
    kind = meta["kind"]
    if kind == "bool":
        return truthy(raw)
    if kind in ("int", "float"):
        return ranged_number(source, raw, meta["low"], meta["high"], integer=kind == "int", low_open=meta["low_open"])
    if kind == "list":
        items = raw if isinstance(raw, list) else raw.split(",")
        return tuple(item.strip() for item in items if item.strip())
    if kind == "choice" and raw not in DEVICES:
        raise UserInputError(f"{source} = {raw!r} is not one of {', '.join(DEVICES)}.")
    if kind == "dburl" and not raw.strip().startswith(DB_SCHEMES):
        raise UserInputError(f"{source} must start with one of {', '.join(DB_SCHEMES)}, e.g. {meta['example']}")
    if kind == "dburl":
        return raw.strip()
    if kind == "url":
        raw = raw.strip()
        if raw and not raw.startswith(("http://", "https://")):
            raise UserInputError(f"{source} = {raw!r} must start with http:// or https://, e.g. {meta['example']}")
    return raw


def _shown_default(f) -> str:
    meta = f.metadata
    if meta["shown"]:
        return meta["shown"]
    default = f.default
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"{default:g}" if isinstance(default, float) else str(default)


def build_parser() -> argparse.ArgumentParser:
    """app.py's command line, made from AppConfig's fields. Every flag defaults to None
    ("not given"), so from_sources can fall back to the environment."""
    p = argparse.ArgumentParser(prog="app.py", description="LLM Playground. Flags win over environment "
                                "variables, and those over the defaults.")
    for f in fields(AppConfig):
        meta = f.metadata
        if not meta["flag"]:
            continue
        more = f"default: {_shown_default(f)}" + (f"; environment: {meta['env']}" if meta["env"] else "")
        kw = dict(dest=f.name, default=None, help=f"{meta['help']} ({more})".replace("%", "%%"))
        if meta["kind"] == "bool":
            kw["action"] = "store_true"
        elif meta["kind"] == "list":
            kw.update(action="append", metavar=meta["metavar"])
        elif meta["kind"] == "choice":
            kw["choices"] = DEVICES
        else:
            kw["metavar"] = meta["metavar"]
        p.add_argument(meta["flag"], **kw)
    return p


def flag_table() -> str:
    """The README's table of settings (scripts/update_readme.py writes it between the
    <!-- flags:start --> and <!-- flags:end --> markers; tests/test_config.py checks it)."""
    rows = ["| flag | environment variable | default | meaning |", "|---|---|---|---|"]
    for f in fields(AppConfig):
        meta = f.metadata
        flag = f"`{meta['flag']}`" if meta["flag"] else "-"
        if meta["flag"] and meta["metavar"]:
            flag = f"`{meta['flag']} {meta['metavar']}`"
        env = f"`{meta['env']}`" if meta["env"] else "-"
        rows.append(f"| {flag} | {env} | {_shown_default(f)} | {meta['help']} |")
    return "\n".join(rows)


# --- the process environment, written for libraries that read their settings from it -------

_ENV_LOCK = threading.Lock()


def child_env(**overrides: str) -> dict[str, str]:
    """A copy of this process's environment with `overrides` set: the environment of a child
    process the app starts (engine/serving/local.py's vLLM server)."""
    return {**os.environ, **overrides}


@contextmanager
def temporary_env(name: str, value: str) -> Iterator[None]:
    """Set one variable of this process's environment for the block, then put back what was
    there. One block at a time: a library that reads its setting from the environment
    (tiktoken's TIKTOKEN_CACHE_DIR) sees the value meant for it."""
    with _ENV_LOCK:
        old = os.environ.get(name)
        os.environ[name] = value
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def use_gradio_cache(folder) -> None:
    """From here on Gradio keeps the files it serves in `folder` (it reads GRADIO_TEMP_DIR when a
    component or the web app is made): call it before the app is built."""
    os.environ["GRADIO_TEMP_DIR"] = str(folder)


def mark_offline() -> None:
    """From here on nothing in this process should try to reach the Hub: huggingface_hub and
    transformers read these variables."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


__all__ = ["AppConfig", "truthy", "ranged_number", "default_home", "build_parser", "flag_table",
           "child_env", "temporary_env", "use_gradio_cache", "mark_offline", "DEFAULT_TRAIN_MINUTES", "MAX_TRAIN_MINUTES"]
