"""Preference tuning on the CPU through trl: a reward model trained with the Bradley–Terry loss
(trl's RewardTrainer) and DPO with LoRA (trl's DPOTrainer), on comparisons (prompt, chosen,
rejected).

    reward model  r(x, y) = a scalar head on the last token;  loss = −log σ(r(x, y_c) − r(x, y_r))
    DPO           loss = −log σ(β·[(log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))])

The reference π_ref of DPO is the policy itself with its LoRA adapter disabled: trl's DPOTrainer
does that when it builds the peft model and gets no ref_model, so there is no second model.

A pair's prompt is the user's turn and its responses are the assistant's: both trainers get them
as conversations and render them through the instruct model's chat template, as the model is
served (no train/serve skew); the scoring below encodes them the same way (chat_ids).

Isolation and adapter export are the LoRA lesson's (engine/training/lora.py): each session trains
LoRA matrices over `lora.shared_copy` of the cached model (same storage, never written). The
training gate (one training at a time in the process), the wall-time cap and the thread count
are the runner's (engine/training/runner.py).
"""
from __future__ import annotations

import math
import queue
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..core import arch
from ..core.chat import chat_ids, control_strings_in
from ..core.models import Progress
from ..core.errors import UserInputError, check_range, check_text, parse_json, read_text_upload
from ..core.lazy import from_transformers, no_grad, torch
from ..core.registry import ASSETS
from ..core.scratch import new_work_dir, remove_work_dir
from ..core.settings import knob, knob_info, make, validate
from ..core.threads import TRAINING_NICE, niced
from . import lora
from . import runner
from . import sft

PAIRS = ASSETS / "preference" / "pairs.jsonl"  # length says nothing about which side is chosen
SHORT_PAIRS = ASSETS / "preference" / "pairs_short.jsonl"  # the reward-hacking lesson: chosen = shorter, always
MAX_PAIRS_BYTES = 1_000_000  # an uploaded .jsonl or an edited table
MAX_FIELD_CHARS = 400  # one prompt, chosen or rejected text
MIN_PAIRS, MAX_PAIRS = 4, 2_000
MAX_HELD_OUT = 64  # pairs scored before/after (each costs four forward passes)
MAX_SCORE_TEXTS = 16  # responses scored at once by the reward model
FIELDS = ("prompt", "chosen", "rejected")
# transformers 5 renamed gradient checkpointing; trl 1.16 still asks for the old name on every step
warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)


@dataclass
class DPOSettings:
    """The knobs of one DPO run. Ranges are written once here; the UI and the API use them."""

    beta: float = knob(0.1, 0.01, 1.0, "β: how far the policy may move from the reference (small β = far)",
                       step=0.01, label="β (beta)")
    learning_rate: float = knob(0.001, 0.00001, 0.01, "AdamW step size for the LoRA matrices", step=0.00001,
                                label="learning rate")
    max_steps: int = knob(20, 1, 500, "Optimizer steps (one batch of pairs each)", step=1, label="max steps")
    batch_size: int = knob(4, 1, 32, "Pairs per step (each pair is two sequences)", step=1, label="batch size")
    r: int = knob(8, 1, 64, "LoRA rank on q_proj and v_proj", step=1, label="LoRA r")
    max_length: int = knob(96, 16, 256, "Tokens kept per prompt + response, chat template included", step=1,
                           label="max length")
    seed: int = knob(42, 0, 2**31 - 1, "Shuffling and LoRA initialisation", step=1)
    time_budget: float = runner.budget_knob()


@dataclass
class RewardSettings:
    """The knobs of one reward-model run."""

    learning_rate: float = knob(0.001, 0.00001, 0.01, "AdamW step size (LoRA matrices and the scalar head)",
                                step=0.00001, label="learning rate")
    max_steps: int = knob(30, 1, 500, "Optimizer steps (one batch of pairs each)", step=1, label="max steps")
    batch_size: int = knob(4, 1, 32, "Pairs per step", step=1, label="batch size")
    r: int = knob(8, 1, 64, "LoRA rank on q_proj and v_proj of the backbone", step=1, label="LoRA r")
    max_length: int = knob(96, 16, 256, "Longest prompt + response, chat template included (longer pairs are "
                           "left out of training)", step=1, label="max length")
    seed: int = knob(42, 0, 2**31 - 1, "Shuffling, LoRA and head initialisation", step=1)
    time_budget: float = runner.budget_knob()


def _lora_of(s, base_model) -> lora.LoraSettings:
    """The LoRA lesson's settings for the adapter of a preference run (no dropout: trl turns it off), on
    the base model's query and value layers (its family's own: GPT-2's c_attn, Phi-3's qkv_proj)."""
    return lora.targets_for(base_model, make(lora.LoraSettings, r=s.r, alpha=2 * s.r, dropout=0.0,
                                             target_modules=lora.DEFAULT_TARGETS, learning_rate=s.learning_rate,
                                             seed=s.seed))


# ---- comparison data ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str
    kind: str = ""
    held_out: bool = False


def _field(n: int, obj: dict, name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise UserInputError(f'pair {n} has no "{name}" text: each pair needs "prompt", "chosen" and "rejected" '
                             "strings.")
    value = check_text(f"pair {n} {name}", value, max_chars=MAX_FIELD_CHARS, allow_empty=name == "prompt")
    if name != "prompt" and not value.strip():
        raise UserInputError(f"pair {n} {name} is empty: type a response (1 to {MAX_FIELD_CHARS} characters).")
    return value


def _as_pairs(objs: list[dict], marked: bool) -> list[Pair]:
    out = []
    for n, obj in enumerate(objs, 1):
        p = Pair(*(_field(n, obj, f) for f in FIELDS), kind=str(obj.get("kind", ""))[:20],
                 held_out=marked and obj.get("split") == "test")
        if p.chosen == p.rejected:
            raise UserInputError(f"pair {n} has the same chosen and rejected text: a comparison needs two "
                                 "different responses.")
        out.append(p)
    if not MIN_PAIRS <= len(out) <= MAX_PAIRS:
        raise UserInputError(f"the data has {len(out):,} pairs: give {MIN_PAIRS} to {MAX_PAIRS:,}.")
    if not marked:  # user data: every tenth pair is held out, at least two
        step = min(10, max(2, len(out) // 2))
        out = [Pair(p.prompt, p.chosen, p.rejected, p.kind, i % step == step - 1) for i, p in enumerate(out)]
    if not any(p.held_out for p in out) or all(p.held_out for p in out):
        raise UserInputError("the data needs both training pairs and held-out pairs (\"split\": \"test\").")
    return out


def parse_pairs(text: str) -> list[Pair]:
    """.jsonl: one {"prompt", "chosen", "rejected"} object a line (an optional "split": "test" in
    every line marks the held-out pairs; without it every tenth pair is held out)."""
    text = check_text("comparison data", text, max_chars=MAX_PAIRS_BYTES)
    objs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        obj = parse_json(line, f"line {n}")
        if not isinstance(obj, dict):
            raise UserInputError(f'line {n} is a {type(obj).__name__}, not an object with "prompt", "chosen", '
                                 '"rejected".')
        objs.append(obj)
        if len(objs) > MAX_PAIRS:
            raise UserInputError(f"the data has more than {MAX_PAIRS:,} pairs: the limit is {MAX_PAIRS:,}.")
    marked = bool(objs) and all("split" in o for o in objs)
    return _as_pairs(objs, marked)


def load_pairs(path: Path = PAIRS) -> list[Pair]:
    """Bundled comparisons (scripts/make_preference_data.py): PAIRS, or SHORT_PAIRS for the lesson."""
    if not path.exists():
        raise UserInputError(f"{path} is missing: rebuild it with `python scripts/make_preference_data.py`.")
    return parse_pairs(path.read_text(encoding="utf-8"))


def read_pairs_file(path: str | Path) -> list[Pair]:
    """An uploaded .jsonl (the path is Gradio's temporary copy, never user text)."""
    return parse_pairs(read_text_upload(path, ("jsonl",), MAX_PAIRS_BYTES))


def pairs_from_rows(rows) -> list[Pair]:
    """The tab's editable table: rows of [prompt, chosen, rejected, held out] (the last one optional)."""
    if rows is None:
        rows = []
    if hasattr(rows, "values") and hasattr(rows, "columns"):  # a pandas DataFrame
        rows = rows.values.tolist()
    if not isinstance(rows, (list, tuple)):
        raise UserInputError(f"the table must be rows of prompt, chosen, rejected, not {type(rows).__name__}.")
    if len(rows) > MAX_PAIRS:
        raise UserInputError(f"the table has {len(rows):,} rows: the limit is {MAX_PAIRS:,}.")
    objs = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, (list, tuple)) or len(row) < 3:
            raise UserInputError(f"table row {n} must have prompt, chosen and rejected cells.")
        cells = ["" if c is None else c for c in row[:3]]
        if all(isinstance(c, str) and not c.strip() for c in cells):
            continue  # an empty row left at the end of the table
        obj = dict(zip(FIELDS, cells))
        if len(row) > 3:
            obj["split"] = "test" if str(row[3]).strip().lower() in ("true", "yes", "1", "test") else "train"
        objs.append(obj)
    return _as_pairs(objs, marked=bool(objs) and all("split" in o for o in objs))


def pairs_to_rows(pairs: list[Pair]) -> list[list]:
    return [[p.prompt, p.chosen, p.rejected, "yes" if p.held_out else ""] for p in pairs]


def split(pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
    return [p for p in pairs if not p.held_out], [p for p in pairs if p.held_out][:MAX_HELD_OUT]


def user_turn(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt.strip()}]


def assistant_turn(response: str) -> list[dict]:
    return [{"role": "assistant", "content": response.strip()}]


def _dataset(pairs: list[Pair]):
    """The pairs as trl's conversational preference data: trl renders them through the tokenizer's
    chat template (check_pairs has refused special-token strings, which it would read as tokens)."""
    from datasets import Dataset

    return Dataset.from_list([dict(prompt=user_turn(p.prompt), chosen=assistant_turn(p.chosen),
                                   rejected=assistant_turn(p.rejected)) for p in pairs])


# ---- the runs: trl trainers in a worker thread, metrics streamed through a callback ------------------
@dataclass
class RunUpdate:
    step: int
    max_steps: int  # the steps the run will make (fitted to the time budget after the first steps)
    history: dict  # metric name -> list of values, one per step
    seconds: float
    message: str = ""
    done: bool = False
    stopped: bool = False
    capped: bool = False
    busy: bool = False
    refused: bool = False  # ended after the timed first steps: too few steps fit (nothing is kept)
    pace: runner.Pace | None = None

    def last(self, name: str) -> float:
        values = self.history.get(name) or []
        return values[-1] if values else math.nan


def _on_cpu(model) -> bool:
    return next(model.parameters()).device.type == "cpu"


def _quiet(trainer):
    """No log lines on stdout (Trainer prints each logged step when its progress bar is off)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def _config(cls, s, out_dir: str, on_cpu: bool, **extra):
    """A trl config for a short CPU run: every step logged, nothing saved, no progress bars."""
    import datasets

    datasets.disable_progress_bars()  # the few hundred pairs are mapped in well under a second
    with warnings.catch_warnings():  # transformers renames gradient_checkpointing; trl still sets it
        warnings.simplefilter("ignore", FutureWarning)
        return cls(output_dir=out_dir, max_steps=s.max_steps, per_device_train_batch_size=s.batch_size,
                   learning_rate=s.learning_rate, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                   logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, seed=s.seed,
                   data_seed=s.seed, use_cpu=on_cpu, bf16=False, fp16=False, gradient_checkpointing=False,
                   max_length=s.max_length, dataloader_num_workers=0, log_level="error", **extra)


def dpo_trainer(base_model, tokenizer, pairs: list[Pair], s: DPOSettings, out_dir: str, callbacks=()):
    """trl's DPOTrainer over a shared copy of `base_model` with a fresh LoRA adapter (trl builds
    the peft model from our LoRA config, seeded); reference = the adapter disabled."""
    from trl import DPOConfig, DPOTrainer

    lora_s = _lora_of(s, base_model)
    lora.check_targets(base_model, lora_s)
    args = _config(DPOConfig, s, out_dir, _on_cpu(base_model), beta=s.beta, loss_type=["sigmoid"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _quiet(DPOTrainer(model=lora.shared_copy(base_model), ref_model=None, args=args,
                                 train_dataset=_dataset(pairs), processing_class=tokenizer,
                                 peft_config=lora.lora_config(lora_s), callbacks=list(callbacks)))


def reward_base(base_model, pad_id: int):
    """A sequence-classification model (one output: the reward) whose backbone is a shared copy of
    the cached causal LM's (same storage), with a new scalar head."""
    AutoModelForSequenceClassification = from_transformers("AutoModelForSequenceClassification")

    twin = lora.shared_copy(base_model)
    config = twin.config.__class__.from_dict(twin.config.to_dict())
    config.num_labels, config.pad_token_id = 1, pad_id
    with torch.device("meta"):
        rm = AutoModelForSequenceClassification.from_config(config)
    setattr(rm, rm.base_model_prefix, getattr(twin, twin.base_model_prefix))  # the shared backbone
    rm.score = torch.nn.Linear(config.hidden_size, 1, bias=False)
    torch.nn.init.normal_(rm.score.weight, std=config.hidden_size ** -0.5)
    rm.score.to(next(twin.parameters()).device)
    rm.eval()
    return rm


def reward_trainer(base_model, tokenizer, pairs: list[Pair], s: RewardSettings, out_dir: str, callbacks=()):
    """trl's RewardTrainer on a reward model with LoRA on the backbone and a trainable head."""
    from peft import LoraConfig
    from trl import RewardConfig, RewardTrainer

    lora_s = _lora_of(s, base_model)
    lora.check_targets(base_model, lora_s)
    torch.manual_seed(s.seed)
    model = reward_base(base_model, lora.pad_id_of(tokenizer))
    peft_config = LoraConfig(r=lora_s.r, lora_alpha=lora_s.alpha, lora_dropout=0.0,
                             target_modules=list(lora_s.target_modules), task_type="SEQ_CLS",
                             modules_to_save=["score"])
    args = _config(RewardConfig, s, out_dir, _on_cpu(base_model), center_rewards_coefficient=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _quiet(RewardTrainer(model=model, args=args, train_dataset=_dataset(pairs),
                                    processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks)))


def _batch(trainer, pairs: list[Pair]) -> dict:
    """One padded batch of `pairs`, prepared exactly as the trainer prepares its training data."""
    ds = trainer._prepare_dataset(_dataset(pairs), trainer.processing_class, trainer.args, "batch")
    cols = [c for c in ds.column_names if c.endswith("_ids")]
    batch = trainer.data_collator([{c: row[c] for c in cols} for row in ds])
    return {k: v.to(trainer.model.device) if torch.is_tensor(v) else v for k, v in batch.items()}


@no_grad
def batch_loss(trainer, pairs: list[Pair]) -> float:
    """The trainer's own loss (trl's compute_loss) on one batch of `pairs`, in eval mode."""
    trainer.model.eval()
    return float(trainer.compute_loss(trainer.model, _batch(trainer, pairs)))


# ---- sessions --------------------------------------------------------------------------------------
@dataclass
class PreferenceSession:
    """One browser session's DPO adapter and reward model (kept in gr.State). Never shared."""

    base_key: str = ""  # the model both are trained on (one tokenizer serves both)
    policy: Any = None  # PeftModel (LoRA over a shared copy of the instruct model)
    reward: Any = None  # PeftModel for sequence classification (LoRA + scalar head)
    tokenizer: Any = None
    dpo: DPOSettings | None = None
    dpo_history: dict = field(default_factory=dict)
    dpo_steps: int = 0
    reward_history: dict = field(default_factory=dict)
    reward_steps: int = 0
    before: dict | None = None  # held-out likelihood stats with the adapter off
    after: dict | None = None
    reward_eval: dict | None = None
    training: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def __deepcopy__(self, memo):  # gr.State may copy its initial value; a new session is empty
        return PreferenceSession()

    def use_base(self, key: str) -> None:
        """Train on `key` from now on: what was trained on another model (whose tokenizer differs) is dropped."""
        if self.base_key and self.base_key != key:
            self.policy = self.reward = self.tokenizer = self.dpo = self.before = self.after = None
            self.reward_eval = None
            self.dpo_history, self.reward_history, self.dpo_steps, self.reward_steps = {}, {}, 0, 0
        self.base_key = key


DPO_METRICS = {"loss": "loss", "rewards/chosen": "chosen", "rewards/rejected": "rejected",
               "rewards/margins": "margin", "rewards/accuracies": "accuracy"}
REWARD_METRICS = {"loss": "loss", "accuracy": "accuracy", "margin": "margin"}


def check_pairs(tokenizer, pairs: list[Pair], s) -> list[Pair]:
    """Refuse, before any training, the pairs trl could not read as written: trl tokenizes the texts
    itself and would read a special-token string typed in them ('<|im_end|>') as the token."""
    for n, p in enumerate(pairs, 1):
        for name in FIELDS:
            found = control_strings_in(tokenizer, getattr(p, name))
            if found:
                raise UserInputError(f"pair {n} {name} contains {found[0]!r}, one of the model's special tokens: "
                                     "the trainer would read it as that token, not as text. Remove it or write it "
                                     "differently (e.g. with spaces: '< |im_end| >').")
    if isinstance(s, RewardSettings):
        check_reward_length(tokenizer, split(pairs)[0], s.max_length)
    return pairs


def reward_lengths(tokenizer, pairs: list[Pair]) -> list[int]:
    """Per pair, its longer side in tokens as trl's RewardTrainer counts it (the conversation in
    the chat template)."""
    return [max(len(encode_response(tokenizer, p.prompt, y)[0]) for y in (p.chosen, p.rejected)) for p in pairs]


def check_reward_length(tokenizer, train_pairs: list[Pair], max_length: int) -> None:
    """RewardTrainer drops every pair with a side longer than max_length (it does not cut them):
    refuse a max_length that leaves fewer than two training pairs, naming the shortest that works."""
    lengths = sorted(reward_lengths(tokenizer, train_pairs))
    kept = sum(n <= max_length for n in lengths)
    if kept >= 2 or len(lengths) < 2:  # fewer than 2 pairs at all: _run refuses them
        return
    top = knob_info(RewardSettings, "max_length").maximum
    need = (f"at least {lengths[1]} (keeps 2 pairs; {lengths[-1]} keeps all {len(lengths)})" if lengths[1] <= top
            else f"shorter pairs: even {top:g}, the largest max_length, keeps fewer than 2")
    raise UserInputError(f"max_length = {max_length} keeps {kept} of the {len(lengths)} training pairs (the reward "
                         f"trainer drops a pair whose prompt + response is longer, in tokens): give {need}.")


def check_fits(tokenizer, pairs: list[Pair], s) -> None:
    """Refuse a max length that no training pair fits in, chat template included (RewardTrainer
    leaves longer pairs out, DPOTrainer cuts them and drops those whose prompt fills it)."""
    need = min(reward_lengths(tokenizer, pairs))
    if need > s.max_length:
        raise UserInputError(f"max length = {s.max_length} tokens is shorter than every training pair in the chat "
                             f"template (the shortest needs {need}): set it to {need} to 256.")


def check_context(config, tokenizer, pairs: list[Pair], s, name: str) -> None:
    """Refuse, naming model `name`, a max length or a held-out pair (scored whole after training) longer
    than the model's context window: past it a learned position table has no row (GPT-2)."""
    arch.check_fits(config, s.max_length, name, "max length", low=knob_info(type(s), "max_length").minimum,
                    fix="Lower max length.")
    numbered = [(n, p) for n, p in enumerate(pairs, 1) if p.held_out][:MAX_HELD_OUT]
    for (n, _), length in zip(numbered, reward_lengths(tokenizer, [p for _, p in numbered])):
        arch.check_fits(config, length, name, f"Held-out pair {n} (its longer side in the chat template)",
                        fix="Shorten it, or train on pairs whose held-out ones fit.")


def _worker(trainer, events: queue.Queue) -> threading.Thread:
    """trainer.train() in a started daemon thread; its end (or its exception) goes to `events`."""
    def work():
        try:
            with niced(TRAINING_NICE):  # this thread trains only: after the students' clicks
                trainer.train()
            events.put(("end", None, {}))
        except BaseException as exc:  # noqa: BLE001 - handed to the generator, raised there
            events.put(("error", None, exc))

    worker = threading.Thread(target=work, name="preference-train", daemon=True)
    worker.start()
    return worker


def _steps(run, trainer_fn, engine, session: PreferenceSession, pairs: list[Pair], s, metrics: dict,
           progress: Progress | None, base_key: str) -> Iterator[tuple[RunUpdate, Any]]:
    """Inside the gate: build the trainer, train it in a worker thread and yield (update, trainer)
    after each step but the last; return the last one (ended by the fitted step count, Stop, the
    cap, or a refusal after the timed first steps)."""
    train_pairs, _ = split(pairs)
    out_dir = str(new_work_dir("pref"))
    events: queue.Queue = queue.Queue()
    worker = None
    try:
        bundle = engine.load(base_key, progress=progress)
        spec = engine.registry.get(base_key)
        lora.check_trainable(bundle.model, spec)
        check_pairs(bundle.tokenizer, pairs, s)  # numbered as the user gave them
        check_context(bundle.model.config, bundle.tokenizer, pairs, s, spec.title)
        check_fits(bundle.tokenizer, train_pairs, s)
        session.use_base(base_key)
        session.tokenizer = bundle.tokenizer
        run.fit_threads()
        deadline = run.deadline(s.max_steps, s.time_budget)
        trainer = trainer_fn(bundle.model, bundle.tokenizer, train_pairs, s, out_dir,
                             [runner.trainer_callback(events, session.stop, deadline)])
        trainer.model.peft_config["default"].base_model_name_or_path = spec.hub_id
        worker = _worker(trainer, events)
        history: dict = {v: [] for v in metrics.values()}
        step, ended, pace = 0, None, None
        while True:
            kind, at, payload = events.get()
            if kind == "error":
                raise payload
            if kind == "pace":
                pace = payload
            elif kind == "log":
                step = at
                for key, name in metrics.items():
                    history[name].append(float(payload.get(key, math.nan)))
                run.progress(step, pace.steps if pace else s.max_steps)
                if pace is None or step < pace.steps and not pace.refused:
                    yield RunUpdate(step, pace.steps if pace else s.max_steps, history, deadline.elapsed(),
                                    pace=pace), trainer
            elif kind in ("stopped", "capped", "refused"):
                ended = kind
            elif kind == "end":
                break
        trainer.model.eval()
        msg = (deadline.message if ended == "capped" else "stopped" if ended == "stopped" else
               deadline.refusal() if ended == "refused" else "")
        return RunUpdate(step, pace.steps if pace else s.max_steps, history, deadline.elapsed(), msg, done=True,
                         stopped=ended in ("stopped", "capped"), capped=ended == "capped",
                         refused=ended == "refused", pace=pace), trainer
    finally:
        session.stop.set()  # a closed generator (the browser went away) ends the worker too
        if worker is not None:
            worker.join()
        remove_work_dir(out_dir)


def _run(trainer_fn, engine, session: PreferenceSession, pairs: list[Pair], s, metrics: dict,
         progress: Progress | None, base_key: str = lora.BASE_KEY) -> Iterator[tuple[RunUpdate, Any]]:
    """Train under the runner's gate, time cap and thread count, yielding (update, trainer) after
    each step. The last update comes once the gate is free: the held-out scoring that the caller
    runs on it does not hold the machine's one training slot. The session stays `training` until
    the caller has taken that last update."""
    validate(s)
    base_key = lora.check_base(engine, base_key)
    train_pairs, _ = split(pairs)
    if len(train_pairs) < 2:
        raise UserInputError(f"only {len(train_pairs)} training pairs: give at least 2 that are not held out.")
    session.stop.clear()
    try:
        run = runner.start(runner.cap_seconds(engine), on_cpu=engine.device.kind == "cpu")
    except runner.TrainingBusy as busy:
        yield RunUpdate(0, s.max_steps, {}, 0.0, str(busy), done=True, busy=True), None
        return
    session.training = True
    try:
        with run:
            last = yield from _steps(run, trainer_fn, engine, session, pairs, s, metrics, progress, base_key)
        yield last
    finally:
        session.training = False


def train_dpo(engine, session: PreferenceSession, pairs: list[Pair], s: DPOSettings,
              progress: Progress | None = None, base_key: str = lora.BASE_KEY) -> Iterator[RunUpdate]:
    """DPO with LoRA on the instruct model (`base_key`: one of lora.base_keys(engine)); the held-out
    pairs are scored with the adapter off (before) and on (after) once training ends. The session
    keeps what was trained on Stop."""
    if session.training:
        raise UserInputError("this session is already training: wait for it or press Stop.")
    _, held = split(pairs)
    for u, trainer in _run(dpo_trainer, engine, session, pairs, s, DPO_METRICS, progress, base_key):
        if trainer is not None:
            session.policy, session.dpo, session.dpo_history, session.dpo_steps = trainer.model, s, u.history, u.step
            session.before = session.after = None
        if u.refused:  # the timed steps are not a run: nothing is kept
            session.policy, session.dpo_history, session.dpo_steps = None, {}, 0
        elif u.done and trainer is not None:  # the gate is free by now; the threads fitted again
            with runner.threads_for_load(engine.device.kind == "cpu"):
                session.before = held_out_stats(session.policy, session.tokenizer, held, adapter=False)
                session.after = held_out_stats(session.policy, session.tokenizer, held, adapter=True)
        yield u


def train_reward(engine, session: PreferenceSession, pairs: list[Pair], s: RewardSettings,
                 progress: Progress | None = None, base_key: str = lora.BASE_KEY) -> Iterator[RunUpdate]:
    """The reward model (Bradley–Terry) on causal LM `base_key`'s backbone; held-out pairwise accuracy
    once training ends."""
    if session.training:
        raise UserInputError("this session is already training: wait for it or press Stop.")
    _, held = split(pairs)
    for u, trainer in _run(reward_trainer, engine, session, pairs, s, REWARD_METRICS, progress, base_key):
        if trainer is not None:
            session.reward, session.reward_history, session.reward_steps = trainer.model, u.history, u.step
            session.reward_eval = None
        if u.refused:  # the timed steps are not a run: nothing is kept
            session.reward, session.reward_history, session.reward_steps = None, {}, 0
        elif u.done and trainer is not None:  # the gate is free by now; the threads fitted again
            with runner.threads_for_load(engine.device.kind == "cpu"):
                session.reward_eval = reward_accuracy(session.reward, session.tokenizer, held)
        yield u


# ---- measuring: likelihoods of responses, rewards ---------------------------------------------------
def encode_response(tokenizer, prompt: str, response: str) -> tuple[list[int], int]:
    """(ids of the conversation in the chat template, where the response starts), split as trl
    splits them: at the first token where the prompt alone (with the generation prompt) and the
    whole conversation tokenize differently. The template's end of turn belongs to the response."""
    # the user's text: a typed '<|im_end|>' stays plain text (chat_ids)
    p = chat_ids(tokenizer, user_turn(prompt), add_generation_prompt=True)
    full = chat_ids(tokenizer, user_turn(prompt) + assistant_turn(response), add_generation_prompt=False)
    n = 0
    while n < min(len(p), len(full)) and p[n] == full[n]:
        n += 1
    return full, n


@no_grad
def sequence_logprobs(model, tokenizer, items: list[tuple[str, str]], batch: int = 16) -> list[tuple[float, int]]:
    """For each (prompt, response): (log π(response | prompt) summed over the response tokens, the
    number of those tokens). Right-padded batches; padding is masked out and never scored."""
    device = next(model.parameters()).device
    encoded = [encode_response(tokenizer, p, y) for p, y in items]
    out = []
    for i in range(0, len(encoded), batch):
        chunk = encoded[i:i + batch]
        longest = max(len(ids) for ids, _ in chunk)
        x = torch.full((len(chunk), longest), lora.pad_id_of(tokenizer), dtype=torch.long)  # (b, n)
        mask = torch.zeros((len(chunk), longest), dtype=torch.long)  # (b, n)
        scored = torch.zeros((len(chunk), longest - 1), dtype=torch.bool)  # (b, n-1): response targets
        for j, (ids, start) in enumerate(chunk):
            x[j, :len(ids)] = torch.tensor(ids)
            mask[j, :len(ids)] = 1
            scored[j, start - 1:len(ids) - 1] = True
        x, mask, scored = x.to(device), mask.to(device), scored.to(device)
        logits = model(input_ids=x, attention_mask=mask).logits.float()  # (b, n, vocab)
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # position t predicts token t+1
        picked = logp.gather(2, x[:, 1:, None])[..., 0]  # (b, n-1)
        sums = (picked * scored).sum(dim=1)  # (b,)
        out += [(float(v), int(c)) for v, c in zip(sums, scored.sum(dim=1))]
    return out


@no_grad
def held_out_stats(policy, tokenizer, pairs: list[Pair], adapter: bool = True) -> dict:
    """For each held-out pair: log-likelihoods of chosen and rejected (total and per token), and the
    share of pairs where chosen is the likelier one, with the adapter on or off."""
    policy.eval()
    pairs = pairs[:MAX_HELD_OUT]
    items = [(p.prompt, y) for p in pairs for y in (p.chosen, p.rejected)]
    if adapter:
        scores = sequence_logprobs(policy, tokenizer, items)
    else:
        with policy.disable_adapter():
            scores = sequence_logprobs(policy, tokenizer, items)
    rows = []
    for (lc, nc), (lr, nr) in zip(scores[0::2], scores[1::2]):
        rows.append(dict(chosen=lc, rejected=lr, chosen_per_token=lc / max(nc, 1), rejected_per_token=lr / max(nr, 1)))
    n = max(len(rows), 1)
    return dict(
        rows=rows, pairs=len(rows),
        accuracy=sum(r["chosen_per_token"] > r["rejected_per_token"] for r in rows) / n,
        accuracy_total=sum(r["chosen"] > r["rejected"] for r in rows) / n,
    )


@no_grad
def rewards(model, tokenizer, prompt: str, responses: list[str], batch: int = 16) -> list[float]:
    """The reward model's scalar for each (prompt, response), each one conversation in the chat
    template as RewardTrainer saw them. Right-padded batches: the head reads the last token that is
    not padding."""
    device = next(model.parameters()).device
    pad = lora.pad_id_of(tokenizer)
    ids = [chat_ids(tokenizer, user_turn(prompt) + assistant_turn(y), add_generation_prompt=False)
           for y in responses]  # typed specials stay text
    out = []
    model.eval()
    for i in range(0, len(ids), batch):
        chunk = ids[i:i + batch]
        longest = max(len(x) for x in chunk)
        x = torch.full((len(chunk), longest), pad, dtype=torch.long)  # (b, n)
        mask = torch.zeros_like(x)
        for j, seq in enumerate(chunk):
            arch.check_fits(model.config, len(seq), "the reward model", f"Response {i + j + 1} in the chat template")
            x[j, :len(seq)], mask[j, :len(seq)] = torch.tensor(seq), 1
        out += model(input_ids=x.to(device), attention_mask=mask.to(device)).logits[:, 0].float().tolist()
    return out


def reward_accuracy(model, tokenizer, pairs: list[Pair]) -> dict:
    rows = [dict(zip(("chosen", "rejected"), rewards(model, tokenizer, p.prompt, [p.chosen, p.rejected])))
            for p in pairs[:MAX_HELD_OUT]]  # a pair's two sides in one batch
    n = max(len(rows), 1)
    return dict(rows=rows, pairs=len(rows), accuracy=sum(r["chosen"] > r["rejected"] for r in rows) / n,
                chance_band=chance_band(len(rows)))


def chance_band(n: int) -> float:
    """Half-width of the range a coin-flipping reward model lands in 95% of the time on n pairs
    (normal approximation of Binomial(n, 1/2): 1.96·√(¼/n))."""
    return 1.96 * math.sqrt(0.25 / max(n, 1))


def score_responses(session: PreferenceSession, prompt: str, responses_text: str) -> list[tuple[str, float]]:
    """Rewards of the responses a user typed (one a line) for a prompt."""
    prompt = check_text("prompt", prompt, max_chars=MAX_FIELD_CHARS, allow_empty=True)  # the text first
    text = check_text("responses", responses_text, max_chars=MAX_FIELD_CHARS * MAX_SCORE_TEXTS)
    if session is None or session.reward is None:
        raise UserInputError("no reward model in this session yet: train one first (Train reward model).")
    if session.training:
        raise UserInputError("a training is running in this session: wait for it or press Stop.")
    lines = [x for x in text.splitlines() if x.strip()]
    if len(lines) > MAX_SCORE_TEXTS:
        raise UserInputError(f"{len(lines)} responses: score at most {MAX_SCORE_TEXTS} at once.")
    for n, x in enumerate(lines, 1):
        check_text(f"response {n}", x, max_chars=MAX_FIELD_CHARS)
    return list(zip(lines, rewards(session.reward, session.tokenizer, prompt, lines)))


def compare_outputs(session: PreferenceSession, prompts: list[str], seed: int, max_new_tokens: int = 40,
                    temperature: float = 0.0) -> list[dict]:
    """Held-out prompts answered by the instruct model, in its chat template (as DPO trained it), with
    the DPO adapter off and on, same seed."""
    if session.policy is None:
        raise UserInputError("no DPO adapter in this session yet: train one first (DPO, Train).")
    if session.training:
        raise UserInputError("a training is running in this session: wait for it or press Stop.")
    if not 1 <= len(prompts) <= 8:
        raise UserInputError(f"{len(prompts)} prompts: compare 1 to 8 at once.")
    seed = check_range("seed", seed, 0, 2**32 - 1, integer=True)
    out = []
    kw = dict(templated=True, seed=seed, max_new_tokens=max_new_tokens, temperature=temperature)
    for p in prompts:
        p = check_text("prompt", p, max_chars=MAX_FIELD_CHARS).strip()  # as user_turn gives it to training
        with session.policy.disable_adapter():
            base = sft.generate(session.policy, session.tokenizer, p, name="the DPO model", **kw)
        tuned = sft.generate(session.policy, session.tokenizer, p, name="the DPO model", **kw)
        out.append(dict(prompt=p, base=base["answer"], tuned=tuned["answer"]))
    return out


def export_dpo_adapter(session: PreferenceSession, folder: str | Path) -> Path:
    """The DPO adapter as a zip that PeftModel.from_pretrained loads (the LoRA lesson's export)."""
    if session.policy is None:
        raise UserInputError("no DPO adapter in this session yet: train one first (DPO, Train).")
    if session.training:
        raise UserInputError("a training is running in this session: wait for it or press Stop.")
    return lora.export_adapter(session.policy, folder)


__all__ = [
    "DPOSettings", "RewardSettings", "Pair", "parse_pairs", "load_pairs",
    "read_pairs_file", "pairs_from_rows", "pairs_to_rows", "split", "dpo_trainer", "reward_trainer", "batch_loss",
    "PreferenceSession", "train_dpo", "check_fits", "user_turn", "assistant_turn", "SHORT_PAIRS", "train_reward",
    "held_out_stats", "rewards", "reward_accuracy", "score_responses", "check_pairs", "check_reward_length",
    "reward_lengths", "compare_outputs", "export_dpo_adapter", "encode_response",
]
