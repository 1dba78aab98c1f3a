"""Build assets/eval_suite/suite.jsonl, the Evaluation tab's bundled multiple-choice suite.

    python scripts/build_eval_suite.py      # writes assets/eval_suite/suite.jsonl (+ SOURCE.md)

Every item is in lm-evaluation-harness's simple multiple-choice shape plus two fields of ours:
{"id", "skill", "question", "choices", "answer" (index of the right choice), "source"}. Five skills,
200 items, all made here from data this repository ships, so the file rebuilds the same way
every time (one seeded random generator):

    arithmetic    60  sums, differences and products of small numbers, made by rule; the
                      wrong choices are near misses (off by one or two, or the other operation)
    capitals      40  the capital-city table below (facts; the wrong choices are other capitals)
    quotes        30  the first words of a quote from assets/quotes/quotes.txt (Debian fortunes,
                      BSD licence) with its real ending against the endings of three other quotes
    commonsense   40  everyday cause and effect, written for this suite
    negation      30  "Which of these is not a fruit?" and "... is a fruit?" from the category
                      lists below, so that a model that ignores the word "not" gets half wrong
"""
from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "eval_suite" / "suite.jsonl"
QUOTES = ROOT / "assets" / "quotes" / "quotes.txt"
SEED = 2024
SCRIPT = "scripts/build_eval_suite.py"

CAPITALS = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"), ("Russia", "Moscow"),
    ("United Kingdom", "London"), ("Ireland", "Dublin"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Poland", "Warsaw"), ("Austria", "Vienna"),
    ("Greece", "Athens"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Canada", "Ottawa"),
    ("Australia", "Canberra"), ("Brazil", "Brasília"), ("Argentina", "Buenos Aires"), ("Peru", "Lima"),
    ("Mexico", "Mexico City"), ("Turkey", "Ankara"), ("Iran", "Tehran"), ("Thailand", "Bangkok"),
    ("South Korea", "Seoul"), ("Vietnam", "Hanoi"), ("Indonesia", "Jakarta"), ("Netherlands", "Amsterdam"),
    ("Belgium", "Brussels"), ("Switzerland", "Bern"), ("Hungary", "Budapest"), ("Czechia", "Prague"),
    ("Chile", "Santiago"), ("Colombia", "Bogotá"), ("Morocco", "Rabat"),
)

CATEGORIES = {
    "fruit": ("apple", "banana", "cherry", "grape", "mango", "pear", "plum", "orange"),
    "animal": ("dog", "horse", "rabbit", "tiger", "sheep", "elephant", "mouse", "lion"),
    "colour": ("red", "blue", "green", "yellow", "purple", "brown", "pink", "grey"),
    "vehicle": ("car", "bus", "bicycle", "train", "truck", "boat", "tram", "scooter"),
    "tool": ("hammer", "saw", "screwdriver", "wrench", "drill", "chisel", "shovel", "pliers"),
    "musical instrument": ("piano", "violin", "guitar", "flute", "drum", "trumpet", "cello", "harp"),
}

# (question, right answer, three wrong answers): written for this suite.
COMMONSENSE = (
    ("If you drop a glass on a stone floor, it will most likely", "break", "float", "grow", "melt"),
    ("Ice left in the sun will", "melt", "freeze", "burn", "sing"),
    ("When it rains, people often carry", "an umbrella", "a ladder", "a pillow", "a spoon"),
    ("To see in a dark room, you turn on", "the light", "the tap", "the oven", "the radio"),
    ("A plant that gets no water will", "wilt", "sing", "fly", "multiply"),
    ("You use a key to", "open a lock", "cut bread", "boil water", "paint a wall"),
    ("When you are thirsty, you drink", "water", "sand", "paper", "smoke"),
    ("Bread is usually baked in", "an oven", "a fridge", "a bathtub", "a drawer"),
    ("Fish live in", "water", "trees", "deserts", "clouds"),
    ("At night the sky is usually", "dark", "green", "loud", "sweet"),
    ("To write on paper, you can use", "a pencil", "a fork", "a sponge", "a pillow"),
    ("A person who is tired goes to", "sleep", "school", "war", "the moon"),
    ("Snow is usually", "cold", "hot", "sour", "loud"),
    ("You wear shoes on your", "feet", "hands", "ears", "nose"),
    ("If you touch a hot stove, you will get", "burned", "wet", "taller", "richer"),
    ("A clock is used to tell", "the time", "the weather", "a story", "the distance"),
    ("Milk comes from", "cows", "rocks", "clouds", "trees"),
    ("Birds can usually", "fly", "read", "swim underwater for hours", "drive"),
    ("When the traffic light turns red, cars", "stop", "speed up", "fly", "turn blue"),
    ("A library is a place where you borrow", "books", "cars", "money", "shoes"),
    ("To cut paper, you use", "scissors", "a spoon", "a towel", "a cup"),
    ("The opposite of hot is", "cold", "warm", "spicy", "bright"),
    ("After you eat a lot, you feel", "full", "hungry", "invisible", "wet"),
    ("A baby cat is called a", "kitten", "puppy", "calf", "foal"),
    ("You brush your teeth with", "a toothbrush", "a hairbrush", "a broom", "a rake"),
    ("In winter many trees lose their", "leaves", "roots", "trunks", "shadows"),
    ("To keep food cold, you put it in", "the fridge", "the oven", "the sun", "the fireplace"),
    ("If you forget to water a garden in summer, the grass turns", "brown", "blue", "purple", "silver"),
    ("A doctor works in", "a hospital", "a bakery", "a stadium", "a forest"),
    ("When the sun rises, it is", "morning", "midnight", "evening", "winter"),
    ("You need a passport to", "travel abroad", "cook pasta", "sleep", "read a book"),
    ("Wet clothes dry faster when it is", "sunny", "raining", "foggy", "dark"),
    ("A heavy stone thrown into a lake will", "sink", "float", "explode", "evaporate"),
    ("People use a ladder to reach", "high places", "deep water", "the past", "other countries"),
    ("A candle gives", "light", "milk", "music", "rain"),
    ("The sound a dog makes is called", "barking", "mooing", "purring", "quacking"),
    ("To hear music quietly, you can wear", "headphones", "gloves", "boots", "a scarf"),
    ("If you plant a seed and water it, it will", "grow", "shrink", "vanish", "freeze"),
    ("You pay for things in a shop with", "money", "leaves", "water", "songs"),
    ("A thermometer measures", "temperature", "weight", "length", "speed"),
)


def _item(rng, skill, n, question, right, wrong, source):
    choices = [right, *wrong]
    rng.shuffle(choices)
    return dict(id=f"{skill}-{n:03d}", skill=skill, question=question, choices=choices,
                answer=choices.index(right), source=source)


def arithmetic(rng):
    out = []
    for n in range(60):
        op = ("+", "-", "×")[n % 3]
        if op == "×":
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            right, other = a * b, a + b
        else:
            a, b = rng.randint(10, 60), rng.randint(2, 30)
            if op == "-" and b > a:
                a, b = b, a
            right = a + b if op == "+" else a - b
            other = a - b if op == "+" else a + b
        wrong = {right + 1, right - 1, other} - {right}
        while len(wrong) < 3:
            wrong.add(right + rng.choice((-2, 2, 10, -10)))
        wrong = sorted(wrong)[:3]
        out.append(_item(rng, "arithmetic", n, f"What is {a} {op} {b}?", str(right), [str(w) for w in wrong],
                         f"generated by rule ({SCRIPT}, seed {SEED})"))
    return out


def capitals(rng):
    out = []
    names = [c for _, c in CAPITALS]
    for n, (country, city) in enumerate(CAPITALS):
        wrong = rng.sample([c for c in names if c != city], 3)
        out.append(_item(rng, "capitals", n, f"What is the capital of {country}?", city, wrong,
                         f"capital-city table in {SCRIPT}"))
    return out


def quotes(rng):
    """A quote's first words against its real ending and three other quotes' endings."""
    lines = QUOTES.read_text(encoding="utf-8").splitlines()
    pool = []
    for number, line in enumerate(lines, 1):
        text = line.rsplit(" — ", 1)[0].strip()
        words = text.split()
        if 8 <= len(words) <= 16 and text.endswith(".") and '"' not in text:
            cut = len(words) // 2
            pool.append((number, " ".join(words[:cut]), " ".join(words[cut:])))
    picked = rng.sample(pool, 30)
    out = []
    for n, (number, head, tail) in enumerate(picked):
        wrong = rng.sample([t for _, _, t in pool if t != tail], 3)
        out.append(_item(rng, "quotes", n, f"Complete the saying: \"{head} ...\"", tail, wrong,
                         f"assets/quotes/quotes.txt line {number} (Debian fortunes, BSD licence)"))
    return out


def commonsense(rng):
    return [_item(rng, "commonsense", n, f"{q} ...", right, list(wrong), f"written for this suite ({SCRIPT})")
            for n, (q, right, *wrong) in enumerate(COMMONSENSE)]


def negation(rng):
    out, names = [], list(CATEGORIES)
    for n in range(30):
        cat = names[n % len(names)]
        a = "an" if cat[0] in "aeiou" else "a"
        others = [c for c in names if c != cat]
        inside = rng.sample(CATEGORIES[cat], 3)
        outside = rng.choice(CATEGORIES[rng.choice(others)])
        if n % 2 == 0:  # "not": the odd one out is right
            out.append(_item(rng, "negation", n, f"Which of these is not {a} {cat}?", outside, inside,
                             f"category lists in {SCRIPT}"))
        else:  # the same shape without "not": one member against three outsiders
            right = inside[0]
            wrong = rng.sample([w for c in others for w in CATEGORIES[c]], 3)
            out.append(_item(rng, "negation", n, f"Which of these is {a} {cat}?", right, wrong,
                             f"category lists in {SCRIPT}"))
    return out


def build() -> list[dict]:
    rng = random.Random(SEED)
    return arithmetic(rng) + capitals(rng) + quotes(rng) + commonsense(rng) + negation(rng)


def main() -> None:
    items = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"wrote {len(items)} items to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
