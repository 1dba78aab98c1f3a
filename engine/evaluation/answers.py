"""Reference vs candidate answers: from strict string checks to a model's opinion.

exact match (raw, then after SQuAD-style normalization) -> character edit distance ->
token F1 and bigram overlap -> cosine similarity of MiniLM sentence embeddings (mean pooling)
-> "AI as judge": the instruct model is asked for a 1-5 rating and we read its probabilities
for the five digits (one forward pass, no sampling). A 135M model's opinion is not a grade.
"""
from __future__ import annotations

import re
import string
from collections import Counter

import torch

from ..core.errors import UserInputError, check_text

MAX_ANSWER_CHARS = 1000
MAX_CANDIDATES = 8
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation + "“”‘’«»…")


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = text.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(reference: str, candidate: str, normalized: bool = False) -> bool:
    if normalized:
        return normalize(reference) == normalize(candidate)
    return reference == candidate


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the fewest single-character insertions, deletions and substitutions."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def edit_ratio(a: str, b: str) -> float:
    """1 - distance / length of the longer string (1 = identical, 0 = nothing in common)."""
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - edit_distance(a, b) / longest


def ngram_f1(reference: str, candidate: str, n: int = 1) -> float:
    """F1 of the n-grams the two normalized answers share (n=1 is SQuAD's token F1)."""
    ref, cand = normalize(reference).split(), normalize(candidate).split()
    grams = lambda toks: Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))  # noqa: E731
    r, c = grams(ref), grams(cand)
    if not r or not c:  # an answer too short to have n-grams: only equal answers overlap
        return float(ref == cand)
    common = sum((r & c).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(c.values()), common / sum(r.values())
    return 2 * precision * recall / (precision + recall)


@torch.no_grad()
def embed(encoder, tokenizer, texts: list[str]) -> torch.Tensor:
    """Mean-pooled, L2-normalized sentence embeddings (the all-MiniLM-L6-v2 recipe)."""
    device = next(encoder.parameters()).device
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt").to(device)
    hidden = encoder(**batch).last_hidden_state.float()  # (batch, seq, dim)
    mask = batch["attention_mask"][..., None].float()  # (batch, seq, 1)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (batch, dim)
    return torch.nn.functional.normalize(pooled, dim=-1)


def semantic_similarity(encoder, tokenizer, reference: str, candidates: list[str]) -> list[float]:
    vecs = embed(encoder, tokenizer, [reference] + candidates)  # (1 + n, dim)
    return (vecs[1:] @ vecs[0]).tolist()


JUDGE_INSTRUCTION = (
    "You grade answers. Compare the candidate answer with the reference answer.{question}\n"
    "Reference answer: {reference}\nCandidate answer: {candidate}\n"
    "Rate the candidate from 1 (wrong) to 5 (same meaning as the reference). Reply with one digit."
)
JUDGE_PREFIX = "Rating: "


def judge_prompt(tokenizer, reference: str, candidate: str, question: str = "") -> str:
    q = f"\nQuestion: {question}" if question.strip() else ""
    user = JUDGE_INSTRUCTION.format(question=q, reference=reference, candidate=candidate)
    messages = [{"role": "user", "content": user}]
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        prompt = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    return prompt + JUDGE_PREFIX


@torch.no_grad()
def judge(model, tokenizer, reference: str, candidate: str, question: str = "") -> dict:
    """The model's next-token probabilities for '1'..'5' after 'Rating: '. Returns them
    renormalized over the digits, the expected rating, and how much probability the digits
    got at all (low = the model was not following the format)."""
    prompt = judge_prompt(tokenizer, reference, candidate, question)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    ids = ids.to(next(model.parameters()).device)
    logits = model(input_ids=ids, logits_to_keep=1).logits[0, -1].float()  # (V,)
    probs = torch.softmax(logits, -1)
    digit_ids = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(1, 6)]
    raw = [float(probs[i]) for i in digit_ids]
    mass = sum(raw)
    dist = [p / mass for p in raw] if mass > 0 else [0.2] * 5
    return dict(prompt=prompt, digit_probs=dist, digit_mass=mass,
                expected=sum((k + 1) * p for k, p in enumerate(dist)),
                rating=1 + max(range(5), key=lambda k: dist[k]))


def parse_candidates(candidates) -> list[str]:
    """One candidate per line (a string) or a list of strings."""
    if isinstance(candidates, str):
        items = [c.strip() for c in candidates.splitlines()]
    elif isinstance(candidates, (list, tuple)):
        items = [str(c).strip() for c in candidates]
    else:
        raise UserInputError(f"candidates must be text (one answer per line), got {type(candidates).__name__}.")
    items = [c for c in items if c]
    if not 1 <= len(items) <= MAX_CANDIDATES:
        raise UserInputError(f"candidates: give 1 to {MAX_CANDIDATES} answers, one per line; got {len(items)}.")
    for c in items:
        check_text("candidate answer", c, max_chars=MAX_ANSWER_CHARS)
    return items


def compare_answers(reference: str, candidates, encoder_bundle=None, judge_bundle=None,
                    question: str = "", progress=None) -> list[dict]:
    """One row of metrics per candidate. encoder_bundle / judge_bundle: TextModel or None (skip)."""
    reference = check_text("reference answer", reference, max_chars=MAX_ANSWER_CHARS)
    question = check_text("question", question or "", max_chars=MAX_ANSWER_CHARS, allow_empty=True)
    cands = parse_candidates(candidates)
    rows = [dict(candidate=c, exact_raw=exact_match(reference, c), exact_normalized=exact_match(reference, c, True),
                 edit_distance=edit_distance(reference, c), edit_ratio=edit_ratio(reference, c),
                 token_f1=ngram_f1(reference, c, 1), bigram_f1=ngram_f1(reference, c, 2)) for c in cands]
    if encoder_bundle is not None:
        if progress:
            progress(0.3, "Embedding the answers with MiniLM")
        sims = semantic_similarity(encoder_bundle.model, encoder_bundle.tokenizer, reference, cands)
        for row, s in zip(rows, sims):
            row["semantic"] = s
    if judge_bundle is not None:
        for i, row in enumerate(rows):
            if progress:
                progress(0.5 + 0.5 * i / len(rows), f"Asking the small judge about answer {i + 1}")
            row["judge"] = judge(judge_bundle.model, judge_bundle.tokenizer, reference, row["candidate"], question)
    return rows
