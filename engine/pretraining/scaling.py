"""A scaling-law sweep: models of several sizes trained on the same token budget, the validation
loss read at checkpoints along each run (a few budgets for every size), a power law
L = a·N^(-alpha) + c fitted to the final losses, and the compute-optimal size for a budget read
from the runs themselves. The sweep holds the training gate once and is capped in time as a whole."""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Iterator

from ..core.errors import UserInputError, check_range
from ..core.lazy import torch
from ..core.settings import knob, validate
from ..training import runner
from . import model as model_mod
from .model import PretrainSettings
from .train import Prepared, batch, check_fits, loss_of, validation_loss

# (layers, width, heads): about 16k to 2.4M non-embedding parameters (Llama-style, MLP 4 x width)
SIZES = ((1, 32, 2), (2, 48, 2), (2, 96, 4), (3, 128, 4), (4, 192, 6))
CHECKPOINTS = (0.125, 0.25, 0.5, 1.0)  # shares of the token budget where the validation loss is read
SWEEP_MINUTES = 6.0
KAPLAN_ALPHA_N = 0.076  # Kaplan et al. 2020, L(N) ~ N^-0.076 (non-embedding parameters, data not limiting)
CHINCHILLA_TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022: about 20 training tokens per parameter at the optimum


@dataclass
class SweepSettings:
    token_budget: int = knob(200_000, 20_000, 5_000_000, "Training tokens for every model size", step=10_000,
                             label="tokens per model")
    context: int = knob(64, 16, 128, "Tokens per window", step=8, label="context length")
    batch_size: int = knob(16, 4, 64, "Windows per step", step=1, label="batch size")
    learning_rate: float = knob(0.002, 0.0001, 0.01, "Peak rate (warm-up, then constant: a checkpoint is then "
                                "close to where a shorter run would end)", step=0.0001, label="learning rate")
    minutes: float = knob(SWEEP_MINUTES, 0.1, SWEEP_MINUTES, "Wall time for the whole sweep (at most this "
                          "server's training cap)", step=0.5, label="time cap (min)")
    seed: int = knob(0, 0, 2**31 - 1, "Weights and batches", step=1)

    def __post_init__(self):
        validate(self)


@dataclass
class SweepResult:
    rows: list = field(default_factory=list)  # one dict per (size, checkpoint)
    capped: bool = False
    seconds: float = 0.0
    message: str = ""

    def finals(self) -> list[dict]:
        """The last checkpoint of each size that reached its whole token budget."""
        return [r for r in self.rows if r["share"] == 1.0]


def size_settings(sw: SweepSettings, layers: int, width: int, heads: int, vocab: str = "char") -> PretrainSettings:
    return PretrainSettings(tokenizer=vocab, layers=layers, width=width, heads=heads, context=sw.context,
                            batch_size=sw.batch_size, learning_rate=sw.learning_rate, seed=sw.seed,
                            token_budget=sw.token_budget, warmup_steps=10)


def _one_size(p: Prepared, s: PretrainSettings, deadline, stop, out: list, g) -> bool:
    """Train one size; append a row at each checkpoint. False when the cap or Stop ended it."""
    model = model_mod.build(s, p.vocab.size)
    model.train()
    n = model_mod.size(s, p.vocab.size)["non_embedding"]
    opt = torch.optim.AdamW(model.parameters(), lr=s.learning_rate, betas=(0.9, 0.95), weight_decay=0.1)
    steps = s.steps
    marks = {max(1, round(c * steps)): c for c in CHECKPOINTS}
    t0 = deadline.elapsed()
    for step in range(1, steps + 1):
        if (stop is not None and stop.is_set()) or deadline.reached():
            return False
        for group in opt.param_groups:
            group["lr"] = s.learning_rate * min(1.0, step / (s.warmup_steps + 1))
        x, y = batch(p.train_ids, s.batch_size, s.context, g)
        loss = loss_of(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step in marks:
            tokens = step * s.tokens_per_step
            out.append(dict(layers=s.layers, width=s.width, heads=s.heads, params=n, tokens=tokens,
                            compute=6.0 * n * tokens, val_loss=validation_loss(model, p.val_ids, s.context),
                            share=marks[step], seconds=deadline.elapsed() - t0))
    return True


def sweep(p: Prepared, sw: SweepSettings, cap_seconds: float, stop: threading.Event | None = None, *,
          sizes=SIZES, on_cpu: bool = True) -> Iterator[tuple[int, int, SweepResult]]:
    """Train each size in turn on `p`; yields (sizes done, sizes, result so far) after each one. The
    whole sweep holds the gate once and ends at min(sw.minutes, the server's cap): the sizes done
    are kept, a size cut short keeps the checkpoints it reached."""
    res = SweepResult()
    run = runner.start(cap_seconds, on_cpu=on_cpu)
    with run:
        run.fit_threads()
        deadline = run.deadline(None, sw.minutes)
        g = torch.Generator().manual_seed(sw.seed)
        for i, (layers, width, heads) in enumerate(sizes):
            s = size_settings(sw, layers, width, heads, p.vocab.kind)
            check_fits(p, s)
            run.progress(i + 1, len(sizes))
            done = _one_size(p, s, deadline, stop, res.rows, g)
            res.seconds = deadline.elapsed()
            if not done:
                res.capped = deadline.reached()
                res.message = (f"{deadline.message}: {i} of {len(sizes)} sizes finished" if res.capped
                               else f"stopped: {i} of {len(sizes)} sizes finished")
                break
            yield i + 1, len(sizes), res
    yield len(res.finals()), len(sizes), res


def power_law(n, a, alpha, c):
    return a * n ** (-alpha) + c


def fit_power_law(params: list[float], losses: list[float]) -> dict:
    """L = a·N^(-alpha) + c fitted with scipy's curve_fit (alpha in [0, 3], c in [0, min loss])."""
    from scipy.optimize import curve_fit
    import numpy as np

    if len(params) < 4:
        raise UserInputError(f"a power law needs at least 4 model sizes that finished, got {len(params)}: "
                             "give the sweep more time or a smaller token budget.")
    n, loss = np.asarray(params, dtype=float), np.asarray(losses, dtype=float)
    low = float(loss.min())
    p0 = (max(loss.max() - low, 1e-3) * n.min() ** 0.3, 0.3, 0.5 * low)
    (a, alpha, c), _ = curve_fit(power_law, n, loss, p0=p0, bounds=([0, 0, 0], [np.inf, 3.0, low]), maxfev=20000)
    pred = power_law(n, a, alpha, c)
    ss = float(((loss - loss.mean()) ** 2).sum())
    r2 = 1.0 - float(((loss - pred) ** 2).sum()) / ss if ss > 0 else math.nan
    return dict(a=float(a), alpha=float(alpha), c=float(c), r2=r2)


def _loss_at(pts: list[dict], d: float) -> float | None:
    """A size's validation loss after `d` tokens, read between its checkpoints (linear in log D)."""
    for lo, hi in zip(pts, pts[1:]):
        if lo["tokens"] <= d <= hi["tokens"]:
            t = math.log(d / lo["tokens"]) / math.log(hi["tokens"] / lo["tokens"])
            return lo["val_loss"] + t * (hi["val_loss"] - lo["val_loss"])
    return None


def compute_optimal(rows: list[dict], budget: float) -> dict | None:
    """The size with the lowest validation loss at `budget` FLOPs (C = 6·N·D), each size's loss at
    D = C / (6N) read between its checkpoints (linear in log D); None when no size's runs reach it.
    `compared` lists every size that reaches it (one alone is no comparison)."""
    budget = check_range("compute budget", budget, 1e3, 1e20)
    by_size: dict = {}
    for r in rows:
        by_size.setdefault(r["params"], []).append(r)
    compared = []
    for n, pts in sorted(by_size.items()):
        d = budget / (6.0 * n)
        loss = _loss_at(sorted(pts, key=lambda r: r["tokens"]), d)
        if loss is not None:
            compared.append(dict(params=n, tokens=d, val_loss=loss, tokens_per_param=d / n))
    if not compared:
        return None
    return {**min(compared, key=lambda c: c["val_loss"]), "compared": compared}


def shared_budgets(rows: list[dict]) -> tuple[float, float] | None:
    """The widest compute range that two neighbouring sizes' runs both reach: the budgets where the
    compute-optimal size is a comparison (None when no two sizes overlap)."""
    spans = {}
    for r in rows:
        lo, hi = spans.get(r["params"], (math.inf, 0.0))
        spans[r["params"]] = (min(lo, r["compute"]), max(hi, r["compute"]))
    ordered = [spans[n] for n in sorted(spans)]
    best = None
    for (lo1, hi1), (lo2, hi2) in zip(ordered, ordered[1:]):
        lo, hi = max(lo1, lo2), min(hi1, hi2)
        if lo < hi and (best is None or hi / lo > best[1] / best[0]):
            best = (lo, hi)
    return best
