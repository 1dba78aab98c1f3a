"""Training a fresh model on a token stream, through the one training runner (gate, time cap,
Deadline, threads): the train and validation loss against tokens seen, and samples from a fixed
prompt every N steps. The session's state (model, curves, samples) lives in a PretrainSession
that the tab keeps per browser session: nothing here is shared between users."""
from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field
from typing import Iterator

from ..core.errors import UserInputError, check_text
from ..core.lazy import F, from_transformers, no_grad, torch
from ..training import lora, runner
from . import data, model as model_mod, vocab as vocab_mod
from .model import PretrainSettings

VAL_WINDOWS = 32  # windows of the validation text scored at each evaluation
SAMPLE_TOKENS = {"char": 120, "bpe": 48, "gpt2": 40}  # new tokens per sample (about the same text length)
TEMPERATURE = 0.8
MAX_PROMPT_CHARS = 200
CLIP = 1.0
HEAD_CHARS = 100_000


@dataclass
class Prepared:
    """A corpus cut into training and validation ids by one tokenizer."""

    vocab: vocab_mod.Vocab
    train_ids: object  # (n_train,) long tensor
    val_ids: object  # (n_val,) long tensor
    corpus: str  # a name for the corpus
    train_chars: int
    val_chars: int
    head: str = ""  # the first HEAD_CHARS characters of the training text (the tokenizer comparison)


@dataclass
class Curves:
    train: list = field(default_factory=list)  # (tokens seen, loss of that step's batch)
    val: list = field(default_factory=list)  # (tokens seen, validation loss)
    lrs: list = field(default_factory=list)


@dataclass
class PretrainSession:
    """One browser session's run: its model (kept when the run stops), curves and samples."""

    settings: PretrainSettings
    prepared: Prepared
    model: object = None
    curves: Curves = field(default_factory=Curves)
    samples: list = field(default_factory=list)  # (step, tokens seen, text)
    prompt: str = ""
    steps_done: int = 0

    @property
    def tokens_seen(self) -> int:
        return self.steps_done * self.settings.tokens_per_step

    @property
    def first_loss(self) -> float:
        return self.curves.train[0][1] if self.curves.train else math.nan


def prepare(text: str | None, s: PretrainSettings, name: str = "your text") -> Prepared:
    """Tokenize `text` (None: the bundled corpus, tokenized once per tokenizer and cached) for settings `s`."""
    if text is None:
        return _bundled(s.tokenizer, s.bpe_vocab if s.tokenizer == "bpe" else 0, s.val_share)
    return _prepare(data.check_corpus(text), s.tokenizer, s.bpe_vocab, s.val_share, name)


@functools.lru_cache(maxsize=3)
def _bundled(kind: str, bpe_size: int, val_share: float) -> Prepared:
    return _prepare(data.bundled(), kind, bpe_size or 512, val_share, data.CORPUS_NAME)


def _prepare(text: str, kind: str, bpe_size: int, val_share: float, name: str) -> Prepared:
    train_text, val_text = data.split(text, val_share)
    v = vocab_mod.build(kind, train_text, bpe_size)  # trained on the training text only
    train_ids, val_ids = v.encode_tensor(train_text), v.encode_tensor(val_text)
    return Prepared(v, train_ids, val_ids, name, len(train_text), len(val_text), train_text[:HEAD_CHARS])


def check_fits(p: Prepared, s: PretrainSettings) -> None:
    """The context must fit the validation text and the training text."""
    need = s.context + 2
    if len(p.val_ids) < need or len(p.train_ids) < need:
        raise UserInputError(f"context length = {s.context} needs at least {need} tokens in the validation text, "
                             f"which has {len(p.val_ids):,}: raise the validation share or shorten the context.")


def batch(ids, batch_size: int, context: int, g) -> tuple:
    """`batch_size` random windows: inputs ids[i:i+T] and labels ids[i+1:i+T+1] (the same ids shifted by one)."""
    starts = torch.randint(0, len(ids) - context - 1, (batch_size,), generator=g)
    pos = starts[:, None] + torch.arange(context)  # (batch, context)
    return ids[pos], ids[pos + 1]


def loss_of(model, x, y):
    """Mean cross-entropy of the next token at every position."""
    logits = model(input_ids=x).logits  # (batch, context, vocab)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@no_grad
def validation_loss(model, val_ids, context: int, windows: int = VAL_WINDOWS) -> float:
    """Mean loss on up to `windows` fixed windows spread over the validation ids."""
    was = model.training
    model.eval()
    n = min(windows, max(1, (len(val_ids) - 1) // context))
    starts = torch.linspace(0, len(val_ids) - context - 1, n).long()
    pos = starts[:, None] + torch.arange(context)  # (windows, context)
    loss = loss_of(model, val_ids[pos], val_ids[pos + 1]).item()
    model.train(was)
    return loss


@no_grad
def sample(model, v: vocab_mod.Vocab, prompt: str, context: int, n_new: int, seed: int) -> str:
    """The prompt continued by `n_new` sampled tokens (temperature 0.8, a fixed seed: the same draws
    each time, so two samples differ only by what the model learned)."""
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    ids = v.encode(prompt) or [0]
    for _ in range(n_new):
        x = torch.tensor([ids[-context:]])  # (1, <= context)
        logits = model(input_ids=x).logits[0, -1]  # (vocab,)
        if v.kind == "char":
            logits[0] = -math.inf  # <unk> never occurs in the training text: a random model must not print it
        probs = torch.softmax(logits / TEMPERATURE, dim=-1)
        ids.append(int(torch.multinomial(probs, 1, generator=g)))
    model.train(was)
    return v.decode(ids)


def check_prompt(prompt) -> str:
    return check_text("prompt", prompt, max_chars=MAX_PROMPT_CHARS)


def new_session(prepared: Prepared, s: PretrainSettings, prompt: str) -> PretrainSession:
    """A session with a fresh (random) model for `s` on `prepared`."""
    check_fits(prepared, s)
    return PretrainSession(s, prepared, model_mod.build(s, prepared.vocab.size), prompt=check_prompt(prompt))


def _record(sess: PretrainSession, step: int, last: bool) -> None:
    """The validation loss and the sample due after step `step` (0: before training)."""
    s, m, p = sess.settings, sess.model, sess.prepared
    tokens = step * s.tokens_per_step
    if step == 0 or step % s.eval_every == 0 or last:
        sess.curves.val.append((tokens, validation_loss(m, p.val_ids, s.context)))
    if step == 0 or step % s.sample_every == 0 or last:
        n_new = SAMPLE_TOKENS[p.vocab.kind]
        sess.samples.append((step, tokens, sample(m, p.vocab, sess.prompt, s.context, n_new, s.seed)))


def train(sess: PretrainSession, cap_seconds: float, stop: threading.Event | None = None, *,
          on_cpu: bool = True) -> Iterator[runner.TrainUpdate]:
    """Train the session's model for its settings' steps (fitted to the time budget). Yields a
    TrainUpdate after each step; the last one has done=True (Stop and the cap keep the model).
    Raises TrainingBusy when another training holds the gate."""
    s, p = sess.settings, sess.prepared
    g = torch.Generator().manual_seed(s.seed)
    run = runner.start(cap_seconds, on_cpu=on_cpu)
    with run:
        run.fit_threads()
        model = sess.model
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=s.learning_rate, betas=(0.9, 0.95), weight_decay=0.1)
        if not sess.curves.val:
            _record(sess, 0, False)
        losses: list[float] = []
        deadline = run.deadline(s.steps, s.time_budget)
        final = None
        for step in range(1, s.steps + 1):
            final = deadline.stop_update(step, losses, stop)
            if final is not None:
                break
            lr = lora.lr_at(step, deadline.steps or s.steps, s.learning_rate, "cosine", s.warmup_steps)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = batch(p.train_ids, s.batch_size, s.context, g)
            loss = loss_of(model, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
            losses.append(loss.item())
            sess.steps_done = step
            sess.curves.train.append((sess.tokens_seen, losses[-1]))
            sess.curves.lrs.append((sess.tokens_seen, lr))
            update = deadline.step_update(step, losses)
            run.progress(step, update.max_steps)
            _record(sess, step, update.done)
            if update.done:
                final = update
                break
            yield update
        if final is not None and final.stopped and sess.steps_done and \
                (not sess.curves.val or sess.curves.val[-1][0] != sess.tokens_seen):
            _record(sess, sess.steps_done, True)  # the kept model's last loss and sample
    model.eval()
    if final is not None:
        yield final


@dataclass
class Lesson:
    """What one browser session holds in the Pre-training tab (gr.State): its last run, its sweep,
    and the Stop event both listen to. Never shared: a new session starts empty."""

    run: PretrainSession | None = None
    sweep: object = None  # scaling.SweepResult
    training: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def __deepcopy__(self, memo):  # gr.State may copy its initial value; a new session is empty
        return Lesson()

    def begin(self) -> None:
        if self.training:
            raise UserInputError("this session is already training: wait for it or press Stop.")
        self.stop.clear()
        self.training = True


def session_model(sess: PretrainSession):
    """The session's trained model as the engine's TextModel (tokenizer in transformers' form), for the
    other lessons to open through Engine.load(SESSION_MODEL_KEY); and its weight bytes. The model is
    the session's own object: a new run builds a new one, so this one is never trained again."""
    PreTrainedTokenizerFast = from_transformers("PreTrainedTokenizerFast")

    from ..core.models import TextModel
    from ..core.registry import ModelSpec, Source
    from ..core.sessions import SESSION_MODEL_KEY, SESSION_MODEL_TITLE

    s, model = sess.settings, sess.model
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=sess.prepared.vocab.tokenizer, model_max_length=s.context)
    spec = ModelSpec(key=SESSION_MODEL_KEY, task="causal-lm", title=SESSION_MODEL_TITLE, loader="",
                     notes=f"{s.arch}, {s.layers} x {s.width}, {sess.prepared.vocab.label}, "
                           f"{sess.steps_done} steps on {sess.prepared.corpus}")
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    param = next(model.parameters())
    return TextModel(model, tokenizer, Source(spec, "session", "<session memory>"), param.device, param.dtype,
                     extra={"pretrained": dict(steps=sess.steps_done, tokens=sess.tokens_seen)}), nbytes
