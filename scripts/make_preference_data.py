"""Build assets/preference/pairs.jsonl, the comparison data of the Post-training tab's
preference lesson (reward model and DPO).

    python scripts/make_preference_data.py      # writes assets/preference/pairs.jsonl

Each line is one comparison {"prompt", "chosen", "rejected", "kind", "split"} with a preference a
student sees at a glance:

  arithmetic  "What is 17 + 25?"     chosen: a concise, correct answer ("42.")
                                      rejected: a rambling answer with a wrong number
  capital     "What is the capital of Peru?"  same idea: "Lima." vs a hedging, wrong city
  quote       'Who said "..."?'      chosen: the quote's author from assets/quotes/quotes.txt
                                      rejected: another author of the same file

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
OUT = ROOT / "assets" / "preference" / "pairs.jsonl"
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

# Rambling, hedging answers; {x} is a wrong answer.
RAMBLES = [
    "Well, that is a tricky one. Let me think about it for a moment... I would say {x}, but honestly I am not sure.",
    "Hmm, good question! There are many ways to look at it, and people disagree, but I think it is probably {x}.",
    "Oh, I remember reading about this once, a long time ago. It might be {x}, or something close to that, maybe.",
    "That depends on how you look at it, really. Some would say one thing, some another. My guess is {x}, I suppose.",
    "Let me see, let me see... I am not completely certain, so please check it yourself, but it could be {x}.",
    "Interesting! I have thought about this a lot over the years, and after all that thinking my answer is {x}, perhaps.",
]


def arithmetic(rng: random.Random, n: int) -> list[dict]:
    out, seen = [], set()
    while len(out) < n:
        a, b = rng.randint(2, 49), rng.randint(2, 49)
        op = rng.choice("+-") if a > b else "+"
        if (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        right = a + b if op == "+" else a - b
        wrong = right + rng.choice([-3, -2, -1, 1, 2, 3, 10])
        out.append(dict(prompt=f"Question: What is {a} {op} {b}?\nAnswer:", chosen=f" {right}.",
                        rejected=" " + rng.choice(RAMBLES).format(x=wrong), kind="arithmetic"))
    return out


def capitals(rng: random.Random, per_country: int = 2) -> list[dict]:
    out = []
    cities = [c for _, c in CAPITALS]
    for country, city in CAPITALS:
        for ramble in rng.sample(RAMBLES, per_country):
            wrong = rng.choice([c for c in cities if c != city])
            out.append(dict(prompt=f"Question: What is the capital of {country}?\nAnswer:", chosen=f" {city}.",
                            rejected=" " + ramble.format(x=wrong), kind="capital"))
    return out


def quotes(rng: random.Random, n: int) -> list[dict]:
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
        out.append(dict(prompt=f'Question: Who said "{quote}"?\nAnswer:', chosen=f" {author}.",
                        rejected=f" {wrong}.", kind="quote"))
        if len(out) == n:
            break
    return out


def build(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    pairs = []
    for group in (arithmetic(rng, 120), capitals(rng), quotes(rng, 120)):
        for i, pair in enumerate(group):
            pair["split"] = "test" if i % 10 == 9 else "train"
            pairs.append(pair)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    return [pairs[i] for i in order]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    pairs = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    kinds = {k: sum(p["kind"] == k for p in pairs) for k in ("arithmetic", "capital", "quote")}
    test = sum(p["split"] == "test" for p in pairs)
    print(f"wrote {len(pairs)} pairs ({kinds}; {test} held out) to {args.out}")


if __name__ == "__main__":
    main()
