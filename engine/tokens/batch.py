"""Padded batches with attention masks, padding and truncation done on plain lists."""
from __future__ import annotations

from ..core.errors import UserInputError, check_choice, check_range, check_text
from .base import PAD_SIDES, PAD_TO, Batch, piece_of
from .views import get


# ---- batches: padding, truncation, attention masks ---------------------------------------------


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
