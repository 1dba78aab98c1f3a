"""Reference vs candidate answers: from strict string checks to a model's opinion.

exact match (raw, then after Unicode normalisation, then after SQuAD-style normalization) ->
character edit distance ->
token F1 and bigram overlap -> cosine similarity of MiniLM sentence embeddings (mean pooling)
-> "AI as judge": the instruct model is asked for a 1-5 rating and we read its probabilities
for the five digits (one forward pass, no sampling). A 135M model's opinion is not a grade.
"""
from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

from ..core.chat import chat_ids, plain_ids
from ..core.errors import UserInputError, check_choice, check_text
from ..core.lazy import no_grad, torch

MAX_ANSWER_CHARS = 1000
MAX_CANDIDATES = 8
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCT = frozenset(string.punctuation)  # SQuAD's set: ASCII punctuation and symbols ($ + < = > ^ ` | ~)
# Unicode normalisation forms offered: NFC joins a letter and its combining accent into one code
# point (so composed and decomposed "é" agree); NFKC also folds compatibility forms
# (full-width "Ｐａｒｉｓ", the ligature "ﬁ", superscript "²") into plain ones.
UNICODE_FORMS = ("NFC", "NFKC")

# What each metric compares: shown in the UI under the table, so it is said in one place.
METRIC_DESCRIPTIONS = {
    "exact (raw)": "the two strings exactly as typed, code point by code point: nothing is normalised, so a "
                   "trailing space, a different case or a decomposed accent (e + U+0301 instead of é) makes "
                   "them differ",
    "exact (NFC / NFKC, trimmed)": "equal after Unicode normalisation ({form}) and trimming the spaces "
                                   "around the answer; case and punctuation still count",
    "exact (normalized)": "SQuAD-style: Unicode {form}, lower-cased, punctuation (ASCII and Unicode) and the "
                          "articles a/an/the dropped, runs of whitespace collapsed",
    "edit distance": "fewest single-character insertions, deletions and substitutions between the Unicode "
                     "({form}), trimmed strings; ratio = 1 − distance / length of the longer one",
    "token F1 / bigram F1": "overlap of the words / word pairs of the SQuAD-normalized answers",
    "semantic": "cosine of mean-pooled MiniLM sentence embeddings of the answers as typed",
    "tiny judge": "SmolLM2-135M asked for a 1-5 rating; we read its probabilities for the five digits (no "
                  "sampling). It is a 135M-parameter model's opinion, not a grade",
}


def check_form(form: str) -> str:
    return check_choice("Unicode normalisation", form, UNICODE_FORMS)


def unicode_form(text: str, form: str = "NFC") -> str:
    """The text in Unicode normalisation form `form` (NFC or NFKC), surrounding whitespace trimmed."""
    return unicodedata.normalize(check_form(form), text).strip()


def _is_punctuation(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def normalize(text: str, form: str = "NFC") -> str:
    """Unicode `form`, lowercase, drop punctuation (ASCII punctuation and symbols, and every Unicode
    punctuation character: « » “ ” ¿ ¡ 。 — ...), drop the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in unicode_form(text, form).lower() if not _is_punctuation(ch))
    return " ".join(_ARTICLES.sub(" ", text).split())


EXACT_MODES = ("raw", "unicode", "normalized")


def exact_match(reference: str, candidate: str, mode: str = "raw", form: str = "NFC") -> bool:
    """raw: identical code points, nothing changed; unicode: equal after unicode_form(); normalized:
    equal after normalize() (SQuAD-style). See METRIC_DESCRIPTIONS."""
    check_choice("exact-match mode", mode, EXACT_MODES)
    if mode == "raw":
        return reference == candidate
    if mode == "unicode":
        return unicode_form(reference, form) == unicode_form(candidate, form)
    return normalize(reference, form) == normalize(candidate, form)


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


def ngram_f1(reference: str, candidate: str, n: int = 1, form: str = "NFC") -> float:
    """F1 of the n-grams the two normalized answers share (n=1 is SQuAD's token F1)."""
    ref, cand = normalize(reference, form).split(), normalize(candidate, form).split()
    grams = lambda toks: Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))  # noqa: E731
    r, c = grams(ref), grams(cand)
    if not r or not c:  # an answer too short to have n-grams: only equal answers overlap
        return float(ref == cand)
    common = sum((r & c).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(c.values()), common / sum(r.values())
    return 2 * precision * recall / (precision + recall)


@no_grad
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


def _judge_user(reference: str, candidate: str, question: str) -> str:
    q = f"\nQuestion: {question}" if question.strip() else ""
    return JUDGE_INSTRUCTION.format(question=q, reference=reference, candidate=candidate)


def judge_prompt(tokenizer, reference: str, candidate: str, question: str = "") -> str:
    user = _judge_user(reference, candidate, question)
    messages = [{"role": "user", "content": user}]
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        prompt = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    return prompt + JUDGE_PREFIX


def judge_ids(tokenizer, reference: str, candidate: str, question: str = "") -> list[int]:
    """judge_prompt's text as ids. The texts are the user's: a special-token string in them
    ('<|im_end|>') stays plain text, so a candidate cannot close the turn and write its own."""
    user = _judge_user(reference, candidate, question)

    def ours(text: str) -> list[int]:  # the template's text: its special tokens are tokens
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    if getattr(tokenizer, "chat_template", None):
        return chat_ids(tokenizer, [{"role": "user", "content": user}]) + ours(JUDGE_PREFIX)
    return ours("<|im_start|>user\n") + plain_ids(tokenizer, user) + ours(
        f"<|im_end|>\n<|im_start|>assistant\n{JUDGE_PREFIX}")


@no_grad
def judge(model, tokenizer, reference: str, candidate: str, question: str = "") -> dict:
    """The model's next-token probabilities for '1'..'5' after 'Rating: '. Returns them
    renormalized over the digits, the expected rating, and how much probability the digits
    got at all (low = the model was not following the format)."""
    prompt = judge_prompt(tokenizer, reference, candidate, question)
    ids = torch.tensor([judge_ids(tokenizer, reference, candidate, question)])  # (1, seq)
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
    """One candidate per line (a string) or a list of strings. Each is kept exactly as typed
    (spaces included: "exact (raw)" must see them); blank lines are skipped."""
    if isinstance(candidates, str):
        items = candidates.splitlines()
    elif isinstance(candidates, (list, tuple)):
        items = [str(c) for c in candidates]
    else:
        raise UserInputError(f"candidates must be text (one answer per line), got {type(candidates).__name__}.")
    items = [c for c in items if c.strip()]
    if not 1 <= len(items) <= MAX_CANDIDATES:
        raise UserInputError(f"candidates: give 1 to {MAX_CANDIDATES} answers, one per line; got {len(items)}.")
    for c in items:
        check_text("candidate answer", c, max_chars=MAX_ANSWER_CHARS)
    return items


def compare_answers(reference: str, candidates, encoder_bundle=None, judge_bundle=None,
                    question: str = "", progress=None, form: str = "NFC") -> list[dict]:
    """One row of metrics per candidate. encoder_bundle / judge_bundle: TextModel or None (skip).
    form: the Unicode normalisation (NFC or NFKC) of every metric except exact (raw)."""
    reference = check_text("reference answer", reference, max_chars=MAX_ANSWER_CHARS)
    question = check_text("question", question or "", max_chars=MAX_ANSWER_CHARS, allow_empty=True)
    form = check_form(form)
    cands = parse_candidates(candidates)
    ref_u = unicode_form(reference, form)
    rows = []
    for c in cands:
        c_u = unicode_form(c, form)
        rows.append(dict(candidate=c, unicode_form=form, exact_raw=exact_match(reference, c, "raw"),
                         exact_unicode=exact_match(reference, c, "unicode", form),
                         exact_normalized=exact_match(reference, c, "normalized", form),
                         edit_distance=edit_distance(ref_u, c_u), edit_ratio=edit_ratio(ref_u, c_u),
                         token_f1=ngram_f1(reference, c, 1, form), bigram_f1=ngram_f1(reference, c, 2, form)))
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
