"""engine/decoding/generation.py: the knob math equals transformers' logits processors, the distributions
stay distributions, sampling is reproducible, and generation stops for the reason it reports."""
from __future__ import annotations

import pytest
import torch

from engine.decoding import generation as D
from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.core.models import TextModel
from engine.core.registry import ModelSpec, Source
from tests.conftest import tiny_causal_lm

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def tiny(smollm2_tokenizer):
    """A 2-layer random Llama with SmolLM2's tokenizer: cheap forwards, real token ids. Its own
    copy: a 128-token window, pad 2, and tests here change its generation config for a while."""
    model = tiny_causal_lm(max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    spec = ModelSpec(key="tiny-llama", task="causal-lm", title="tiny random Llama", loader="tests:none")
    return TextModel(model, smollm2_tokenizer, Source(spec, "embedded", "(memory)"), torch.device("cpu"),
                     torch.float32)


@pytest.fixture(scope="module")
def real_logits(smollm):
    """(2, vocab) next-token logits of SmolLM2 for two prompts, and the prompt ids."""
    out = []
    for text in (PROMPT, "Once upon a time there was a little"):
        _, ids = D.encode(smollm, text, "raw")
        logits = D._forward(smollm, ids)
        out.append((logits, ids))
    return out


def test_each_knob_equals_transformers_processor(real_logits):
    from transformers import (MinPLogitsWarper, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                              TopKLogitsWarper)

    for logits, ids in real_logits:
        for t in (0.3, 0.7, 1.6):
            assert torch.equal(D.apply_temperature(logits, t), TemperatureLogitsWarper(t)(ids, logits))
        for k in (1, 5, 50, 400):
            assert torch.equal(D.apply_top_k(logits, k), TopKLogitsWarper(k)(ids, logits))
        for m in (0.02, 0.1, 0.5):
            assert torch.equal(D.apply_min_p(logits, m), MinPLogitsWarper(m)(ids, logits))
        for r in (0.8, 1.3, 2.0):
            assert torch.equal(D.apply_repetition_penalty(logits, ids, r),
                               RepetitionPenaltyLogitsProcessor(r)(ids, logits))


def _typical_cases(real_logits):
    """(batch, vocab) logits for typical-p: SmolLM2's, random ones, ones with many exact ties, a
    peaked one (one token with nearly all the mass) and ones already cut by top-k (-inf)."""
    g = torch.Generator().manual_seed(0)
    rand = torch.randn(3, 500, generator=g) * torch.tensor([[0.5], [2.0], [6.0]])
    ties = torch.randint(0, 4, (2, 300), generator=g).float()  # four distinct values, many ties
    peaked = torch.randn(1, 300, generator=g)
    peaked[0, 7] = 25.0
    cut = D.apply_top_k(torch.randn(2, 400, generator=g) * 2, 30)
    return [lg for lg, _ in real_logits] + [rand, ties, peaked, cut]


def test_typical_p_equals_transformers_warper(real_logits):
    from transformers import TypicalLogitsWarper

    ids = torch.zeros(1, 1, dtype=torch.long)
    for logits in _typical_cases(real_logits):
        for mass in (0.01, 0.2, 0.5, 0.9, 0.95, 0.999):
            theirs = TypicalLogitsWarper(mass=mass)(ids.expand(logits.shape[0], 1), logits)
            assert torch.equal(D.apply_typical_p(logits, mass), theirs), (logits.shape, mass)
    logits = real_logits[0][0]
    assert D.apply_typical_p(logits, 1.0) is logits  # 1 is off: not even a copy


# The knobs accumulate masses in float32, as transformers does; over SmolLM2's 49152-token vocabulary
# a float32 sum or cumsum is off from the float64 truth by about 1e-5 (more on some CPUs), so the mass
# checks allow this much and no more.
FP32_MASS = 1e-4


def test_typical_p_keeps_the_most_typical_tokens_until_their_mass_reaches_p(real_logits):
    """By hand: surprise -log p, entropy H = sum p * -log p; the kept tokens are the closest to H
    and the shortest such run whose mass reaches typical_p."""
    g = torch.Generator().manual_seed(1)
    for logits in [lg for lg, _ in real_logits] + [torch.randn(2, 400, generator=g) * 3]:
        for mass in (0.1, 0.5, 0.9, 0.98):
            out = D.apply_typical_p(logits, mass)
            for row, lg in zip(out, logits):
                probs = lg.double().softmax(-1)
                surprise = -probs.log()
                entropy = float((probs * surprise).sum())
                gap = (surprise - entropy).abs()
                kept = torch.isfinite(row)
                assert torch.equal(row[kept], lg[kept])  # survivors keep their logits
                kept_mass = float(probs[kept].sum())
                assert kept_mass >= mass - FP32_MASS, (mass, kept_mass)
                # without its least typical member, the set falls below typical_p: no shorter run reaches it
                worst = gap[kept].max()
                assert kept_mass - float(probs[kept & (gap == worst)].sum()) < mass + FP32_MASS, mass
                if (~kept).any():  # every survivor is more typical than every cut token
                    assert float(worst) <= float(gap[~kept].min()) + 1e-5
                after = row.softmax(-1)
                assert abs(float(after.sum()) - 1.0) < 1e-5 and float(after[~kept].sum()) == 0.0
    # a peaked distribution: H is near 0, so the top token is the most typical and enough alone
    peaked = torch.full((1, 100), -5.0)
    peaked[0, 3] = 20.0
    assert torch.isfinite(D.apply_typical_p(peaked, 0.9)).sum() == 1


def test_typical_p_on_a_server_is_refused_naming_the_value():
    """vLLM's API has no typical_p: a sampled Generate with it is an error before any request (the
    URL is never reached); greedy does not read the knob."""
    from engine.decoding import served
    from engine.serving import Client, Route, ServingConfig

    r = Route(client=Client(ServingConfig(url="http://127.0.0.1:9/v1")), served_as="m")
    kw = dict(max_new_tokens=2, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, rows=1,
              seed=1, stops=[])
    with pytest.raises(UserInputError, match=r"typical_p = 0\.5 is not supported.*127\.0\.0\.1:9.*typical_p to 1"):
        served.generate(r, [1, 2], sampling=True, typical_p=0.5, **kw)


def _top_p_matches(ours, theirs, logits, p):
    """Same kept set, except tokens whose cumulative mass (float64, in rank order) sits on p within
    float32 rounding: transformers sums from the tail, we sum from the head, so on a 49152-token
    vocabulary the boundary can move by a sliver of mass, never by more."""
    differ = torch.isinf(ours) != torch.isinf(theirs)
    if not differ.any():
        return True
    probs = logits.double().softmax(-1)
    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)
    before = torch.zeros_like(probs).scatter(-1, order, sorted_p.cumsum(-1) - sorted_p)
    return bool(((before[differ] - p).abs() < FP32_MASS).all()) and float(probs[differ].sum()) < FP32_MASS


def test_top_p_equals_transformers_processor(real_logits):
    from transformers import TopPLogitsWarper

    for logits, ids in real_logits:
        for p in (0.05, 0.3, 0.8, 0.9, 0.95, 0.99):
            ours = D.apply_top_p(logits, p)
            theirs = TopPLogitsWarper(p)(ids, logits)
            assert _top_p_matches(ours, theirs, logits, p), p
            kept = torch.isfinite(ours)
            assert torch.equal(ours[kept], logits[kept])


def test_knob_chain_equals_transformers_processor_list(real_logits):
    from transformers import (LogitsProcessorList, MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                              TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, TypicalLogitsWarper)

    s = make(D.DecodingSettings, temperature=0.7, top_k=40, top_p=0.9, min_p=0.05, typical_p=0.8, repetition_penalty=1.3)
    hf = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.3), TemperatureLogitsWarper(0.7),
                              TopKLogitsWarper(40), TopPLogitsWarper(0.9), MinPLogitsWarper(0.05),
                              TypicalLogitsWarper(0.8)])
    for logits, ids in real_logits:
        ours = D.final_logits(logits, ids, s)
        theirs = hf(ids, logits)
        assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
        assert torch.allclose(ours[torch.isfinite(ours)], theirs[torch.isfinite(theirs)])


def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(real_logits):
    for logits, _ in real_logits:
        probs = logits[0].softmax(-1)
        for p in (0.2, 0.5, 0.9, 0.97):
            kept = torch.isfinite(D.apply_top_p(logits, p)[0])
            mass = float(probs[kept].sum())
            assert mass >= p - FP32_MASS, (p, mass)
            # dropping the least likely survivor falls below p: no smaller set reaches p
            assert mass - float(probs[kept].min()) < p, p
            # the nucleus is a prefix of the ranking: every survivor beats every cut token
            assert float(probs[kept].min()) >= float(probs[~kept].max())


def test_probabilities_sum_to_one_after_every_knob(smollm):
    for kwargs in (dict(), dict(temperature=0.4, top_k=10, top_p=0.5, min_p=0.1, repetition_penalty=1.5),
                   dict(temperature=1.9, top_k=0, top_p=0.99, min_p=0.0, typical_p=0.6, repetition_penalty=0.7),
                   dict(temperature=0.0, top_k=200)):
        view = D.next_token_view(smollm, "I like to eat apples and", make(D.DecodingSettings, **kwargs))
        assert [st.name for st in view.stages] == list(D.STAGES)
        for st in view.stages:
            assert abs(float(st.probs.sum()) - 1.0) < 1e-4, (kwargs, st.name)
            assert float(st.probs[~st.kept].sum()) == 0.0
            assert 0.0 < st.kept_mass <= 1.0 + FP32_MASS
        counts = [st.kept_count for st in view.stages]
        assert counts == sorted(counts, reverse=True)  # a knob never brings a cut token back
        assert sum(r["kept"] for r in view.rows(15)) <= view.final.kept_count


def test_temperature_zero_and_top_k_one_equal_greedy_and_transformers(smollm):
    n = 4
    greedy = D.generate(smollm, PROMPT, make(D.DecodingSettings, do_sample=False, max_new_tokens=n, num_return_sequences=1))
    ids = [t.id for t in greedy.sequences[0].tokens]
    for rows, kwargs in ((2, dict(temperature=0.0)), (1, dict(temperature=1.0, top_k=1, top_p=1.0))):
        got = D.generate(smollm, PROMPT, make(D.DecodingSettings, do_sample=True, max_new_tokens=n, num_return_sequences=rows,
                                              seed=3, **kwargs))
        assert [[t.id for t in q.tokens] for q in got.sequences] == [ids] * rows, kwargs
    _, prompt_ids = D.encode(smollm, PROMPT, "raw")
    raw = smollm.model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), do_sample=False,
                                max_new_tokens=n)
    assert raw[0, prompt_ids.shape[1]:].tolist() == ids
    assert greedy.sequences[0].stop_reason == "max_new_tokens"


def test_same_seed_same_samples_different_seeds_differ(tiny):
    s = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=8, num_return_sequences=2)
    runs = {seed: [[t.id for t in q.tokens] for q in D.generate(tiny, PROMPT, make(D.DecodingSettings, seed=seed, **s)).sequences]
            for seed in (1, 2)}
    again = [[t.id for t in q.tokens] for q in D.generate(tiny, PROMPT, make(D.DecodingSettings, seed=1, **s)).sequences]
    assert again == runs[1]
    assert runs[1] != runs[2]
    assert runs[1][0] != runs[1][1]  # the side-by-side samples differ from each other too


def test_seeded_sampling_equals_transformers_generate(tiny):
    s = make(D.DecodingSettings, do_sample=True, temperature=0.9, top_k=50, top_p=0.95, repetition_penalty=1.2,
             max_new_tokens=8, num_return_sequences=3, seed=11)
    ours = [[t.id for t in q.tokens] for q in D.generate(tiny, PROMPT, s).sequences]
    _, ids = D.encode(tiny, PROMPT, "raw")
    torch.manual_seed(11)
    raw = tiny.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.9, top_k=50,
                              top_p=0.95, repetition_penalty=1.2, max_new_tokens=8, num_return_sequences=3,
                              pad_token_id=2)
    assert raw[:, ids.shape[1]:].tolist() == ours


def test_num_return_sequences_returns_that_many(tiny):
    for n in (1, 3, 4):
        r = D.generate(tiny, PROMPT, make(D.DecodingSettings, do_sample=True, max_new_tokens=3, num_return_sequences=n))
        assert len(r.sequences) == n
        assert all(len(q.tokens) == 3 and q.stop_reason == "max_new_tokens" for q in r.sequences)
    greedy = D.generate(tiny, PROMPT, make(D.DecodingSettings, do_sample=False, max_new_tokens=3, num_return_sequences=3))
    assert len({tuple(t.id for t in q.tokens) for q in greedy.sequences}) == 1


def test_eos_stops_generation_and_is_reported(tiny):
    s = make(D.DecodingSettings, do_sample=False, max_new_tokens=8, num_return_sequences=1)
    ids = [t.id for t in D.generate(tiny, PROMPT, s).sequences[0].tokens]
    eos = ids[3]
    stop_at = ids.index(eos)
    cfg = tiny.model.generation_config
    old = cfg.eos_token_id
    cfg.eos_token_id = eos  # make the 4th greedy token the end-of-sequence token
    try:
        r = D.generate(tiny, PROMPT, s)
    finally:
        cfg.eos_token_id = old
    seq = r.sequences[0]
    assert [t.id for t in seq.tokens] == ids[:stop_at + 1]
    assert seq.stop_reason == "EOS" and r.done


def test_stop_string_stops_and_is_reported(tiny):
    s = make(D.DecodingSettings, do_sample=False, max_new_tokens=8, num_return_sequences=1)
    full = D.generate(tiny, PROMPT, s).sequences[0]
    target = next(t.text for t in full.tokens[2:] if t.text.strip())
    r = D.generate(tiny, PROMPT, s, stop=f"zzzq|{target}")
    seq = r.sequences[0]
    assert seq.stop_reason == f"stop string {target!r}"
    assert target in seq.text and len(seq.tokens) < 8


def test_stream_yields_every_token_then_done(tiny):
    s = make(D.DecodingSettings, do_sample=True, max_new_tokens=5, num_return_sequences=2)
    snaps = [(r.steps, r.done) for r in D.generate_stream(tiny, PROMPT, s)]
    assert [x[0] for x in snaps] == [1, 2, 3, 4, 5] and snaps[-1][1] and not any(d for _, d in snaps[:-1])


def test_step_session_reuses_the_kv_cache(smollm):
    s = make(D.DecodingSettings, do_sample=False)
    session = D.StepSession(smollm, PROMPT, "raw")
    picked = [session.step(s)["id"] for _ in range(3)]
    assert session.forward_tokens == [session.prompt_len, 1, 1, 1]  # step N reads one token
    greedy = D.generate(smollm, PROMPT, make(D.DecodingSettings, do_sample=False, max_new_tokens=3, num_return_sequences=1))
    assert picked == [t.id for t in greedy.sequences[0].tokens]
    full = D._forward(smollm, session.ids[None])  # the whole text again, no cache
    assert torch.allclose(full[0], session.logits, atol=1e-3)
    view = session.view(make(D.DecodingSettings))
    assert view.prompt_tokens == session.prompt_len + 3


def test_step_session_sampling_is_seeded(tiny):
    s = make(D.DecodingSettings, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, seed=5)
    a, b = D.StepSession(tiny, PROMPT), D.StepSession(tiny, PROMPT)
    assert [a.step(s)["id"] for _ in range(4)] == [b.step(s)["id"] for _ in range(4)]


def test_chat_template_and_context_window(smollm, tiny):
    text, ids = D.encode(smollm, "Hi", "chat")
    assert "<|im_start|>user\nHi<|im_end|>" in text and text.rstrip().endswith("assistant")
    assert ids.shape[1] > len(smollm.tokenizer("Hi").input_ids)
    assert D.max_context(smollm) == smollm.model.config.max_position_embeddings
    with pytest.raises(UserInputError, match=r"context window.*1 to 128"):
        D.generate(tiny, "word " * 100, make(D.DecodingSettings, max_new_tokens=60))


def test_context_bar_counts_tokens_and_waits_for_a_model_before_it_has_one():
    from engine.decoding.plots import context_html

    bar = context_html(6, 40, 8192)
    assert "6 prompt + 40 new = 46 of 8,192 tokens (0.6%)" in bar
    assert "6 prompt + 3 generated = 9 of 8,192 tokens" in context_html(6, 0, 8192, generated=3)
    empty = context_html(0, 0, 0)  # what the tab shows before the prompt was read: no "of 1 tokens"
    assert "shown once the model has read the prompt" in empty and " of " not in empty.split("</style>")[-1]


@pytest.mark.parametrize("kwargs, words", [
    (dict(temperature=5), ["temperature", "5", "0.0 to 2.0"]),
    (dict(top_k=2.5), ["top_k", "2.5", "whole number"]),
    (dict(top_p=-0.1), ["top_p", "-0.1", "0.0 to 1.0"]),
    (dict(min_p=float("nan")), ["min_p", "nan"]),
    (dict(typical_p=1.5), ["typical_p", "1.5", "0.0 to 1.0"]),
    (dict(typical_p=float("nan")), ["typical_p", "nan", "0.0 and 1.0"]),
    (dict(repetition_penalty=0), ["repetition_penalty", "0.5 to 2.0"]),
    (dict(max_new_tokens=1000), ["max_new_tokens", "1000", "1 to 256"]),
    (dict(num_return_sequences=9), ["num_return_sequences", "9", "1 to 4"]),
    (dict(seed=-1), ["seed", "-1"]),
    (dict(do_sample="yes"), ["do_sample", "yes"]),
    (dict(top_q=1), ["top_q", "valid names"]),
])
def test_every_knob_is_validated_with_value_and_range(kwargs, words):
    with pytest.raises(UserInputError) as err:
        make(D.DecodingSettings, **kwargs)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_bad_prompt_mode_and_stop_are_named(tiny):
    s = make(D.DecodingSettings, max_new_tokens=2)
    with pytest.raises(UserInputError, match="mode = 'poem'"):
        D.generate(tiny, PROMPT, s, mode="poem")
    with pytest.raises(UserInputError, match="prompt is empty"):
        D.next_token_view(tiny, "  ", s)
    with pytest.raises(UserInputError, match="stop strings"):
        D.generate(tiny, PROMPT, s, stop="|".join("abcdefghij"))


# ---- issue 25 ---------------------------------------------------------------------------------

def _eos_at(tiny, k: int):
    """The greedy continuation of PROMPT, and a context manager making its k-th token the EOS."""
    import contextlib

    s = make(D.DecodingSettings, do_sample=False, max_new_tokens=8, num_return_sequences=1)
    ids = [t.id for t in D.generate(tiny, PROMPT, s).sequences[0].tokens]

    @contextlib.contextmanager
    def as_eos():
        cfg = tiny.model.generation_config
        old = cfg.eos_token_id
        cfg.eos_token_id = ids[k]
        try:
            yield ids[:ids.index(ids[k]) + 1]
        finally:
            cfg.eos_token_id = old
    return as_eos


def test_step_session_stops_at_eos_like_generate(tiny):
    s = make(D.DecodingSettings, do_sample=False)
    with _eos_at(tiny, 3)() as until_eos:
        generated = [t.id for t in D.generate(tiny, PROMPT, make(D.DecodingSettings, do_sample=False, max_new_tokens=8,
                                                                 num_return_sequences=1)).sequences[0].tokens]
        session = D.StepSession(tiny, PROMPT)
        stepped = []
        for _ in range(8):
            try:
                stepped.append(session.step(s)["id"])
            except D.TextEnded as err:
                assert "end-of-sequence" in str(err) and "Next token" in str(err)
                break
    assert stepped == until_eos == generated  # stops where generate() stops, after the EOS token
    assert session.finished and session.stop_reason == "EOS"
    with pytest.raises(D.TextEnded):
        session.step(s)
    assert len(session.steps) == len(until_eos)
    from engine.decoding.plots import steps_html
    assert "stopped: EOS" in steps_html(session.text, session.steps, session.stop_reason)


def test_chat_stepping_stops_at_im_end(smollm):
    session = D.StepSession(smollm, "What is the capital of France?", "chat")
    s = make(D.DecodingSettings, do_sample=False)
    for _ in range(40):
        try:
            session.step(s)
        except D.TextEnded:
            break
    text = session.generated_text
    assert session.stop_reason == "EOS" and text.endswith("<|im_end|>") and text.count("<|im_end|>") == 1
    assert "<|im_start|>" not in text and "Paris" in text


def _deprecations(records) -> list[str]:
    return [str(w.message) for w in records if issubclass(w.category, (FutureWarning, DeprecationWarning))
            and "past_key_values" in str(w.message)]


def test_no_past_key_values_deprecation_and_cached_equals_uncached(tiny):
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.warning_once.cache_clear()  # transformers logs each deprecation once per process
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    hf_logger = logging.getLogger("transformers")
    hf_logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session = D.StepSession(tiny, PROMPT)
            s = make(D.DecodingSettings, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, seed=3)
            for _ in range(6):
                session.step(s)
                uncached = D._forward(tiny, session.ids[None])[0]  # the whole text again, no cache
                assert torch.allclose(session.logits, uncached, atol=1e-4)
            D.generate(tiny, PROMPT, make(D.DecodingSettings, max_new_tokens=4, num_return_sequences=2))
    finally:
        hf_logger.removeHandler(handler)
    assert session.forward_tokens == [session.prompt_len] + [1] * 6  # the cache was really used
    assert not _deprecations(caught), _deprecations(caught)
    assert not [m for m in logged if "past_key_values" in m], logged


def test_two_step_sessions_interleaved_share_no_state(tiny):
    s = make(D.DecodingSettings, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, seed=9)
    other = "Once upon a time"
    alone_a = D.StepSession(tiny, PROMPT)
    alone_b = D.StepSession(tiny, other)
    want_a = [alone_a.step(s)["id"] for _ in range(5)]
    want_b = [alone_b.step(s)["id"] for _ in range(5)]
    a, b = D.StepSession(tiny, PROMPT), D.StepSession(tiny, other)
    got_a, got_b = [], []
    for _ in range(5):  # interleaved: a, b, a, b, ...
        got_a.append(a.step(s)["id"])
        got_b.append(b.step(s)["id"])
    assert got_a == want_a and got_b == want_b
    assert torch.equal(a.ids, alone_a.ids) and torch.allclose(a.logits, alone_a.logits)
    assert a.cache is not b.cache and a.generator is not b.generator and a.steps is not b.steps
    assert b.ids[:b.prompt_len].tolist() == D.encode(tiny, other, "raw")[1][0].tolist()


def test_step_session_is_safe_from_several_threads(tiny):
    from concurrent.futures import ThreadPoolExecutor

    s = make(D.DecodingSettings, do_sample=False)
    alone = D.StepSession(tiny, PROMPT)
    want = [alone.step(s)["id"] for _ in range(8)]
    shared = D.StepSession(tiny, PROMPT)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: shared.step(s), range(8)))
    assert [st["id"] for st in shared.steps] == want and shared.forward_tokens[1:] == [1] * 8


@pytest.mark.parametrize("kwargs", [
    dict(temperature=0.7, top_k=40, top_p=0.9, min_p=0.05, typical_p=0.9, repetition_penalty=1.3),
    dict(temperature=1.6, top_k=5, top_p=0.5, min_p=0.2, typical_p=0.3, repetition_penalty=0.8),
    dict(temperature=0.3, top_k=200, top_p=0.97, min_p=0.01, typical_p=0.95, repetition_penalty=1.0),
])
def test_each_view_stage_is_the_transformers_processor_of_the_previous_stage(smollm, kwargs):
    """Stage i of next_token_view equals transformers' processor i applied to stage i-1's output,
    so a wrong order (temperature after top-k) or a stage fed the raw logits fails."""
    from transformers import (MinPLogitsWarper, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                              TopKLogitsWarper, TopPLogitsWarper, TypicalLogitsWarper)

    s = make(D.DecodingSettings, **kwargs)
    prompt = "I like cats. I like dogs. I like"
    view = D.next_token_view(smollm, prompt, s)
    _, ids = D.encode(smollm, prompt, "raw")
    raw = D._forward(smollm, ids)
    processors = [RepetitionPenaltyLogitsProcessor(s.repetition_penalty), TemperatureLogitsWarper(s.temperature),
                  TopKLogitsWarper(s.top_k), TopPLogitsWarper(s.top_p), MinPLogitsWarper(s.min_p),
                  TypicalLogitsWarper(s.typical_p)]
    assert [st.name for st in view.stages] == list(D.STAGES)
    assert torch.allclose(view.stages[0].probs, raw[0].softmax(-1), atol=1e-6)
    for st, prev, proc in zip(view.stages[1:], view.stages[:-1], processors):
        # the previous stage's logits: the raw ones for the first knob (the repetition penalty
        # depends on their sign); after it, up to a constant, which no later knob depends on: the
        # log of the previous stage's probabilities, cut tokens at -inf
        prev_logits = raw.clone() if prev.name == "raw" else \
            torch.where(prev.kept, prev.probs.clamp_min(1e-38).log(), torch.tensor(float("-inf")))[None]
        expected = proc(ids, prev_logits.clone())[0]
        kept = torch.isfinite(expected)
        if st.name == "top-p":  # ties on the p boundary may differ by float rounding (see above)
            assert int((kept != st.kept).sum()) <= 4, st.name
        else:
            assert torch.equal(kept, st.kept), st.name
        assert torch.allclose(st.probs, expected.softmax(-1), atol=1e-5), st.name


def test_partial_byte_tokens_show_their_bytes(tiny):
    from engine.decoding.plots import steps_html, token_spans

    ids = tiny.tokenizer("東京 🦙", add_special_tokens=False).input_ids
    partial = [i for i in ids if "\ufffd" in tiny.tokenizer.decode([i])]
    assert partial, "the test text should have tokens that are parts of characters"
    labels = [D.token_label(tiny, i) for i in partial]
    assert all("\ufffd" not in lab and "<0x" in lab for lab in labels), labels
    assert len(set(labels)) > 1  # different bytes, different labels (not all "�")
    for i in partial:  # the labels are the token's bytes
        raw = bytes(int(h, 16) for h in re_hex(D.partial_bytes(tiny, i)))
        assert raw and raw in "東京 🦙".encode("utf-8")
    steps = [dict(id=i, text=tiny.tokenizer.decode([i]), bytes=D.partial_bytes(tiny, i), p_raw=0.5,
                  p_final=0.5, rank=1, how="greedy") for i in ids]
    html = steps_html("x", steps)
    assert "\ufffd" not in html and "&lt;0xE6&gt;" in html
    outs = [D.TokenOut(i, tiny.tokenizer.decode([i]), 0.5, 0.5, 1, False, D.partial_bytes(tiny, i)) for i in ids]
    assert "\ufffd" not in token_spans(outs)


def re_hex(label: str) -> list[str]:
    import re

    return re.findall(r"<0x([0-9A-F]{2})>", label)


def test_invisible_token_labels_show_code_points(tiny):
    for ch in ("\u200b", "\u00a0", "\u200d"):
        ids = tiny.tokenizer(ch, add_special_tokens=False).input_ids
        labels = "".join(D.token_label(tiny, i) for i in ids)
        assert ch not in labels and (f"U+{ord(ch):04X}" in labels or "<0x" in labels), labels


# ---- what the next-token view says and draws -------------------------------------------------------
def _peaked_logits(vocab: int, first: int = 100, second: int = 200) -> torch.Tensor:
    """Flat logits but two tokens: `first` (p ≈ 0.72 raw) and `second` a little below it."""
    logits = torch.zeros(vocab)
    logits[first], logits[second] = 11.8, 11.3
    return logits


def test_every_knob_stage_shares_one_probability_axis(tiny):
    from engine.decoding.plots import distribution_figure

    vocab = len(tiny.tokenizer)
    s = make(D.DecodingSettings, temperature=1.8, top_k=0, top_p=1.0)
    view = D.view_from_logits(tiny, _peaked_logits(vocab), torch.tensor([5, 6]), s)
    raw, hot = float(view.stages[0].probs[100]), float(view.final.probs[100])
    assert raw > 0.4 and hot < 0.05  # temperature 1.8 flattens it: the shared axis must show the drop
    fig = distribution_figure(view)
    axes = [fig.layout[k] for k in fig.layout.to_plotly_json() if k.startswith("yaxis")]
    ranges = {tuple(ax.range) for ax in axes}
    assert len(axes) >= len(view.stages) == 7 and len(ranges) == 1
    (low, high), = ranges
    assert low == 0 and high >= raw  # the tallest bar of any stage fits


def test_the_greedy_line_gives_the_picks_probability_after_the_knobs(tiny):
    """Greedy applies the repetition penalty: with token 100 in the text and penalty 1.5 the pick is
    token 200. The line shows 200's probability after every knob, computed here by hand."""
    from tabs.decoding import _summary

    vocab = len(tiny.tokenizer)
    logits = _peaked_logits(vocab)
    for temperature in (1.0, 0.5):
        s = make(D.DecodingSettings, temperature=temperature, top_k=0, top_p=1.0, repetition_penalty=1.5)
        view = D.view_from_logits(tiny, logits, torch.tensor([100, 7]), s)
        assert view.greedy_id == 200
        penalized = logits.clone().double()
        penalized[100] = penalized[100] / 1.5  # a positive logit is divided by the penalty
        after = float((penalized / temperature).softmax(-1)[200])
        before = float(logits.double().softmax(-1)[200])
        line = _summary(view).split("  \n")[0]
        assert f"p = {after:.1%} after the knobs ({before:.1%} before them)" in line, line


def test_the_step_views_context_bar_counts_stepped_tokens_as_generated(tiny):
    from tabs.decoding import _context_with_kv

    session = D.StepSession(tiny, PROMPT, "raw", seed=1)
    n_prompt = session.prompt_len
    for _ in range(3):
        session.step(make(D.DecodingSettings, do_sample=False))
    bar = _context_with_kv(session)
    assert f"{n_prompt} prompt + 3 generated = {n_prompt + 3} of" in bar


def test_the_default_knobs_keep_more_than_one_token_on_the_default_prompt(smollm):
    from tabs.decoding import DEFAULT_PROMPT

    view = D.StepSession(smollm, DEFAULT_PROMPT, "raw").view(D.DecodingSettings())
    assert view.sampling and view.final.kept_count > 1


@pytest.mark.parametrize("knobs", [dict(temperature=0.8, top_k=50, top_p=0.6),
                                   dict(temperature=1.0, top_k=5, top_p=1.0, min_p=0.1, typical_p=0.5,
                                        repetition_penalty=1.3)])
def test_distribution_figure_is_valid_plotly_without_per_call_checks(tiny, knobs):
    """The Step chart is built as plain plotly JSON (its per-property checks cost as much as the
    forward step): plotly, checking everything, accepts it unchanged, and each panel shows its stage."""
    import json

    import plotly.graph_objects as go

    from engine.decoding.plots import distribution_figure

    session = D.StepSession(tiny, PROMPT, "raw", seed=3)
    s = make(D.DecodingSettings, **knobs)
    session.step(s)
    view = session.view(s)
    fig = distribution_figure(view)
    spec = json.loads(fig.to_json())
    assert json.loads(go.Figure(spec).to_json()) == spec  # validated: raises on any unknown property
    top = view.top_ids(12)
    assert len(fig.data) == len(view.stages) == len(spec["layout"]["annotations"])
    for i, (bars, stage) in enumerate(zip(fig.data, view.stages)):
        axis = "" if i == 0 else str(i + 1)
        assert (bars.xaxis, bars.yaxis) == (f"x{axis}", f"y{axis}")
        kept = [t for t in top if bool(stage.kept[t])]
        assert [y for t, y in zip(top, bars.y) if bool(stage.kept[t])] == [float(stage.probs[t]) for t in kept]
        assert spec["layout"]["annotations"][i]["text"].startswith(f"<b>{i + 1}. ")
        assert spec["layout"][f"yaxis{axis}"]["range"][1] >= max(bars.y)
