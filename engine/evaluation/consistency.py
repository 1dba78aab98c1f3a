"""Consistency: the same prompt sampled N times at each of several temperatures.

Each sample's answer is its first line, compared after answers.normalize (case, punctuation,
articles and spacing do not count). Per temperature:

    distinct answers     how many different normalized answers the N samples gave
    mode share           count of the most common answer / N   (1.0 = always the same answer)

Samples come from engine.decoding.generation (the Decoding tab's own sampler, top-k and top-p
off so only the temperature changes), seeded: the same seed gives the same samples. T = 0 is
greedy decoding, which gives one answer N times.
"""
from __future__ import annotations

from collections import Counter

from ..core.errors import UserInputError, check_range, check_text
from ..core.settings import dataclass, knob, make
from ..decoding import generation
from . import answers

MAX_TEMPERATURES = 5
MAX_PROMPT_CHARS = 1_000


@dataclass
class ConsistencySettings:
    samples: int = knob(8, 1, 16, "Samples per temperature (N)", step=1, label="samples N")
    max_new_tokens: int = knob(12, 1, 48, "Tokens per sample at most (each stops at the first line break)", step=1)
    seed: int = knob(42, 0, 2**32 - 1, "Same seed, same samples", step=1)


def parse_temperatures(spec) -> list[float]:
    """'0, 0.7, 1.5' (or a list) -> temperatures, each 0 to 2, 1 to MAX_TEMPERATURES of them, sorted."""
    if isinstance(spec, str):
        parts = [p for p in spec.replace(";", ",").replace(" ", ",").split(",") if p]
    else:
        parts = list(spec or [])
    if not 1 <= len(parts) <= MAX_TEMPERATURES:
        raise UserInputError(f"temperatures: give 1 to {MAX_TEMPERATURES} numbers from 0 to 2, e.g. '0.3, 1.0', "
                             f"got {len(parts)}.")
    temps = sorted({check_range("temperature", p, 0.0, 2.0) for p in parts})
    return temps


def answer_of(text: str) -> str:
    return text.strip().split("\n")[0].strip()


def sample(tm, prompt: str, temperature: float, n: int, max_new_tokens: int, seed: int, mode: str = "raw") -> list[str]:
    """n answers to prompt at one temperature, four at a time through generation.generate."""
    out, batch = [], 0
    while len(out) < n:
        rows = min(4, n - len(out))
        settings = make(
            generation.DecodingSettings,
            temperature=temperature, do_sample=temperature > 0, top_k=0, top_p=1.0, min_p=0.0, typical_p=1.0,
            max_new_tokens=max_new_tokens, num_return_sequences=rows, seed=(seed + 1000 * batch) % 2**32)
        result = generation.generate(tm, prompt, settings, mode=mode, stop="\n")
        out += [answer_of("".join(t.text for t in s.tokens if not t.special)) for s in result.sequences]
        batch += 1
    return out


def group(raw_answers: list[str]) -> list[dict]:
    """Answers grouped by their normalized form, the largest group first; each with its count and
    the spellings that fell into it."""
    keys = [answers.normalize(a) for a in raw_answers]
    counts = Counter(keys)
    groups = []
    for key, count in counts.most_common():
        spellings = list(dict.fromkeys(a for a, k in zip(raw_answers, keys) if k == key))
        groups.append(dict(answer=spellings[0] if spellings[0] else "(empty)", normalized=key, count=count,
                           share=count / len(raw_answers), spellings=spellings))
    return groups


def consistency(tm, prompt: str, temperatures="0.3, 0.7, 1.0, 1.5", samples: int = 8, max_new_tokens: int = 12,
                seed: int = 42, mode: str = "raw", progress=None) -> dict:
    prompt = check_text("prompt", prompt, max_chars=MAX_PROMPT_CHARS)
    s = make(ConsistencySettings, samples=samples, max_new_tokens=max_new_tokens, seed=seed)
    temps = parse_temperatures(temperatures)
    report = progress or (lambda f, m: None)
    rows = []
    for n, t in enumerate(temps):
        report(n / len(temps), f"sampling {s.samples} answers at T = {t:g}")
        got = sample(tm, prompt, t, s.samples, s.max_new_tokens, s.seed, mode)
        groups = group(got)
        rows.append(dict(temperature=t, samples=got, groups=groups, distinct=len(groups),
                         mode_answer=groups[0]["answer"], mode_share=groups[0]["share"]))
    report(1.0, "done")
    return dict(prompt=prompt, mode=mode, samples_per_temperature=s.samples, seed=s.seed, temperatures=rows)
