"""LoRA fine-tuning on the CPU: a quotes dataset, the EOS-terminated training format, a data
collator, a training loop that streams its loss, base-vs-adapted generation from one model,
and adapter export/import.

Isolation: the cached base model is never changed. Each session gets its own module tree
(`session_model`) whose frozen weights are *the same storage* as the cached model's (no copy,
so 30 students do not need 30 x 513 MiB), wrapped by peft with its own LoRA matrices. Only the
LoRA matrices are trained; the shared storage is only read. The gate, the time cap and the
thread count of a training are the runner's (runner.py).
"""
from __future__ import annotations

import copy
import functools
import math
import threading
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from ..core import arch
from ..core.models import Progress
from ..core.errors import UserInputError, check_choice, check_range, check_text, parse_json, read_text_upload, short_repr
from ..core.lazy import no_grad, torch
from ..core.registry import ASSETS
from ..core.settings import MAX_UPLOAD_BYTES, knob, knob_info, make, validate
from . import runner
from .runner import TrainUpdate

QUOTES = ASSETS / "quotes" / "quotes.txt"
DASH = " — "
BASE_KEY = "smollm2-135m-instruct"
LINEAR_NAMES = arch.LLAMA.linear  # the embedded SmolLM2's (Llama) linear layers
DEFAULT_TARGETS = ["q_proj", "v_proj"]  # on another family: its own query/value layers (arch.Family.lora_default)
ATTENTION_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]  # elsewhere: the family's attention projections
MAX_DATASET_BYTES = 2_000_000  # an uploaded or pasted dataset
MAX_EXAMPLE_CHARS = 1_000
MIN_EXAMPLES, MAX_EXAMPLES = 4, 20_000
MAX_ADAPTER_BYTES = MAX_UPLOAD_BYTES  # the app's one upload limit covers the biggest adapter it trains
MAX_CONFIG_BYTES = 64 * 2**10  # adapter_config.json as peft writes it is about 1 kB
MAX_VAL_EXAMPLES = 32  # held-out lines scored at each evaluation: on SmolLM2 about the time of one training step
VAL_BATCH = 8  # held-out lines per forward pass: (8, 256, 49152) fp32 logits at most, ~400 MB
SCHEDULES = ("constant", "linear", "cosine")
ADAPTER_FILE, CONFIG_FILE = "adapter_model.safetensors", "adapter_config.json"


@dataclass
class LoraSettings:
    """The knobs of one LoRA run. Ranges are written once here; the UI and the API use them."""

    r: int = knob(8, 1, 64, "Rank of the update B·A: how many directions each layer may change in",
                  step=1)
    alpha: int = knob(16, 1, 256, "The update is scaled by alpha / r before it is added to W", step=1)
    dropout: float = knob(0.05, 0.0, 0.5, "Dropout on the LoRA input while training", step=0.01)
    target_modules: list = knob(DEFAULT_TARGETS, help="Which linear layers get an adapter (the default, q_proj + "
                                "v_proj, means each family's query and value layers)",
                                choices=arch.LINEAR_NAMES, label="target modules")
    learning_rate: float = knob(0.002, 0.00001, 0.01, "AdamW step size for the LoRA matrices",
                                step=0.00001, label="learning rate")
    max_steps: int = knob(40, 1, 1000, "Optimizer steps (one batch each)", step=1, label="max steps")
    batch_size: int = knob(8, 1, 64, "Examples per step, padded to the longest in the batch", step=1,
                           label="batch size")
    max_length: int = knob(64, 8, 256, "Tokens kept per example (longer ones are cut, losing their EOS)",
                           step=1, label="max length")
    seed: int = knob(42, 0, 2**31 - 1, "Shuffling, dropout and LoRA initialisation", step=1)
    time_budget: float = runner.budget_knob()
    val_share: float = knob(0.1, 0.0, 0.5, f"Share of the examples held out of training to measure the validation "
                            f"loss on (at most {MAX_VAL_EXAMPLES} lines; 0 = none)", step=0.05,
                            label="validation share")
    eval_every: int = knob(10, 1, 1000, "Steps between two validation losses (also before step 1 and after the "
                           "last)", step=1, label="evaluate every (steps)")
    schedule: str = knob("cosine", help="How the learning rate falls after the warm-up", choices=SCHEDULES,
                         label="learning-rate schedule")
    warmup_steps: int = knob(4, 0, 200, "Steps over which the learning rate rises to its peak", step=1,
                             label="warm-up steps")

    def __post_init__(self):
        if self.target_modules is not None and not isinstance(self.target_modules, list):
            try:  # any iterable of names, e.g. a tuple; a bare string becomes letters, which validate() refuses
                self.target_modules = list(self.target_modules)
            except TypeError:
                pass
        validate(self)  # the ranges and choices first: a bad value is named as such
        if not self.target_modules:
            raise UserInputError(f"target modules is empty: pick at least one of {', '.join(LINEAR_NAMES)}.")


# ---- dataset ---------------------------------------------------------------------------------
def format_example(quote: str, author: str) -> str:
    return f"{quote.strip()}{DASH}{author.strip()}"


def load_quotes(path: Path = QUOTES) -> list[str]:
    """The bundled dataset: one "<quote> — <author>" a line."""
    if not path.exists():
        raise UserInputError(f"{path} is missing: rebuild it with `python scripts/build_quotes.py`.")
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def split_quote(example: str) -> tuple[str, str]:
    """(quote, author) for display; author is '' when the line has no ' — '."""
    quote, sep, author = example.rpartition(DASH)
    return (quote, author) if sep else (example, "")


def parse_dataset(text: str, kind: str = "txt") -> list[str]:
    """User data: .txt = one example a line; .jsonl = one object a line with "text", or with
    "quote" and "author" (formatted as "<quote> — <author>")."""
    if kind not in ("txt", "jsonl"):
        raise UserInputError(f"dataset kind = {kind!r} is not valid: choose 'txt' or 'jsonl'.")
    text = check_text("dataset", text, max_chars=MAX_DATASET_BYTES)
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if kind == "jsonl":
            try:
                obj = parse_json(line, f"dataset line {n}")
            except UserInputError as exc:
                raise UserInputError(f"{exc} Each line must be an object like "
                                     '{"text": "..."} or {"quote": "...", "author": "..."}.') from None
            if not isinstance(obj, dict):
                raise UserInputError(f"dataset line {n} is a {type(obj).__name__}, not an object with "
                                     '"text" or "quote"/"author".')
            if isinstance(obj.get("text"), str):
                line = obj["text"].strip()
            elif isinstance(obj.get("quote"), str) and isinstance(obj.get("author"), str):
                line = format_example(obj["quote"], obj["author"])
            else:
                raise UserInputError(f'dataset line {n} has no "text" string and no "quote" + "author" strings.')
        if len(line) > MAX_EXAMPLE_CHARS:
            raise UserInputError(f"dataset line {n} is {len(line):,} characters long: the limit is "
                                 f"{MAX_EXAMPLE_CHARS:,} characters per example.")
        if line:
            out.append(line)
    if not MIN_EXAMPLES <= len(out) <= MAX_EXAMPLES:
        raise UserInputError(f"the dataset has {len(out):,} examples: give {MIN_EXAMPLES} to "
                             f"{MAX_EXAMPLES:,} non-empty lines.")
    return out


def read_dataset_file(path: str | Path) -> list[str]:
    """An uploaded .txt or .jsonl file (the path is Gradio's temporary copy, never user text)."""
    text = read_text_upload(path, ("txt", "jsonl"), MAX_DATASET_BYTES)
    return parse_dataset(text, Path(path).suffix.lower().lstrip("."))


# ---- the training format: text + EOS, padded per batch ------------------------------------------
def encode_examples(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each example followed by EOS, cut to max_length (a cut example loses its EOS)."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [(x + [tokenizer.eos_token_id])[:max_length] for x in ids]


def collate(batch: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest example. Labels copy the ids except at padding (-100,
    ignored by the loss). Padding is found from the attention mask, not the pad id: SmolLM2 pads
    with its EOS token, and masking by id would also hide the real EOS the model must learn."""
    longest = max(len(x) for x in batch)
    input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)  # (batch, longest)
    attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)  # (batch, longest)
    for i, ids in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, : len(ids)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)  # (batch, longest)
    return dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def pad_id_of(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def show_format(tokenizer, texts: list[str], max_length: int, n: int = 3) -> dict:
    """One formatted example, its tokens, and a padded batch of the first n, for the UI."""
    texts = texts[:n]
    ids = encode_examples(tokenizer, texts, max_length)
    batch = collate(ids, pad_id_of(tokenizer))
    first = ids[0]
    return dict(
        text=texts[0] + tokenizer.eos_token, eos=tokenizer.eos_token, pad=tokenizer.convert_ids_to_tokens(pad_id_of(tokenizer)),
        tokens=[tokenizer.decode([i]) for i in first], ids=first,  # readable pieces, not byte-level BPE
        input_ids=batch["input_ids"].tolist(), attention_mask=batch["attention_mask"].tolist(),
        labels=batch["labels"].tolist(), lengths=[len(x) for x in ids],
    )


def split_validation(items: list, share: float, seed: int) -> tuple[list, list]:
    """(training, held-out) examples: floor(share x n) of them (at least 1 when share > 0, at most
    MAX_VAL_EXAMPLES), drawn with `seed`, are held out; every copy of a held-out example is left
    out of training too, so no held-out line is ever trained on. Both keep the dataset's order."""
    share = check_range("validation share", share, 0.0, 0.5)
    if share == 0 or not items:
        return list(items), []
    k = min(MAX_VAL_EXAMPLES, max(1, int(len(items) * share)))
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    picked = sorted(order[:k])
    held_keys = {_key(items[i]) for i in picked}
    train = [x for x in items if _key(x) not in held_keys]
    if not train:
        raise UserInputError(f"every example is a copy of a held-out one: lower the validation share "
                             f"({share:g}, 0 to 0.5) or give more different examples.")
    return train, [items[i] for i in picked]


def _key(item) -> str:
    return item if isinstance(item, str) else repr(item)


def lr_at(step: int, total: int, peak: float, schedule: str = "constant", warmup: int = 0) -> float:
    """The learning rate of optimizer step `step` (1 to `total`): a linear warm-up,
    peak·step/(warmup + 1) for step <= warmup, then with p = (step - 1 - warmup)/(total - warmup)
    (0 at the first step after the warm-up, below 1 at the last): constant peak, linear peak·(1 - p),
    cosine peak·(1 + cos(pi·p))/2. No step gets a rate of 0."""
    if schedule not in SCHEDULES:
        raise UserInputError(f"schedule = {short_repr(schedule)} is not valid: choose {', '.join(SCHEDULES)}.")
    if step <= warmup:
        return peak * step / (warmup + 1)
    if schedule == "constant":
        return peak
    p = min(1.0, max(0.0, (step - 1 - warmup) / max(1, total - warmup)))
    return peak * (1.0 - p) if schedule == "linear" else peak * 0.5 * (1.0 + math.cos(math.pi * p))


@no_grad
def validation_loss(model, examples: list, pad_id: int, collate_fn: Callable[[list, int], dict] | None = None,
                    batch_size: int = VAL_BATCH) -> float:
    """Mean cross-entropy per counted next token over all the held-out `examples` (each token
    weighs the same, whatever its line's length), dropout off. nan when there are none."""
    collate_fn = collate_fn or collate
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    total, count = 0.0, 0
    try:
        for i in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collate_fn(examples[i : i + batch_size], pad_id).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]  # (batch, longest - 1): position t predicts token t + 1
            counted = labels != -100
            nll = torch.nn.functional.cross_entropy(logits[:, :-1][counted].float(), labels[counted], reduction="sum")
            total, count = total + float(nll), count + int(counted.sum())
    finally:
        model.train(was_training)
    return total / count if count else math.nan


@dataclass
class Curves:
    """What a run records beside its training loss: the learning rate each step used, and the
    loss on the held-out examples before step 1, every `eval_every` steps and after the last."""

    held_out: list = field(default_factory=list)  # encoded held-out examples (never trained on)
    lrs: list = field(default_factory=list)
    val: list = field(default_factory=list)  # (step, validation loss)

    def evaluate(self, model, step: int, pad_id: int, collate_fn=None) -> None:
        if self.held_out and (not self.val or self.val[-1][0] != step):
            self.val.append((step, validation_loss(model, self.held_out, pad_id, collate_fn)))


def batches(n_examples: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless shuffled batches of example indices: a new permutation each epoch."""
    g = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, n_examples)
    while True:
        order = torch.randperm(n_examples, generator=g).tolist()
        for i in range(0, n_examples - batch_size + 1, batch_size):
            yield order[i : i + batch_size]


# ---- which causal LMs a training lesson offers ---------------------------------------------------------
@functools.lru_cache(maxsize=128)
def _layout(spec) -> tuple[tuple[str, ...], ...]:
    """(linear layer names, default targets, attention projections) of a registry row, from its config
    alone (own.config_of). The app's own rows (SmolLM2, Gemma 3, the Hub's SmolLM2 pair) and an
    operator's Hub row, whose config is not fetched here, read as the Llama layout; loading checks the
    real model again."""
    from ..core import own

    family = arch.family_for_type(own.model_type_of(spec))  # a folder's config.json, a GGUF's header
    if family is not None:
        return tuple(family.linear), tuple(family.lora_default), tuple(family.attention_projections)
    config = own.config_of(spec)  # a type without a row: its full config, then the model on the meta device
    if config is None:
        return tuple(LINEAR_NAMES), tuple(DEFAULT_TARGETS), tuple(ATTENTION_TARGETS)
    return tuple(tuple(names) for names in arch.lora_layout(config))


def base_layout(engine, key: str, attention: bool = False) -> tuple[list[str], list[str]]:
    """(linear layer names, default LoRA targets) of causal LM `key`, read from its config; with
    `attention`, the defaults are its attention projections (SFT's choice). A UserInputError names the
    model and what it lacks when LoRA's targets cannot be found in it."""
    spec = engine.registry.get(key)
    try:
        names, targets, attention_layers = _layout(spec)
    except UserInputError as exc:
        raise UserInputError(f"LoRA cannot train {spec.title}: {exc}") from None
    return list(names), list(attention_layers if attention else targets)


def base_keys(engine, default: str = BASE_KEY) -> list[str]:
    """The base models a training lesson offers: its own `default` first, then the causal LMs added to
    the registry (the operator's, and online the Hub's) whose LoRA targets are known."""
    keys = []
    for key in engine.registry.lesson_keys([default]):
        try:
            base_layout(engine, key)
        except UserInputError:
            continue
        keys.append(key)
    return keys


def check_trainable(base_model, spec) -> None:
    """A loaded model whose blocks engine/core/arch.py cannot read, or that has none of its family's
    LoRA targets, is refused naming the model and what it lacks."""
    try:
        arch.arch_of(base_model).lora_targets()
    except UserInputError as exc:
        raise UserInputError(f"LoRA cannot train {spec.title}: {exc}") from None


def check_base(engine, key, default: str = BASE_KEY) -> str:
    """`key` when it is one of base_keys(engine, default); a model that is there but cannot be
    LoRA-trained is refused by name with what it lacks, anything else with the valid keys."""
    if isinstance(key, str) and key in engine.registry.lesson_keys([default]):
        base_layout(engine, key)
        return key
    return check_choice("base model", key, base_keys(engine, default))


# ---- one model tree per session, sharing the cached weights ----------------------------------------
def linear_layer_names(model) -> list[str]:
    """Distinct names of the linear layers inside the transformer blocks (lm_head left out), as the
    architecture table finds them (nn.Linear, or GPT-2's Conv1D)."""
    return arch.arch_of(model).linear_names()


def targets_for(base_model, settings: LoraSettings) -> LoraSettings:
    """settings with the default targets (q_proj, v_proj) turned into this model's family's query and
    value layers (GPT-2: c_attn; Phi-3: qkv_proj), and Llama's four attention projections (SFT's
    default) into the family's own (GPT-2: c_attn, c_proj); any other choice is kept and checked as given."""
    wanted = list(settings.target_modules)
    if wanted == DEFAULT_TARGETS:
        targets = arch.arch_of(base_model).lora_targets()
    elif wanted == ATTENTION_TARGETS:
        targets = list(arch.arch_of(base_model).family.attention_projections)
    else:
        return settings
    return settings if targets == wanted else replace(settings, target_modules=targets)


def shared_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A new module tree whose parameters are new, frozen Parameter objects over the same
    storage as `model`'s, and whose buffers are the same tensors. Nothing is copied; the
    original's modules, flags and tensors are left as they are (we only ever read them)."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = torch.nn.Parameter(p.data, requires_grad=False)
    for b in model.buffers():
        memo[id(b)] = b
    twin = copy.deepcopy(model, memo)
    twin.eval()
    return twin


def lora_config(settings: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=list(settings.target_modules), bias="none", task_type="CAUSAL_LM")


def check_targets(base_model, settings: LoraSettings) -> None:
    available = linear_layer_names(base_model)
    for name in settings.target_modules:
        if name not in available:
            raise UserInputError(f"target module {name!r} is not a linear layer of this model: "
                                 f"choose from {', '.join(available)}.")


def session_model(base_model, settings: LoraSettings, hub_id: str = ""):
    """A PeftModel over a shared copy of `base_model` with fresh LoRA matrices (B = 0, so it
    starts out identical to the base). Seeded, so the same settings give the same A."""
    from peft import get_peft_model

    validate(settings)
    settings = targets_for(base_model, settings)
    check_targets(base_model, settings)
    torch.manual_seed(settings.seed)
    peft_model = get_peft_model(shared_copy(base_model), lora_config(settings))
    if hub_id:
        peft_model.peft_config["default"].base_model_name_or_path = hub_id
    peft_model.eval()
    return peft_model


def count_params(model) -> tuple[int, int]:
    """(trainable, total), counting a tied weight once."""
    seen, total, trainable = set(), 0, 0
    for p in model.parameters():
        key = (p.data_ptr(), p.numel())
        if key in seen:
            continue
        seen.add(key)
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def adapter_shapes(base_model, settings: LoraSettings) -> dict[str, tuple[int, int]]:
    """The tensors peft saves for these settings on `base_model` (name -> shape), found from the
    base model's linear layers alone, without building the adapter: A is (r, in), B is (out, r)."""
    out = {}
    for name, m in base_model.named_modules():
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in settings.target_modules:
            out[f"base_model.model.{name}.lora_A.weight"] = (settings.r, m.in_features)
            out[f"base_model.model.{name}.lora_B.weight"] = (m.out_features, settings.r)
    return out


def expected_trainable(base_model, settings: LoraSettings) -> int:
    """r·(in + out) summed over every targeted linear layer of the base model."""
    return sum(a * b for a, b in adapter_shapes(base_model, settings).values())


def param_report(peft_model, settings: LoraSettings) -> dict:
    """The numbers shown before training: counts, one layer's W + B·A arithmetic, sizes on disk."""
    trainable, total = count_params(peft_model)
    layer_name, layer = next((n, m) for n, m in peft_model.named_modules()
                             if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {}))
    out_f, in_f = layer.base_layer.weight.shape  # W: (out, in)
    r = settings.r
    n_layers = sum(1 for _, m in peft_model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A)
    base_params = total - trainable
    return dict(
        trainable=trainable, total=total, percent=100.0 * trainable / total,
        layer=layer_name.replace("base_model.model.", ""), w_shape=(out_f, in_f), w_params=out_f * in_f,
        a_shape=(r, in_f), b_shape=(out_f, r), a_params=r * in_f, b_params=out_f * r,
        layer_lora=r * (in_f + out_f), layer_percent=100.0 * r * (in_f + out_f) / (out_f * in_f),
        scale=settings.alpha / r, n_adapted_layers=n_layers,
        adapter_bytes=trainable * 4, full_bytes=base_params * 4,
    )


# ---- training -------------------------------------------------------------------------------
# Model types whose last hidden state (output_hidden_states) is the final-norm output that the LM
# head reads, checked by tests/test_sft.py against the model's own loss.
_HEAD_ON_COUNTED = {"llama", "gemma3_text"}


def counted_token_loss(model, batch: dict) -> torch.Tensor:
    """transformers' causal-LM loss (mean cross-entropy of each next token whose label is not
    -100), with the LM head run only on the positions the loss counts. With a response-only mask
    most positions are not counted, and with a 262k-token vocabulary (Gemma 3) the head is a large
    part of a step: this skips its work on the prompt and template tokens. The value is the same."""
    labels = batch["labels"]
    counted = labels[:, 1:] != -100  # (batch, longest - 1): position t predicts token t + 1
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in _HEAD_ON_COUNTED or bool(counted.all()):
        return model(**batch).loss
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True,
                logits_to_keep=1)
    hidden = out.hidden_states[-1][:, :-1][counted]  # (counted tokens, hidden)
    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.nn.functional.cross_entropy(logits, labels[:, 1:][counted])


def train_steps(peft_model, examples: list, settings: LoraSettings, pad_id: int,
                stop: threading.Event | None = None, max_seconds: float | None = None,
                collate_fn: Callable[[list, int], dict] | None = None,
                deadline: runner.Deadline | None = None, curves: Curves | None = None) -> Iterator[TrainUpdate]:
    """Plain AdamW on the LoRA matrices, one update per batch, yielding after each step. A set
    `stop`, or the time budget used up, ends the loop between steps; the adapter keeps what it
    learned so far. `deadline` (default: `max_seconds` as the cap) times the first steps and fits
    the run to its budget: a smaller batch when that lets every step fit (the first examples of each
    shuffled batch), and the loop ends at the fitted step count, or is refused after the timed
    steps when too few fit. Each step's learning rate is `lr_at` over the steps the run will make
    (the fitted count once the first steps are timed). `collate_fn(examples, pad_id)` builds a batch
    (default: `collate`, for token-id lists; supervised fine-tuning passes one that carries its own
    loss mask). `curves` records each step's rate, and the validation loss on its held-out examples
    before step 1 and every `eval_every` steps (inside the step's time)."""
    collate_fn = collate_fn or collate
    validate(settings)
    torch.manual_seed(settings.seed)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    order = batches(len(examples), settings.batch_size, settings.seed)
    losses: list[float] = []
    device = next(iter(params)).device
    deadline = deadline or runner.Deadline(max_seconds, settings.max_steps, minutes=settings.time_budget,
                                           batch=settings.batch_size)
    curves = curves if curves is not None else Curves()
    started = runner.now()
    curves.evaluate(peft_model, 0, pad_id, collate_fn)  # in step 1's time (the warm-up step the fit leaves out)
    if curves.held_out:  # the validation losses every eval_every steps: their time is counted apart
        deadline.periodic(settings.eval_every, runner.now() - started)
    peft_model.train()
    try:
        for step in range(1, settings.max_steps + 1):
            ended = deadline.stop_update(step, losses, stop)
            if ended is not None:
                yield ended
                return
            lr = lr_at(step, deadline.steps or settings.max_steps, settings.learning_rate, settings.schedule,
                       settings.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = collate_fn([examples[i] for i in next(order)[:deadline.batch or settings.batch_size]], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = counted_token_loss(peft_model, batch)  # mean cross-entropy over the counted next tokens
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            curves.lrs.append(lr)
            if step % settings.eval_every == 0:
                started = runner.now()
                curves.evaluate(peft_model, step, pad_id, collate_fn)
                if curves.held_out:
                    deadline.extra_done(step, runner.now() - started)
            update = deadline.step_update(step, losses)
            yield update
            if update.done:
                return
    finally:
        peft_model.eval()


@dataclass
class LoraSession:
    """One browser session's adapter (kept in gr.State). Never shared between sessions."""

    model: Any = None  # PeftModel over a shared copy of the cached base model
    tokenizer: Any = None
    settings: LoraSettings | None = None
    losses: list = field(default_factory=list)
    steps_done: int = 0
    examples: int = 0
    source: str = ""  # "trained", "uploaded"
    base_title: str = ""  # the base model's title
    held_out: list = field(default_factory=list)  # the examples kept out of training (texts or rows)
    curves: Curves = field(default_factory=Curves)  # learning rate per step, validation loss
    training: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def __deepcopy__(self, memo):  # gr.State may copy its initial value; a new session is empty
        return LoraSession()


def dataset_texts(source: str, pasted: str | None = None, upload: str | None = None) -> list[str]:
    """The examples for a run: the bundled quotes, pasted text (.txt format) or an uploaded file."""
    if source == "quotes":
        return load_quotes()
    if source == "paste":
        return parse_dataset(pasted or "", "txt")
    if source == "upload":
        if not upload:
            raise UserInputError("no file uploaded: upload a .txt or .jsonl file (up to 2 MB).")
        return read_dataset_file(upload)
    raise UserInputError(f"dataset = {source!r} is not valid: choose 'quotes', 'paste' or 'upload'.")


def train(engine, session: LoraSession, texts: list, settings: LoraSettings,
          progress: Progress | None = None, *, base_key: str = BASE_KEY,
          encode: Callable[[Any, list, int], list] | None = None,
          collate_fn: Callable[[list, int], dict] | None = None) -> Iterator[TrainUpdate]:
    """Train a fresh adapter for `session` on `texts`, streaming updates, for at most the gate's
    time cap. While another session trains, yields one 'busy' update and returns at once. The
    cached base model is only read. `base_key`, `encode(tokenizer, texts, max_length)` and
    `collate_fn` let another lesson (supervised fine-tuning) train its own base and format through
    the same loop, gate and cap."""
    encode = encode or encode_examples
    validate(settings)
    session.stop.clear()
    try:
        run = runner.start(runner.cap_seconds(engine), on_cpu=engine.device.kind == "cpu")
    except runner.TrainingBusy as busy:
        yield TrainUpdate(0, settings.max_steps, math.nan, [], 0.0, str(busy), done=True, busy=True)
        return
    final = None
    with run:
        try:
            session.training = True
            bundle = engine.load(base_key, progress=progress)
            texts, held_out = split_validation(texts, settings.val_share, settings.seed)
            examples = encode(bundle.tokenizer, texts, settings.max_length)
            curves = Curves(held_out=encode(bundle.tokenizer, held_out, settings.max_length) if held_out else [])
            spec = engine.registry.get(base_key)
            check_trainable(bundle.model, spec)
            arch.check_fits(bundle.model.config, settings.max_length, spec.title, "max length",
                            low=knob_info(type(settings), "max_length").minimum, fix="Lower max length.")
            session.model = session_model(bundle.model, settings, spec.hub_id)
            session.tokenizer, session.settings, session.base_title = bundle.tokenizer, settings, spec.title
            session.losses, session.steps_done, session.examples, session.source = [], 0, len(examples), "trained"
            session.held_out, session.curves = held_out, curves
            run.fit_threads()
            deadline = run.deadline(settings.max_steps, settings.time_budget, batch=settings.batch_size)
            for update in train_steps(session.model, examples, settings, pad_id_of(bundle.tokenizer), session.stop,
                                      collate_fn=collate_fn, deadline=deadline, curves=curves):
                session.losses, session.steps_done = list(update.losses), update.step
                run.progress(update.step, update.max_steps)
                if update.done:
                    final = update
                    break
                if update.step % 5 == 1:  # the load changes while a run goes on
                    run.fit_threads()
                yield update
            if final is not None and final.refused:  # the timed steps are not a run: nothing is kept
                session.model, session.losses, session.steps_done, session.curves = None, [], 0, Curves()
        finally:
            session.training = False
    if final is not None:
        if session.model is not None and final.step:  # the last validation loss, outside the gate
            with runner.threads_for_load(engine.device.kind == "cpu"):
                session.curves.evaluate(session.model, final.step, pad_id_of(session.tokenizer), collate_fn)
        yield final  # the gate is free: whatever the caller does next does not hold it


# ---- base vs adapted -------------------------------------------------------------------------
@no_grad
def generate_pair(peft_model, tokenizer, prompt: str, seed: int, max_new_tokens: int = 48,
                  temperature: float = 0.8, top_p: float = 0.95, name: str = "the model") -> dict:
    """The same prompt and seed through the base (adapter disabled) and the adapted model (`name`: the
    base model's title, for a refusal)."""
    prompt = check_text("prompt", prompt, max_chars=500)
    seed = check_range("seed", seed, 0, 2**32 - 1, integer=True)
    max_new_tokens = check_range("max new tokens", max_new_tokens, 1, 200, integer=True)
    temperature = check_range("temperature", temperature, 0.0, 2.0)
    device = next(peft_model.parameters()).device
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
    n_prompt = enc["input_ids"].shape[1]
    arch.check_fits(peft_model.config, n_prompt + max_new_tokens, name, "The prompt with its new tokens",
                    fix="Lower max new tokens or shorten the prompt.")
    kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=pad_id_of(tokenizer),
                  eos_token_id=tokenizer.eos_token_id)
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
    else:
        kwargs.update(do_sample=False)
    peft_model.eval()
    _check_outputs_finite(peft_model, enc["input_ids"], "this adapter")  # e.g. a diverged training
    result = {}
    for name in ("base", "adapted"):
        torch.manual_seed(seed)
        if name == "base":
            with peft_model.disable_adapter():
                out = peft_model.generate(**enc, **kwargs)  # (1, prompt + new)
        else:
            out = peft_model.generate(**enc, **kwargs)
        new = out[0, n_prompt:].tolist()
        stopped = bool(new) and new[-1] == tokenizer.eos_token_id
        text = tokenizer.decode(new, skip_special_tokens=True)
        result[name] = dict(text=prompt + text, new_tokens=len(new), stopped_at_eos=stopped)
    return result


# ---- adapter files -------------------------------------------------------------------------------
def export_adapter(peft_model, folder: str | Path) -> Path:
    """Save the adapter (safetensors + adapter_config.json) and zip the two files."""
    folder = Path(folder)
    # save_embedding_layers=False: no embeddings are adapted, so peft need not look up the base config
    peft_model.save_pretrained(folder / "adapter", safe_serialization=True, save_embedding_layers=False)
    out = folder / "lora-adapter.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in (ADAPTER_FILE, CONFIG_FILE):
            zf.write(folder / "adapter" / name, arcname=name)
    return out


def _read_upload(path: Path) -> tuple[bytes, dict | None]:
    """(safetensors bytes, config dict or None) from a .safetensors or a .zip of the two files."""
    size = path.stat().st_size
    if size > MAX_ADAPTER_BYTES:
        raise UserInputError(f"the adapter file is {size:,} bytes: the limit is {MAX_ADAPTER_BYTES:,} bytes.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return path.read_bytes(), None
    if suffix != ".zip":
        raise UserInputError(f"file type {short_repr(suffix) if suffix else '(none)'} is not accepted: upload "
                             f"{ADAPTER_FILE} or a .zip holding {ADAPTER_FILE} and {CONFIG_FILE}.")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            if ADAPTER_FILE not in infos:
                raise UserInputError(f"the zip holds {short_repr(sorted(infos)[:5], 200)}: it must hold "
                                     f"{ADAPTER_FILE} (and {CONFIG_FILE}).")
            for name, limit in ((ADAPTER_FILE, MAX_ADAPTER_BYTES), (CONFIG_FILE, MAX_CONFIG_BYTES)):
                if name in infos and infos[name].file_size > limit:
                    raise UserInputError(f"{name} in the zip is {infos[name].file_size:,} bytes unpacked: "
                                         f"the limit is {limit:,}.")
            data = zf.read(ADAPTER_FILE)
            config = None
            if CONFIG_FILE in infos:
                raw = zf.read(CONFIG_FILE)[: MAX_CONFIG_BYTES + 1]  # a lying header cannot make it longer
                if len(raw) > MAX_CONFIG_BYTES:
                    raise UserInputError(f"{CONFIG_FILE} in the zip is over {MAX_CONFIG_BYTES:,} bytes: "
                                         f"the limit is {MAX_CONFIG_BYTES:,}.")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise UserInputError(f"{CONFIG_FILE} in the zip is not UTF-8 text.") from None
                config = parse_json(text, f"{CONFIG_FILE} in the zip")
                if not isinstance(config, dict):
                    raise UserInputError(f"{CONFIG_FILE} must hold a JSON object, not a {type(config).__name__}.")
    except zipfile.BadZipFile:
        raise UserInputError("the file is not a valid zip archive.") from None
    return data, config


def _settings_from(tensors: dict, config: dict | None) -> LoraSettings:
    """Rank and targets from the tensors (checked against the config when there is one)."""
    targets, ranks = set(), set()
    for key, t in tensors.items():
        parts = key.split(".")
        if len(parts) < 3 or parts[-2] not in ("lora_A", "lora_B") or parts[-1] != "weight":
            raise UserInputError(f"unexpected tensor {short_repr(key)}: a LoRA adapter holds only "
                                 "'...<layer>.lora_A.weight' and '...<layer>.lora_B.weight' tensors.")
        if t.dim() != 2:
            raise UserInputError(f"tensor {short_repr(key)} has {t.dim()} dimensions: LoRA matrices have 2.")
        targets.add(parts[-3])
        ranks.add(t.shape[0] if parts[-2] == "lora_A" else t.shape[1])
    if len(ranks) != 1:
        raise UserInputError(f"the adapter mixes ranks {short_repr(sorted(ranks))}: one rank r (1 to 64) is supported.")
    r = ranks.pop()
    alpha = 2 * r
    if config is not None:
        if config.get("r") is not None and config.get("r") != r:
            raise UserInputError(f"{CONFIG_FILE} says r = {short_repr(config.get('r'))} but the tensors have rank {r}.")
        alpha = config.get("lora_alpha", alpha)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise UserInputError(f"{CONFIG_FILE} says lora_alpha = {short_repr(alpha)}: it must be a number (1 to 256).")
    return make(LoraSettings, r=r, alpha=alpha, target_modules=sorted(targets, key=lambda s: (
        LINEAR_NAMES.index(s) if s in LINEAR_NAMES else 99, s)))


def _check_values(tensors: dict) -> dict[str, torch.Tensor]:
    """The tensors as float32, after checking each is floating point and every value finite
    (NaN or Inf in an adapter would turn every output of the model into NaN)."""
    out = {}
    for key, t in tensors.items():
        if not t.is_floating_point():
            raise UserInputError(f"tensor {short_repr(key)} is {str(t.dtype).replace('torch.', '')}: LoRA matrices "
                                 "are floating point.")
        t = t.to(torch.float32)  # float64 values beyond float32's range become Inf here, and are caught
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise UserInputError(f"tensor {short_repr(key)} holds {bad:,} NaN or infinite values of {t.numel():,}: "
                                 "every value of an adapter must be a finite number.")
        out[key] = t
    return out


def _check_outputs_finite(model, input_ids: torch.Tensor, what: str) -> None:
    """One forward pass: an adapter with huge (finite) values still overflows the logits."""
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits  # (1, n, vocab)
    if not torch.isfinite(logits).all():
        raise UserInputError(f"{what} makes the model's outputs NaN or infinite (its values are too large): "
                             "lower the learning rate and train again, or upload another adapter.")


def load_adapter_file(base_model, path: str | Path, hub_id: str = ""):
    """(PeftModel, LoRA settings) from an uploaded .safetensors or .zip. Every key, shape and value
    is checked against what those settings create on `base_model` before a model copy is built."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load as load_safetensors

    data, config = _read_upload(Path(path))
    try:
        tensors = load_safetensors(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
        raise UserInputError(f"the adapter is not a readable safetensors file ({type(exc).__name__}).") from None
    del data
    if not tensors:
        raise UserInputError("the adapter file holds no tensors.")
    settings = _settings_from(tensors, config)
    check_targets(base_model, settings)
    expected = adapter_shapes(base_model, settings)
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if set(expected) != set(got):
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        raise UserInputError(f"the adapter does not fit this model: {len(missing)} tensors missing "
                             f"(e.g. {short_repr(missing[:1], 120)}), {len(extra)} unexpected (e.g. {short_repr(extra[:1], 120)}).")
    for k, shape in expected.items():
        if got[k] != shape:
            raise UserInputError(f"tensor {k!r} has shape {got[k]}: this model needs {shape}.")
    tensors = _check_values(tensors)
    model = session_model(base_model, settings, hub_id)  # only now: every key and shape fits
    device = next(model.parameters()).device
    set_peft_model_state_dict(model, {k: v.to(device) for k, v in tensors.items()})
    model.eval()
    _check_outputs_finite(model, torch.zeros((1, 4), dtype=torch.long, device=device), "the adapter")
    return model, settings


def import_adapter(engine, session: LoraSession, path: str | Path, progress: Progress | None = None,
                   base_key: str = BASE_KEY) -> dict:
    """Load an uploaded adapter for base model `base_key` into the session (validated by load_adapter_file)."""
    if session.training:
        raise UserInputError("a training is running in this session: press Stop first, then upload.")
    bundle = engine.load(base_key, progress=progress)
    spec = engine.registry.get(base_key)
    check_trainable(bundle.model, spec)
    model, settings = load_adapter_file(bundle.model, path, spec.hub_id)
    session.model, session.tokenizer, session.settings = model, bundle.tokenizer, settings
    session.losses, session.steps_done, session.examples, session.source = [], 0, 0, "uploaded"
    session.base_title = spec.title
    session.held_out, session.curves = [], Curves()
    return dict(r=settings.r, alpha=settings.alpha, target_modules=settings.target_modules,
                tensors=len(get_state_keys(model)))


def get_state_keys(model) -> list[str]:
    from peft import get_peft_model_state_dict

    return list(get_peft_model_state_dict(model))


__all__ = [
    "LoraSettings", "LoraSession", "load_quotes", "parse_dataset", "read_dataset_file",
    "dataset_texts", "encode_examples", "collate", "show_format", "session_model", "shared_copy",
    "param_report", "count_params", "expected_trainable", "train", "train_steps", "generate_pair",
    "export_adapter", "import_adapter", "load_adapter_file", "linear_layer_names", "adapter_shapes",
    "check_targets", "check_trainable", "check_base", "base_keys", "base_layout", "TrainUpdate",
    "split_validation", "lr_at", "validation_loss", "Curves", "SCHEDULES",
]
