"""engine/decoding/conversation.py and kvcache.py: the prompt sent is the chat template of the
kept history; whole turns are dropped from the oldest until it fits; the model repeats a fact
while its turn is sent and cannot once it is dropped; the KV cache's size is its tensors' bytes."""
from __future__ import annotations

import pytest

from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.decoding import conversation as C
from engine.decoding import generation as D
from engine.decoding.kvcache import kv_size

HISTORY = [{"user": f"Message {i}: tell me about the number {i * 7}.", "assistant": f"The number {i * 7} is "
            f"{'even' if i % 2 else 'odd'} and has {len(str(i * 7))} digits."} for i in range(1, 7)]


def test_sent_prompt_is_the_template_of_the_kept_history_and_fits(tiny_llama):
    """SmolLM2's tokenizer and chat template; a tiny model stands in (512 positions >= every window)."""
    tok = tiny_llama.tokenizer
    seen_drops = set()
    for window in (64, 96, 128, 160, 200, 256, 400):
        s = make(C.ChatSettings, context_window=window, max_new_tokens=24)
        sent = C.fit_history(tiny_llama, HISTORY, "And the number 50?", s)
        kept = HISTORY[sent.kept_from:]
        msgs = [m for t in kept for m in ({"role": "user", "content": t["user"]},
                                          {"role": "assistant", "content": t["assistant"]})]
        want = tok.apply_chat_template(msgs + [{"role": "user", "content": "And the number 50?"}], tokenize=False,
                                       add_generation_prompt=True)
        assert sent.text == want and sent.kept == kept and sent.dropped == HISTORY[:sent.kept_from]
        assert sent.tokens == len(tok(want, add_special_tokens=False).input_ids)
        assert sent.tokens + 24 <= window  # fits
        if sent.kept_from:  # and no fewer dropped turns would fit
            longer = tok.apply_chat_template(C.messages(HISTORY[sent.kept_from - 1:], "And the number 50?"),
                                             tokenize=False, add_generation_prompt=True)
            assert len(tok(longer, add_special_tokens=False).input_ids) + 24 > window
        assert sum(sent.turn_tokens) + sent.base_tokens == C.count(tiny_llama, C.render(tiny_llama, HISTORY,
                                                                                         "And the number 50?"))
        seen_drops.add(sent.kept_from)
    assert 0 in seen_drops and len(seen_drops) >= 4  # from all kept to most dropped


def test_too_small_a_window_and_bad_history_are_user_errors(tiny_llama):
    with pytest.raises(UserInputError, match="context window = 64"):
        C.fit_history(tiny_llama, [], "word " * 60, make(C.ChatSettings, context_window=64, max_new_tokens=24))
    with pytest.raises(UserInputError, match="context_window"):
        make(C.ChatSettings, context_window=32)
    with pytest.raises(UserInputError, match="turns"):
        C.check_history(HISTORY * 3)
    with pytest.raises(UserInputError, match="turn 1"):
        C.check_history([{"user": "hi"}])


def test_forgetting_example_remembers_then_forgets(smollm):
    big, small = C.FORGETTING_WINDOWS
    remembers = C.play(smollm, C.FORGETTING, make(C.ChatSettings, context_window=big,
                                                  max_new_tokens=C.FORGETTING_ANSWER))
    assert remembers[-1].sent.kept_from == 0 and C.FACT in remembers[-1].reply
    forgets = C.play(smollm, C.FORGETTING, make(C.ChatSettings, context_window=small,
                                                max_new_tokens=C.FORGETTING_ANSWER))
    last = forgets[-1]
    assert last.sent.kept_from == 1 and C.FACT in last.sent.dropped[0]["user"]
    assert C.FACT not in last.sent.text and C.FACT not in last.reply
    assert len(last.history) == 3 and last.history[-1]["assistant"] == last.reply


def test_kv_cache_size_equals_its_tensors_bytes(smollm):
    session = D.StepSession(smollm, "The capital of France is", "raw")
    g = make(D.DecodingSettings, do_sample=False)
    for _ in range(3):
        session.step(g)
    size = kv_size(smollm, session.cache)
    cfg = smollm.model.config
    tensors = [t for layer in session.cache.layers for t in (layer.keys, layer.values)]
    assert len(tensors) == 2 * cfg.num_hidden_layers
    by_hand = sum(t.numel() * t.element_size() for t in tensors)
    assert size.tokens == session.ids.numel() == tensors[0].shape[-2]
    assert size.bytes == by_hand == size.formula
    assert size.formula == 2 * 30 * 3 * 64 * session.ids.numel() * 4  # SmolLM2-135M in fp32


def test_the_system_prompt_is_sent_and_the_chat_knobs_are_the_ones_used(tiny_llama):
    """The typed system prompt replaces the template's default, on every turn; temperature 0 is
    greedy, above 0 the reply is drawn with the knobs and the seed (the same seed, the same reply)."""
    tok = tiny_llama.tokenizer
    sent = C.fit_history(tiny_llama, HISTORY[:1], "Hi", make(C.ChatSettings), system="You are a pirate.")
    want = tok.apply_chat_template([{"role": "system", "content": "You are a pirate."}, *C.messages(HISTORY[:1], "Hi")],
                                   tokenize=False, add_generation_prompt=True)
    assert sent.text == want and "You are a pirate." in want and "SmolLM" not in want
    assert "SmolLM" in C.fit_history(tiny_llama, [], "Hi", make(C.ChatSettings), system="  ").text  # empty: default
    greedy = C.chat_turn(tiny_llama, [], "Hi", make(C.ChatSettings, max_new_tokens=8), system="Be brief.")
    ids, _ = C.greedy_reply(tiny_llama, greedy.sent.ids, 8)
    assert greedy.reply == tok.decode(ids, skip_special_tokens=True).strip()
    hot = make(C.ChatSettings, max_new_tokens=8, temperature=1.5, top_p=0.9, seed=7)
    a, b = (C.chat_turn(tiny_llama, [], "Hi", hot, system="Be brief.").reply for _ in range(2))
    other = C.chat_turn(tiny_llama, [], "Hi", make(C.ChatSettings, max_new_tokens=8, temperature=1.5, top_p=0.9,
                                                    seed=8), system="Be brief.").reply
    assert a == b and a != greedy.reply and other != a
    s = hot.sampling()
    assert (s.temperature, s.top_p, s.top_k, s.do_sample, s.seed) == (1.5, 0.9, 0, True, 7)
    with pytest.raises(UserInputError, match="system prompt"):
        C.fit_history(tiny_llama, [], "Hi", make(C.ChatSettings), system="x" * 2000)
