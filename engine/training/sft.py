"""Supervised fine-tuning (SFT): from a base model that continues text to one that answers.

The training format is a conversation rendered through a chat template, cut into three token
runs: the prompt with its template (`<bos><start_of_turn>user\\n ... <start_of_turn>model\\n`), the
response, and the template's closing tokens (`<end_of_turn>\\n`). The loss mask decides which of
those the loss counts: "response" (the response and the end-of-turn token that teaches the model
to stop) or "all" (every token, so the model also learns to write the user's questions).

Training itself is the LoRA lesson's code (lora.train: per-session adapter over a shared copy of
the cached base model, one training at a time, a wall-time cap, stop keeps what is trained); this
module only brings the format, the mask and the checks.
"""
from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..core import arch
from ..core.chat import chat_ids, plain_ids
from ..core.errors import UserInputError, check_range, check_text, parse_json
from ..core.lazy import no_grad, torch
from ..core.registry import ASSETS
from ..core.settings import knob
from . import lora
from . import sft_tasks

BASE_KEY = "gemma3-270m-base"  # pre-trained only: the model SFT turns into an assistant
INSTRUCT_KEY = lora.BASE_KEY  # SmolLM2-135M-Instruct: an assistant someone else tuned
FAMILY_BASE_KEY = "smollm2-135m-base"  # the instruct model's own base (Hub only)
TRAIN_FILE = ASSETS / "sft" / "train.jsonl"
HELD_OUT_FILE = ASSETS / "sft" / "held_out.jsonl"
MASKS = ("response", "all")
MAX_FIELD_CHARS = 1_000
MIN_PAIRS, MAX_PAIRS = 4, 5_000
MAX_EVAL_PROMPTS = 70
IGNORE = -100  # the label torch's cross-entropy skips

# Gemma's turn format (the base model's GGUF carries no template; this is the one its
# instruction-tuned sibling uses): BOS, then each turn as <start_of_turn>role\n text <end_of_turn>\n.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "<start_of_turn>{{ role }}\n{{ m['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@dataclass
class SftSettings(lora.LoraSettings):
    """The LoRA knobs with SFT's defaults, plus the loss mask."""

    r: int = knob(8, 1, 64, "Rank of the update B·A", step=1)
    alpha: int = knob(16, 1, 256, "The update is scaled by alpha / r", step=1)
    dropout: float = knob(0.0, 0.0, 0.5, "Dropout on the LoRA input while training", step=0.01)
    target_modules: list = knob(["q_proj", "k_proj", "v_proj", "o_proj"], help="Which linear layers get an adapter",
                                choices=lora.LINEAR_NAMES, label="target modules")
    learning_rate: float = knob(0.001, 0.00001, 0.01, "AdamW step size for the LoRA matrices",
                                step=0.00001, label="learning rate")
    max_steps: int = knob(50, 1, 1000, "Optimizer steps (one batch each)", step=1, label="max steps")
    batch_size: int = knob(8, 1, 64, "Conversations per step, padded to the longest", step=1, label="batch size")
    max_length: int = knob(64, 16, 256, "Tokens kept per conversation (template included)", step=1,
                           label="max length")
    seed: int = knob(42, 0, 2**31 - 1, "Shuffling, dropout and LoRA initialisation", step=1)
    mask: str = knob("response", help="Which tokens the loss counts: the response only, or everything",
                     choices=MASKS, label="loss on")
    # SFT scores its own held-out prompts (HELD_OUT_FILE) and trains at a constant rate
    val_share: float = knob(0.0, 0.0, 0.5, "Share of the examples held out for a validation loss", step=0.05,
                            label="validation share")
    schedule: str = knob("constant", help="How the learning rate falls after the warm-up", choices=lora.SCHEDULES,
                         label="learning-rate schedule")
    warmup_steps: int = knob(0, 0, 200, "Steps over which the learning rate rises to its peak", step=1,
                             label="warm-up steps")


# ---- data ----------------------------------------------------------------------------------------
def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        raise UserInputError(f"{path.name} is missing: rebuild it with `python scripts/make_sft_data.py`.")
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def load_train() -> list[dict]:
    """The bundled instruction set: rows {task, prompt, response} (scripts/make_sft_data.py)."""
    return _read_rows(TRAIN_FILE)


def load_held_out() -> list[dict]:
    """Prompts of the same tasks that training never sees (other numbers, words and countries)."""
    return _read_rows(HELD_OUT_FILE)


def eval_rows(n_per_task: int) -> list[dict]:
    """The first n held-out prompts of each task, tasks interleaved."""
    n_per_task = check_range("prompts per task", n_per_task, 1, 10, integer=True)
    by_task: dict[str, list[dict]] = {}
    for row in load_held_out():
        by_task.setdefault(row["task"], []).append(row)
    return [rows[i] for i in range(n_per_task) for rows in by_task.values() if i < len(rows)]


def parse_pairs(text: str) -> list[dict]:
    """A user's .jsonl: one {"prompt": "...", "response": "..."} object a line, bounded."""
    text = check_text("dataset", text, max_chars=lora.MAX_DATASET_BYTES)
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        obj = parse_json(line, f"dataset line {n}")
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) \
                or not isinstance(obj.get("response"), str):
            raise UserInputError(f'dataset line {n} must be an object with "prompt" and "response" strings, '
                                 'e.g. {"prompt": "What is 2 + 3?", "response": "5"}.')
        prompt, response = obj["prompt"].strip(), obj["response"].strip()
        for name, value in (("prompt", prompt), ("response", response)):
            if not value or len(value) > MAX_FIELD_CHARS:
                raise UserInputError(f"dataset line {n}: the {name} has {len(value):,} characters: give 1 to "
                                     f"{MAX_FIELD_CHARS:,}.")
        solved = sft_tasks.solve(prompt)
        out.append(dict(task=solved[0] if solved else "", prompt=prompt, response=response))
    if not MIN_PAIRS <= len(out) <= MAX_PAIRS:
        raise UserInputError(f"the dataset has {len(out):,} examples: give {MIN_PAIRS} to {MAX_PAIRS:,} lines.")
    return out


def read_pairs_file(path: str | Path) -> list[dict]:
    """An uploaded .jsonl (the path is Gradio's temporary copy, never user text)."""
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        raise UserInputError(f"file type {path.suffix or '(none)'!s:.20} is not accepted: upload a .jsonl file.")
    size = path.stat().st_size
    if size > lora.MAX_DATASET_BYTES:
        raise UserInputError(f"the file is {size:,} bytes: the limit is {lora.MAX_DATASET_BYTES:,} bytes.")
    try:
        return parse_pairs(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UserInputError("the file is not UTF-8 text: save it as UTF-8 and upload it again.") from None


def dataset(source: str, upload: str | None = None) -> list[dict]:
    if source == "bundled":
        return load_train()
    if source == "upload":
        if not upload:
            raise UserInputError("no file uploaded: upload a .jsonl file of {prompt, response} lines (up to 2 MB).")
        return read_pairs_file(upload)
    raise UserInputError(f"dataset = {source!r} is not valid: choose 'bundled' or 'upload'.")


# ---- the training format: template, token runs, labels -------------------------------------------
def chat_template_of(tokenizer) -> str:
    """The tokenizer's own template (SmolLM2's ChatML), else Gemma's turn format."""
    return getattr(tokenizer, "chat_template", None) or GEMMA_TEMPLATE


def render(tokenizer, prompt: str, response: str) -> dict:
    """The conversation as text, split where the model's part starts and ends."""
    template = chat_template_of(tokenizer)
    user = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(user, chat_template=template, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": response}],
                                         chat_template=template, tokenize=False)
    if not full.startswith(head + response):  # a template that rewrites the response (e.g. trims it)
        raise UserInputError("this chat template does not keep the response as written: trim spaces around it.")
    return dict(prompt=head, response=response, close=full[len(head) + len(response):], text=full)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The ids of render()'s prompt part: the template's own special tokens are tokens, and a
    special-token string typed in the prompt ('<|im_end|>') stays plain text (no forged turn)."""
    return chat_ids(tokenizer, [{"role": "user", "content": prompt}], chat_template=chat_template_of(tokenizer))


def encode_pair(tokenizer, prompt: str, response: str, mask: str = "response", max_length: int = 256) -> dict:
    """Token ids and labels of one conversation. The three runs are tokenized apart and joined,
    so the prompt tokens are exactly what generation sees before the model's first token.
    mask="response": labels are -100 on the prompt and template tokens, the ids elsewhere (the
    response and the first closing token, end-of-turn); mask="all": labels copy every id."""
    if mask not in MASKS:
        raise UserInputError(f"loss mask = {mask!r} is not valid: choose {' or '.join(MASKS)}.")
    parts = render(tokenizer, prompt, response)
    # the prompt and the response are the user's text: special-token strings in them stay plain text
    p, r, c = prompt_ids(tokenizer, prompt), plain_ids(tokenizer, parts["response"]), _ids(tokenizer, parts["close"])
    ids = p + r + c
    if mask == "all":
        labels = list(ids)
    else:
        labels = [IGNORE] * len(p) + r + c[:1] + [IGNORE] * max(len(c) - 1, 0)
    return dict(ids=ids[:max_length], labels=labels[:max_length], n_prompt=len(p), n_response=len(r),
                n_close=len(c), parts=parts)


def encode_pairs(tokenizer, rows: list[dict], max_length: int, mask: str = "response") -> list[tuple]:
    """(ids, labels) per row; a row cut so short that no label is left is dropped."""
    out = []
    for row in rows:
        e = encode_pair(tokenizer, row["prompt"], row["response"], mask, max_length)
        if any(x != IGNORE for x in e["labels"][1:]):  # the first label is never predicted
            out.append((e["ids"], e["labels"]))
    if not out:
        raise UserInputError(f"max length = {max_length} cuts every example before its response: raise it.")
    return out


def collate_sft(batch: list[tuple], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad (ids, labels) pairs; padding gets attention 0 and label -100."""
    longest = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)  # (batch, longest)
    labels = torch.full((len(batch), longest), IGNORE, dtype=torch.long)  # (batch, longest)
    attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)  # (batch, longest)
    for i, (ids, lab) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        attention_mask[i, : len(ids)] = 1
    return dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


@no_grad
def loss_of(model, ids: list[int], labels: list[int]) -> float:
    """The model's mean cross-entropy over the counted (label != -100) next tokens, in nats."""
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([ids], device=device), labels=torch.tensor([labels], device=device))
    return float(out.loss)


def show_format(tokenizer, prompt: str, response: str, max_length: int = 256, model=None) -> dict:
    """One example for the UI: its text, tokens, ids and both masks (and their losses under `model`)."""
    prompt = check_text("prompt", prompt, max_chars=MAX_FIELD_CHARS)
    response = check_text("response", response, max_chars=MAX_FIELD_CHARS)
    max_length = check_range("max length", max_length, 16, 256, integer=True)
    views = {m: encode_pair(tokenizer, prompt, response, m, max_length) for m in MASKS}
    one = views["response"]
    out = dict(text=one["parts"]["text"], parts=one["parts"], ids=one["ids"],
               tokens=[tokenizer.decode([i]) for i in one["ids"]], n_prompt=one["n_prompt"],
               n_response=one["n_response"], n_close=one["n_close"],
               labels={m: v["labels"] for m, v in views.items()},
               counted={m: sum(1 for x in v["labels"][1:] if x != IGNORE) for m, v in views.items()},
               loss={})
    if model is not None:
        out["loss"] = {m: loss_of(model, v["ids"], v["labels"]) for m, v in views.items()}
    return out


# ---- training: the LoRA lesson's loop with this format ------------------------------------------------
def train(engine, session: lora.LoraSession, rows: list[dict], settings: SftSettings,
          progress=None, base_key: str = BASE_KEY) -> Iterator[lora.TrainUpdate]:
    """A fresh adapter on base model `base_key` (one of lora.base_keys(engine, BASE_KEY)) for
    `session`, through lora.train (gate, cap, stop)."""
    if not isinstance(settings, SftSettings):
        raise TypeError("settings must be SftSettings (use make(SftSettings, ...))")
    base_key = lora.check_base(engine, base_key, BASE_KEY)
    encode = functools.partial(encode_pairs, mask=settings.mask)
    yield from lora.train(engine, session, rows, settings, progress, base_key=base_key, encode=encode,
                          collate_fn=collate_sft)


# ---- generation ---------------------------------------------------------------------------------------
def stop_ids(tokenizer) -> list[int]:
    """EOS and the template's end-of-turn token (what a tuned model emits when it is done)."""
    ids = [tokenizer.eos_token_id]
    close = _ids(tokenizer, render(tokenizer, "x", "y")["close"])
    if close and close[0] not in ids:
        ids.append(close[0])
    return ids


@no_grad
def generate(model, tokenizer, text: str, *, templated: bool, seed: int = 0, max_new_tokens: int = 48,
             temperature: float = 0.0, name: str = "the model") -> dict:
    """One answer: `text` as it is (the tokenizer's own BOS rule) or inside the chat template (`name`:
    the model's title, for a refusal)."""
    seed = check_range("seed", seed, 0, 2**32 - 1, integer=True)
    max_new_tokens = check_range("max new tokens", max_new_tokens, 1, 200, integer=True)
    temperature = check_range("temperature", temperature, 0.0, 2.0)
    if templated:
        ids = prompt_ids(tokenizer, text)
    else:
        ids = tokenizer(text)["input_ids"]
    arch.check_fits(model.config, len(ids) + max_new_tokens, name, "The prompt with its new tokens",
                    fix="Lower max new tokens or shorten the prompt.")
    device = next(model.parameters()).device
    enc = torch.tensor([ids], device=device)  # (1, prompt)
    kwargs = dict(max_new_tokens=max_new_tokens, eos_token_id=stop_ids(tokenizer),
                  pad_token_id=lora.pad_id_of(tokenizer), attention_mask=torch.ones_like(enc))
    kwargs.update(dict(do_sample=True, temperature=temperature, top_p=0.95) if temperature > 0 else
                  dict(do_sample=False))
    torch.manual_seed(seed)
    start = time.perf_counter()
    out = model.generate(enc, **kwargs)  # (1, prompt + new)
    new = out[0, len(ids):].tolist()
    stopped = bool(new) and new[-1] in kwargs["eos_token_id"]
    answer = tokenizer.decode(new[:-1] if stopped else new, skip_special_tokens=True)
    return dict(prompt=tokenizer.decode(ids), answer=answer, new_tokens=len(new), stopped=stopped,
                seconds=time.perf_counter() - start)


def comparison_keys(registry) -> tuple[str, str]:
    """(base, instruct) for Base vs instruct: a pair the operator added (--model pair=BASE+INSTRUCT);
    else online, SmolLM2-135M and its instruct model (one family, so the difference is post-training);
    offline, Gemma 3 270M base, the one embedded base model."""
    pairs = registry.pairs()
    if pairs and registry.get(pairs[0][0]).origin == "operator":
        return pairs[0]
    base = FAMILY_BASE_KEY if registry.online and registry.usable(FAMILY_BASE_KEY) else BASE_KEY
    return base, INSTRUCT_KEY


def same_family(registry) -> bool:
    """Whether the two models of Base vs instruct are one model before and after post-training."""
    base, instruct = comparison_keys(registry)
    return registry.get(base).base_of == instruct


def base_vs_instruct(engine, question: str, seed: int = 7, max_new_tokens: int = 48, temperature: float = 0.0,
                     progress=None) -> dict:
    """The same question and seed through the base model (raw), the instruct model (raw) and the
    instruct model inside its chat template (comparison_keys picks the two models)."""
    question = check_text("question", question, max_chars=500)
    base_key, inst_key = comparison_keys(engine.registry)
    base = engine.load(base_key, progress=progress)
    inst = engine.load(inst_key, progress=progress)
    kw = dict(seed=seed, max_new_tokens=max_new_tokens, temperature=temperature)
    return dict(
        base_raw=generate(base.model, base.tokenizer, question, templated=False, **kw),
        instruct_raw=generate(inst.model, inst.tokenizer, question, templated=False, **kw),
        instruct_chat=generate(inst.model, inst.tokenizer, question, templated=True, **kw),
        titles=dict(base=engine.registry.get(base_key).title, instruct=engine.registry.get(inst_key).title),
    )


def before_after(peft_model, tokenizer, rows: list[dict], max_new_tokens: int = 20) -> dict:
    """Greedy answers to held-out prompts: base (adapter off) and tuned, both in the template the
    tuned model was trained on, and the tuned model without it (train/serve skew). Each answer is
    checked by the task's own program: `exact` = the answer and nothing else, then a stop;
    `first_line` = the first line is the answer (lenient)."""
    if not 1 <= len(rows) <= MAX_EVAL_PROMPTS:
        raise UserInputError(f"{len(rows)} prompts: evaluate 1 to {MAX_EVAL_PROMPTS}.")
    out_rows = []
    conditions = (("base", True, False), ("tuned", True, True), ("tuned_no_template", False, True))
    for row in rows:
        item = dict(task=row.get("task", ""), prompt=row["prompt"], expected=row.get("response", ""))
        for name, templated, adapter in conditions:
            if adapter:
                g = generate(peft_model, tokenizer, row["prompt"], templated=templated, max_new_tokens=max_new_tokens)
            else:
                with peft_model.disable_adapter():
                    g = generate(peft_model, tokenizer, row["prompt"], templated=templated,
                                 max_new_tokens=max_new_tokens)
            answer = g["answer"]
            exact = sft_tasks.check(row["prompt"], answer) if g["stopped"] else False
            item[name] = dict(answer=answer, stopped=g["stopped"], exact=bool(exact),
                              first_line=bool(sft_tasks.check_first_line(row["prompt"], answer)))
        out_rows.append(item)
    n = len(out_rows)
    score = {name: dict(exact=sum(r[name]["exact"] for r in out_rows) / n,
                        first_line=sum(r[name]["first_line"] for r in out_rows) / n,
                        stopped=sum(r[name]["stopped"] for r in out_rows) / n) for name, _, _ in conditions}
    return dict(rows=out_rows, score=score, n=n)


def losses_summary(losses: list[float]) -> str:
    if not losses:
        return "no steps yet"
    tail = [x for x in losses[-5:] if math.isfinite(x)]
    return f"{losses[0]:.2f} → {sum(tail) / max(len(tail), 1):.2f} (mean of the last {len(tail)})"


__all__ = ["BASE_KEY", "INSTRUCT_KEY", "FAMILY_BASE_KEY", "comparison_keys", "same_family", "SftSettings",
           "load_train", "load_held_out", "eval_rows",
           "parse_pairs", "read_pairs_file", "dataset", "render", "prompt_ids", "encode_pair", "encode_pairs", "collate_sft",
           "loss_of", "show_format", "train", "generate", "base_vs_instruct", "before_after", "stop_ids",
           "GEMMA_TEMPLATE", "MASKS"]
