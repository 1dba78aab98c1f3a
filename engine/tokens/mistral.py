"""Mistral's tokenizers from the files the mistral-common package ships (mistral_common/data/):
Tekken (tiktoken-style byte-level BPE, Mistral NeMo and later, 131,072 ids) and the
SentencePiece v3 vocabulary of Mistral 7B v0.3 (32,768 ids). Read with tiktoken and
sentencepiece directly; tests/test_tokens.py checks the ids against mistral-common's own
encoders. As in mistral-common, special tokens typed in the text are not matched: they are
only ever added by the instruct formatting, never read from user text.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from ..core.errors import ModelUnavailableError
from .base import Tok

# The names of Tekken's first control ids when the file lists none (mistral-common's defaults);
# the rest of the first 1,000 ids are <SPECIAL_n> fillers.
TEKKEN_SPECIALS = ("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                   "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]",
                   "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
                   "[TOOL_CONTENT]")
_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


class TekkenTok(Tok):
    kind = "tekken"

    def __init__(self, enc, n_special: int, special_names: list[str], **kw):
        self.enc, self.n_special = enc, n_special
        self.names = special_names  # id -> name for ids below n_special
        super().__init__(algorithm="byte-level BPE (Tekken, tiktoken)", lossless=True,
                         specials={n: i for i, n in enumerate(special_names) if not n.startswith("<SPECIAL_")},
                         vocab_size=n_special + enc.n_vocab, **kw)
        self.pad_id = special_names.index("<pad>") if "<pad>" in special_names else 0

    def encode(self, text):
        return [t + self.n_special for t in self.enc.encode_ordinary(text)]

    def decode(self, ids):
        out, run = [], []
        for tid in ids:
            if tid < self.n_special:
                if run:
                    out.append(self.enc.decode_bytes(run))
                    run = []
                out.append(self.names[tid].encode())
            else:
                run.append(tid - self.n_special)
        if run:
            out.append(self.enc.decode_bytes(run))
        return b"".join(out).decode("utf-8", "replace")

    def piece_bytes(self, tid):
        if tid < self.n_special:
            return self.names[tid].encode()
        return self.enc.decode_single_token_bytes(tid - self.n_special)

    def piece_label(self, tid):
        return self.names[tid] if tid < self.n_special else None


class SentencePieceTok(Tok):
    kind = "sentencepiece"

    def __init__(self, sp, **kw):
        self.sp = sp
        n = sp.get_piece_size()
        specials = {sp.id_to_piece(i): i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)}
        super().__init__(algorithm="SentencePiece BPE + byte fallback", lossless=True, specials=specials,
                         vocab_size=n, **kw)
        self.pad_id = sp.eos_id()
        self.pad_note = f"{self.title} has no pad token: the batch is padded with </s> (the attention mask hides it)"
        self.bos_id = sp.bos_id()

    def encode(self, text):
        return self.sp.encode(text)

    def decode(self, ids):
        return self.sp.decode(list(ids))

    def piece_bytes(self, tid):
        piece = self.sp.id_to_piece(int(tid))
        if self.sp.is_byte(int(tid)):
            m = _BYTE_PIECE.match(piece)
            return bytes([int(m.group(1), 16)]) if m else piece.encode()
        if tid in self.special_ids:
            return piece.encode()
        return piece.replace("▁", " ").encode()

    def piece_label(self, tid):
        return self.sp.id_to_piece(int(tid)) if tid in self.special_ids else None

    def for_model(self, text, max_length=None):
        ids = [self.bos_id] + self.encode(text)  # mistral-common: encode(text, bos=True, eos=False)
        if max_length is not None:
            ids = ids[:max(max_length, 1)]
        return ids, [1 if i in self.special_ids else 0 for i in ids]

    def added_count(self):
        return 1


def _file(source) -> Path:
    path = Path(source.path) / (source.filename or "")
    if not path.is_file():
        raise ModelUnavailableError(f"{source.spec.title}: {path} is missing (pip install --no-deps mistral-common)")
    return path


def load_tekken(source, device=None, variant="default", progress=None) -> TekkenTok:
    """A tekken_*.json: base64 token bytes by rank, the split pattern, and how many of the
    first ids are control tokens; only the first default_vocab_size ids are used, as
    mistral-common does."""
    import tiktoken

    data = json.loads(_file(source).read_text("utf-8"))
    config = data["config"]
    n_special = int(config["default_num_special_tokens"])
    inner = int(config["default_vocab_size"]) - n_special
    ranks = {base64.b64decode(v["token_bytes"]): int(v["rank"]) for v in data["vocab"][:inner]}
    listed = [t["token_str"] for t in data.get("special_tokens") or []] or list(TEKKEN_SPECIALS)
    names = listed + [f"<SPECIAL_{i}>" for i in range(len(listed), n_special)]
    enc = tiktoken.Encoding(name=Path(source.filename).stem, pat_str=config["pattern"], mergeable_ranks=ranks,
                            special_tokens={})
    return TekkenTok(enc, n_special, names, key=source.spec.key, title=source.spec.title)


def load_sentencepiece(source, device=None, variant="default", progress=None) -> SentencePieceTok:
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(_file(source)))
    return SentencePieceTok(sp, key=source.spec.key, title=source.spec.title)
