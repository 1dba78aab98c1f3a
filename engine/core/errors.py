"""Errors the user can fix. The UI turns them into gr.Error; the engine never imports gradio."""


class UserInputError(ValueError):
    """Bad input from a user: the message names the value and the valid range or choices."""


class ModelUnavailableError(RuntimeError):
    """A model cannot be loaded here (package missing, Hub unreachable); the message names the fix."""


def check_range(name: str, value, lo, hi, *, integer: bool = False):
    """Return value as a number inside [lo, hi] or raise UserInputError naming both."""
    try:
        num = float(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{name} must be a number between {lo} and {hi}, got {value!r}.") from None
    if num != num or num in (float("inf"), float("-inf")):
        raise UserInputError(f"{name} must be a number between {lo} and {hi}, got {value!r}.")
    if integer and num != int(num):
        raise UserInputError(f"{name} must be a whole number between {lo} and {hi}, got {value!r}.")
    if not lo <= num <= hi:
        raise UserInputError(f"{name} = {value!r} is out of range: valid values are {lo} to {hi}.")
    return int(num) if integer else num


def check_choice(name: str, value, choices):
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise UserInputError(f"{name} = {value!r} is not a valid choice: choose one of {shown}.")
    return value


def check_text(name: str, text, *, max_chars: int = 200_000, allow_empty: bool = False) -> str:
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
    return text
