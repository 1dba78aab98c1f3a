"""Augmentation and generation: the retrieved chunks go into a prompt template, within a token
budget; SmolLM2 (or another causal LM of the registry: models()) answers the same question with that
prompt and with the question alone, same seed, streamed side by side; the answer's words found in the
chunks are marked (groundedness).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from ..core.errors import UserInputError, check_choice, check_range
from ..core.models import Progress, no_progress
from ..core.settings import knob, make
from ..decoding import generation

LM = "smollm2-135m-instruct"
TEMPLATE = ("Answer the question using only the context below. Cite the sources you use as [1], [2]. "
            "If the context does not answer it, say that you do not know.\n\n"
            "Context:\n{context}\n\nQuestion: {question}")
CHUNK_LINE = "[{n}] ({title}) {text}"


@dataclass
class AnswerSettings:
    budget: int = knob(1024, 128, 2048, "Tokens the prompt and the answer may use together; chunks that "
                       "would not fit are dropped (SmolLM2 reads up to 8192)", step=64, label="context budget (tokens)")
    max_new_tokens: int = knob(80, 8, 256, "Tokens each answer may have at most", step=8, label="max new tokens")
    temperature: float = knob(0.0, 0.0, 1.5, "0 = greedy; above 0, both answers sample with the same seed",
                              step=0.1)
    seed: int = knob(42, 0, 2**32 - 1, "Same seed for both answers", step=1)


def models(engine) -> list[str]:
    """The answer models: SmolLM2 first, then the causal LMs added to the registry (the operator's and,
    online, the Hub's)."""
    return engine.registry.lesson_keys([LM])


def context(chunks: list[dict]) -> str:
    return "\n\n".join(CHUNK_LINE.format(n=i + 1, title=c["title"], text=c["text"].strip())
                       for i, c in enumerate(chunks))


def prompt_tokens(tm, prompt: str) -> int:
    return len(generation.chat_prompt_ids(tm, prompt))  # what encode(..., "chat") sends


def build_prompt(tm, question: str, hits: list[dict], budget: int, max_new_tokens: int) -> dict:
    """The prompt with as many retrieved chunks (in rank order) as fit in budget - max_new_tokens
    tokens (and in the decoding tab's prompt limit of characters); the others are listed as dropped."""
    lowest, window = 128, generation.max_context(tm)
    if window < lowest:
        raise UserInputError(f"{tm.source.spec.title} reads {window} tokens at most, less than the smallest "
                             f"context budget ({lowest}): pick an answer model with a longer context window.")
    budget = check_range("budget", budget, lowest, window, integer=True)
    room = budget - max_new_tokens
    base = prompt_tokens(tm, TEMPLATE.format(context="", question=question))
    if base > room:
        raise UserInputError(f"The question and the template need {base} tokens, and max_new_tokens = "
                             f"{max_new_tokens}: raise the budget ({budget}) to at least {base + max_new_tokens}.")
    included, dropped = [], []
    tokens = base
    for h in hits:
        trial = TEMPLATE.format(context=context(included + [h]), question=question)
        n = prompt_tokens(tm, trial)
        if n <= room and len(trial) <= generation.MAX_PROMPT_CHARS:
            included.append(h)
            tokens = n
        else:
            why = (f"{n} > {room} tokens" if n > room else f"{len(trial):,} > {generation.MAX_PROMPT_CHARS:,} characters")
            dropped.append(dict(h, reason=why))
    prompt = TEMPLATE.format(context=context(included), question=question)
    return dict(prompt=prompt, tokens=tokens, budget=budget, room=room, max_new_tokens=max_new_tokens,
                included=included, dropped=dropped,
                sources=[dict(n=i + 1, title=h["title"], doc_id=h["doc_id"], chunk=h["chunk"])
                         for i, h in enumerate(included)])


STOP = set("""a an the and or but if then else of to in on at by for with from as is are was were be been being
it its this that these those there here which who whom what when where why how not no yes do does did
can could should would may might will shall you your we our they their i me my he she his her them us
so than too very just also into about over under more most such only own same other any each few all
both some one two use used using""".split())
WORD = re.compile(r"[A-Za-z_][\w'.-]*[\w]|[A-Za-z_]")


def groundedness(answer: str, chunks: list[dict]) -> dict:
    """Split the answer into pieces; a content word (not a stop word, 3+ letters) is 'grounded'
    when it also occurs in one of the chunks (case-insensitive)."""
    vocab = set()
    for c in chunks:
        vocab.update(w.lower() for w in WORD.findall(c["text"]))
    pieces, pos, content, grounded = [], 0, 0, 0
    for m in WORD.finditer(answer):
        if m.start() > pos:
            pieces.append([answer[pos:m.start()], "plain"])
        word = m.group(0)
        low = word.lower()
        if len(low) >= 3 and low not in STOP:
            content += 1
            kind = "grounded" if low in vocab else "new"
            grounded += kind == "grounded"
        else:
            kind = "plain"
        pieces.append([word, kind])
        pos = m.end()
    if pos < len(answer):
        pieces.append([answer[pos:], "plain"])
    return dict(pieces=pieces, content_words=content, grounded_words=grounded,
                share=round(grounded / content, 3) if content else 0.0,
                cited=sorted({int(n) for n in re.findall(r"\[(\d{1,2})\]", answer) if 1 <= int(n) <= len(chunks)}))


def _decoding(s: AnswerSettings):
    return make(generation.DecodingSettings, temperature=s.temperature, do_sample=s.temperature > 0, top_k=50,
                top_p=0.95, max_new_tokens=s.max_new_tokens, num_return_sequences=1, seed=s.seed)


def answer_stream(engine, question: str, hits: list[dict], settings: AnswerSettings,
                  progress: Progress = no_progress, model: str = LM):
    """Yield dicts with both answers of causal LM `model` (one of models(engine)) so far: 'rag' (prompt
    with the chunks) and 'plain' (the question alone), advanced one token each in turn with the same
    decoding settings and seed."""
    tm = engine.load(check_choice("answer model", model, models(engine)), progress=progress)
    built = build_prompt(tm, question, hits, settings.budget, settings.max_new_tokens)
    dec = _decoding(settings)
    streams = {"rag": generation.generate_stream(tm, built["prompt"], dec, "chat"),
               "plain": generation.generate_stream(tm, question, dec, "chat")}
    texts = {"rag": "", "plain": ""}
    done = {"rag": False, "plain": False}
    t0 = time.perf_counter()
    while not all(done.values()):
        for key, stream in streams.items():
            if done[key]:
                continue
            try:
                result = next(stream)
            except StopIteration:
                done[key] = True
                continue
            texts[key] = result.sequences[0].text
            done[key] = result.done
        yield dict(prompt=built, rag=texts["rag"], plain=texts["plain"], done=all(done.values()),
                   seconds=time.perf_counter() - t0)


def answer(engine, question: str, hits: list[dict], settings: AnswerSettings | None = None, model: str = LM) -> dict:
    out = None
    for out in answer_stream(engine, question, hits, settings or AnswerSettings(), model=model):
        pass
    return out
