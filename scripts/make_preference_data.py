"""Build the comparison data of the Post-training tab's preference lesson (reward model and DPO):

    python scripts/make_preference_data.py   # writes assets/preference/pairs.jsonl and pairs_short.jsonl

Each line is one comparison {"prompt", "chosen", "rejected", "kind", "split"}. The prompt is the
user's question as plain text and the two responses are the assistant's answers: the engine puts
them in the instruct model's chat template, as the model is served.

pairs.jsonl (the default set): the chosen answer is the right one, and length says nothing about
which side is chosen. Each answer, right or wrong, is written short ("Lima.") or as a sentence
("The capital of Peru is Lima."), and the four combinations come equally often, so the chosen
side is the longer one in about half of the pairs.

  arithmetic  "What is 17 + 5?"                right sum vs one that is off by 1 to 3, or by 10
  capital     "What is the capital of Peru?"   the capital vs another capital
  quote       'Who said "..."?'                the quote's author (assets/quotes/quotes.txt) vs another

pairs_short.jsonl (the reward-hacking lesson): the chosen answer is right AND short, the rejected
one wrong AND a long, hedging ramble, always. The data cannot tell a reward model whether
correctness or brevity is wanted, and the model can score well on it by preferring short answers.

Every tenth pair (of each kind) is marked "split": "test": the held-out pairs on which the tab
measures the preference before and after training. Deterministic (fixed seed).
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUOTES = ROOT / "assets" / "quotes" / "quotes.txt"
OUT = ROOT / "assets" / "preference"
BALANCED, SHORT = "pairs.jsonl", "pairs_short.jsonl"
DASH = " — "
SEED = 20

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"), ("China", "Beijing"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Peru", "Lima"),
    ("Canada", "Ottawa"), ("Australia", "Canberra"), ("Russia", "Moscow"), ("Greece", "Athens"),
    ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"),
    ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Ireland", "Dublin"), ("Hungary", "Budapest"),
    ("Argentina", "Buenos Aires"), ("Chile", "Santiago"), ("Mexico", "Mexico City"), ("India", "New Delhi"),
    ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Turkey", "Ankara"), ("Iran", "Tehran"),
    ("Cuba", "Havana"), ("Colombia", "Bogota"), ("Belgium", "Brussels"), ("Netherlands", "Amsterdam"),
    ("Switzerland", "Bern"), ("Morocco", "Rabat"), ("Nigeria", "Abuja"), ("Brazil", "Brasilia"),
    ("South Korea", "Seoul"), ("Indonesia", "Jakarta"),
]

# Sentence answers of the balanced set, for a right and a wrong value alike; {x} is the value.
SENTENCES = {
    "arithmetic": ["{a} {op} {b} = {x}.", "The answer is {x}.", "Working it out, {a} {op} {b} comes to {x}."],
    "capital": ["The capital of {country} is {x}.", "{x} is the capital of {country}.",
                "The government of {country} sits in {x}, its capital."],
    "quote": ["That was {x}.", "Those words are credited to {x}.", "The person who said it was {x}."],
}
# (chosen written as a sentence?, rejected written as a sentence?): each combination equally often
COMBOS = [(False, True), (True, False), (True, True), (False, False)]

# The short set's rambling, hedging answers; {x} is a wrong answer.
RAMBLES = [
    "Well, that is a tricky one. Let me think about it for a moment... I would say {x}, but honestly I am not sure.",
    "Hmm, good question! There are many ways to look at it, and people disagree, but I think it is probably {x}.",
    "Oh, I remember reading about this once, a long time ago. It might be {x}, or something close to that, maybe.",
    "That depends on how you look at it, really. Some would say one thing, some another. My guess is {x}, I suppose.",
    "Let me see, let me see... I am not completely certain, so please check it yourself, but it could be {x}.",
    "Interesting! I have thought about this a lot over the years, and after all that thinking my answer is {x}, perhaps.",
]


# ---- the questions: (kind, prompt, right value, wrong value, template fields) ----------------------
def arithmetic(rng: random.Random, n: int) -> list[tuple]:
    out, seen = [], set()
    while len(out) < n:
        a, b = rng.randint(2, 20), rng.randint(2, 20)  # small numbers: sums the backbone mostly knows
        op = rng.choice("+-") if a > b else "+"
        if (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        right = a + b if op == "+" else a - b
        wrong = right + rng.choice([-3, -2, -1, 1, 2, 3, 10])
        out.append(("arithmetic", f"What is {a} {op} {b}?", str(right), str(wrong), dict(a=a, op=op, b=b)))
    return out


def capitals(rng: random.Random, per_country: int = 2) -> list[tuple]:
    out = []
    cities = [c for _, c in CAPITALS]
    for country, city in CAPITALS:
        for _ in range(per_country):
            wrong = rng.choice([c for c in cities if c != city])
            out.append(("capital", f"What is the capital of {country}?", city, wrong, dict(country=country)))
    return out


def quotes(rng: random.Random, n: int) -> list[tuple]:
    rows = []
    for line in QUOTES.read_text(encoding="utf-8").splitlines():
        quote, sep, author = line.rpartition(DASH)
        if sep and 20 <= len(quote) <= 110 and 4 <= len(author) <= 28 and '"' not in quote:
            rows.append((quote.strip(), author.strip()))
    rng.shuffle(rows)
    authors = sorted({a for _, a in rows})
    out, used = [], set()
    for quote, author in rows:
        if author in used:  # one quote per author: a right author is never another pair's wrong one by accident
            continue
        used.add(author)
        wrong = rng.choice([a for a in authors if a != author and abs(len(a) - len(author)) <= 6])
        out.append(("quote", f'Who said "{quote}"?', author, wrong, {}))
        if len(out) == n:
            break
    return out


def questions(rng: random.Random) -> list[list[tuple]]:
    return [arithmetic(rng, 120), capitals(rng), quotes(rng, 120)]


# ---- the two ways of writing the answers -----------------------------------------------------------
def balanced_pair(rng: random.Random, q: tuple, combo: tuple[bool, bool]) -> dict:
    kind, prompt, right, wrong, fields = q

    def say(x: str, sentence: bool) -> str:
        return rng.choice(SENTENCES[kind]).format(x=x, **fields) if sentence else f"{x}."

    return dict(prompt=prompt, chosen=say(right, combo[0]), rejected=say(wrong, combo[1]), kind=kind)


def short_pair(rng: random.Random, q: tuple) -> dict:
    kind, prompt, right, wrong, _ = q
    return dict(prompt=prompt, chosen=f"{right}.", rejected=rng.choice(RAMBLES).format(x=wrong), kind=kind)


def build(style: str = "balanced", seed: int = SEED) -> list[dict]:
    """The pairs of one set: "balanced" (length says nothing) or "short" (chosen = shorter, always)."""
    rng = random.Random(seed)
    pairs = []
    for group in questions(rng):
        combos = [COMBOS[i % len(COMBOS)] for i in range(len(group))]
        rng.shuffle(combos)
        for i, (q, combo) in enumerate(zip(group, combos)):
            pair = balanced_pair(rng, q, combo) if style == "balanced" else short_pair(rng, q)
            pair["split"] = "test" if i % 10 == 9 else "train"
            pairs.append(pair)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    return [pairs[i] for i in order]


def write(pairs: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    longer = sum(len(p["chosen"]) > len(p["rejected"]) for p in pairs)
    test = sum(p["split"] == "test" for p in pairs)
    print(f"wrote {len(pairs)} pairs ({test} held out; chosen is the longer side in {longer}) to {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT, help="folder for pairs.jsonl and pairs_short.jsonl")
    args = ap.parse_args()
    write(build("balanced"), args.out / BALANCED)
    write(build("short"), args.out / SHORT)


if __name__ == "__main__":
    main()
