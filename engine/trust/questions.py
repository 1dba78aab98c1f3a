"""The bundled factual questions (scripts/build_trust_questions.py writes them) and the answer check.

An answer is right when, normalised as the Evaluation lesson's answer metrics normalise for exact
match (Unicode NFC, lower case, punctuation and a/an/the dropped, spaces collapsed), it equals the
gold answer or one of its aliases.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserInputError, check_range
from ..evaluation import answers

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "assets" / "trust" / "questions.jsonl"
SOURCE_NOTE = ("209 short factual questions written for this project with their gold answers and accepted "
               "spellings (scripts/build_trust_questions.py; assets/trust/SOURCE.md)")
CATEGORIES = ("capital", "symbol", "author", "currency", "number", "general")


@dataclass(frozen=True)
class Question:
    id: str
    category: str
    question: str
    answer: str
    aliases: tuple[str, ...]
    passage: str
    false_answer: str
    misleading_passage: str


_CACHE: list = []


def bundled() -> list[Question]:
    if not _CACHE:
        rows = [json.loads(line) for line in BUNDLED.read_text(encoding="utf-8").splitlines() if line.strip()]
        _CACHE.extend(Question(**{**r, "aliases": tuple(r["aliases"])}) for r in rows)
    return list(_CACHE)


def spread(items: list[Question], n: int) -> list[Question]:
    """n questions taking one category after another, so a small n still covers every category."""
    n = check_range("questions", n, 1, len(items), integer=True)
    queues = {}
    for q in items:
        queues.setdefault(q.category, []).append(q)
    lists, out = list(queues.values()), []
    while len(out) < n:
        for lst in lists:
            if lst and len(out) < n:
                out.append(lst.pop(0))
    return out


def choose(n: int, category: str = "all") -> list[Question]:
    items = bundled()
    if category != "all":
        if category not in CATEGORIES:
            raise UserInputError(f"category = {category!r} is not a valid choice: choose one of all, "
                                 f"{', '.join(CATEGORIES)}.")
        items = [q for q in items if q.category == category]
    return spread(items, min(int(check_range("questions", n, 1, len(bundled()), integer=True)), len(items)))


def is_correct(answer: str, q: Question) -> bool:
    """Normalised exact match against the gold answer or any alias."""
    got = answers.normalize(answer)
    return bool(got) and any(got == answers.normalize(a) for a in q.aliases)


def repeats(answer: str, false_answer: str) -> bool:
    got = answers.normalize(answer)
    return bool(got) and got == answers.normalize(false_answer)
