"""Instruction tasks whose answers a program can check: the data for supervised fine-tuning and
the before/after score. Each task writes a prompt from a few parameters and solves a prompt by
reading those parameters back out of it, so a checker never trusts a stored answer."""
from __future__ import annotations

import random
import re
import string

# Small facts we ship ourselves (no download): country -> capital.
CAPITALS = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Portugal", "Lisbon"), ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"),
    ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Canada", "Ottawa"), ("Mexico", "Mexico City"),
    ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"), ("Peru", "Lima"), ("Chile", "Santiago"),
    ("Russia", "Moscow"), ("Poland", "Warsaw"), ("Greece", "Athens"), ("Turkey", "Ankara"),
    ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"),
    ("Ireland", "Dublin"), ("Austria", "Vienna"), ("Hungary", "Budapest"), ("Belgium", "Brussels"),
    ("Netherlands", "Amsterdam"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Indonesia", "Jakarta"),
    ("Australia", "Canberra"), ("Cuba", "Havana"), ("Iran", "Tehran"), ("Iraq", "Baghdad"),
    ("Morocco", "Rabat"), ("Nigeria", "Abuja"), ("Colombia", "Bogota"), ("Ukraine", "Kyiv"),
)
HELD_OUT_COUNTRIES = 10  # the last ten countries appear only in held-out prompts
WORDS = (
    "apple", "table", "river", "garden", "planet", "yellow", "window", "silver", "rocket", "pencil",
    "butter", "castle", "forest", "guitar", "island", "jacket", "kitten", "lemon", "market", "number",
    "orange", "purple", "rabbit", "summer", "tunnel", "violin", "winter", "banana", "cookie", "dragon",
    "flower", "hammer", "letter", "mirror", "pepper", "school", "tomato", "wizard", "bottle", "candle",
    "spring", "button", "monkey", "cotton", "ladder", "saddle", "marble", "puzzle", "sister", "travel",
)
PHRASES = ("good morning", "see you soon", "happy birthday", "open the door", "the blue sky", "thank you",
           "well done", "hello world", "fresh bread", "quiet night", "big red ball", "time to go",
           "good luck", "slow and steady", "the green door", "rain again", "two cups of tea", "one more page",
           "my old car", "under the bridge", "a long walk", "the last train", "warm soup", "paper boats")
HELD_OUT_WORDS, HELD_OUT_PHRASES = 10, 6  # likewise the last words and phrases

TASKS = ("add", "subtract", "reverse", "count", "upper", "capital", "sort")
_ADD = re.compile(r"^What is (\d+) \+ (\d+)\?$")
_SUB = re.compile(r"^What is (\d+) - (\d+)\?$")
_REV = re.compile(r'^Reverse the word "([a-z]+)"\.$')
_CNT = re.compile(r'^How many times does the letter "([a-z])" appear in "([a-z]+)"\?$')
_UP = re.compile(r'^Write "([a-z ]+)" in capital letters\.$')
_CAP = re.compile(r"^What is the capital of ([A-Za-z ]+)\?$")
_SORT = re.compile(r"^Sort these numbers from smallest to largest: ([\d, ]+)\.$")


def make_prompt(task: str, rng: random.Random, pool: dict | None = None) -> str:
    """A prompt for `task`; `pool` may narrow the words, phrases and countries it draws from."""
    pool = pool or {}
    words, phrases, countries = (pool.get("words", WORDS), pool.get("phrases", PHRASES),
                                 pool.get("countries", CAPITALS))
    if task == "add":
        return f"What is {rng.randint(10, 99)} + {rng.randint(10, 99)}?"
    if task == "subtract":
        a, b = sorted((rng.randint(10, 99), rng.randint(10, 99)), reverse=True)
        return f"What is {a} - {b}?"
    if task == "reverse":
        return f'Reverse the word "{rng.choice(words)}".'
    if task == "count":
        word = rng.choice(words)
        letter = rng.choice(word) if rng.random() < 0.8 else rng.choice(string.ascii_lowercase)
        return f'How many times does the letter "{letter}" appear in "{word}"?'
    if task == "upper":
        return f'Write "{rng.choice(phrases)}" in capital letters.'
    if task == "capital":
        return f"What is the capital of {rng.choice(countries)[0]}?"
    if task == "sort":
        nums = rng.sample(range(1, 100), rng.randint(3, 5))
        return f"Sort these numbers from smallest to largest: {', '.join(map(str, nums))}."
    raise ValueError(f"unknown task {task!r}: valid tasks are {', '.join(TASKS)}")


def solve(prompt: str) -> tuple[str, str] | None:
    """(task, answer) read from the prompt itself, or None when no task's pattern fits."""
    p = prompt.strip()
    if m := _ADD.match(p):
        return "add", str(int(m[1]) + int(m[2]))
    if m := _SUB.match(p):
        return "subtract", str(int(m[1]) - int(m[2]))
    if m := _REV.match(p):
        return "reverse", m[1][::-1]
    if m := _CNT.match(p):
        return "count", str(m[2].count(m[1]))
    if m := _UP.match(p):
        return "upper", m[1].upper()
    if m := _CAP.match(p):
        capital = dict(CAPITALS).get(m[1])
        return ("capital", capital) if capital else None
    if m := _SORT.match(p):
        nums = sorted(int(x) for x in m[1].split(",") if x.strip())
        return "sort", ", ".join(map(str, nums))
    return None


def normalise(text: str) -> str:
    """Lower case, inner spaces collapsed, surrounding spaces, quotes and a final full stop cut."""
    return " ".join(text.strip().strip('"\'').rstrip(".").strip().split()).lower()


def check(prompt: str, output: str) -> bool | None:
    """Is `output` the whole answer to `prompt` (nothing before or after it)? None: not a task prompt."""
    solved = solve(prompt)
    if solved is None:
        return None
    return normalise(output) == normalise(solved[1])


def check_first_line(prompt: str, output: str) -> bool | None:
    """The lenient score: is the first non-empty line of `output` the answer?"""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    return check(prompt, lines[0] if lines else "")


def build(seed: int = 0, per_task: int = 50, held_out_per_task: int = 10) -> tuple[list[dict], list[dict]]:
    """(train, held_out) rows {task, prompt, response}; no prompt is in both."""
    rng = random.Random(seed)
    seen: set[str] = set()
    train_pool = dict(words=WORDS[:-HELD_OUT_WORDS], phrases=PHRASES[:-HELD_OUT_PHRASES],
                      countries=CAPITALS[:-HELD_OUT_COUNTRIES])
    test_pool = dict(words=WORDS[-HELD_OUT_WORDS:], phrases=PHRASES[-HELD_OUT_PHRASES:],
                     countries=CAPITALS[-HELD_OUT_COUNTRIES:])

    def rows(task: str, n: int, pool: dict) -> list[dict]:
        out, tries = [], 0
        while len(out) < n and tries < 50 * n:
            tries += 1
            prompt = make_prompt(task, rng, pool)
            if prompt in seen:
                continue
            seen.add(prompt)
            out.append(dict(task=task, prompt=prompt, response=solve(prompt)[1]))
        return out

    train, held_out = [], []
    for task in TASKS:
        train += rows(task, per_task, train_pool)
    for task in TASKS:
        held_out += rows(task, held_out_per_task, test_pool)
    rng.shuffle(train)
    return train, held_out
