"""A tokenizer from any GGUF file: the vocabulary, merges and token types a GGUF keeps under
tokenizer.ggml.*, turned into a Hugging Face `tokenizers` JSON and wrapped as an HFTok.

Byte-level BPE vocabularies ("gpt2" in the GGUF) are built here directly, with the
pre-tokenizer llama.cpp uses for the file's `tokenizer.ggml.pre` name (the regexes below are
llama.cpp's, src/llama-vocab.cpp, each applied to the pieces the one before left, as llama.cpp
does); that works for any architecture, also those transformers' GGUF reader refuses (MPT,
Command-R). SentencePiece vocabularies ("llama": Llama 2, Gemma, ...) go through transformers'
own GGUF conversion. scripts/build_tokenizer_assets.py stores the results under
assets/tokenizers/ and checks them against llama.cpp's test vectors.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import ModelUnavailableError, UserInputError
from ..core.scratch import work_dir
from ..core.lazy import from_transformers

_WORDS = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
_LLAMA3 = ("(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
           "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
_QWEN2 = _LLAMA3.replace("\\p{N}{1,3}", "\\p{N}")
_DEEPSEEK_LETTERS = (  # written as escapes: NFC would fold some of them (U+1FD3, U+2126) and break a range
    "A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373"
    "\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481"
    "\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf"
    "\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d"
    "\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4"
    "\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107"
    "\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f"
    "\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d"
    "\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17"
    "\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb"
    "\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943")
_CJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
_DEEPSEEK_PUNCT = "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"
# tokenizer.ggml.pre -> the regexes llama.cpp splits with, in order (facts from llama-vocab.cpp)
PRE_SPLITS: dict[str, tuple[str, ...]] = {
    "default": (_WORDS,), "gpt-2": (_WORDS,), "mpt": (_WORDS,), "roberta-bpe": (_WORDS,),
    "llama-bpe": (_LLAMA3,), "llama3": (_LLAMA3,), "llama-v3": (_LLAMA3,), "falcon3": (_LLAMA3,),
    "qwen2": (_QWEN2,),
    "starcoder": ("\\p{N}", _WORDS), "refact": ("\\p{N}", _WORDS), "command-r": ("\\p{N}", _WORDS),
    "smollm": ("\\p{N}", _WORDS),
    "deepseek-llm": ("[\r\n]", f"\\s?[{_DEEPSEEK_LETTERS}]+", _DEEPSEEK_PUNCT, "\\s+$", _CJK,
                     "\\p{N}+"),
    "deepseek-coder": ("[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", _CJK, "\\p{N}"),
    "falcon": ("[\\p{P}\\$\\+<=>\\^~\\|`]+", _WORDS, "[0-9][0-9][0-9]"),
}
# llama.cpp looks a whole piece up in the vocabulary before merging for these (HF: ignore_merges)
IGNORE_MERGES = frozenset({"llama-bpe", "llama3", "llama-v3", "falcon3"})
CONTROL, USER_DEFINED = 3, 4  # GGUF token types (1 normal, 2 unknown, 5 unused, 6 byte)


def read_fields(path: Path) -> dict:
    """The tokenizer.* fields of a GGUF file as Python values (strings, ints, lists)."""
    from gguf import GGUFReader
    from gguf.constants import GGUFValueType

    reader = GGUFReader(str(path))
    out = {}
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        if field.types[0] == GGUFValueType.ARRAY:
            if field.types[-1] == GGUFValueType.STRING:
                out[name] = [bytes(field.parts[i]).decode("utf-8", "replace") for i in field.data]
            else:
                out[name] = [field.parts[i].tolist()[0] for i in field.data]
        elif field.types[0] == GGUFValueType.STRING:
            out[name] = bytes(field.parts[field.data[0]]).decode("utf-8")
        else:
            out[name] = field.parts[field.data[0]].tolist()[0]
    return out


def _token_names(fields: dict, tokens: list[str]) -> dict:
    """tokenizer_config-style names (bos_token, eos_token, ...) from the GGUF's ids."""
    config = {}
    for name, key in (("bos_token", "bos"), ("eos_token", "eos"), ("unk_token", "unknown"), ("pad_token", "padding")):
        tid = fields.get(f"tokenizer.ggml.{key}_token_id")
        if isinstance(tid, int) and 0 <= tid < len(tokens):
            config[name] = tokens[tid]
    return config


def bpe_json(fields: dict) -> dict:
    """A byte-level BPE tokenizer.json from a GGUF's fields (model "gpt2")."""
    pre = fields.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_SPLITS:
        raise UserInputError(f"GGUF pre-tokenizer {pre!r} is not known here: one of {', '.join(sorted(PRE_SPLITS))}")
    tokens = fields["tokenizer.ggml.tokens"]
    types = fields.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    merges = [m.split(" ", 1) for m in fields.get("tokenizer.ggml.merges", [])]
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": ty == CONTROL}
             for i, (t, ty) in enumerate(zip(tokens, types)) if ty in (CONTROL, USER_DEFINED)]
    splits = [{"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": False}
              for r in PRE_SPLITS[pre]]
    bos = fields.get("tokenizer.ggml.bos_token_id")
    post = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    if fields.get("tokenizer.ggml.add_bos_token") and isinstance(bos, int):
        name = tokens[bos]
        post = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": name, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": name, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {name: {"id": name, "ids": [bos], "tokens": [name]}}}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": splits + [
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": pre in IGNORE_MERGES, "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": merges},
    }


def gguf_tokenizer_files(path: Path) -> tuple[str, dict, str | None]:
    """(tokenizer.json text, tokenizer_config dict, chat template or None) of a GGUF file."""
    path = Path(path)
    if not path.is_file():
        raise ModelUnavailableError(f"{path} is missing")
    fields = read_fields(path)
    model = fields.get("tokenizer.ggml.model")
    chat = fields.get("tokenizer.chat_template")
    if model == "gpt2":
        data = bpe_json(fields)
        config = _token_names(fields, fields["tokenizer.ggml.tokens"])
        return json.dumps(data, ensure_ascii=False), config, chat
    if model == "llama":  # SentencePiece (Llama 2, Gemma, ...): transformers converts these
        AutoTokenizer = from_transformers("AutoTokenizer")

        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        with work_dir("tokenizer") as tmp:
            tok.save_pretrained(tmp)
            raw = (Path(tmp) / "tokenizer.json").read_text("utf-8")
            config = json.loads((Path(tmp) / "tokenizer_config.json").read_text("utf-8"))
        config = {k: (v.get("content") if isinstance(v, dict) else v) for k, v in config.items()}
        return raw, config, chat or getattr(tok, "chat_template", None)
    raise UserInputError(f"GGUF tokenizer model {model!r} is not supported here: 'gpt2' (BPE) or 'llama' (SentencePiece)")


def load_gguf_tokenizer(source, device=None, variant="default", progress=None):
    """Registry loader: source.path is a folder, source.filename the GGUF file in it (a model's
    GGUF from a package works as well as a vocab-only one)."""
    from tokenizers import Tokenizer

    from .loading import HFTok

    raw, config, chat = gguf_tokenizer_files(Path(source.path) / (source.filename or ""))
    return HFTok(Tokenizer.from_str(raw), config, chat, key=source.spec.key, title=source.spec.title)
