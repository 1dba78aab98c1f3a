"""Errors the user can fix, and the checks every user input goes through (numbers, choices,
text, uploaded files, JSON). The UI turns UserInputError into gr.Error; the engine never imports
gradio."""
import json
import re
import sys

MAX_JSON_DEPTH = 20  # nesting levels of [ and { in uploaded JSON (peft's adapter config uses 2)


class UserInputError(ValueError):
    """Bad input from a user: the message names the value and the valid range or choices."""


class ModelUnavailableError(RuntimeError):
    """A model cannot be loaded here (package missing, Hub unreachable); the message names the fix."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True only for the exception types that mean memory ran out: MemoryError and torch's
    OutOfMemoryError (CUDA). Decided by type, never by the message, whose text a user controls."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")  # a torch error can only exist once torch is imported
    if torch is None:
        return False
    types = tuple({t for t in (getattr(torch, "OutOfMemoryError", None),
                               getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None))
                   if isinstance(t, type)})
    return bool(types) and isinstance(exc, types)


def check_range(name: str, value, lo, hi, *, integer: bool = False):
    """Return value as a number inside [lo, hi] or raise UserInputError naming both."""
    if isinstance(value, str) and _SURROGATE.search(value):  # named by position, as in any text
        check_text(name, value, max_chars=len(value), allow_empty=True)
    try:
        num = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int of 400 digits
        raise UserInputError(f"{name} must be a number between {lo} and {hi}, got {short_repr(value)}.") from None
    if num != num or num in (float("inf"), float("-inf")):
        raise UserInputError(f"{name} must be a number between {lo} and {hi}, got {value!r}.")
    if integer and num != int(num):
        raise UserInputError(f"{name} must be a whole number between {lo} and {hi}, got {value!r}.")
    if not lo <= num <= hi:
        raise UserInputError(f"{name} = {value!r} is out of range: valid values are {lo} to {hi}.")
    return int(num) if integer else num


def short_repr(value, limit: int = 80) -> str:
    """repr of a user value, cut so that a message stays short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_choice(name: str, value, choices):
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise UserInputError(f"{name} = {value!r} is not a valid choice: choose one of {shown}.")
    return value


# A lone UTF-16 surrogate (a client can send "\ud800" in JSON) is not text: it cannot be encoded
# as UTF-8, so tokenizers, regexes over bytes and the JSON reply all fail on it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(name: str, text, *, max_chars: int = 200_000, allow_empty: bool = False) -> str:
    """Every text a user sends goes through here: a str, not empty (unless allowed), at most
    max_chars characters, and valid Unicode (no lone surrogates)."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise UserInputError(f"{name} must be text, got {type(text).__name__}.")
    if not allow_empty and not text.strip():
        raise UserInputError(f"{name} is empty: type some text (1 to {max_chars:,} characters).")
    if len(text) > max_chars:
        raise UserInputError(
            f"{name} is {len(text):,} characters long: the limit is {max_chars:,} characters."
        )
    bad = _SURROGATE.search(text)
    if bad:
        raise UserInputError(
            f"{name} has an invalid character at position {bad.start() + 1} (of {len(text):,}): "
            f"U+{ord(bad.group()):04X} is half of a UTF-16 surrogate pair, not a character. "
            "Remove it, or send the text as valid UTF-8."
        )
    return text


def read_text_upload(path, kinds: tuple[str, ...], max_bytes: int) -> str:
    """The UTF-8 text of an uploaded file (the path is Gradio's temporary copy, never user text):
    its suffix one of `kinds` (e.g. ("txt", "jsonl")), at most max_bytes on disk."""
    from pathlib import Path

    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in kinds:
        shown = " or ".join(f".{k}" for k in kinds)
        raise UserInputError(f"file type .{kind or '(none)'} is not accepted: upload a {shown} file.")
    size = path.stat().st_size
    if size > max_bytes:
        raise UserInputError(f"the file is {size:,} bytes: the limit is {max_bytes:,} bytes.")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UserInputError("the file is not UTF-8 text: save it as UTF-8 and upload it again.") from None


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def parse_json(text: str, what: str, max_depth: int = MAX_JSON_DEPTH):
    """json.loads for user text, after checking how deeply it nests: json recurses once per
    level, so thousands of '[' would end in a RecursionError instead of a message."""
    depth = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub('""', text)):  # brackets outside strings
        depth += 1 if m.group() in "[{" else -1
        if depth > max_depth:
            raise UserInputError(f"{what} nests more than {max_depth} levels of [ ] or {{ }}: "
                                 f"the limit is {max_depth}.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{what} is not valid JSON ({exc.msg}).") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4,300 digits
        raise UserInputError(f"{what} is not valid JSON here ({exc.__class__.__name__}: numbers "
                             "must have fewer than 4,300 digits).") from None
