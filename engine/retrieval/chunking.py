"""Cutting documents into chunks, measured in tokens of the embedding model's tokenizer.

Three strategies:
- fixed tokens: windows of `size` tokens, each starting `size - overlap` tokens after the last,
  so consecutive chunks share exactly `overlap` tokens and together cover every token;
- sentences / paragraphs: whole sentences (or paragraphs) packed into a chunk while it stays
  within `size` tokens; the next chunk starts with the last units of the previous one that fit
  in `overlap` tokens. A unit longer than `size` is cut into fixed-token windows.

A chunk keeps its character span in the document (start, end), so the chunk view can paint it
over the original text, and its token span (token_start, token_end).
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from ..core.errors import UserInputError
from ..core.settings import knob, validate

STRATEGIES = ("fixed tokens", "sentences", "paragraphs")


@dataclass
class ChunkSettings:
    size: int = knob(128, 16, 512, "Tokens per chunk (MiniLM's tokenizer). MiniLM reads at most 256 "
                     "tokens: a longer chunk is cut at 256 when it is embedded", step=16, label="chunk size (tokens)")
    overlap: int = knob(32, 0, 256, "Tokens that consecutive chunks share (less than the chunk size)",
                        step=8, label="overlap (tokens)")
    strategy: str = knob("fixed tokens", help="Where chunks may end: any token, a sentence end, "
                         "or a paragraph end", choices=STRATEGIES)

    def __post_init__(self):
        validate(self)  # the ranges first: a value out of range is named as such
        if self.overlap >= self.size:
            raise UserInputError(f"overlap = {self.overlap} must be smaller than the chunk size ({self.size}): "
                                 f"valid values are 0 to {self.size - 1}.")

    @property
    def key(self) -> tuple:
        return (self.size, self.overlap, self.strategy)


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    index: int  # position within its document
    start: int  # character span in the document
    end: int
    token_start: int  # token span in the document's tokens
    token_end: int
    text: str

    @property
    def n_tokens(self) -> int:
        return self.token_end - self.token_start


@dataclass(frozen=True)
class Tokenized:
    """A document's tokens as character spans (no special tokens)."""

    text: str
    offsets: list[tuple[int, int]]
    starts: list[int]  # offsets[i][0], for bisecting

    def tokens_in(self, start: int, end: int) -> tuple[int, int]:
        """The token span [a, b) of the tokens that start inside characters [start, end)."""
        return bisect.bisect_left(self.starts, start), bisect.bisect_left(self.starts, end)


def tokenize(tokenizer, text: str) -> Tokenized:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    return Tokenized(text, offsets, [a for a, _ in offsets])


def _windows(a: int, b: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Token windows over [a, b): size tokens each, step size - overlap, the last one ends at b."""
    if b <= a:
        return []
    out, step, s = [], size - overlap, a
    while True:
        e = min(s + size, b)
        out.append((s, e))
        if e == b:
            return out
        s += step


SENTENCE_END = re.compile(r"(?<=[.!?:])\s+(?=[\"'“‘(\[A-Z0-9>])|\n\s*\n|\n(?=[-*#>] )")
PARAGRAPH_END = re.compile(r"\n\s*\n")


def _units(text: str, pattern: re.Pattern) -> list[tuple[int, int]]:
    """Character spans of the text's sentences or paragraphs (whitespace between them left out)."""
    spans, pos = [], 0
    for m in pattern.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


def _pack(units: list[tuple[int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    """Token spans of chunks made of whole units (token spans, in order, non-empty): as many as
    fit in size; the next chunk repeats the trailing units that fit in overlap."""
    out, i = [], 0
    while i < len(units):
        j = i
        while j + 1 < len(units) and units[j + 1][1] - units[i][0] <= size:
            j += 1
        out.append((units[i][0], units[j][1]))
        if j == len(units) - 1:
            break
        k = j + 1
        while k - 1 > i and units[j][1] - units[k - 1][0] <= overlap:
            k -= 1
        i = k
    return out


def chunk_document(tokenized: Tokenized, doc_id: str, settings: ChunkSettings) -> list[Chunk]:
    text, offsets = tokenized.text, tokenized.offsets
    n = len(offsets)
    if settings.strategy == "fixed tokens":
        spans = _windows(0, n, settings.size, settings.overlap)
    else:
        pattern = SENTENCE_END if settings.strategy == "sentences" else PARAGRAPH_END
        units = []
        for a, b in _units(text, pattern):
            ta, tb = tokenized.tokens_in(a, b)
            if tb - ta <= settings.size:
                if tb > ta:
                    units.append((ta, tb))
            else:  # a sentence or paragraph longer than a chunk: cut it into token windows
                units.extend(_windows(ta, tb, settings.size, 0))
        spans = _pack(units, settings.size, settings.overlap)
    chunks = []
    for i, (ta, tb) in enumerate(spans):
        start, end = offsets[ta][0], offsets[tb - 1][1]
        chunks.append(Chunk(doc_id, i, start, end, ta, tb, text[start:end]))
    return chunks


def chunk_documents(tokenizer, docs, settings: ChunkSettings) -> list[Chunk]:
    out = []
    for d in docs:
        out.extend(chunk_document(tokenize(tokenizer, d.text), d.doc_id, settings))
    return out
