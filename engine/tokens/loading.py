"""Real tokenizers: tiktoken (GPT-4, GPT-4o, Codex) and Hugging Face `tokenizers` folders
(GPT-2, BERT, SmolLM2, Llama, ...), each wrapped as a Tok and loaded by a registry row."""
from __future__ import annotations

import gzip
import json
import re
import threading
from pathlib import Path

from ..core.chat import chat_ids, plain_ids
from ..core.config import temporary_env
from ..core.errors import UserInputError
from .base import Tok
from ..core.lazy import from_transformers


# ---------------------------------------------------------------------------------------------
# tiktoken (GPT-4, GPT-4o, Codex)
# ---------------------------------------------------------------------------------------------
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
        from ..core.errors import ModelUnavailableError
        raise ModelUnavailableError(f"{source.spec.title}: {folder / source.filename} is missing")
    with temporary_env("TIKTOKEN_CACHE_DIR", str(folder)):  # tiktoken reads its cache folder there
        kwargs = getattr(public, name)()
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


def bytes_label(raw: bytes) -> str:
    """Bytes as text: whole UTF-8 characters as themselves, every byte that is only part of a
    character as <0xE6> (the way byte-fallback vocabularies write them)."""
    out, i = [], 0
    while i < len(raw):
        for j in range(min(len(raw), i + 4), i, -1):  # the longest whole character at i
            try:
                out.append(raw[i:j].decode("utf-8"))
                i = j
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append(f"<0x{raw[i]:02X}>")
            i += 1
    return "".join(out)


def hf_token_bytes(tokenizer, tid: int) -> bytes | None:
    """The bytes one id of a transformers tokenizer stands for: byte-level BPE pieces (GPT-2,
    SmolLM2) through GPT-2's byte alphabet, byte-fallback pieces (<0xE6>) by their hex; None for
    other pieces (their text is whole characters)."""
    token = tokenizer.convert_ids_to_tokens(int(tid))
    if not isinstance(token, str):
        return None
    m = _HEX_PIECE.match(token)
    if m:
        return bytes([int(m.group(1), 16)])
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and "ByteLevel" in repr(backend.decoder) and all(c in _BYTE_OF_CHAR for c in token):
        return bytes(_BYTE_OF_CHAR[c] for c in token)
    return None


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
        # Non-special added tokens are plain text (llama.cpp's user-defined tokens: DeepSeek's "û",
        # MPT's runs of spaces), not byte-level letters: their bytes are their UTF-8.
        self.plain_added = {i: t.content.encode() for i, t in backend.get_added_tokens_decoder().items()
                            if not t.special} if self.byte_level else {}

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
        if self.plain_added and any(i in self.plain_added for i in ids):  # the byte-level decoder would garble them
            return b"".join(self.piece_bytes(i) for i in ids).decode("utf-8", "replace")
        return self.backend.decode(ids, skip_special_tokens=False)

    def piece_bytes(self, tid):
        token = self.backend.id_to_token(tid)
        if token is None:
            return b""
        if tid in self.plain_added:
            return self.plain_added[tid]
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

    def char_spans(self, text, ids):
        spans = super().char_spans(text, ids)
        if spans is not None:
            return spans
        enc = self.backend.encode(text, add_special_tokens=False)  # WordPiece etc.: the backend's offsets
        return [tuple(o) for o in enc.offsets] if enc.ids == list(ids) else None

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
                PreTrainedTokenizerFast = from_transformers("PreTrainedTokenizerFast")

                kwargs = {k: v for k, v in self.config.items() if k in SPECIAL_NAMES and v}
                self._hf = PreTrainedTokenizerFast(tokenizer_object=self.backend, chat_template=self.chat_template,
                                                   **kwargs)
            return self._hf

    def render_chat(self, messages):
        if not self.chat_template:
            return super().render_chat(messages)
        return self.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def chat_ids(self, messages):
        if not self.chat_template:
            return super().chat_ids(messages)
        return chat_ids(self.hf, messages)

    def plain_ids(self, text):
        return plain_ids(self.hf, text)


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
        AutoTokenizer = from_transformers("AutoTokenizer")

        kwargs = {"revision": source.revision} if source.revision else {}
        hf = AutoTokenizer.from_pretrained(source.path, **kwargs)
        if not getattr(hf, "is_fast", False):
            raise UserInputError(f"{spec.title}: only fast (tokenizers) tokenizers are supported here")
        config = {k: getattr(hf, k, None) for k in SPECIAL_NAMES}
        return HFTok(hf.backend_tokenizer, config, getattr(hf, "chat_template", None), hf,
                     key=spec.key, title=spec.title)
    backend, config, chat = read_tokenizer_folder(Path(source.path))
    return HFTok(backend, config, chat, key=spec.key, title=spec.title)


def load_gguf_tokenizer(source, device=None, variant="default", progress=None) -> HFTok:
    """The vocabulary of an operator's GGUF file (engine/core/own.py), read from the file's metadata by
    transformers (no weight is dequantized)."""
    if source.is_hub or not (source.filename or "").lower().endswith(".gguf"):
        return load_hf_tokenizer(source, device, variant, progress)
    from transformers import AutoTokenizer

    spec = source.spec
    hf = AutoTokenizer.from_pretrained(source.path, gguf_file=source.filename)
    if not getattr(hf, "is_fast", False):
        raise UserInputError(f"{spec.title}: only fast (tokenizers) tokenizers are supported here")
    config = {k: getattr(hf, k, None) for k in SPECIAL_NAMES}
    return HFTok(hf.backend_tokenizer, config, getattr(hf, "chat_template", None), hf, key=spec.key, title=spec.title)


def load_assembled_tokenizer(source, device=None, variant="default", progress=None) -> HFTok:
    """The tokenizer of a GGUF shipped in chunk packages (Gemma 3): offline, read from the float
    copy the model row makes (the first use dequantizes the model once, ~90 s on 2 cores)."""
    if source.is_hub:
        return load_hf_tokenizer(source, device, variant, progress)
    from ..core.models import assembled_float_copy, no_progress

    backend, config, chat = read_tokenizer_folder(assembled_float_copy(source, progress or no_progress))
    return HFTok(backend, config, chat, key=source.spec.key, title=source.spec.title)
