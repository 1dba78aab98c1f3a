"""A multiple-choice task suite scored by log-likelihood, the way lm-evaluation-harness does it
(its Hugging Face backend with default arguments).

For an item with question q and choices c_1..c_n the model reads

    [k solved examples "Question: ...\\nAnswer: <right choice>\\n\\n"] + "Question: q\\nAnswer:"

and for each choice we add up the log-probabilities of the tokens of " c_i" (a space, then the
choice) given that context. Encoded as lm-eval encodes it: context + choice as one string, split
where the context's own encoding ends, and no begin token unless the tokenizer adds one itself
(Gemma's <bos>: yes; SmolLM2's: none, so its context starts at "Question"):

    ll_i = sum_t ln p(token_t | context, tokens before t)           (nats)

    acc       1 if argmax_i ll_i is the right choice, else 0
    acc_norm  1 if argmax_i ll_i / len(c_i) is the right choice, with len(c_i) the number of
              characters of the choice text (without the leading space), as lm-evaluation-
              harness divides by len(choice) of the Python string; for ASCII choices that is also
              the number of UTF-8 bytes. This stops long choices losing only for having more
              tokens to pay for.

Accuracy is the mean over items; its 95% interval comes from a seeded bootstrap (resample the
items with replacement B times, take the 2.5th and 97.5th percentiles of the resampled means),
its standard error is the sample standard deviation over sqrt(n), as lm-eval reports it.

The log-likelihoods of all (context, continuation) pairs run in batches: sorted by length, padded
on the right (a causal model never looks right, so padding changes nothing before it), one
decoder pass per batch, and the output head only at the continuation positions.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import UserInputError, check_range, check_text, read_text_upload
from ..core.lazy import no_grad, torch
from ..core.settings import knob
from . import quantization

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "assets" / "eval_suite" / "suite.jsonl"
MAX_ITEMS = 300
MAX_FILE_BYTES = 1 * 2**20
MAX_QUESTION_CHARS = 2_000
MAX_CHOICE_CHARS = 300
MAX_CHOICES = 8
MAX_TOKENS = 1_024  # one (context, continuation) pair: longer contexts lose their oldest tokens
BATCH_SIZE = 16
MAX_MODELS = 6
# One run's work: every (context, choice) pair is one forward pass of each chosen model.
MAX_SCORED_ANSWERS = 1_200  # items x choices x models
MAX_SCORED_CHARS = 600_000  # characters the models read (contexts with their few-shot examples, and choices)
HEAD_ROWS = 2_048  # continuation rows of the output head computed at once
MAX_SHOTS = 8  # score_items' limit on k (the Trust & prompting tab's few-shot curve goes to 8; this tab's knob to 5)


@dataclass
class SuiteSettings:
    k_shot: int = knob(0, 0, 5, "Solved examples put before each question (few-shot), drawn from the "
                       "same skill of the suite (never the item itself)", step=1, label="few-shot k")
    max_items: int = knob(40, 1, MAX_ITEMS, "Items scored (the first ones of each skill in turn, so every "
                          f"skill is in). One run scores at most {MAX_SCORED_ANSWERS:,} answers (items x choices x "
                          f"models) and {MAX_SCORED_CHARS:,} characters (few-shot examples included)", step=1,
                          label="items")
    seed: int = knob(1234, 0, 2**32 - 1, "Seed of the few-shot draw and of the bootstrap", step=1)
    bootstrap: int = knob(1000, 100, 10_000, "Bootstrap resamples for the 95% interval", step=100,
                          label="bootstrap resamples")


@dataclass(frozen=True)
class Item:
    question: str
    choices: tuple[str, ...]
    answer: int  # index of the right choice
    skill: str = ""
    source: str = ""
    id: str = ""

    @property
    def correct(self) -> str:
        return self.choices[self.answer]


# ---- items ---------------------------------------------------------------------------------------
def _item_from(obj, where: str) -> Item:
    if not isinstance(obj, dict):
        raise UserInputError(f"{where}: each line must be a JSON object with question, choices and answer.")
    question = obj.get("question")
    choices = obj.get("choices")
    answer = obj.get("answer")
    check_text(f"{where}: question", question if isinstance(question, str) else None, max_chars=MAX_QUESTION_CHARS)
    if not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES:
        raise UserInputError(f"{where}: choices must be a list of 2 to {MAX_CHOICES} texts, got {choices!r:.80}.")
    for c in choices:
        if not isinstance(c, str):
            raise UserInputError(f"{where}: every choice must be text, got {c!r:.40}.")
        check_text(f"{where}: choice", c, max_chars=MAX_CHOICE_CHARS)
    if len(set(choices)) != len(choices):
        raise UserInputError(f"{where}: two choices are the same text; choices must differ.")
    if isinstance(answer, str) and answer in choices:  # the answer written out instead of its index
        answer = choices.index(answer)
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise UserInputError(f"{where}: answer = {answer!r:.40} must be the index of the right choice, "
                             f"0 to {len(choices) - 1} (or the choice's text).")
    extra = {k: obj.get(k, "") for k in ("skill", "source", "id")}
    extra = {k: (v if isinstance(v, str) else str(v))[:200] for k, v in extra.items()}
    return Item(question=question, choices=tuple(choices), answer=answer, **extra)


def parse_jsonl(text: str, name: str = "file") -> list[Item]:
    """Items from lm-eval's simple multiple-choice shape, one JSON object a line:
    {"question": ..., "choices": [...], "answer": <index>}. Bounded in size and count."""
    text = check_text(name, text, max_chars=MAX_FILE_BYTES)
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if len(items) >= MAX_ITEMS:
            raise UserInputError(f"{name} has more than {MAX_ITEMS} items: the limit is {MAX_ITEMS}.")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{name} line {number} is not JSON ({exc.msg}): one object a line.") from None
        item = _item_from(obj, f"{name} line {number}")
        items.append(item if item.id else Item(**{**item.__dict__, "id": f"line-{number}"}))
    if not items:
        raise UserInputError(f"{name} holds no items: give 1 to {MAX_ITEMS} lines of JSON.")
    return items


def read_upload(path) -> list[Item]:
    """Items from an uploaded .jsonl file (at most MAX_FILE_BYTES, UTF-8)."""
    return parse_jsonl(read_text_upload(path, ("jsonl",), MAX_FILE_BYTES), "the uploaded file")


def bundled() -> list[Item]:
    return parse_jsonl(BUNDLED.read_text(encoding="utf-8"), "assets/eval_suite/suite.jsonl")


def take(items: list[Item], n: int) -> list[Item]:
    """The first n items, taking one from each skill in turn so a small n still covers every skill."""
    by_skill: dict[str, list[Item]] = {}
    for it in items:
        by_skill.setdefault(it.skill, []).append(it)
    out, queues = [], [list(v) for v in by_skill.values()]
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


# ---- prompts -------------------------------------------------------------------------------------
def shot_text(item: Item) -> str:
    return f"Question: {item.question}\nAnswer: {item.correct}\n\n"


def context_for(item: Item, shots: list[Item]) -> str:
    return "".join(shot_text(s) for s in shots) + f"Question: {item.question}\nAnswer:"


def pick_shots(items: list[Item], pool: list[Item], k: int, seed: int) -> list[list[Item]]:
    """k solved examples for each item, from the pool items of the same skill (all of the pool when
    the skill has too few), never the item itself; one seeded generator, so a seed gives the same
    draw every time."""
    rng = random.Random(seed)
    out = []
    for it in items:
        same = [p for p in pool if p.skill == it.skill and p != it]
        cands = same if len(same) >= k else [p for p in pool if p != it]
        out.append(rng.sample(cands, min(k, len(cands))) if k else [])
    return out


# ---- log-likelihood ------------------------------------------------------------------------------
def own_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer itself puts before a text (its add_bos_token behaviour: Gemma's <bos>,
    nothing for SmolLM2): all lm-eval's HF backend puts before a context by default."""
    plain = list(tokenizer("a", add_special_tokens=False).input_ids)
    full = list(tokenizer("a").input_ids)
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return full[:i]
    return []


def encode_pair(tokenizer, context: str, continuation: str, prefix: list[int] | None = None
                ) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as lm-eval's _encode_pair makes them: trailing spaces of the
    context move to the continuation, context + continuation is encoded as one string and split
    where the context's own encoding ends (a token that spans the join stays one token). `prefix`:
    own_prefix(tokenizer). An empty context starts from BOS (else EOS), as lm-eval's does."""
    prefix = own_prefix(tokenizer) if prefix is None else prefix
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    ctx = prefix + list(tokenizer(context, add_special_tokens=False).input_ids)
    whole = prefix + list(tokenizer(context + continuation, add_special_tokens=False).input_ids)
    cont = whole[len(ctx):]
    if not cont:
        raise UserInputError(f"continuation {continuation!r:.60} has no tokens: a choice must not be empty.")
    if not ctx:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise UserInputError("the context is empty and the tokenizer has no begin token to start from.")
        ctx = [int(start)]
    keep = MAX_TOKENS - len(cont)
    if keep < 1:
        raise UserInputError(f"a choice is {len(cont)} tokens long: the limit is {MAX_TOKENS - 1} tokens.")
    return ctx[-keep:], cont


def _pad_id(tokenizer) -> int:
    for cand in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if cand is not None:
            return int(cand)
    return 0


@no_grad
def loglikelihoods(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int = BATCH_SIZE,
                   progress=None) -> list[dict]:
    """For each (context, continuation): logprob (sum over the continuation's tokens, nats),
    n_tokens, greedy (every continuation token was the model's top guess) and the per-token
    log-probs. Batched and sorted by length (longest first); results in the input order."""
    prefix = own_prefix(tokenizer)
    encoded = [encode_pair(tokenizer, c, x, prefix) for c, x in pairs]
    order = sorted(range(len(encoded)), key=lambda i: -(len(encoded[i][0]) + len(encoded[i][1])))
    device = next(model.parameters()).device
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    pad = _pad_id(tokenizer)
    out: list[dict | None] = [None] * len(encoded)
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        seqs = [encoded[i][0] + encoded[i][1] for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)  # (B, L), right-padded
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s)
            mask[r, :len(s)] = 1
        hidden = decoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state  # (B, L, d)
        rows, cols, targets = [], [], []
        for r, i in enumerate(idx):
            n_ctx, cont = len(encoded[i][0]), encoded[i][1]
            rows += [r] * len(cont)
            cols += list(range(n_ctx - 1, n_ctx - 1 + len(cont)))  # the state at t-1 predicts token t
            targets += cont
        states = hidden[torch.tensor(rows), torch.tensor(cols)]  # (T, d): only continuation positions
        tgt = torch.tensor(targets, device=device)
        logp, top = [], []
        for lo in range(0, tgt.numel(), HEAD_ROWS):
            logits = head(states[lo:lo + HEAD_ROWS]).float()  # (c, V)
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            lsm = torch.log_softmax(logits, dim=-1)
            logp.append(lsm.gather(1, tgt[lo:lo + HEAD_ROWS, None])[:, 0])
            top.append(logits.argmax(-1) == tgt[lo:lo + HEAD_ROWS])
        logp_all, top_all = torch.cat(logp).cpu(), torch.cat(top).cpu()
        at = 0
        for i in idx:
            n = len(encoded[i][1])
            lp = logp_all[at:at + n]
            out[i] = dict(logprob=float(lp.double().sum()), n_tokens=n, greedy=bool(top_all[at:at + n].all()),
                          token_logprobs=lp.tolist())
            at += n
        if progress:
            progress(min(b + batch_size, len(order)) / len(order),
                     f"scored {min(b + batch_size, len(order))} of {len(order)} choices")
    return out  # type: ignore[return-value]


# ---- scoring -------------------------------------------------------------------------------------
def choice_probs(lls: list[float]) -> list[float]:
    """softmax over the choices' summed log-likelihoods: how the model splits its belief among them."""
    m = max(lls)
    e = [math.exp(x - m) for x in lls]
    s = sum(e)
    return [x / s for x in e]


def bootstrap_interval(values, resamples: int = 1000, seed: int = 1234, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap of the mean: resample the items with replacement, seeded."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(int(resamples), x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def stderr(values) -> float:
    x = np.asarray(values, dtype=float)
    return float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")


@dataclass
class SuiteReport:
    model: str
    items: list[dict]
    k_shot: int
    seed: int
    resamples: int
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def _metric(self, name: str) -> dict:
        vals = [r[name] for r in self.items]
        lo, hi = bootstrap_interval(vals, self.resamples, self.seed)
        return dict(value=float(np.mean(vals)), ci_low=lo, ci_high=hi, stderr=stderr(vals))

    def summary(self) -> dict:
        by_skill: dict[str, list[dict]] = {}
        for r in self.items:
            by_skill.setdefault(r["skill"] or "(none)", []).append(r)
        return dict(model=self.model, n_items=len(self.items), k_shot=self.k_shot, seed=self.seed,
                    bootstrap_resamples=self.resamples, seconds=self.seconds,
                    items_per_s=len(self.items) / self.seconds if self.seconds else None,
                    acc=self._metric("acc"), acc_norm=self._metric("acc_norm"),
                    by_skill={k: dict(n=len(v), acc=float(np.mean([r["acc"] for r in v])),
                                      acc_norm=float(np.mean([r["acc_norm"] for r in v]))) for k, v in by_skill.items()},
                    normalisation="acc_norm divides each choice's summed log-likelihood by its length in "
                                  "characters (len of the choice text), as lm-evaluation-harness does")


def score_items(model, tokenizer, items: list[Item], k_shot: int = 0, seed: int = 1234, pool: list[Item] | None = None,
                resamples: int = 1000, model_name: str = "", progress=None) -> SuiteReport:
    """Every item's choices scored by log-likelihood; acc, acc_norm and the per-item rows."""
    import time

    k_shot = check_range("few-shot k", k_shot, 0, MAX_SHOTS, integer=True)
    pool = pool if pool is not None else items
    shots = pick_shots(items, pool, k_shot, seed)
    contexts = [context_for(it, s) for it, s in zip(items, shots)]
    pairs = [(ctx, " " + c) for ctx, it in zip(contexts, items) for c in it.choices]
    start = time.perf_counter()
    lls = loglikelihoods(model, tokenizer, pairs, progress=progress)
    seconds = time.perf_counter() - start
    rows, at = [], 0
    for it, ctx in zip(items, contexts):
        res = lls[at:at + len(it.choices)]
        at += len(it.choices)
        ll = [r["logprob"] for r in res]
        norm = [x / len(c) for x, c in zip(ll, it.choices)]
        pick = int(np.argmax(ll))
        pick_norm = int(np.argmax(norm))
        probs = choice_probs(ll)
        rows.append(dict(id=it.id, skill=it.skill, source=it.source, question=it.question, choices=list(it.choices),
                         answer=it.answer, correct=it.correct, loglik=ll, loglik_per_char=norm,
                         n_tokens=[r["n_tokens"] for r in res], chosen=it.choices[pick], chosen_norm=it.choices[pick_norm],
                         acc=int(pick == it.answer), acc_norm=int(pick_norm == it.answer),
                         p_correct=probs[it.answer], context=ctx))
    return SuiteReport(model=model_name, items=rows, k_shot=k_shot, seed=seed, resamples=resamples, seconds=seconds)


# ---- models side by side -------------------------------------------------------------------------
VARIANT_SEP = " · "


def model_options(engine) -> list[tuple[str, str]]:
    """(label, value) for every usable causal LM of the registry, and its quantized variants.
    value is "key" for the model as the engine loads it, or "key · variant"."""
    out = []
    for key in engine.registry.keys("causal-lm"):
        if not engine.registry.usable(key):
            continue
        title = engine.registry.get(key).title
        out.append((title, key))
        out += [(f"{title} · {v}", f"{key}{VARIANT_SEP}{v}") for v in quantization.VARIANTS if v != "fp32"]
    return out


def load_option(engine, value: str, progress=None):
    """(model, tokenizer) for a value of model_options()."""
    valid = [v for _, v in model_options(engine)]
    if value not in valid:
        shown = ", ".join(valid)
        raise UserInputError(f"model = {value!r} is not a valid choice: choose one of {shown}.")
    key, _, variant = value.partition(VARIANT_SEP)
    if not variant:
        bundle = engine.load(key, progress=progress)
        return bundle.model, bundle.tokenizer
    tokenizer = quantization.float_cpu_model(engine, key, progress).tokenizer
    return quantization.variant_model(engine, key, variant, progress), tokenizer


def check_work(items: list[Item], pool: list[Item], settings: SuiteSettings, n_models: int) -> None:
    """Refuse a run past MAX_SCORED_ANSWERS answers or MAX_SCORED_CHARS characters, before any
    model is loaded."""
    answers = sum(len(it.choices) for it in items) * n_models
    if answers > MAX_SCORED_ANSWERS:
        raise UserInputError(f"{len(items)} items with their choices x {n_models} model(s) = {answers:,} answers to "
                             f"score: one run scores at most {MAX_SCORED_ANSWERS:,}. Choose fewer items or models.")
    shots = pick_shots(items, pool, settings.k_shot, settings.seed)
    chars = n_models * sum(len(context_for(it, s)) * len(it.choices) + sum(len(c) + 1 for c in it.choices)
                           for it, s in zip(items, shots))
    if chars > MAX_SCORED_CHARS:
        raise UserInputError(f"{len(items)} items with {settings.k_shot} few-shot examples x {n_models} model(s) = "
                             f"{chars:,} characters to read: one run reads at most {MAX_SCORED_CHARS:,}. Choose "
                             "fewer items, shots or models.")


def run_suite(engine, models, settings: SuiteSettings | None = None, items: list[Item] | None = None,
              progress=None) -> list[SuiteReport]:
    """The same items (bundled, or the user's) through each chosen model, one report per model."""
    settings = settings or SuiteSettings()
    models = [models] if isinstance(models, str) else list(models or [])
    if not 1 <= len(models) <= MAX_MODELS:
        raise UserInputError(f"models: choose 1 to {MAX_MODELS} models, got {len(models)}.")
    pool = items if items is not None else bundled()
    chosen = take(pool, settings.max_items)
    check_work(chosen, pool, settings, len(models))
    report = progress or (lambda f, m: None)
    out = []
    for n, value in enumerate(models):
        step = lambda f, m, n=n, v=value: report((n + (f or 0)) / len(models), f"{v}: {m}")  # noqa: E731
        model, tokenizer = load_option(engine, value, step)
        out.append(score_items(model, tokenizer, chosen, settings.k_shot, settings.seed, pool,
                               settings.bootstrap, value, step))
    report(1.0, "done")
    return out
