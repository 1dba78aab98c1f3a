"""Shared prompt prefill (engine/decoding/prefill.py): a Step session on a prompt another session
already ran starts from a copy of that forward's logits and KV cache; its text is the one its own
prefill gives, and one session's steps never change what another starts from."""
from __future__ import annotations

import pytest
import torch

from engine.decoding import generation, prefill
from engine.decoding.generation import DecodingSettings, StepSession

PROMPT = "Once upon a time, in a small village,"
GREEDY = DecodingSettings(do_sample=False)


@pytest.fixture
def shared(monkeypatch):
    cache = prefill.PrefillCache()
    monkeypatch.setattr(prefill, "SHARED", cache)
    return cache


def _steps(session, n=6) -> list[int]:
    return [session.step(GREEDY)["id"] for _ in range(n)]


def test_a_second_session_reuses_the_prefill_and_writes_the_same_text(smollm, shared):
    own = StepSession(smollm, PROMPT)
    first = StepSession(smollm, PROMPT, shared_prefill=True)
    assert first.forward_tokens == [first.prompt_len] and shared.misses == 1
    second = StepSession(smollm, PROMPT, shared_prefill=True)
    assert second.forward_tokens == [0] and shared.hits == 1  # no forward over the prompt
    assert torch.equal(second.logits, first.logits) and torch.allclose(second.logits, own.logits, atol=1e-5)
    assert second.cache is not first.cache
    want = _steps(own)
    assert _steps(first) == want  # the first session's steps grow its own cache only
    third = StepSession(smollm, PROMPT, shared_prefill=True)  # starts from the prompt, not from first's steps
    assert third.forward_tokens == [0] and third.ids.numel() == third.prompt_len
    assert _steps(third) == want and _steps(second) == want
    assert third.forward_tokens == [0] + [1] * 6  # each step still one cached forward of one token


def test_the_kept_prefills_stay_within_the_budget(smollm):
    ids = smollm.tokenizer(PROMPT, return_tensors="pt").input_ids
    cfg = smollm.model.config
    per_token = cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 4
    s = StepSession(smollm, PROMPT)
    assert prefill.kv_bytes(s.cache) == per_token * ids.shape[1]  # fp32 keys and values of every layer
    one = per_token * ids.shape[1] + s.logits.numel() * 4
    cache = prefill.PrefillCache(budget_bytes=2 * one + 10)
    for k in range(3):  # three prompts of the same length: the least recently used goes
        cache.put(smollm.model, (k,) + tuple(ids[0, 1:].tolist()), s.logits, s.cache)
    assert cache.held_bytes(smollm.model) == 2 * one
    assert cache.get(smollm.model, (0,) + tuple(ids[0, 1:].tolist())) is None
    assert cache.get(smollm.model, (2,) + tuple(ids[0, 1:].tolist())) is not None
    small = prefill.PrefillCache(budget_bytes=one - 1)
    small.put(smollm.model, tuple(ids[0].tolist()), s.logits, s.cache)  # larger than the whole budget: not kept
    assert small.held_bytes(smollm.model) == 0


def test_the_decoding_tab_shares_the_prefill_between_students(smollm, shared, monkeypatch):
    import tabs.decoding as D

    slot_a, slot_b = D.StepSlot(), D.StepSlot()
    a = slot_a.current(smollm, PROMPT, "raw", 42)
    b = slot_b.current(smollm, PROMPT, "raw", 42)
    assert a is not b and a.forward_tokens == [a.prompt_len] and b.forward_tokens == [0]
    assert generation.view_from_logits(smollm, b.logits, b.ids, GREEDY).greedy_id == \
        generation.view_from_logits(smollm, a.logits, a.ids, GREEDY).greedy_id
