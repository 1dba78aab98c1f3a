"""Snowballing: a first step forced into the answer, and whether the model ever walks it back.

The model gets the question in its chat template, then the forced prefix as the start of its own
answer (read as plain text: a special-token string typed in it stays text), and continues greedily.
The same question without the prefix gives the unforced answer beside it.

At every step of the forced continuation we read the model's next-token distribution and show

    p(correction)   the probability of a token that opens a correction: the first token of
                    CORRECTIONS below, with and without a leading space
    p(right answer) the probability of the first token of the right answer (when one is given)

A model that snowballs keeps both low and writes on in the direction of the wrong step.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.chat import chat_ids, plain_ids
from ..core.errors import UserInputError, check_text
from ..core.lazy import no_grad, torch
from ..core.settings import knob
from ..evaluation import answers

CORRECTIONS = ("Actually", "Wait", "No", "However", "Sorry", "Correction", "mistake", "wrong", "incorrect", "But")
MAX_QUESTION_CHARS = 500
MAX_PREFIX_CHARS = 300
EXAMPLES = (
    ("Capital, wrong first step", "What is the capital of Australia?", "The capital of Australia is Sydney", "Canberra"),
    ("Sum, wrong first step", "What is 17 + 25?", "17 + 25 = 32", "42"),
    ("False premise", "Why did Albert Einstein win the Nobel Prize for the theory of relativity?",
     "Einstein won the Nobel Prize for relativity because", "photoelectric"),
    ("Spider legs", "How many legs does a spider have?", "A spider has 6 legs", "8"),
)


@dataclass
class SnowballSettings:
    max_new_tokens: int = knob(40, 4, 120, "Tokens each continuation may have", step=4, label="max new tokens")


def first_ids(tokenizer, words) -> list[int]:
    """The first token of each word, written with and without a leading space (no duplicates)."""
    out = []
    for w in words:
        for form in (w, " " + w):
            ids = plain_ids(tokenizer, form)
            if ids and ids[0] not in out:
                out.append(ids[0])
    return out


def prompt_ids(tokenizer, question: str) -> list[int]:
    if getattr(tokenizer, "chat_template", None):
        return chat_ids(tokenizer, [{"role": "user", "content": question}])
    return plain_ids(tokenizer, f"Question: {question}\nAnswer:")


@no_grad
def continue_from(model, tokenizer, ids: list[int], max_new_tokens: int, watch: dict[str, list[int]]) -> dict:
    """Greedy continuation of `ids` and, per step, the probability mass on each watched id set."""
    device = next(model.parameters()).device
    inp = torch.tensor([ids], device=device)  # (1, L)
    out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), do_sample=False, top_k=None,
                         top_p=None, temperature=None, max_new_tokens=max_new_tokens, output_logits=True,
                         return_dict_in_generate=True,
                         pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    new = [int(t) for t in out.sequences[0, len(ids):]]
    steps = []
    for t, tok in enumerate(new):
        probs = torch.softmax(out.logits[t][0].float(), -1)  # (V,)
        row = dict(step=t + 1, token=tokenizer.decode([tok]), p_token=float(probs[tok]))
        row.update({name: float(probs[sel].sum()) if sel else None for name, sel in watch.items()})
        steps.append(row)
    return dict(text=tokenizer.decode(new, skip_special_tokens=True), steps=steps)


def run(engine, model_key: str, question: str, prefix: str, right_answer: str = "",
        settings: SnowballSettings | None = None, progress=None) -> dict:
    question = check_text("question", question, max_chars=MAX_QUESTION_CHARS)
    prefix = check_text("forced prefix", prefix, max_chars=MAX_PREFIX_CHARS)
    right_answer = check_text("right answer", right_answer or "", max_chars=100, allow_empty=True).strip()
    s = settings or SnowballSettings()
    bundle = engine.load(model_key, progress=progress)
    return snowball(bundle.model, bundle.tokenizer, question, prefix, right_answer, s.max_new_tokens)


def snowball(model, tokenizer, question: str, prefix: str, right_answer: str, max_new_tokens: int) -> dict:
    base = prompt_ids(tokenizer, question)
    forced_ids = plain_ids(tokenizer, prefix)
    if not forced_ids:
        raise UserInputError("forced prefix has no tokens: type the first words of the answer.")
    watch = {"p_correction": first_ids(tokenizer, CORRECTIONS),
             "p_right": first_ids(tokenizer, [right_answer]) if right_answer else []}
    forced = continue_from(model, tokenizer, base + forced_ids, max_new_tokens, watch)
    free = continue_from(model, tokenizer, base, max_new_tokens, watch)
    norm = answers.normalize
    fixed = bool(right_answer) and f" {norm(right_answer)} " in f" {norm(forced['text'])} "
    return dict(question=question, prefix=prefix, right_answer=right_answer,
                forced=prefix + forced["text"], continuation=forced["text"], forced_steps=forced["steps"],
                unforced=free["text"], unforced_steps=free["steps"], corrected=fixed,
                unforced_right=bool(right_answer) and f" {norm(right_answer)} " in f" {norm(free['text'])} ",
                corrections=list(CORRECTIONS))
