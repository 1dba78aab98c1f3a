"""engine/decoding/branch.py on the tiny random Llama: the alternatives shown for a generated
token are the model's top k there (recomputed with a plain forward pass), a branch continues from
exactly the original prefix + the picked token, and the same branch twice is the same text."""
from __future__ import annotations

import pytest
import torch

from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.decoding import branch as B
from engine.decoding import generation as D

PROMPT = "The capital of France is"
GREEDY = dict(do_sample=False, max_new_tokens=8, num_return_sequences=1)


def _generated(tm, **knobs) -> list[int]:
    result = D.generate(tm, PROMPT, make(D.DecodingSettings, **{**GREEDY, **knobs}), "raw")
    return [t.id for t in result.sequences[0].tokens]


def _prompt_ids(tm) -> list[int]:
    return tm.tokenizer(PROMPT, add_special_tokens=True).input_ids


@pytest.mark.parametrize("position", [0, 3, 7])
def test_alternatives_are_the_models_top_k_at_that_position(tiny_llama, position):
    gen = _generated(tiny_llama)
    point = B.alternatives(tiny_llama, PROMPT, "raw", gen, position, k=5)
    ids = torch.tensor([_prompt_ids(tiny_llama) + gen[:position]])  # (1, seq)
    with torch.no_grad():
        probs = tiny_llama.model(input_ids=ids).logits[0, -1].float().softmax(-1)  # (vocab,)
    top = probs.topk(5)
    assert [a.id for a in point.alternatives] == top.indices.tolist()
    assert [a.p for a in point.alternatives] == pytest.approx(top.values.tolist(), abs=1e-6)
    assert [a.rank for a in point.alternatives] == [1, 2, 3, 4, 5]
    assert point.chosen.id == gen[position] and point.chosen.p == pytest.approx(float(probs[gen[position]]), abs=1e-6)
    assert point.chosen.rank == 1  # greedy wrote the most likely token
    assert point.prefix_tokens == ids.shape[1]


def test_a_branch_continues_from_exactly_that_prefix(tiny_llama):
    gen = _generated(tiny_llama)
    position = 2
    alt = B.alternatives(tiny_llama, PROMPT, "raw", gen, position, k=3).alternatives[1].id  # the runner-up
    s = make(D.DecodingSettings, **GREEDY)
    br = B.branch(tiny_llama, PROMPT, "raw", gen, position, alt, s)
    prefix = _prompt_ids(tiny_llama) + gen[:position]
    assert br.prefix_ids == prefix and br.original == gen[position:]
    new = [t.id for t in br.tokens]
    assert new[0] == alt and len(new) == s.max_new_tokens - position
    # what greedy search writes after that exact prefix + the alternative, recomputed by transformers
    start = torch.tensor([prefix + [alt]])
    with torch.no_grad():
        out = tiny_llama.model.generate(start, attention_mask=torch.ones_like(start), do_sample=False,
                                        max_new_tokens=len(new) - 1, min_new_tokens=len(new) - 1)
    assert new[1:] == out[0, start.shape[1]:].tolist()


@pytest.mark.parametrize("knobs", [GREEDY, dict(GREEDY, do_sample=True, temperature=1.5, top_k=0, top_p=1.0)])
def test_the_same_branch_twice_is_the_same_text(tiny_llama, knobs):
    gen = _generated(tiny_llama)
    s = make(D.DecodingSettings, **knobs)
    alt = B.alternatives(tiny_llama, PROMPT, "raw", gen, 1, k=4).alternatives[3].id
    a, b = (B.branch(tiny_llama, PROMPT, "raw", gen, 1, alt, s) for _ in range(2))
    assert [t.id for t in a.tokens] == [t.id for t in b.tokens] and len(a.tokens) == 7


def test_bad_ids_and_positions_are_user_errors(tiny_llama):
    gen = _generated(tiny_llama)
    s = make(D.DecodingSettings, **GREEDY)
    assert B.parse_continuation(tiny_llama, "[1, 2,3]") == [1, 2, 3]
    for ids, match in (("1, x", "whole numbers"), ("", "valid: 1 to 256"), ([49152], "valid ids are 0 to 49151"),
                       ([-1], "valid ids are 0 to 49151"), ([True], "list of token ids")):
        with pytest.raises(UserInputError, match=match):
            B.alternatives(tiny_llama, PROMPT, "raw", ids, 0)
    with pytest.raises(UserInputError, match="valid values are 0 to 7"):
        B.alternatives(tiny_llama, PROMPT, "raw", gen, 8)
    with pytest.raises(UserInputError, match="valid values are 1 to 20"):
        B.alternatives(tiny_llama, PROMPT, "raw", gen, 0, k=50)
    with pytest.raises(UserInputError, match="valid values are 0 to 49151"):
        B.branch(tiny_llama, PROMPT, "raw", gen, 0, 10**6, s)
