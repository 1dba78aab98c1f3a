"""Post-training rows: an SFT step through the engine (shared-weight session model, the masked
collator, streamed updates) vs a plain peft + torch loop on the same masked batches of the real
Gemma 3 270M base; and the default SFT run's wall time, with the before/after correctness on the
held-out prompts printed before the table.

Ours and raw are measured interleaved (the CPU is shared) and each side's median step time compared."""
from __future__ import annotations

import os
import statistics
import time

from bench.bench_lora import _load_avg, _raw_model, _raw_steps
from bench.run import Row


def step_rows(ctx, rounds: int = 5, steps: int = 2) -> list[Row]:
    import torch

    from engine.core.settings import make
    from engine.training import lora
    from engine.training import sft
    from engine.training.runner import fit_threads

    bundle = ctx.engine.load(sft.BASE_KEY)
    tok, base = bundle.tokenizer, bundle.model
    settings = make(sft.SftSettings, max_steps=steps)
    examples = sft.encode_pairs(tok, sft.load_train(), settings.max_length, settings.mask)
    pad = lora.pad_id_of(tok)
    order = lora.batches(len(examples), settings.batch_size, settings.seed)
    same = [sft.collate_sft([examples[i] for i in next(order)], pad) for _ in range(steps)]
    ours_model = lora.session_model(base, settings)
    raw_model = _raw_model(base, settings)
    default = torch.get_num_threads()
    torch.set_num_threads(fit_threads(default))
    threads = torch.get_num_threads()
    load_before = _load_avg()
    ours_t, raw_t = [], []
    for _ in range(rounds):
        last = 0.0
        for u in lora.train_steps(ours_model, examples, settings, pad, collate_fn=sft.collate_sft):
            ours_t.append(u.seconds - last)
            last = u.seconds
        raw_t += _raw_steps(raw_model, same, settings.learning_rate)
    torch.set_num_threads(default)
    del raw_model
    ours, raw = statistics.median(ours_t), statistics.median(raw_t)
    note = (f"median of {len(ours_t)} steps each, batch {settings.batch_size}, r={settings.r} "
            f"{'+'.join(settings.target_modules)}, mask {settings.mask}, {threads} thread(s); speed ours/raw = "
            f"{raw / ours:.2f} (target >= 0.9); {_load_avg()} (before: {load_before})")
    return [Row("SFT train step (Gemma 3 270M base): engine vs plain peft+torch loop", ours, raw,
                target=1 / 0.9, note=note)]


def default_run_row(ctx) -> list[Row]:
    from engine.core.settings import make
    from engine.training import lora
    from engine.training import sft
    ctx.engine.load(sft.BASE_KEY)
    settings = make(sft.SftSettings)
    session = lora.LoraSession()
    load_before = _load_avg()
    start = time.perf_counter()
    losses = []
    for u in sft.train(ctx.engine, session, sft.load_train(), settings):
        losses = u.losses
        if u.step and u.step % 10 == 0:
            print(f"  step {u.step}/{u.max_steps} loss {u.loss:.3f} at {u.seconds:.0f} s ({_load_avg()})", flush=True)
    wall = time.perf_counter() - start
    print(f"  default SFT run: {len(losses)} steps in {wall:.1f} s; loss {sft.losses_summary(losses)}", flush=True)
    t = time.perf_counter()
    r = sft.before_after(session.model, session.tokenizer, sft.eval_rows(int(os.environ.get("BENCH_SFT_PER_TASK", "2"))))
    sc = r["score"]
    print(f"  before/after on {r['n']} held-out prompts ({time.perf_counter() - t:.0f} s): exact base "
          f"{sc['base']['exact']:.0%} -> tuned {sc['tuned']['exact']:.0%}; tuned without template "
          f"{sc['tuned_no_template']['exact']:.0%}; first line base {sc['base']['first_line']:.0%} -> tuned "
          f"{sc['tuned']['first_line']:.0%}", flush=True)
    for row in r["rows"]:
        print(f"    {row['prompt']!r}: base {row['base']['answer'][:40]!r} | tuned {row['tuned']['answer']!r} "
              f"{'ok' if row['tuned']['exact'] else 'x'} | no template {row['tuned_no_template']['answer'][:30]!r}")
    return [Row(f"SFT default run ({settings.max_steps} steps) wall time vs 3-minute target", wall, 180.0, target=1.0,
                note=f"exact base {sc['base']['exact']:.0%} -> tuned {sc['tuned']['exact']:.0%} on {r['n']} held-out; "
                     f"{_load_avg()} (before: {load_before})")]


def run(ctx) -> list[Row]:
    rows = step_rows(ctx)
    if os.environ.get("BENCH_SFT_SKIP_DEFAULT") != "1":
        rows += default_run_row(ctx)
    return rows
