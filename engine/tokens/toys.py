"""Teaching toys: a word-level, a character-level and a byte-level tokenizer."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from ..core.errors import UserInputError
from .base import Tok


# ---------------------------------------------------------------------------------------------
# Teaching toys: words, characters, bytes
# ---------------------------------------------------------------------------------------------
class ToyTok(Tok):
    """ids 0..2 (3 for words) are <pad>, <bos>, <eos> (and <unk>); for_model wraps in <bos> <eos>."""

    kind = "toy"
    OFFSET = 3

    def __init__(self, **kw):
        super().__init__(**kw)
        self.pad_id = self.specials["<pad>"]

    def piece_label(self, tid):
        return self.names.get(tid)

    @property
    def names(self) -> dict[int, str]:
        return {v: k for k, v in self.specials.items()}

    def added_count(self):
        return 2

    def for_model(self, text, max_length=None):
        body = self.encode(text)
        if max_length is not None:
            body = body[:max(max_length - 2, 0)]
        ids = [self.specials["<bos>"], *body, self.specials["<eos>"]]
        return ids, [1 if i in self.special_ids else 0 for i in ids]


TOY_SPECIALS = {"<pad>": 0, "<bos>": 1, "<eos>": 2}
WORD_RE = re.compile(r"\w+|[^\w\s]")


class WordTok(ToyTok):
    """Splits on spaces and punctuation; a vocabulary of the words seen in a small corpus;
    everything else is <unk>. Spaces are lost, which the round trip shows."""

    def __init__(self, corpus: str, **kw):
        counts = Counter(WORD_RE.findall(corpus))
        specials = {**TOY_SPECIALS, "<unk>": 3}
        words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        self.word_to_id = {w: i + len(specials) for i, w in enumerate(words)}
        self.id_to_word = {i: w for w, i in self.word_to_id.items()}
        super().__init__(specials=specials, vocab_size=len(specials) + len(words), **kw)
        self.unk_id = specials["<unk>"]
        self._names = {v: k for k, v in specials.items()}

    @property
    def names(self):
        return self._names

    def encode(self, text):
        special = {"<pad>", "<bos>", "<eos>", "<unk>"}
        out = []
        for part in re.split(r"(<pad>|<bos>|<eos>|<unk>)", text):
            if part in special:
                out.append(self.specials[part])
            elif part:
                out.extend(self.word_to_id.get(w, self.unk_id) for w in WORD_RE.findall(part))
        return out

    def decode(self, ids):
        return " ".join(self.id_to_word.get(i) or self._names.get(i, "<unk>") for i in ids)

    def piece_bytes(self, tid):
        return (self.id_to_word.get(tid) or self._names.get(tid, "<unk>")).encode()


class CharTok(ToyTok):
    """One token per Unicode character: id = code point + 3. Lossless, but long sequences."""

    def __init__(self, **kw):
        super().__init__(specials=dict(TOY_SPECIALS), vocab_size=0x110000 + 3, **kw)

    def encode(self, text):
        return [ord(c) + 3 for c in text]

    def decode(self, ids):
        return "".join(chr(i - 3) if i >= 3 else "" for i in ids)

    def piece_bytes(self, tid):
        return chr(tid - 3).encode("utf-8", "surrogatepass") if tid >= 3 else self.names[tid].encode()


class ByteTok(ToyTok):
    """One token per UTF-8 byte: id = byte + 3 (as ByT5 does). 259 ids cover every text."""

    def __init__(self, **kw):
        super().__init__(specials=dict(TOY_SPECIALS), vocab_size=256 + 3, **kw)

    def encode(self, text):
        return [b + 3 for b in text.encode("utf-8")]

    def decode(self, ids):
        return bytes(i - 3 for i in ids if 3 <= i < 259).decode("utf-8", errors="replace")

    def piece_bytes(self, tid):
        return bytes([tid - 3]) if 3 <= tid < 259 else self.names[tid].encode()


def load_toy(source, device=None, variant="default", progress=None) -> ToyTok:
    spec = source.spec
    kw = dict(key=spec.key, title=spec.title)
    if spec.key == "toy-word":
        corpus = (Path(source.path) / (source.filename or "corpus.txt")).read_text("utf-8")
        return WordTok(corpus, algorithm="whole words from a 20-line corpus, else <unk>", lossless=False, **kw)
    if spec.key == "toy-char":
        return CharTok(algorithm="one token per character (code point + 3)", lossless=True, **kw)
    if spec.key == "toy-byte":
        return ByteTok(algorithm="one token per UTF-8 byte (byte + 3, as ByT5)", lossless=True, **kw)
    raise UserInputError(f"no toy tokenizer called {spec.key!r}: toy-word, toy-char, toy-byte")
