"""Preference rows: DPO step time through the engine (train_dpo: shared-weight model, trl's
DPOTrainer in a worker thread, metrics streamed through a callback) vs trl's DPOTrainer used
directly as a notebook would (a deep copy of the model, peft_config, trainer.train()) on the same
pairs and settings; and the default runs' wall times with their before/after numbers.

The CPU here is shared, so ours and raw run interleaved (a few steps of one, then of the other,
repeated) and each side's median step time is compared (the first step of a run, which builds
the optimizer, is left out on both sides)."""
from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time

from bench.run import Row


def _load_avg() -> str:
    try:
        return "load avg %.1f/%.1f/%.1f" % os.getloadavg()
    except OSError:
        return "load avg n/a"


def _raw_step_times(base, tok, pairs, s) -> list[float]:
    """trl used directly: DPOConfig + DPOTrainer(model, peft_config=...) + train(), timed per step."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    times, t0 = [], [0.0]

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            t0[0] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - t0[0])

    data = Dataset.from_list([dict(prompt=p.prompt, chosen=p.chosen, rejected=p.rejected) for p in pairs])
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, max_steps=s.max_steps, per_device_train_batch_size=s.batch_size,
                         learning_rate=s.learning_rate, beta=s.beta, lr_scheduler_type="constant", warmup_steps=0,
                         weight_decay=0.0, logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
                         seed=s.seed, data_seed=s.seed, use_cpu=True, bf16=False, gradient_checkpointing=False,
                         max_length=s.max_length)
        cfg = LoraConfig(r=s.r, lora_alpha=2 * s.r, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                         task_type="CAUSAL_LM")
        trainer = DPOTrainer(model=copy.deepcopy(base), args=args, train_dataset=data, processing_class=tok,
                             peft_config=cfg, callbacks=[Clock()])
        trainer.train()
    return times[1:]


def step_rows(ctx, rounds: int = 3, steps: int = 4) -> list[Row]:
    import torch

    from engine.core.settings import make
    from engine.training import lora
    from engine.training import preference
    from engine.training.runner import fit_threads

    engine = ctx.engine
    bundle = engine.load(lora.BASE_KEY)
    pairs = preference.load_pairs()[:60]  # 6 held out: the engine's after-training scoring stays short
    train_pairs, _ = preference.split(pairs)
    s = make(preference.DPOSettings, max_steps=steps)
    default = torch.get_num_threads()
    torch.set_num_threads(fit_threads(default))
    threads = torch.get_num_threads()
    load_before = _load_avg()
    ours_t, raw_t = [], []
    for _ in range(rounds):
        session, last, deltas = preference.PreferenceSession(), None, []
        for u in preference.train_dpo(engine, session, pairs, s):
            if last is not None and u.step > 1:
                deltas.append(u.seconds - last)
            last = u.seconds
        ours_t += deltas[:-1] if len(deltas) > steps - 1 else deltas  # the last update repeats the last step
        raw_t += _raw_step_times(bundle.model, bundle.tokenizer, train_pairs, s)
    torch.set_num_threads(default)
    ours, raw = statistics.median(ours_t), statistics.median(raw_t)
    note = (f"median of {len(ours_t)}/{len(raw_t)} steps, batch {s.batch_size} pairs, r={s.r}, max_length "
            f"{s.max_length}, {threads} thread(s); steps/s ours/raw = {raw / ours:.2f} (target >= 0.9); "
            f"{_load_avg()} (before: {load_before})")
    return [Row("DPO train step: engine vs trl DPOTrainer used directly", ours, raw, target=1.11, note=note)]


def default_rows(ctx) -> list[Row]:
    from engine.core.settings import make
    from engine.training import preference
    engine = ctx.engine
    pairs = preference.load_pairs()
    rows = []
    for name, fn, s in (("reward model", preference.train_reward, make(preference.RewardSettings)), ("DPO", preference.train_dpo, make(preference.DPOSettings))):
        session = preference.PreferenceSession()
        load_before = _load_avg()
        start = time.perf_counter()
        for u in fn(engine, session, pairs, s):
            pass
        wall = time.perf_counter() - start
        if name == "DPO":
            b, a = session.before, session.after
            print(f"  DPO held-out ({a['pairs']} pairs): chosen likelier per token {b['accuracy']:.0%} -> "
                  f"{a['accuracy']:.0%}; in total {b['accuracy_total']:.0%} -> {a['accuracy_total']:.0%}")
            for r in preference.compare_outputs(session, [p.prompt for p in preference.split(pairs)[1][:4]], 7):
                print(f"  {r['prompt']!r}\n    off: {r['base']!r}\n    on : {r['tuned']!r}")
        else:
            print(f"  reward model held-out accuracy {session.reward_eval['accuracy']:.0%}")
        rows.append(Row(f"{name} default run ({s.max_steps} steps) wall time vs 3-minute target", wall, 180.0,
                        target=1.0, note=f"{_load_avg()} (before: {load_before}); 2 shared cores"))
    return rows


def run(ctx) -> list[Row]:
    rows = step_rows(ctx)
    if os.environ.get("BENCH_PREF_SKIP_DEFAULT") != "1":
        rows += default_rows(ctx)
    return rows
