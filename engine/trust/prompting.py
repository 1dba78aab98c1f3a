"""What the input alone changes: accuracy on one skill of the Evaluation task suite as the prompt
changes, with the weights untouched.

Every variant is scored the way the task suite scores (engine.evaluation.suite): the log-likelihood
of each choice after the context, the highest one is the model's pick; accuracy over the items and
its 95% percentile-bootstrap interval. The default variant's context is the suite's own
(`suite.context_for`), so the few-shot curve's point at k is the task-suite run at k.

    few-shot k           0 to 8 solved examples of the same skill before the question
    example order        the same k examples in several orders (seeded shuffles)
    instruction wording  one instruction in several paraphrases: their spread (max - min accuracy)
                         is the model's prompt sensitivity
    system prompt        chat template on, with no system prompt or with one of several
    answer format        the word before the answer: "Answer:", "A:", "The answer is", ...
    chat template        the same prompt as plain text, or inside the model's chat template
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np

from ..core.chat import control_strings_in
from ..core.errors import UserInputError, check_text
from ..core.settings import knob
from ..evaluation import suite

DIMENSIONS = ("few-shot k", "example order", "instruction wording", "system prompt", "answer format",
              "chat template")
PARAPHRASES = ("Answer the following question.", "Please answer the question below.",
               "Give the answer to this question.", "Here is a question. Reply with its answer.",
               "Respond to the question that follows with the correct answer.")
FORMATS = ("Answer:", "A:", "The answer is", "Reply:", "Correct answer:")
SYSTEM_PROMPTS = ("You are a helpful assistant.", "You are a careful expert. Think before you answer.",
                  "You are a careless assistant who often gets things wrong.")
ORDERS = 5
MAX_SYSTEM_CHARS = 500


SKILLS = ("capitals", "arithmetic", "quotes", "commonsense", "negation")  # the bundled suite's skills


@dataclass
class PromptSettings:
    dimension: str = knob("few-shot k", help="What changes from one run to the next", choices=DIMENSIONS)
    skill: str = knob("capitals", help="The skill of the task suite the items come from", choices=SKILLS)
    n_items: int = knob(12, 4, 60, "Items of that skill scored in each variant (the same items every time)",
                        step=1, label="items")
    k_shot: int = knob(2, 0, suite.MAX_SHOTS, "Few-shot examples in every variant except the few-shot curve",
                       step=1, label="few-shot k (other variants)")
    seed: int = knob(1234, 0, 2**32 - 1, "Seed of the few-shot draw, the orders and the bootstrap", step=1)
    system_prompt: str = knob("", help="Your own system prompt, added to the system-prompt variants")
    max_seconds: int = knob(60, 5, 300, "Time budget: variants not started when it passes are left out",
                            step=5, label="time budget (s)")


@dataclass(frozen=True)
class Variant:
    label: str
    k: int
    instruction: str = ""
    answer_format: str = "Answer:"
    order: int = 0  # 0 = the suite's draw; n > 0 = shuffled with seed + n
    chat: bool = False
    system: str | None = None


def variants(s: PromptSettings) -> list[Variant]:
    k = s.k_shot
    if s.dimension == "few-shot k":
        return [Variant(f"k = {n}", n) for n in range(suite.MAX_SHOTS + 1)]
    if s.dimension == "example order":
        return [Variant("as drawn" if n == 0 else f"shuffle {n}", max(k, 2), order=n) for n in range(ORDERS)]
    if s.dimension == "instruction wording":
        return [Variant("(no instruction)", k)] + [Variant(p, k, instruction=p) for p in PARAPHRASES]
    if s.dimension == "answer format":
        return [Variant(f, k, answer_format=f) for f in FORMATS]
    if s.dimension == "chat template":
        return [Variant("plain text", k), Variant("chat template", k, chat=True)]
    own = [s.system_prompt.strip()] if s.system_prompt.strip() else []
    return ([Variant("(template default)", k, chat=True)]
            + [Variant(p, k, chat=True, system=p) for p in (*SYSTEM_PROMPTS, *own)])


def check_settings(s: PromptSettings, tokenizer=None) -> None:
    check_text("system prompt", s.system_prompt, max_chars=MAX_SYSTEM_CHARS, allow_empty=True)
    if tokenizer is not None and control_strings_in(tokenizer, s.system_prompt):
        raise UserInputError("system prompt contains a special-token string "
                             f"({', '.join(control_strings_in(tokenizer, s.system_prompt))}): remove it.")


def items_of(s: PromptSettings) -> tuple[list, list]:
    """(the items scored, the pool the few-shot examples come from: the whole bundled suite)."""
    pool = suite.bundled()
    return [it for it in pool if it.skill == s.skill][:s.n_items], pool


def _ordered(shots: list, v: Variant, seed: int, index: int) -> list:
    if not v.order:
        return shots
    out = list(shots)
    random.Random(seed * 1_000 + v.order * 97 + index).shuffle(out)
    return out


def context(tokenizer, item, shots: list, v: Variant) -> str:
    """The text before a choice. For the default variant it is suite.context_for(item, shots)."""
    body = "".join(f"Question: {s.question}\n{v.answer_format} {s.correct}\n\n" for s in shots)
    body += f"Question: {item.question}\n{v.answer_format}"
    if v.instruction:
        body = f"{v.instruction}\n\n{body}"
    if not v.chat:
        return body
    if not getattr(tokenizer, "chat_template", None):
        raise UserInputError("this model's tokenizer has no chat template: choose an instruct model for the "
                             "chat-template and system-prompt variants.")
    messages = ([{"role": "system", "content": v.system}] if v.system else []) + [{"role": "user", "content": body}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def score_variant(model, tokenizer, items: list, pool: list, v: Variant, seed: int, resamples: int = 1000) -> dict:
    shots = suite.pick_shots(items, pool, v.k, seed)
    contexts = [context(tokenizer, it, _ordered(sh, v, seed, i), v) for i, (it, sh) in enumerate(zip(items, shots))]
    lead = "" if v.chat else " "
    pairs = [(ctx, lead + c) for ctx, it in zip(contexts, items) for c in it.choices]
    lls = suite.loglikelihoods(model, tokenizer, pairs)
    acc, at = [], 0
    for it in items:
        ll = [r["logprob"] for r in lls[at:at + len(it.choices)]]
        at += len(it.choices)
        acc.append(int(int(np.argmax(ll)) == it.answer))
    lo, hi = suite.bootstrap_interval(acc, resamples, seed)
    return dict(label=v.label, k=v.k, accuracy=float(np.mean(acc)), ci_low=lo, ci_high=hi, per_item=acc,
                example_prompt=contexts[0] + pairs[items[0].answer][1] if items else "")


def spread(rows: list[dict]) -> dict:
    accs = [r["accuracy"] for r in rows]
    return dict(max_minus_min=float(max(accs) - min(accs)), std=float(np.std(accs)),
                best=rows[int(np.argmax(accs))]["label"], worst=rows[int(np.argmin(accs))]["label"]) if accs else {}


def run(engine, model_key: str, s: PromptSettings, progress=None) -> dict:
    check_settings(s)
    report = progress or (lambda f, m: None)
    bundle = engine.load(model_key, progress=report)
    check_settings(s, bundle.tokenizer)
    items, pool = items_of(s)
    todo, rows, start = variants(s), [], time.perf_counter()
    for i, v in enumerate(todo):
        if rows and time.perf_counter() - start > s.max_seconds:
            break
        report(i / len(todo), f"variant {i + 1} of {len(todo)}: {v.label}")
        rows.append(score_variant(bundle.model, bundle.tokenizer, items, pool, v, s.seed))
    return dict(model=model_key, dimension=s.dimension, skill=s.skill, n_items=len(items), rows=rows,
                left_out=[v.label for v in todo[len(rows):]], seconds=time.perf_counter() - start,
                spread=spread(rows))
