"""Tokenizers side by side: real ones (tiktoken, Hugging Face `tokenizers`) and teaching toys
behind one small interface, plus what the Tokens tab shows: pieces, ids, stats, the decode
round trip, padded batches with attention masks, chat templates and fill-in-the-middle.

Every tokenizer is a `Tok`, loaded by a registry row (task "tokenizer") through engine.load,
so it is cached once per process and shared read-only. Nothing here mutates a tokenizer after
loading: padding and truncation are done on plain lists, not by switching the backend's state.
"""
from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserInputError, check_choice, check_range, check_text
from .settings import knob

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

    def fim(self) -> tuple[str, str, str] | None:
        """(prefix, suffix, middle) sentinel texts of a fill-in-the-middle tokenizer."""
        for names in (("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
                      ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")):
            if all(n in self.specials for n in names):
                return names
        return None

    def render_chat(self, messages: list[dict]) -> str:
        raise UserInputError(f"{self.title} has no chat template: choose one of the instruct tokenizers.")


# ---------------------------------------------------------------------------------------------
# tiktoken (GPT-4, GPT-4o, Codex)
# ---------------------------------------------------------------------------------------------
_TIKTOKEN_ENV_LOCK = threading.Lock()
# tiktoken caches a file under sha1(its URL); litellm ships them under those names.
TIKTOKEN_FILES = {
    "9b5ad71b2ce5302211f9c61530b329a4922fc6a4": "cl100k_base",
    "fb374d419588a4632f3f557e76b4b70aebbca790": "o200k_base",
    "ec7223a39ce59f226a68acc30dc1af2788490e15": "p50k_base",
}


class TiktokenTok(Tok):
    kind = "tiktoken"

    def __init__(self, enc, **kw):
        super().__init__(**kw)
        self.enc = enc
        eot = enc._special_tokens.get("<|endoftext|>")
        self.pad_id = eot
        self.pad_note = "tiktoken encodings have no pad token: the batch is padded with <|endoftext|>"

    def encode(self, text):
        return self.enc.encode(text, allowed_special="all")

    def decode(self, ids):
        return self.enc.decode(ids)

    def piece_bytes(self, tid):
        return self.enc.decode_single_token_bytes(tid)

    def piece_label(self, tid):
        return self.enc.decode_single_token_bytes(tid).decode() if tid in self.special_ids else None


def load_tiktoken(source, device=None, variant="default", progress=None) -> TiktokenTok:
    """source.path is a folder of tiktoken cache files (named by tiktoken's cache key, as in the
    litellm package); the encoding's own constructor reads them there, checking their sha256."""
    import tiktoken
    import tiktoken_ext.openai_public as public

    name = TIKTOKEN_FILES.get(source.filename or "")
    folder = Path(source.path)
    if name is None:
        raise UserInputError(f"{source.filename!r} is not a known tiktoken file: {sorted(TIKTOKEN_FILES)}")
    if not (folder / (source.filename or "")).exists():
        from .errors import ModelUnavailableError
        raise ModelUnavailableError(f"{source.spec.title}: {folder / source.filename} is missing")
    with _TIKTOKEN_ENV_LOCK:  # the cache folder is read from the environment
        old = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
        try:
            kwargs = getattr(public, name)()
        finally:
            if old is None:
                os.environ.pop("TIKTOKEN_CACHE_DIR", None)
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = old
    enc = tiktoken.Encoding(**kwargs)
    return TiktokenTok(enc, key=source.spec.key, title=source.spec.title, algorithm="byte-level BPE (tiktoken)",
                       vocab_size=enc.n_vocab, lossless=True, specials=dict(enc._special_tokens))


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizers (tokenizer.json) wrapped by transformers for chat templates
# ---------------------------------------------------------------------------------------------
def _bytes_to_unicode() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: the printable stand-in character -> its byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return chars


_BYTE_OF_CHAR = _bytes_to_unicode()
_HEX_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token", "cls_token", "sep_token", "mask_token")


class HFTok(Tok):
    """A Hugging Face `tokenizers.Tokenizer` (the Rust object transformers' fast tokenizers wrap),
    used directly; the transformers wrapper is built only for chat templates."""

    kind = "hf"

    def __init__(self, backend, config: dict, chat_template: str | None = None, hf=None, **kw):
        self.backend = backend  # never switch on padding/truncation: it is shared by every request
        backend.no_padding()
        backend.no_truncation()
        self.config = config  # special token names: bos_token, eos_token, pad_token, ...
        self._hf = hf
        self._hf_lock = threading.Lock()
        model = backend.model
        decoder = repr(backend.decoder)
        self.byte_level = "ByteLevel" in decoder
        self.wordpiece = type(model).__name__ == "WordPiece"
        self.byte_fallback = bool(getattr(model, "byte_fallback", False))
        algorithm, lossless = self._describe()
        specials = {t.content: i for i, t in backend.get_added_tokens_decoder().items() if t.special}
        for name in SPECIAL_NAMES:
            token = config.get(name)
            if token and backend.token_to_id(token) is not None:
                specials.setdefault(token, backend.token_to_id(token))
        super().__init__(algorithm=algorithm, lossless=lossless, specials=specials,
                         vocab_size=backend.get_vocab_size(with_added_tokens=True), **kw)
        self.chat_template = chat_template
        pad = self._id_of("pad_token")
        if pad is not None:
            self.pad_id = pad
        else:
            name = "eos_token" if self._id_of("eos_token") is not None else "bos_token"
            self.pad_id = self._id_of(name)
            self.pad_note = (f"{self.title} has no pad token: the batch is padded with {config.get(name)} "
                             f"(common practice; the attention mask hides it)")
        self._added = backend.num_special_tokens_to_add(False)

    def _id_of(self, name: str) -> int | None:
        token = self.config.get(name)
        return self.backend.token_to_id(token) if token else None

    def _describe(self) -> tuple[str, bool]:
        """(algorithm in words, lossless?) from the tokenizer's parts."""
        mtype = type(self.backend.model).__name__
        if self.wordpiece:
            lower = getattr(self.backend.normalizer, "lowercase", False)
            return "WordPiece" + (" (lower-cased, accents stripped)" if lower else ""), False
        if self.byte_level:
            return f"byte-level {mtype}", True
        if self.byte_fallback:
            return f"SentencePiece-style {mtype} + byte fallback", True
        return f"SentencePiece {mtype}" if mtype == "Unigram" else mtype, False

    def encode(self, text):
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids):
        return self.backend.decode(ids, skip_special_tokens=False)

    def piece_bytes(self, tid):
        token = self.backend.id_to_token(tid)
        if token is None:
            return b""
        if tid in self.special_ids:
            return token.encode()
        if self.byte_level:
            try:
                return bytes(_BYTE_OF_CHAR[c] for c in token)
            except KeyError:
                return token.encode()
        if self.byte_fallback:
            m = _HEX_PIECE.match(token)
            if m:
                return bytes([int(m.group(1), 16)])
        return token.replace("▁", " ").encode()

    def piece_label(self, tid):
        if tid in self.special_ids or self.wordpiece:
            return self.backend.id_to_token(tid)
        return None

    def added_count(self):
        return self._added

    def for_model(self, text, max_length=None):
        enc = self.backend.encode(text, add_special_tokens=False)
        if max_length is not None:
            enc.truncate(max(max_length - self._added, 0))  # cut text tokens; added ones survive
        done = self.backend.post_process(enc, None, add_special_tokens=True)
        return done.ids, done.special_tokens_mask

    @property
    def hf(self):
        """The transformers tokenizer around the same backend (built on first use)."""
        with self._hf_lock:
            if self._hf is None:
                from transformers import PreTrainedTokenizerFast

                kwargs = {k: v for k, v in self.config.items() if k in SPECIAL_NAMES and v}
                self._hf = PreTrainedTokenizerFast(tokenizer_object=self.backend, chat_template=self.chat_template,
                                                   **kwargs)
            return self._hf

    def render_chat(self, messages):
        if not self.chat_template:
            return super().render_chat(messages)
        return self.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def read_tokenizer_folder(folder: Path) -> tuple:
    """(tokenizers.Tokenizer, config dict, chat template or None) from one of our asset folders
    (tokenizer.json.gz) or a package folder (tokenizer.json)."""
    from tokenizers import Tokenizer

    gz = folder / "tokenizer.json.gz"
    raw = gzip.decompress(gz.read_bytes()).decode("utf-8") if gz.exists() else \
        (folder / "tokenizer.json").read_text("utf-8")
    cfg_file = folder / "tokenizer_config.json"
    config = json.loads(cfg_file.read_text("utf-8")) if cfg_file.exists() else {}
    config = {k: (v.get("content") if isinstance(v, dict) else v) for k, v in config.items()}
    template = folder / "chat_template.jinja"
    chat = template.read_text("utf-8") if template.exists() else config.get("chat_template")
    return Tokenizer.from_str(raw), config, chat


def load_hf_tokenizer(source, device=None, variant="default", progress=None) -> HFTok:
    """Online: the Hub tokenizer at its pinned revision. Offline: our asset folder
    (tokenizer.json.gz) or a package folder with tokenizer.json (BERT from the MiniLM package)."""
    spec = source.spec
    if source.is_hub:
        from transformers import AutoTokenizer

        kwargs = {"revision": source.revision} if source.revision else {}
        hf = AutoTokenizer.from_pretrained(source.path, **kwargs)
        if not getattr(hf, "is_fast", False):
            raise UserInputError(f"{spec.title}: only fast (tokenizers) tokenizers are supported here")
        config = {k: getattr(hf, k, None) for k in SPECIAL_NAMES}
        return HFTok(hf.backend_tokenizer, config, getattr(hf, "chat_template", None), hf,
                     key=spec.key, title=spec.title)
    backend, config, chat = read_tokenizer_folder(Path(source.path))
    return HFTok(backend, config, chat, key=spec.key, title=spec.title)


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


# ---------------------------------------------------------------------------------------------
# What the tab shows
# ---------------------------------------------------------------------------------------------
def tokenizer_keys(engine) -> list[str]:
    return [k for k in engine.registry.keys("tokenizer") if engine.registry.usable(k)]


def get(engine, key: str, progress=None) -> Tok:
    keys = engine.registry.keys("tokenizer")
    check_choice("tokenizer", key, keys)
    return engine.load(key, progress=progress)


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
                    lossless=self.lossless, ms=round(self.seconds * 1000, 1))


def tokenize(engine, key: str, text: str, max_render: int = 800, progress=None) -> Tokenized:
    """Exact ids of the whole text; display pieces for the first max_render tokens only."""
    text = check_text("text", text, max_chars=MAX_CHARS)
    max_render = check_range("tokens shown", max_render, 1, 5000, integer=True)
    tok = get(engine, key, progress)
    start = time.perf_counter()
    ids = tok.encode(text)
    pieces = [piece_of(tok, i) for i in ids[:max_render]]
    visible = [n for n in tok.specials if not n.startswith("[PAD") and "placeholder" not in n]
    return Tokenized(tok.key, tok.title, tok.algorithm, ids, pieces, len(text), len(text.encode("utf-8")),
                     tok.vocab_size, visible, tok.lossless, time.perf_counter() - start, tok.note)


def compare(engine, keys, text: str, max_render: int = 800, progress=None) -> list[Tokenized]:
    keys = list(keys or [])
    if not 1 <= len(keys) <= 4:
        raise UserInputError(f"Choose 1 to 4 tokenizers to compare (2 to 4 side by side), got {len(keys)}.")
    return [tokenize(engine, k, text, max_render, progress) for k in keys]


# ---- HTML -------------------------------------------------------------------------------------
CSS = """<style>
.tkv{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:15px;line-height:1.9;color:#111}
.tkv .grid{display:grid;gap:12px}
.tkv .card{border:1px solid #d6d6e0;border-radius:10px;padding:8px 10px;background:#fff;min-width:0}
.tkv .head{font-family:system-ui,sans-serif;font-size:14px;margin-bottom:6px;color:#222;line-height:1.4}
.tkv .head b{font-size:15px}.tkv .sub{color:#555;font-size:12.5px}
.tkv .body{max-height:520px;overflow:auto;word-break:break-all}
.tkv .t{display:inline-block;border-radius:4px;padding:0 2px;margin:1px 1px;white-space:pre;vertical-align:top;line-height:1.35}
.tkv .t i{font-style:normal;color:#8a8a99}
.tkv .t small{display:block;font-size:10px;color:#444;text-align:center;line-height:1.1}
.tkv .sp{outline:2px solid #333;font-weight:700}
.tkv .by{font-size:12px;border:1px dashed #777}
.tkv .pad{opacity:.45}
.tkv .bar{height:6px;background:#eceff3;border-radius:3px;margin-top:4px}
.tkv .bar div{height:6px;background:#6366f1;border-radius:3px}
.tkv .more{font-family:system-ui,sans-serif;font-size:12.5px;color:#7a4b00;background:#fff4d6;
 border-radius:6px;padding:2px 8px;margin-top:6px;display:inline-block}
.tkv table.bt{border-collapse:collapse;margin:4px 0 10px}
.tkv table.bt td,.tkv table.bt th{border:1px solid #e2e2ea;padding:2px 4px;text-align:center;font-size:12.5px}
.tkv table.bt th{font-family:system-ui,sans-serif;background:#f5f5fa;font-weight:600}
.tkv .m1{background:#1f9d55;color:#fff}.tkv .m0{background:#eceff3;color:#999}
.tkv del{background:#ffd7d7;text-decoration:line-through}.tkv ins{background:#c9f2d0;text-decoration:none}
.tkv pre{white-space:pre-wrap;background:#f7f7fb;border-radius:8px;padding:8px;font-size:13px}
</style>"""


@functools.lru_cache(maxsize=1 << 16)
def colour(tid: int) -> str:
    """The same id gets the same pastel colour in every view (golden-angle hues)."""
    return f"hsl({(tid * 137.508) % 360:.0f},85%,{84 + (tid % 3) * 3}%)"


def _visible(text: str) -> str:
    from html import escape

    return (escape(text).replace(" ", "<i>·</i>").replace("\t", "<i>→</i>")
            .replace("\r", "<i>␍</i>").replace("\n", "<i>↵</i>"))


def piece_html(p: Piece, show_ids: bool = True, extra: str = "") -> str:
    return _piece_html(p.id, p.text, p.kind, show_ids, extra)


@functools.lru_cache(maxsize=1 << 16)  # a pure function of its arguments; texts repeat the same pieces
def _piece_html(tid: int, text: str, kind: str, show_ids: bool, extra: str) -> str:
    p = Piece(tid, text, kind)
    cls = "t" + {"special": " sp", "bytes": " by"}.get(p.kind, "") + extra
    body = _visible(p.text) if p.kind != "bytes" else f"⟨{p.text}⟩"
    title = f"id {p.id}" + (" · bytes" if p.kind == "bytes" else " · special" if p.kind == "special" else "")
    ids = f"<small>{p.id}</small>" if show_ids else ""
    brk = "<br>" * p.text.count("\n") if p.kind == "text" else ""
    return f'<span class="{cls}" style="background:{colour(p.id)}" title="{title}">{body}{ids}</span>{brk}'


def card_html(r: Tokenized, show_ids: bool = True, most: int = 0) -> str:
    s = r.stats()
    pct = 100 * r.n_tokens / most if most else 100
    head = (f"<div class='head'><b>{r.title}</b><br><span class='sub'><b>{r.n_tokens:,}</b> tokens · "
            f"{s['chars_per_token']} chars/token · vocab {r.vocab_size:,} · {r.algorithm}</span>"
            f"<div class='bar' title='tokens, relative to the longest'><div style='width:{pct:.0f}%'></div></div></div>")
    body = "".join(piece_html(p, show_ids) for p in r.pieces)
    more = ""
    if r.shown < r.n_tokens:
        more = (f"<div class='more'>Showing the first {r.shown:,} of {r.n_tokens:,} tokens; "
                f"the counts are exact for the whole text.</div>")
    return f"<div class='card'>{head}<div class='body'>{body}</div>{more}</div>"


def render_side_by_side(results: list[Tokenized], show_ids: bool = True) -> str:
    cols = max(len(results), 1)
    most = max((r.n_tokens for r in results), default=0)
    cards = "".join(card_html(r, show_ids, most) for r in results)
    return f"{CSS}<div class='tkv'><div class='grid' style='grid-template-columns:repeat({cols},minmax(0,1fr))'>{cards}</div></div>"


STATS_HEADERS = ["tokenizer", "algorithm", "tokens", "chars/token", "bytes/token", "vocab size",
                 "special tokens", "lossless"]


def stats_rows(results: list[Tokenized]) -> list[list]:
    rows = []
    for r in results:
        s = r.stats()
        rows.append([s["tokenizer"], s["algorithm"], s["tokens"], s["chars_per_token"], s["bytes_per_token"],
                     s["vocab_size"], s["special_tokens"], "yes" if s["lossless"] else "no"])
    return rows


# ---- decode round trip -------------------------------------------------------------------------
@dataclass
class RoundTrip:
    key: str
    title: str
    decoded: str
    identical: bool
    html: str


DIFF_LIMIT = 4000


def diff_html(a: str, b: str) -> str:
    """Characters of a missing from b struck out in red, characters b adds in green."""
    import difflib
    from html import escape

    a, b = a[:DIFF_LIMIT], b[:DIFF_LIMIT]
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escape(a[i1:i2]))
        if op in ("delete", "replace"):
            out.append(f"<del>{_visible(a[i1:i2])}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{_visible(b[j1:j2])}</ins>")
    return "".join(out)


def round_trip(engine, key: str, text: str, progress=None) -> RoundTrip:
    text = check_text("text", text, max_chars=MAX_CHARS)
    tok = get(engine, key, progress)
    decoded = tok.decode(tok.encode(text))
    same = decoded == text
    if same:
        body = f"<b>✓ identical</b>: decode(encode(text)) gives back all {len(text):,} characters."
    else:
        cut = " (first 4,000 characters compared)" if max(len(text), len(decoded)) > DIFF_LIMIT else ""
        body = (f"<b>✗ different</b>{cut}: <del>struck out</del> = lost, <ins>green</ins> = added."
                f"<pre>{diff_html(text, decoded)}</pre>")
    return RoundTrip(tok.key, tok.title, decoded, same, f"<div class='card'><div class='head'><b>{tok.title}</b></div>{body}</div>")


def render_round_trips(items: list[RoundTrip]) -> str:
    return f"{CSS}<div class='tkv'><div class='grid'>{''.join(i.html for i in items)}</div></div>"


# ---- batches: padding, truncation, attention masks ---------------------------------------------
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


def split_sentences(sentences) -> list[str]:
    if isinstance(sentences, str):
        sentences = [s for s in sentences.split("\n") if s.strip()]
    sentences = [s for s in (sentences or []) if isinstance(s, str) and s.strip()]
    if not 1 <= len(sentences) <= 16:
        raise UserInputError(f"Give 1 to 16 sentences, one per line; got {len(sentences)}.")
    for s in sentences:
        check_text("sentence", s, max_chars=5000)
    return sentences


def batch_encode(engine, key: str, sentences, padding_side: str = "right", max_length: int = 12,
                 truncation: bool = True, pad_to: str = "longest", add_special_tokens: bool = True,
                 progress=None) -> Batch:
    """Encode several sentences as one rectangle, as a model batch: the model's special tokens,
    truncation to max_length, pad tokens on one side, and attention_mask 0 over the padding."""
    sentences = split_sentences(sentences)
    check_choice("padding_side", padding_side, PAD_SIDES)
    check_choice("pad_to", pad_to, PAD_TO)
    max_length = check_range("max_length", max_length, 1, 512, integer=True)
    tok = get(engine, key, progress)
    rows = []
    for s in sentences:
        if add_special_tokens:
            ids, special = tok.for_model(s, max_length if truncation else None)
        else:
            ids = tok.encode(s)[:max_length] if truncation else tok.encode(s)
            special = [1 if i in tok.special_ids else 0 for i in ids]
        rows.append((list(ids), list(special)))
    longest = max(len(r[0]) for r in rows)
    width = longest if pad_to == "longest" else max(max_length, longest)
    pad = tok.pad_id if tok.pad_id is not None else 0
    input_ids, masks, specials = [], [], []
    for ids, special in rows:
        n = width - len(ids)
        if padding_side == "right":
            input_ids.append(ids + [pad] * n)
            masks.append([1] * len(ids) + [0] * n)
            specials.append(special + [1] * n)
        else:
            input_ids.append([pad] * n + ids)
            masks.append([0] * n + [1] * len(ids))
            specials.append([1] * n + special)
    pieces = [[piece_of(tok, i) for i in row] for row in input_ids]
    return Batch(tok.key, tok.title, sentences, input_ids, masks, specials, pad, padding_side, pieces, tok.pad_note)


def render_batch_html(b: Batch, show_ids: bool = True) -> str:
    from html import escape

    width = len(b.input_ids[0]) if b.input_ids else 0
    head = "<tr><th>#</th>" + "".join(f"<th>{j}</th>" for j in range(width)) + "</tr>"
    tok_rows, mask_rows = [], []
    for r, (pieces, mask) in enumerate(zip(b.pieces, b.attention_mask)):
        cells = "".join(f"<td>{piece_html(p, show_ids, '' if m else ' pad')}</td>" for p, m in zip(pieces, mask))
        tok_rows.append(f"<tr><th title='{escape(b.sentences[r])}'>{r}</th>{cells}</tr>")
        mcells = "".join(f"<td class='m{m}'>{m}</td>" for m in mask)
        mask_rows.append(f"<tr><th>{r}</th>{mcells}</tr>")
    note = f"<div class='more'>{escape(b.note)}</div>" if b.note else ""
    return (f"{CSS}<div class='tkv'><div class='head'><b>input_ids</b> ({len(b.input_ids)} × {width}, "
            f"pad id {b.pad_id}, padding on the {b.padding_side}; faded = padding, outlined = special "
            f"token)</div><div style='overflow:auto'><table class='bt'>{head}{''.join(tok_rows)}</table></div>"
            f"<div class='head'><b>attention_mask</b> (1 = attend, 0 = padding, ignored)</div>"
            f"<div style='overflow:auto'><table class='bt'>{head}{''.join(mask_rows)}</table></div>{note}</div>")


# ---- special tokens: chat templates and fill-in-the-middle --------------------------------------
def _tokens_card(tok: Tok, title: str, text: str, max_render: int = 1500) -> str:
    from html import escape

    ids = tok.encode(text)
    pieces = [piece_of(tok, i) for i in ids[:max_render]]
    n_special = sum(p.kind == "special" for p in pieces)
    body = "".join(piece_html(p, True) for p in pieces)
    return (f"<div class='card'><div class='head'><b>{escape(title)}</b><br><span class='sub'>{len(ids):,} tokens, "
            f"{n_special} of them special (outlined): each is ONE token, not the letters you see</span></div>"
            f"<div class='body'>{body}</div></div>")


def chat_view(engine, key: str, system: str, user: str, assistant: str = "", progress=None) -> tuple[str, str]:
    """The instruct model's chat template filled with a conversation: the text, and its tokens."""
    from html import escape

    tok = get(engine, key, progress)
    messages = []
    if system and system.strip():
        messages.append({"role": "system", "content": check_text("system message", system, max_chars=5000)})
    messages.append({"role": "user", "content": check_text("user message", user, max_chars=5000)})
    if assistant and assistant.strip():
        messages.append({"role": "assistant", "content": check_text("assistant message", assistant, max_chars=5000)})
    text = tok.render_chat(messages)
    html = (f"{CSS}<div class='tkv'><div class='head'><b>The text the model is given</b> "
            f"(chat template of {escape(tok.title)}, with the assistant turn opened)</div><pre>{escape(text)}</pre>"
            f"{_tokens_card(tok, 'As tokens', text)}</div>")
    return text, html


def fim_view(engine, key: str, prefix: str, suffix: str, progress=None) -> tuple[str, str]:
    """Fill-in-the-middle: prefix, suffix, then the model writes the middle (PSM order)."""
    from html import escape

    tok = get(engine, key, progress)
    names = tok.fim()
    if names is None:
        choices = [k for k in engine.registry.keys("tokenizer") if k in FIM_KEYS]
        raise UserInputError(f"{tok.title} has no fill-in-the-middle tokens: choose one of {', '.join(choices)}.")
    prefix = check_text("prefix", prefix, max_chars=20_000, allow_empty=True)
    suffix = check_text("suffix", suffix, max_chars=20_000, allow_empty=True)
    p, s, m = names
    text = f"{p}{prefix}{s}{suffix}{m}"
    html = (f"{CSS}<div class='tkv'><div class='head'><b>Prompt for fill-in-the-middle</b> "
            f"({escape(p)} code before {escape(s)} code after {escape(m)} → the model writes the middle)</div>"
            f"{_tokens_card(tok, tok.title, text)}</div>")
    return text, html


FIM_KEYS = ("tok-starcoder", "tok-cl100k")
CHAT_KEYS = ("tok-smollm2", "tok-phi3", "tok-qwen2")


# ---- export -----------------------------------------------------------------------------------
CSV_HEADERS = ["tokenizer", "position", "id", "piece", "kind", "bytes_hex"]


def token_table(engine, key: str, text: str, limit: int | None = None) -> list[list]:
    text = check_text("text", text, max_chars=MAX_CHARS)
    tok = get(engine, key)
    ids = tok.encode(text)
    rows = []
    for pos, tid in enumerate(ids if limit is None else ids[:limit]):
        p = piece_of(tok, tid)
        rows.append([tok.key, pos, tid, p.text, p.kind, tok.piece_bytes(tid).hex(" ")])
    return rows


def token_csv(engine, keys, text: str) -> str:
    """Every token of the text (not only the shown ones) for each tokenizer, as CSV text."""
    keys = list(keys or [])
    if not 1 <= len(keys) <= 4:
        raise UserInputError(f"Choose 1 to 4 tokenizers to export, got {len(keys)}.")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_HEADERS)
    for k in keys:
        w.writerows(token_table(engine, k, text))
    return buf.getvalue()


# ---- example texts ----------------------------------------------------------------------------
EXAMPLES = {
    "Mixed (start here)": "Hello world! HELLO WORLD! 🦙🚀 naïve café\n\n    def add(a, b):\n        return a + b\n"
                          "On 2024-03-15 it cost $1,234.56 · 東京は晴れ https://example.com/a?b=1",
    "Capital letters": "hello Hello HELLO hElLo. The Transformer, the transformer, THE TRANSFORMER.",
    "Emoji": "I love pizza 🍕! Family: 👨‍👩‍👧 flags: 🇫🇷🇯🇵 thumbs: 👍🏽 llama: 🦙",
    "Code with indentation": "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n"
                             "for i in range(10):\n\tprint(i, fib(i))\n",
    "Numbers and dates": "In 1969, 3 astronauts flew 384,400 km. Pi = 3.14159265. Call 555-0123 on 07/20/2024 "
                         "or 2024-07-20 at 13:45. 1000000 vs 1,000,000 vs 1e6.",
    "Spaces and newlines": "one space. two  spaces.   three.\n\n\nthree newlines\n\ttab\t\ttwo tabs\r\nwindows line end",
    "Accents": "Crème brûlée, façade, Ångström, São Paulo, Dvořák, Łódź, ﬁne (ligature), e\u0301 (e + accent)",
    "CJK and other scripts": "日本語のテキスト。中文文本。한국어 텍스트. Русский текст. नमस्ते दुनिया. مرحبا بالعالم",
    "A URL": "https://www.example.org/search?q=large+language+models&lang=en#results",
    "Unseen words (toy word tokenizer)": "The cat sat on the mat. The quokka sat on the trampoline.",
}


def long_text(n_bytes: int = 100_000) -> str:
    """About n_bytes of varied text (all the examples repeated), for the responsiveness demo."""
    base = "\n\n".join(EXAMPLES.values()) + "\n\n"
    reps = n_bytes // len(base.encode("utf-8")) + 1
    out = (base * reps).encode("utf-8")[:n_bytes]
    return out.decode("utf-8", errors="ignore")
