"""Pre-training rows: one training step through the engine (engine/pretraining/train.py: the runner's
gate, Deadline and thread fit, the curves) vs a plain PyTorch loop on the same transformers model and the
same batches (AdamW, clipping, cross-entropy on the shifted labels); and the default run's wall time
(evaluations and samples included) against the plain loop's time for its steps, with tokens/s.

The CPU here is shared, so the two sides are measured interleaved (a few steps of one, then of the
other, repeated) and each side's median step time is compared."""
from __future__ import annotations

import copy
import os
import statistics
import time

from bench.run import Row


def _load_avg() -> str:
    try:
        return "load avg %.1f/%.1f/%.1f" % os.getloadavg()
    except OSError:
        return "load avg n/a"


def _raw_steps(model, batches, lr) -> list[float]:
    """The loop a notebook would write."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    model.train()
    times = []
    for x, y in batches:
        t = time.perf_counter()
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t)
    return times


def _our_steps(sess) -> list[float]:
    """Step times through train(): the time between two updates (the first step, which also warms up, left out)."""
    from engine.pretraining import train

    times, last = [], None
    for u in train.train(sess, 600.0):
        t = time.perf_counter()
        if last is not None and not u.done:
            times.append(t - last)
        last = t
    return times


def step_rows(rounds: int = 5, steps: int = 8) -> list[Row]:
    import torch

    from engine.core.settings import make
    from engine.pretraining import model as pt_model, train
    from engine.training.runner import threads_for_load

    s = make(pt_model.PretrainSettings, max_steps=steps, eval_every=1000, sample_every=1000)
    p = train.prepare(None, s)
    base = pt_model.build(s, p.vocab.size)
    g = torch.Generator().manual_seed(s.seed)
    batches = [train.batch(p.train_ids, s.batch_size, s.context, g) for _ in range(steps)]
    ours, raw = [], []
    for _ in range(rounds):
        sess = train.new_session(p, s, "The ")
        sess.model.load_state_dict(base.state_dict())
        sess.curves.val.append((0, 0.0))  # no step-0 evaluation: only the steps are compared
        ours += _our_steps(sess)
        with threads_for_load():  # the same thread count as the runner gives ours (1 when the CPU is oversubscribed)
            raw += _raw_steps(copy.deepcopy(base), batches, s.learning_rate)[1:]
    o, r = statistics.median(ours), statistics.median(raw)
    tokens = s.tokens_per_step
    return [Row(f"pretraining step ({s.layers}x{s.width}, batch {s.batch_size}x{s.context}, char)", o, r, 1.1,
                note=f"{tokens / o:,.0f} vs {tokens / r:,.0f} tokens/s; threads fitted to the load on both sides; "
                     f"{_load_avg()}")], r


def default_run_row(raw_step: float) -> Row:
    """The default run as the tab makes it: steps, 17 validation losses and 9 samples, fitted to the cap."""
    from engine.core.settings import make
    from engine.pretraining import model as pt_model, train

    s = make(pt_model.PretrainSettings)
    p = train.prepare(None, s)
    sess = train.new_session(p, s, "The ")
    t = time.perf_counter()
    for u in train.train(sess, 300.0):
        pass
    wall = time.perf_counter() - t
    return Row(f"pretraining default run ({u.step} steps, evals and samples)", wall, raw_step * u.step,
               note=f"goal < 90 s on 2 cores; val loss {sess.curves.val[0][1]:.2f} -> {sess.curves.val[-1][1]:.2f}; "
                    f"last sample {sess.samples[-1][2][:60]!r}; {_load_avg()}")


def run(ctx) -> list[Row]:
    rows, raw_step = step_rows()
    if os.environ.get("BENCH_QUICK"):
        return rows
    return rows + [default_run_row(raw_step)]
