"""The one interface every tokenizer has (Tok), the display piece of an id, and the result of
tokenizing a text. Loaders live in loading.py (real tokenizers) and toys.py (teaching toys)."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import UserInputError
from ..core.settings import knob


MAX_CHARS = 200_000  # a 100 kB paste fits, even in a script that takes 3 bytes a character
PAD_SIDES = ("right", "left")
PAD_TO = ("longest", "max_length")


@dataclass
class TokensSettings:
    max_render: int = knob(800, 50, 5000, "Colour at most this many tokens per tokenizer "
                           "(counts stay exact for any length)", step=50, label="tokens shown")
    max_length: int = knob(12, 1, 512, "Truncate (and pad) every sentence to this many tokens",
                           label="max_length")
    padding_side: str = knob("right", help="Where the pad tokens go", choices=PAD_SIDES, label="padding side")


# ---------------------------------------------------------------------------------------------
# The common interface
# ---------------------------------------------------------------------------------------------
class Tok:
    """One tokenizer. ids only: encode/decode; the rest is for display. Read-only after load."""

    kind = "?"

    def __init__(self, key: str, title: str, algorithm: str, vocab_size: int, lossless: bool,
                 specials: dict[str, int], note: str = ""):
        self.key, self.title, self.algorithm = key, title, algorithm
        self.vocab_size, self.lossless, self.note = vocab_size, lossless, note
        self.specials = specials  # token text -> id
        self.special_ids = frozenset(specials.values())
        self.pad_id: int | None = None
        self.pad_note = ""
        self.chat_template: str | None = None
        self.piece_memo: dict[int, "Piece"] = {}  # id -> display piece; at most vocab_size entries
        self.nbytes = 64 * vocab_size if vocab_size < 10**6 else 1 << 16  # rough, for the cache

    # required
    def encode(self, text: str) -> list[int]:  # no BOS/CLS added; special tokens typed in text match
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def piece_bytes(self, tid: int) -> bytes:
        """The bytes a token stands for (special tokens: their text)."""
        raise NotImplementedError

    # optional
    def piece_label(self, tid: int) -> str | None:
        """A label to show instead of the bytes (WordPiece '##ing', special tokens)."""
        return None

    def for_model(self, text: str, max_length: int | None = None) -> tuple[list[int], list[int]]:
        """The ids the model's own pipeline feeds it: with what it adds around a sentence (BOS,
        [CLS] ... [SEP]); truncation cuts text tokens so the added ones survive, as transformers
        does. Returns (ids, special_tokens_mask)."""
        ids = self.encode(text)
        if max_length is not None:
            ids = ids[:max_length]
        return ids, [1 if i in self.special_ids else 0 for i in ids]

    def added_count(self) -> int:
        return 0

    def wrapping(self, chat: bool = False) -> tuple[list[int], list[int]] | None:
        """The ids the model is given before and after a text's own ids: what the tokenizer's
        pipeline adds (BOS, [CLS] ... [SEP]: for_model), or with chat=True the chat template
        around a user message. Read once per tokenizer from a probe word; None without a chat
        template, or where the probe's ids are not found whole inside the wrapped ones."""
        memo = self.__dict__.setdefault("_wrap_memo", {})
        if chat not in memo:
            memo[chat] = self._wrapping(chat)
        return memo[chat]

    def _wrapping(self, chat: bool):
        probe = "Hello"
        try:
            if chat:
                if not self.chat_template:
                    return None
                full, body = self.chat_ids([{"role": "user", "content": probe}]), self.plain_ids(probe)
            else:
                full, body = list(self.for_model(probe)[0]), self.encode(probe)
        except UserInputError:
            return None
        for i in range(len(full) - len(body) + 1):
            if full[i:i + len(body)] == body:
                return full[:i], full[i + len(body):]
        return None

    def char_spans(self, text: str, ids: list[int]) -> list[tuple[int, int]] | None:
        """(start, end) character offsets in text of each id, or None where the pieces do not
        spell the text (lower-casing, <unk>). Byte pieces inside one character get that
        character. The default reads the pieces' bytes; SentencePiece's leading "▁" is skipped."""
        raw = text.encode("utf-8")
        parts = [self.piece_bytes(i) for i in ids]
        joined = b"".join(parts)
        shift = 0
        if joined != raw:
            if joined == b" " + raw:
                shift = 1
            else:
                return None
        starts = []  # byte offset of each character
        pos = 0
        for ch in text:
            starts.append(pos)
            pos += len(ch.encode("utf-8"))
        import bisect

        def char_at(b: int) -> int:  # the character that byte b falls in
            return max(bisect.bisect_right(starts, b) - 1, 0)

        spans, pos = [], -shift
        for part in parts:
            a, pos = pos, pos + len(part)
            lo = char_at(max(a, 0))
            hi = len(text) if pos >= len(raw) else max(char_at(pos - 1) + 1, lo)
            spans.append((lo, hi) if pos > 0 else (0, 0))
        return spans

    def fim(self) -> tuple[str, str, str] | None:
        """(prefix, suffix, middle) sentinel texts of a fill-in-the-middle tokenizer."""
        for names in (("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
                      ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")):
            if all(n in self.specials for n in names):
                return names
        return None

    def render_chat(self, messages: list[dict]) -> str:
        raise UserInputError(f"{self.title} has no chat template: choose one of the instruct tokenizers.")

    def chat_ids(self, messages: list[dict]) -> list[int]:
        """The ids the model is given for render_chat's text: a special-token string typed in a
        message stays plain text (no forged turn)."""
        raise UserInputError(f"{self.title} has no chat template: choose one of the instruct tokenizers.")

    def plain_ids(self, text: str) -> list[int]:
        """A message's text alone, read as chat_ids reads it (special-token strings as text)."""
        raise UserInputError(f"{self.title} has no chat template: choose one of the instruct tokenizers.")


@dataclass(frozen=True)
class Piece:
    id: int
    text: str  # what to print (bytes shown as hex when they are not whole UTF-8 characters)
    kind: str  # "text" | "bytes" | "special"


def piece_of(tok: Tok, tid: int) -> Piece:
    """The display piece of one id (memoized per tokenizer: a pure function of the id)."""
    piece = tok.piece_memo.get(tid)
    if piece is None:
        piece = tok.piece_memo.setdefault(tid, _piece_of(tok, tid))
    return piece


def _piece_of(tok: Tok, tid: int) -> Piece:
    label = tok.piece_label(tid)
    if tid in tok.special_ids:
        return Piece(tid, label or tok.piece_bytes(tid).decode("utf-8", "replace"), "special")
    if label is not None:
        return Piece(tid, label, "text")
    raw = tok.piece_bytes(tid)
    try:
        return Piece(tid, raw.decode("utf-8"), "text")
    except UnicodeDecodeError:
        return Piece(tid, " ".join(f"{b:02X}" for b in raw), "bytes")


@dataclass
class Tokenized:
    key: str
    title: str
    algorithm: str
    ids: list[int]
    pieces: list[Piece]  # the first `shown` tokens only
    n_chars: int
    n_bytes: int
    vocab_size: int
    specials: list[str]
    lossless: bool
    seconds: float = 0.0
    note: str = ""
    spans: list[tuple[int, int]] | None = None  # character span of each shown piece, if known
    added: tuple[list[int], list[int]] = ([], [])  # ids the model gets before / after the text's (BOS, ...)
    chat_wrap: tuple[list[int], list[int]] | None = None  # ids of the chat template around a user message
    added_pieces: tuple[list[Piece], list[Piece]] = ([], [])  # `added` as display pieces

    @property
    def model_tokens(self) -> int:
        """Tokens the model receives for the text: its ids + those the tokenizer adds."""
        return len(self.added[0]) + self.n_tokens + len(self.added[1])

    @property
    def chat_tokens(self) -> int | None:
        """Tokens of the text sent as one user message in the chat template (None: no template)."""
        return None if self.chat_wrap is None else len(self.chat_wrap[0]) + self.n_tokens + len(self.chat_wrap[1])

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def shown(self) -> int:
        return len(self.pieces)

    def stats(self) -> dict:
        n = max(self.n_tokens, 1)
        return dict(tokenizer=self.title, key=self.key, algorithm=self.algorithm, tokens=self.n_tokens,
                    chars_per_token=round(self.n_chars / n, 2), bytes_per_token=round(self.n_bytes / n, 2),
                    vocab_size=self.vocab_size, special_tokens=", ".join(self.specials[:8])
                    + (f" (+{len(self.specials) - 8} more)" if len(self.specials) > 8 else ""),
                    lossless=self.lossless, ms=round(self.seconds * 1000, 1), model_tokens=self.model_tokens,
                    added=[p.text for p in self.added_pieces[0] + self.added_pieces[1]], chat_tokens=self.chat_tokens)


@dataclass
class RoundTrip:
    key: str
    title: str
    decoded: str
    identical: bool
    html: str


@dataclass
class Batch:
    key: str
    title: str
    sentences: list[str]
    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    special_mask: list[list[int]]  # 1 where a special token sits (added or padding)
    pad_id: int
    padding_side: str
    pieces: list[list[Piece]]
    note: str = ""

    def as_dict(self) -> dict:
        return dict(tokenizer=self.key, padding_side=self.padding_side, pad_token_id=self.pad_id,
                    input_ids=self.input_ids, attention_mask=self.attention_mask,
                    special_tokens_mask=self.special_mask, note=self.note)
