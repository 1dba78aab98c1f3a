"""LoRA rows: training step time through the engine (shared-weight session model, streamed
updates) vs a plain peft + torch loop on the same batches; and the default run's wall time,
with base-vs-adapted samples printed before the table.

The CPU here is shared, so ours and raw are measured interleaved (a few steps of one, then a
few of the other, repeated) and each side's median step time is compared."""
from __future__ import annotations

import copy
import os
import statistics
import time

from bench.run import Row

PROMPTS = ("Life is", "The computer", "A good teacher")


def _load_avg() -> str:
    try:
        return "load avg %.1f/%.1f/%.1f" % os.getloadavg()
    except OSError:
        return "load avg n/a"


def _raw_model(base_model, settings):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                     target_modules=list(settings.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(copy.deepcopy(base_model), cfg)


def _raw_steps(model, batches, lr):
    """The loop a notebook would write: AdamW on the trainable parameters, one step per batch."""
    import torch

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    times = []
    for batch in batches:
        t = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    model.eval()
    return times


def step_rows(ctx, rounds: int = 6, steps: int = 2) -> list[Row]:
    from engine.core.settings import make
    from engine.training import lora
    from engine.training.runner import fit_threads

    engine = ctx.engine
    bundle = engine.load(lora.BASE_KEY)
    tok, base = bundle.tokenizer, bundle.model
    settings = make(lora.LoraSettings, max_steps=steps)
    examples = lora.encode_examples(tok, lora.load_quotes(), settings.max_length)
    pad = lora.pad_id_of(tok)
    # the batches ours will draw, so raw trains on exactly the same data
    order = lora.batches(len(examples), settings.batch_size, settings.seed)
    same = [lora.collate([examples[i] for i in next(order)], pad) for _ in range(steps)]
    ours_model = lora.session_model(base, settings)
    raw_model = _raw_model(base, settings)
    ours_t, raw_t = [], []
    load_before = _load_avg()
    import torch

    default = torch.get_num_threads()
    torch.set_num_threads(fit_threads(default))  # the same thread count for both sides
    threads = torch.get_num_threads()
    for _ in range(rounds):
        last = 0.0
        for u in lora.train_steps(ours_model, examples, settings, pad):  # includes collate + streaming
            ours_t.append(u.seconds - last)
            last = u.seconds
        raw_t += _raw_steps(raw_model, same, settings.learning_rate)
    torch.set_num_threads(default)
    ours, raw = statistics.median(ours_t), statistics.median(raw_t)
    note = (f"median of {len(ours_t)} steps each, batch {settings.batch_size}, r={settings.r} "
            f"{'+'.join(settings.target_modules)}, {threads} thread(s); speed ours/raw = {raw / ours:.2f} (target >= 0.9); "
            f"{_load_avg()} (before: {load_before})")
    return [Row("LoRA train step: engine vs plain peft+torch loop", ours, raw, target=1 / 0.9, note=note)]


def default_run_row(ctx) -> list[Row]:
    """The default settings end to end (build the adapter, train, nothing else), with samples."""
    from engine.core.settings import make
    from engine.training import lora
    engine = ctx.engine
    bundle = engine.load(lora.BASE_KEY)
    settings = make(lora.LoraSettings)
    session = lora.LoraSession()
    load_before = _load_avg()
    start = time.perf_counter()
    losses = []
    for u in lora.train(engine, session, lora.load_quotes(), settings):
        losses = u.losses
        if u.step and u.step % 5 == 0:
            print(f"  step {u.step}/{u.max_steps} loss {u.loss:.3f} at {u.seconds:.0f} s ({_load_avg()})", flush=True)
    wall = time.perf_counter() - start
    print(f"  default run: {len(losses)} steps in {wall:.1f} s; loss {losses[0]:.2f} -> "
          f"mean of last 5 {statistics.mean(losses[-5:]):.2f}")
    for prompt in PROMPTS:
        pair = lora.generate_pair(session.model, bundle.tokenizer, prompt, seed=7, max_new_tokens=40)
        print(f"  PROMPT {prompt!r}\n    base   : {pair['base']['text']!r} (EOS: {pair['base']['stopped_at_eos']})"
              f"\n    adapted: {pair['adapted']['text']!r} (EOS: {pair['adapted']['stopped_at_eos']})", flush=True)
    return [Row("LoRA default run (40 steps) wall time vs 3-minute target", wall, 180.0, target=1.0,
                note=f"{_load_avg()} (before: {load_before}); 2 cores shared with other engineers")]


def run(ctx) -> list[Row]:
    import torch

    threads = os.environ.get("BENCH_LORA_THREADS")
    if threads:  # on a shared, overloaded 2-core machine 1 thread beats 2 by a wide margin
        torch.set_num_threads(int(threads))
    print(f"  torch threads: {torch.get_num_threads()}; {_load_avg()}", flush=True)
    rows = step_rows(ctx)
    if os.environ.get("BENCH_LORA_SKIP_DEFAULT") != "1":
        rows += default_run_row(ctx)
    return rows
