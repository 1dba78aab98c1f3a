"""Branching from a generated token, as in the OpenAI playground and koboldcpp.

Click a token of a generated text: alternatives() shows the model's own next-token
distribution at that position (the raw logits, softmax at temperature 1, before any knob), its
top k. Pick one of them: branch() continues from exactly the original prefix up to that position
plus the picked token, with the knobs Generate used (greedy, or sampling seeded by the seed, so
the same branch twice gives the same text).

A generated text is given by its token ids (`continuation`), so nothing is re-tokenised: the
prefix is the prompt's ids (as encode() makes them) + continuation[:position].
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import UserInputError, check_range, check_text
from ..core.lazy import inference_mode, torch
from ..core.settings import validate
from .generation import (DecodingSettings, TokenOut, _forward, chosen_stats, check_model, encode, eos_ids,
                         final_logits, max_context, new_cache, parse_stop, partial_bytes, pick, sampling,
                         token_label, vocab_size)

MAX_CONTINUATION = 256  # Generate's max_new_tokens at most
MAX_ALTERNATIVES = 20
DISTRIBUTION = "the model's own next-token distribution (raw logits, temperature 1, before any knob)"


def parse_continuation(tm, ids) -> list[int]:
    """Token ids of a generated text: a list of ints, or text like '12, 345, 6' (at most
    MAX_CONTINUATION, each an id of tm's vocabulary)."""
    if ids is None:
        ids = []
    if isinstance(ids, str):
        ids = check_text("continuation ids", ids, max_chars=MAX_CONTINUATION * 12, allow_empty=True)
        parts = [p for p in ids.replace(",", " ").replace("[", " ").replace("]", " ").split() if p]
        if not all(p.isdigit() and len(p) <= 9 for p in parts):
            raise UserInputError(f"continuation ids = {ids[:60]!r} must be token ids: whole numbers separated by "
                                 "commas or spaces.")
        ids = [int(p) for p in parts]
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise UserInputError(f"continuation ids = {str(ids)[:60]!r} must be a list of token ids.")
    vocab = vocab_size(tm)
    if not 1 <= len(ids) <= MAX_CONTINUATION:
        raise UserInputError(f"continuation ids: {len(ids)} ids; valid: 1 to {MAX_CONTINUATION} (generate first).")
    bad = next((i for i in ids if not 0 <= i < vocab), None)
    if bad is not None:
        raise UserInputError(f"continuation id {bad} is not in {tm.key}'s vocabulary: valid ids are 0 to {vocab - 1}.")
    return list(ids)


def _prefix(tm, prompt: str, mode: str, continuation, position):
    """(continuation ids, position, prompt tokens, (seq,) ids of prompt + continuation[:position])."""
    check_model(tm)
    _, ids = encode(tm, prompt, mode)  # the prompt's text is checked first
    gen = parse_continuation(tm, continuation)
    position = int(check_range("token position", position, 0, len(gen) - 1, integer=True))
    prefix = torch.cat([ids[0], torch.tensor(gen[:position], dtype=ids.dtype, device=ids.device)])  # (seq,)
    return gen, position, ids.shape[1], prefix


@dataclass
class Alternative:
    id: int
    label: str  # visible text (␣ for a space)
    p: float  # in DISTRIBUTION
    rank: int  # 1 = the most likely


@dataclass
class BranchPoint:
    position: int  # index of the clicked token in the continuation
    chosen: Alternative  # the token the text has there
    alternatives: list[Alternative]  # the top k, most likely first
    prefix_tokens: int  # prompt + continuation[:position]


@inference_mode
def alternatives(tm, prompt: str, mode: str, continuation, position, k: int = 10) -> BranchPoint:
    """The top k of DISTRIBUTION at `position` of the continuation: one plain forward over the
    prompt + continuation[:position]."""
    k = int(check_range("alternatives", k, 1, MAX_ALTERNATIVES, integer=True))
    gen, position, _, prefix = _prefix(tm, prompt, mode, continuation, position)
    logits = _forward(tm, prefix[None])[0]  # (vocab,)
    probs = logits.softmax(-1)  # (vocab,)
    top = probs.topk(k)
    alts = [Alternative(int(i), token_label(tm, int(i)), float(p), r)
            for r, (p, i) in enumerate(zip(top.values, top.indices), 1)]
    chosen = gen[position]
    rank = int((logits > logits[chosen]).sum()) + 1
    return BranchPoint(position, Alternative(chosen, token_label(tm, chosen), float(probs[chosen]), rank), alts,
                       int(prefix.numel()))


@dataclass
class Branch:
    position: int
    token_id: int  # the token the branch starts with
    prefix_ids: list[int]  # prompt + continuation[:position]: both texts start here
    prompt_tokens: int
    original: list[int]  # continuation[position:]
    prefix_text: str = ""  # continuation[:position] decoded (the prompt is not in it)
    original_pieces: list[str] = field(default_factory=list)  # each original token's text from `position`
    labels: tuple[str, str] = ("", "")  # visible labels of the original token and of the picked one
    tokens: list[TokenOut] = field(default_factory=list)  # the branch: token_id, then what followed
    stop_reason: str = ""


def _token_out(tm, tid: int, p_raw: float, p_final: float, rank: int, special: set) -> TokenOut:
    return TokenOut(tid, tm.tokenizer.decode([tid]), p_raw, p_final, rank, tid in special, partial_bytes(tm, tid))


def _pieces(tm, before: list[int], ids: list[int]) -> list[str]:
    """The characters each of `ids` adds after `before` (a token that is part of a character adds '')."""
    out, done = [], tm.tokenizer.decode(before)
    for i in range(len(ids)):
        after = tm.tokenizer.decode(before + ids[:i + 1])
        out.append(after[len(done):] if after.startswith(done) else tm.tokenizer.decode([ids[i]]))
        done = after
    return out


@inference_mode
def branch(tm, prompt: str, mode: str, continuation, position, token_id, settings: DecodingSettings,
           stop=None) -> Branch:
    """Continue from prompt + continuation[:position] + [token_id] with the knobs (as Generate:
    greedy, or sampling with a generator seeded by settings.seed), until EOS, a stop string, or
    max_new_tokens counted from the start of the continuation."""
    s = validate(settings, DecodingSettings)
    stops = parse_stop(stop)
    gen, position, prompt_tokens, prefix = _prefix(tm, prompt, mode, continuation, position)
    token_id = int(check_range("token id", token_id, 0, vocab_size(tm) - 1, integer=True))
    budget = max(1, s.max_new_tokens - position)  # the continuation's own budget, from its start
    limit = max_context(tm)
    if prefix.numel() + budget > limit:
        raise UserInputError(f"the prefix ({prefix.numel()} tokens) + {budget} new tokens is more than {tm.key}'s "
                             f"context window: valid totals are 1 to {limit}.")
    eos, special = eos_ids(tm), set(getattr(tm.tokenizer, "all_special_ids", []) or [])
    generator = torch.Generator(device=tm.device).manual_seed(int(s.seed)) if sampling(s) else None
    cache = new_cache(tm)
    logits = _forward(tm, prefix[None], cache)  # (1, vocab)
    all_ids = prefix[None]  # (1, seq)
    tokens = torch.tensor([token_id], device=prefix.device)  # the first token is the picked one
    out = Branch(position, token_id, prefix.tolist(), prompt_tokens, gen[position:],
                 tm.tokenizer.decode(gen[:position]), _pieces(tm, gen[:position], gen[position:]),
                 (token_label(tm, gen[position]), token_label(tm, token_id)))
    for step in range(budget):
        scores = final_logits(logits, all_ids, s)  # (1, vocab)
        if step > 0:
            tokens, probs = pick(scores, s, generator)
        else:
            probs = scores.softmax(-1) if sampling(s) else None
        (p_raw,), (p_fin,), (rank,) = chosen_stats(logits, scores, probs, tokens)
        tid = int(tokens[0])
        out.tokens.append(_token_out(tm, tid, p_raw, p_fin, rank, special))
        all_ids = torch.cat([all_ids, tokens[:, None]], dim=1)  # (1, seq + 1)
        text = tm.tokenizer.decode([t.id for t in out.tokens])
        if tid in eos:
            out.stop_reason = "EOS"
        elif (hit := next((x for x in stops if x in text), None)) is not None:
            out.stop_reason = f"stop string {hit!r}"
        if out.stop_reason or step + 1 == budget:
            break
        logits = _forward(tm, tokens[:, None], cache)
    out.stop_reason = out.stop_reason or "max_new_tokens"
    return out


__all__ = ["DISTRIBUTION", "MAX_ALTERNATIVES", "MAX_CONTINUATION", "Alternative", "BranchPoint", "Branch",
           "alternatives", "branch", "parse_continuation"]
