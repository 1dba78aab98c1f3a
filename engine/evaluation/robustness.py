"""A stress test by rules: small, written-down changes to a question, and whether the model's
answer survives them.

Each rule is a pure function text -> text (no randomness: the same question always gives the same
variant) and says what it changes. Most keep the meaning, so a robust model keeps its answer; the
negation swap flips the meaning, so there the robust behaviour is to change the answer:

    passes = answer kept        for rules that keep the meaning
           = answer changed     for the negation swap
    robustness score = passes / variants made (a rule that finds nothing to change makes none)

The model answers either by choosing among given choices (log-likelihood of each choice, as the
task suite scores them) or, with no choices, by greedy generation of a short answer. For every
variant we also report the probability of the model's ORIGINAL answer: among the choices (softmax
over their log-likelihoods), or, for a free answer, p(original answer | variant) itself.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

from ..core.errors import UserInputError, check_text
from ..core.settings import make
from ..decoding import generation
from . import answers, suite

MAX_QUESTION_CHARS = 500
MAX_NEW_TOKENS = 16

# ---- the rules -----------------------------------------------------------------------------------
_WORD = re.compile(r"[A-Za-z]+")


def typo(text: str) -> str:
    """Swap two neighbouring letters inside the longest word of 4+ letters (the first one if
    several are as long): the 2nd and 3rd letters, or the 3rd and 4th when those two are equal."""
    words = [m for m in _WORD.finditer(text) if len(m.group()) >= 4]
    if not words:
        return text
    m = max(words, key=lambda w: len(w.group()))
    w = m.group()
    i = 1 if w[1] != w[2] else 2
    if w[i] == w[i + 1]:
        return text
    w = w[:i] + w[i + 1] + w[i] + w[i + 2:]
    return text[:m.start()] + w + text[m.end():]


def upper_case(text: str) -> str:
    """EVERY LETTER IN CAPITALS."""
    return text.upper()


def lower_case(text: str) -> str:
    """every letter in lower case."""
    return text.lower()


def extra_whitespace(text: str) -> str:
    """Three spaces between words, two before and after the text."""
    return "  " + "   ".join(text.split()) + "  "


def no_punctuation(text: str) -> str:
    """Every punctuation character removed (Unicode category P*)."""
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0..999 in English words: 47 -> 'forty-seven', 305 -> 'three hundred five'."""
    if n < 20:
        return _UNITS[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _TENS[tens - 2] + (f"-{_UNITS[unit]}" if unit else "")
    hundreds, rest = divmod(n, 100)
    return f"{_UNITS[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")


_WORD_VALUES = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(sorted(_WORD_VALUES, key=len, reverse=True)) + r")(?:-("
                          + "|".join(_UNITS[1:10]) + r"))?\b", re.IGNORECASE)


def number_format(text: str) -> str:
    """Numbers written the other way: digits as words (0-999: 12 -> twelve), or, when the text
    has no digits, number words as digits (twelve -> 12, forty-two -> 42)."""
    if re.search(r"\d", text):
        return re.sub(r"\b\d{1,3}\b", lambda m: number_words(int(m.group())), text)

    def value(m):
        v = _WORD_VALUES[m.group(1).lower()]
        return str(v + (_WORD_VALUES[m.group(2).lower()] if m.group(2) else 0))
    return _NUMBER_WORD.sub(value, text)


_NEGATED = ((r"\bisn't\b", "is"), (r"\baren't\b", "are"), (r"\bwasn't\b", "was"), (r"\bcan't\b", "can"),
            (r"\bcannot\b", "can"), (r"\bdoesn't\b", "does"), (r"\bdon't\b", "do"), (r"\bwon't\b", "will"),
            (r"\bnot\s+", ""))
_AUX = ("is", "are", "was", "were", "can", "does", "do", "will", "should", "could", "has", "have")


def _match_case(new: str, old: str) -> str:
    return new[:1].upper() + new[1:] if old[:1].isupper() else new


def negation_swap(text: str) -> str:
    """Flip the meaning once: remove the first negation (isn't -> is, cannot -> can, 'not ' -> ''),
    or, if there is none, put 'not' after the first auxiliary verb inside the sentence ('Which of
    these is a fruit?' -> 'Which of these is not a fruit?'), or, when the only one opens a question,
    after the word that follows it ('Is 12 greater than 7?' -> 'Is 12 not greater than 7?')."""
    first = None
    for pattern, repl in _NEGATED:
        m = re.search(pattern, text, re.IGNORECASE)
        if m and (first is None or m.start() < first[0].start()):
            first = (m, repl)
    if first:
        m, repl = first
        return text[:m.start()] + _match_case(repl, m.group()) + text[m.end():]
    words = list(re.finditer(r"[A-Za-z0-9']+", text))
    for j, m in enumerate(words):
        if m.group().lower() in _AUX and j > 0:
            return text[:m.end()] + " not" + text[m.end():]
    if words and words[0].group().lower() in _AUX and len(words) > 1:
        m = words[1]
        return text[:m.end()] + " not" + text[m.end():]
    return text


# A small list written for this lesson: word -> a word of the same meaning in these questions.
SYNONYMS = {
    "big": "large", "large": "big", "largest": "biggest", "biggest": "largest", "small": "little",
    "smallest": "tiniest", "fast": "quick", "quick": "fast", "begin": "start", "start": "begin",
    "happy": "glad", "answer": "reply", "buy": "purchase", "car": "automobile", "help": "assist",
    "choose": "pick", "correct": "right", "wrong": "incorrect", "many": "numerous", "often": "frequently",
    "build": "construct", "end": "finish", "child": "kid", "children": "kids", "shop": "store",
    "maybe": "perhaps", "hard": "difficult", "easy": "simple", "sick": "ill", "world": "globe",
    "country": "nation", "these": "the following", "greater": "larger", "bigger": "larger",
    "smaller": "lesser", "city": "town", "name": "give", "tell": "say", "find": "locate",
    "near": "close to", "ocean": "sea", "famous": "well-known",
    "old": "aged", "speak": "talk", "gift": "present", "stone": "rock", "street": "road",
}


def synonym_swap(text: str) -> str:
    """Every word found in SYNONYMS replaced by its listed synonym (the first letter's case kept)."""
    def repl(m):
        word = m.group()
        new = SYNONYMS.get(word.lower())
        return _match_case(new, word) if new else word
    return _WORD.sub(repl, text)


# The same question in another language, where one of these templates matches it; the slot
# (a country, a number, a category word) is carried over as written.
_TEMPLATES = (
    (re.compile(r"^\s*what is the capital of (?P<x>.+?)\s*\?\s*$", re.IGNORECASE),
     {"French": "Quelle est la capitale de {x} ?", "German": "Was ist die Hauptstadt von {x}?",
      "Spanish": "¿Cuál es la capital de {x}?"}),
    (re.compile(r"^\s*what is (?P<x>\d+\s*[-+×x*/]\s*\d+)\s*\?\s*$", re.IGNORECASE),
     {"French": "Combien font {x} ?", "German": "Was ist {x}?", "Spanish": "¿Cuánto es {x}?"}),
    (re.compile(r"^\s*which of these is (?:a|an) (?P<x>.+?)\s*\?\s*$", re.IGNORECASE),
     {"French": "Lequel de ces mots est un(e) {x} ?", "German": "Welches davon ist ein(e) {x}?",
      "Spanish": "¿Cuál de estos es un(a) {x}?"}),
    (re.compile(r"^\s*what is the largest planet in the solar system\s*\?\s*$", re.IGNORECASE),
     {"French": "Quelle est la plus grande planète du système solaire ?",
      "German": "Was ist der größte Planet im Sonnensystem?",
      "Spanish": "¿Cuál es el planeta más grande del sistema solar?"}),
)


def translate(text: str, language: str) -> str:
    """The question in `language` when a template matches it, else the text unchanged."""
    for pattern, langs in _TEMPLATES:
        m = pattern.match(text)
        if m and language in langs:
            return langs[language].format(**m.groupdict())
    return text


TEMPLATE_SHAPES = ("What is the capital of X?", "What is N + M? (or -, ×, /)", "Which of these is a X?",
                   "What is the largest planet in the solar system?")  # one per entry of _TEMPLATES


def _language_help(language: str) -> str:
    shapes = "; ".join(f"'{s}'" for s in TEMPLATE_SHAPES)
    return (f"The question written in {language} by a fixed template, not by a translation model: only "
            f"{len(TEMPLATE_SHAPES)} question shapes are translated ({shapes}); any other question is left "
            "unchanged, so this rule skips it.")


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str  # the cluster it reports in: typos, case, whitespace, ...
    fn: Callable[[str], str]
    keeps_meaning: bool = True
    help: str = ""  # what the rule does, when fn has no docstring to say it

    @property
    def description(self) -> str:
        return self.help or (self.fn.__doc__ or "").strip().split("\n\n")[0].replace("\n    ", " ")


RULES = (
    Rule("typo", "typos", typo),
    Rule("upper case", "case", upper_case),
    Rule("lower case", "case", lower_case),
    Rule("extra whitespace", "whitespace", extra_whitespace),
    Rule("no punctuation", "punctuation", no_punctuation),
    Rule("number format", "number formats", number_format),
    Rule("negation swap", "negation", negation_swap, keeps_meaning=False),
    Rule("synonyms", "synonyms", synonym_swap),
    *(Rule(f"in {lang}", "another language", lambda t, lang=lang: translate(t, lang), help=_language_help(lang))
      for lang in ("French", "German", "Spanish")),
)
RULE_NAMES = tuple(r.name for r in RULES)


def check_rules(rules: list) -> None:
    """Each rule at most once (so at most len(RULE_NAMES) variants, one model answer each)."""
    if len(rules) > len(RULE_NAMES) or len(set(map(str, rules))) != len(rules):
        twice = next((r for r in rules if rules.count(r) > 1), None)
        raise UserInputError(f"rules: {len(rules)} given{f', {twice!r} {rules.count(twice)} times' if twice else ''}: "
                             f"choose each rule at most once, up to {len(RULE_NAMES)} rules.")


def variants(question: str, rules=RULE_NAMES) -> list[tuple[Rule, str]]:
    """(rule, perturbed question) for every chosen rule that changes the question."""
    by_name = {r.name: r for r in RULES}
    for name in rules:
        if name not in by_name:
            raise UserInputError(f"rule = {name!r} is not valid: choose from {', '.join(RULE_NAMES)}.")
    out = []
    for name in rules:
        rule = by_name[name]
        new = rule.fn(question)
        if new != question:
            out.append((rule, new))
    return out


# ---- asking the model ----------------------------------------------------------------------------
def context(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def _generate(tm, question: str) -> str:
    settings = make(generation.DecodingSettings, do_sample=False, temperature=0.0, max_new_tokens=MAX_NEW_TOKENS,
                    num_return_sequences=1)
    out = generation.generate(tm, context(question), settings, mode="raw", stop="\n")
    text = "".join(t.text for t in out.sequences[0].tokens if not t.special)  # no <|im_end|>
    return text.split("\n")[0].strip()


def _p_answer(tm, question: str, answer_text: str) -> float:
    import math

    if not answer_text:
        return float("nan")
    res = suite.loglikelihoods(tm.model, tm.tokenizer, [(context(question), " " + answer_text)])
    return math.exp(res[0]["logprob"])


def parse_choices(choices) -> list[str]:
    if choices is None or choices == "":
        return []
    items = choices.splitlines() if isinstance(choices, str) else list(choices)
    items = [check_text("choice", c, max_chars=suite.MAX_CHOICE_CHARS).strip() for c in items if str(c).strip()]
    if len(items) == 1 or len(items) > suite.MAX_CHOICES:
        raise UserInputError(f"choices: give 2 to {suite.MAX_CHOICES} choices (one a line), or none for a "
                             f"free answer; got {len(items)}.")
    if len(set(items)) != len(items):
        raise UserInputError("choices: two choices are the same text; choices must differ.")
    return items


def stress_test(tm, question: str, choices=None, rules=RULE_NAMES, progress=None) -> dict:
    """The original answer, then one row per variant: the model's answer, p(original answer),
    kept or not, passed or not; the robustness score and the failures clustered by kind."""
    question = check_text("question", question, max_chars=MAX_QUESTION_CHARS).strip()
    choice_list = parse_choices(choices)
    rules = [rules] if isinstance(rules, str) else list(rules or [])
    if not rules:
        raise UserInputError(f"rules is empty: choose one or more of {', '.join(RULE_NAMES)}.")
    check_rules(rules)
    made = variants(question, rules)
    report = progress or (lambda f, m: None)

    texts = [question] + [text for _, text in made]
    if choice_list:  # every (question, choice) pair of every variant in one batched call
        report(0.0, f"scoring {len(choice_list)} choices for {len(texts)} questions")
        pairs = [(context(q), " " + c) for q in texts for c in choice_list]
        res = suite.loglikelihoods(tm.model, tm.tokenizer, pairs, progress=report)
        k = len(choice_list)
        probs_all = [suite.choice_probs([r["logprob"] for r in res[i * k:(i + 1) * k]]) for i in range(len(texts))]
        answers_all = [choice_list[max(range(k), key=p.__getitem__)] for p in probs_all]
    else:
        answers_all = []
        for n, q in enumerate(texts):
            report(n / len(texts), f"answering variant {n} of {len(made)}" if n else "the original question")
            answers_all.append(_generate(tm, q))
    original, probs0 = answers_all[0], (probs_all[0] if choice_list else None)
    rows = []
    for n, (rule, text) in enumerate(made, 1):
        ans = answers_all[n]
        p_orig = probs_all[n][choice_list.index(original)] if choice_list else _p_answer(tm, text, original)
        kept = answers.normalize(ans) == answers.normalize(original)
        rows.append(dict(rule=rule.name, kind=rule.kind, keeps_meaning=rule.keeps_meaning, variant=text,
                         answer=ans, p_original=p_orig, kept=kept,
                         passed=kept if rule.keeps_meaning else not kept))
    report(1.0, "done")
    clusters: dict[str, dict] = {}
    for r in rows:
        c = clusters.setdefault(r["kind"], dict(kind=r["kind"], variants=0, failures=0, failed=[]))
        c["variants"] += 1
        if not r["passed"]:
            c["failures"] += 1
            c["failed"].append(r["rule"])
    score = sum(r["passed"] for r in rows) / len(rows) if rows else float("nan")
    return dict(question=question, choices=choice_list, original_answer=original,
                p_original=(probs0[choice_list.index(original)] if choice_list else _p_answer(tm, question, original)),
                mode="choices" if choice_list else "free answer (greedy)", rows=rows,
                robustness=score, clusters=list(clusters.values()),
                skipped=[r for r in rules if r not in {row["rule"] for row in rows}])
