"""The three tokenizers of the lesson, each a `tokenizers.Tokenizer` so that the model folder can
carry it (transformers' PreTrainedTokenizerFast wraps it):

    char  one token per character of the training text (fewest symbols, longest sequences)
    bpe   byte-level BPE trained here on the training text with `tokenizers`, at the student's size
    gpt2  GPT-2's own BPE (50,257 tokens), as the Tokens tab shows it: a big vocabulary, short sequences
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

from ..core.errors import UserInputError, check_choice, check_range
from ..core.registry import ASSETS

KINDS = ("char", "bpe", "gpt2")
KIND_LABELS = {"char": "characters", "bpe": "BPE trained here", "gpt2": "GPT-2's BPE (existing)"}
MIN_BPE, MAX_BPE = 300, 8192  # byte-level BPE starts from 256 byte symbols
UNK = "<unk>"
SHOW_MERGES = 24
GPT2_SIZE = 50257


@dataclass
class Vocab:
    kind: str
    tokenizer: object  # tokenizers.Tokenizer
    merges: list = field(default_factory=list)  # BPE: the first merges learned, in order, as (left, right)

    @property
    def size(self) -> int:
        return self.tokenizer.get_vocab_size()

    @property
    def label(self) -> str:
        return f"{KIND_LABELS[self.kind]}, {self.size:,} tokens"

    def encode(self, text: str) -> list[int]:
        if self.kind == "char":  # a table look-up: 10x faster than the tokenizer on one 2.6 MB "word"
            table = self.tokenizer.get_vocab()
            return [table.get(c, 0) for c in text]
        return self.tokenizer.encode(text).ids

    def encode_tensor(self, text: str):
        """The ids of a whole corpus as a (n,) long tensor; characters of ASCII text by a table (0.05 s for 2.6 MB)."""
        import numpy as np
        import torch

        if self.kind == "char" and text.isascii():
            lut = np.zeros(128, dtype=np.int64)
            for c, i in self.tokenizer.get_vocab().items():
                if len(c) == 1 and ord(c) < 128:
                    lut[ord(c)] = i
            return torch.from_numpy(lut[np.frombuffer(text.encode("ascii"), dtype=np.uint8)])
        return torch.tensor(self.encode(text), dtype=torch.long)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def piece(self, tid: int) -> str:
        """A token as the lesson shows it: byte-level marks as · (space) and ↵ (newline)."""
        tok = self.tokenizer.id_to_token(tid) or "?"
        return tok.replace("Ġ", "·").replace("Ċ", "↵") if self.kind != "char" else tok.replace(" ", "·").replace("\n", "↵")


def char_vocab(text: str) -> Vocab:
    """One token per distinct character of `text` (sorted), plus <unk> for any other."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    chars = sorted(set(text))
    vocab = {UNK: 0, **{c: i + 1 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("(?m)."), behavior="isolated")  # every character alone
    tok.decoder = decoders.Fuse()
    return Vocab("char", tok)


@functools.lru_cache(maxsize=2)
def char_count(text: str) -> int:
    """The character tokenizer's vocabulary size for `text` (its distinct characters + <unk>)."""
    return len(set(text)) + 1


def bpe_vocab(text: str, size: int) -> Vocab:
    """A byte-level BPE trained on `text` up to `size` tokens; its merges in the order learned."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    size = check_range("BPE vocabulary size", size, MIN_BPE, MAX_BPE, integer=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    paragraphs = text.split("\n\n")
    tok.train_from_iterator((p + "\n\n" for p in paragraphs), trainer=trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
    return Vocab("bpe", tok, pairs)


@functools.lru_cache(maxsize=1)
def _gpt2():
    from ..tokens import read_tokenizer_folder

    return read_tokenizer_folder(ASSETS / "tokenizers" / "gpt2")[0]


def gpt2_vocab() -> Vocab:
    """GPT-2's tokenizer from the Tokens tab's assets (shared and never changed)."""
    return Vocab("gpt2", _gpt2())


def build(kind: str, text: str, bpe_size: int = 1024) -> Vocab:
    """The tokenizer of `kind` for the training text `text`."""
    check_choice("tokenizer", kind, KINDS)
    if kind == "char":
        return char_vocab(text)
    if kind == "bpe":
        return bpe_vocab(text, bpe_size)
    return gpt2_vocab()


def show_merges(v: Vocab, n: int = SHOW_MERGES) -> list[tuple[int, str, str, str]]:
    """The first `n` merges as (rank, left, right, merged), with · for a space."""
    out = []
    for rank, (a, b) in enumerate(v.merges[:n], 1):
        a2, b2 = (x.replace("Ġ", "·").replace("Ċ", "↵") for x in (a, b))
        out.append((rank, a2, b2, a2 + b2))
    return out


def compare(text: str, vocabs: list[Vocab]) -> list[dict]:
    """What each tokenizer does to the same text: vocabulary size, tokens, characters per token."""
    rows = []
    for v in vocabs:
        n = len(v.encode(text))
        if n == 0:
            raise UserInputError("the sample text is empty: give some text to compare the tokenizers on.")
        rows.append(dict(tokenizer=v.label, vocab=v.size, tokens=n, chars_per_token=len(text) / n))
    return rows
