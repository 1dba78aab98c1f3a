"""The text a model is pre-trained on: the bundled corpus or an upload, split into training and
validation text, and the self-supervised window: labels are the input ids shifted by one."""
from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserInputError, check_range, check_text, read_text_upload
from ..core.registry import ASSETS

CORPUS = ASSETS / "pretraining" / "corpus.txt.gz"
CORPUS_NAME = "Python 3.11 documentation, prose (PSF License v2)"
MAX_UPLOAD_BYTES = 5_000_000  # an uploaded .txt
MIN_CHARS = 2_000  # less text than this cannot fill a validation split and a batch


@functools.lru_cache(maxsize=1)
def bundled() -> str:
    """The bundled corpus (2.6 MB of English prose; assets/pretraining/SOURCE.md says where from)."""
    if not CORPUS.exists():
        raise UserInputError(f"{CORPUS} is missing: rebuild it with `python scripts/build_pretraining_corpus.py`.")
    return gzip.decompress(CORPUS.read_bytes()).decode("ascii")


def check_corpus(text) -> str:
    """User text as a corpus: at least MIN_CHARS characters, at most MAX_UPLOAD_BYTES."""
    text = check_text("corpus", text, max_chars=MAX_UPLOAD_BYTES)
    if len(text.strip()) < MIN_CHARS:
        raise UserInputError(f"the corpus has {len(text.strip()):,} characters: give at least {MIN_CHARS:,} "
                             f"(and at most {MAX_UPLOAD_BYTES:,}).")
    return text


def read_upload(path: str | Path) -> str:
    """An uploaded .txt file (Gradio's temporary copy; the path is never user text)."""
    return check_corpus(read_text_upload(path, ("txt",), MAX_UPLOAD_BYTES))


def split(text: str, val_share: float) -> tuple[str, str]:
    """(training text, validation text): the last `val_share` of the text, cut at a paragraph break
    when one is near, is held out. The model never trains on it."""
    val_share = check_range("validation share", val_share, 0.01, 0.5)
    cut = int(len(text) * (1.0 - val_share))
    para = text.find("\n\n", cut)
    if 0 < para < cut + 2_000:
        cut = para + 2
    return text[:cut], text[cut:]


@dataclass(frozen=True)
class Window:
    """One training example: `context` input ids and the labels the loss compares with."""

    pieces: list  # the text of each input token
    input_ids: list
    labels: list  # input_ids[1:] + the next id: each position's label is the token after it
    label_pieces: list


def window(ids: list[int], start: int, context: int, piece) -> Window:
    """The window at `start` of a token stream: context + 1 ids give inputs ids[:-1] and labels ids[1:]."""
    start = check_range("window start", start, 0, max(0, len(ids) - context - 1), integer=True)
    chunk = ids[start:start + context + 1]  # context + 1 ids
    inputs, labels = chunk[:-1], chunk[1:]
    return Window([piece(i) for i in inputs], inputs, labels, [piece(i) for i in labels])


def counts(n_train: int, n_val: int, steps: int, batch: int, context: int) -> dict:
    """Dataset tokens vs training tokens: how many times the run reads its training set (epochs)."""
    seen = steps * batch * context
    return dict(train_tokens=n_train, val_tokens=n_val, training_tokens=seen,
                epochs=seen / n_train if n_train else float("nan"))
