"""Decoding rows: our generation loop vs transformers' model.generate with the same settings
and tokens; the step path (one cached forward per token, plus the knob view) vs one generate
call; tokens per second in the notes. Greedy/sampled tokens are checked equal, not assumed."""
from __future__ import annotations

import time

import torch

from bench.run import Row

PROMPT = "Once upon a time, in a small village by the sea,"
N = 32


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _interleaved(ours, raw, repeat: int):
    """Best of `repeat` for each, alternating so that load on a shared machine hits both."""
    best_o = best_r = float("inf")
    out_o = out_r = None
    for _ in range(repeat):
        t, out_o = _timed(ours)
        best_o = min(best_o, t)
        t, out_r = _timed(raw)
        best_r = min(best_r, t)
    return best_o, best_r, out_o, out_r


def run(ctx, repeat: int = 3) -> list[Row]:
    from engine.core.settings import make
    from engine.decoding import generation
    tm = ctx.engine.load("smollm2-135m-instruct")
    rows = []

    def raw_generate(settings, n):
        def go():
            ids = tm.tokenizer(PROMPT, return_tensors="pt").input_ids.to(tm.device)
            if settings.do_sample:
                torch.manual_seed(settings.seed)
            with torch.inference_mode():
                out = tm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=settings.do_sample,
                                        temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p,
                                        repetition_penalty=settings.repetition_penalty, max_new_tokens=N,
                                        num_return_sequences=n)
            return out[:, ids.shape[1]:].tolist()
        return go

    # 1. sampling, one sequence, same seed: the same tokens from both
    s = make(generation.DecodingSettings, do_sample=True, temperature=0.8, top_k=50, top_p=0.9, max_new_tokens=N,
             num_return_sequences=1, seed=1234)
    ours_t, raw_t, res, raw_ids = _interleaved(lambda: generation.generate(tm, PROMPT, s), raw_generate(s, 1), repeat)
    same = [[t.id for t in q.tokens] for q in res.sequences] == raw_ids
    ntok = len(res.sequences[0].tokens)
    rows.append(Row(f"generate {ntok} tokens (sampling, seed): engine vs model.generate", ours_t, raw_t, target=1.1,
                    note=f"same tokens: {'yes' if same else 'NO'}; {ntok / ours_t:.1f} vs {ntok / raw_t:.1f} tok/s"))

    # 2. four sequences side by side (batched) vs num_return_sequences=4
    s4 = make(generation.DecodingSettings, do_sample=True, temperature=0.8, top_k=50, top_p=0.9, max_new_tokens=N,
              num_return_sequences=4, seed=99)
    ours_t, raw_t, res, raw_ids = _interleaved(lambda: generation.generate(tm, PROMPT, s4), raw_generate(s4, 4),
                                               max(1, repeat - 1))
    same = [[t.id for t in q.tokens] for q in res.sequences] == raw_ids
    total = sum(len(q.tokens) for q in res.sequences)
    rows.append(Row("generate 4 sequences side by side vs num_return_sequences=4", ours_t, raw_t, target=1.1,
                    note=f"same tokens: {'yes' if same else 'NO (EOS in a row)'}; {total / ours_t:.1f} vs "
                         f"{total / raw_t:.1f} tok/s in all"))

    # 3. the step path: 32 steps, each one cached forward + the six-stage view, vs one generate of 32
    g = make(generation.DecodingSettings, do_sample=False, max_new_tokens=N, num_return_sequences=1)

    def steps():
        session = generation.StepSession(tm, PROMPT, "raw")
        for _ in range(N):
            session.step(g)
            session.view(g)
        return session

    ours_t, raw_t, session, raw_ids = _interleaved(steps, raw_generate(g, 1), repeat)
    same = session.ids[session.prompt_len:].tolist() == raw_ids[0]
    single = max(session.forward_tokens[1:])
    rows.append(Row(f"{N} steps (step path + knob view) vs one generate of {N}", ours_t, raw_t, target=1.5,
                    note=f"same tokens: {'yes' if same else 'NO'}; each step read {single} token; "
                         f"{N / ours_t:.1f} steps/s"))

    # 4. what the browser adds on top of a step: the plotly figure (no raw counterpart; vs the step itself)
    from engine.decoding.plots import distribution_figure

    view = session.view(make(generation.DecodingSettings, top_p=0.5))
    fig_t = min(_timed(lambda: distribution_figure(view))[0] for _ in range(repeat))
    step_t = min(_timed(lambda: session.step(g))[0] for _ in range(repeat))
    rows.append(Row("distribution figure (6 panels) vs one cached step", fig_t, step_t, target=None,
                    note="plot cost per Step click in the browser"))
    run_beam(ctx, rows, repeat)
    return rows


def run_beam(ctx, rows: list[Row], repeat: int = 3) -> None:
    """Beam search through the engine (every step's hypotheses kept) vs model.generate(num_beams=4)."""
    from engine.core.settings import make
    from engine.decoding import beam
    from engine.decoding import generation
    tm = ctx.engine.load("smollm2-135m-instruct")
    s = make(beam.BeamSettings, num_beams=4, max_new_tokens=N)
    _, ids = generation.encode(tm, PROMPT, "raw", reserve=N)

    def raw():
        with torch.inference_mode():
            out = tm.model.generate(ids, attention_mask=torch.ones_like(ids), **beam.generate_kwargs(s))
        return out[0, ids.shape[1]:].tolist()

    ours_t, raw_t, res, raw_ids = _interleaved(lambda: beam.beam_search(tm, PROMPT, s), raw, repeat)
    same = res.best.ids == raw_ids[:len(res.best.ids)] and len(raw_ids) == len(res.best.ids)
    rows.append(Row(f"beam search, 4 beams, {N} tokens: engine (all steps kept) vs generate(num_beams=4)", ours_t,
                    raw_t, target=1.2, note=f"same best beam: {'yes' if same else 'NO'}; {len(res.steps)} steps"))
