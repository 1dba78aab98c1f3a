"""engine/decoding/beam.py: beam search written out step by step equals transformers'
generate(num_beams=...): the best beam's tokens and its score; one beam is greedy."""
from __future__ import annotations

import pytest
import torch

from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.decoding import beam as B
from engine.decoding import generation as D


def _hf(tm, prompt, mode, s):
    """transformers' own beam search: (new tokens up to the first EOS, its sequence score)."""
    _, ids = D.encode(tm, prompt, mode, reserve=s.max_new_tokens)
    out = tm.model.generate(ids, attention_mask=torch.ones_like(ids), return_dict_in_generate=True,
                            output_scores=True, **B.generate_kwargs(s))
    new = out.sequences[0, ids.shape[1]:].tolist()
    eos = D.eos_ids(tm)
    end = next((i for i, t in enumerate(new) if t in eos), None)
    score = getattr(out, "sequences_scores", None)  # num_beams=1 runs greedy search: no beam score
    return (new if end is None else new[:end + 1]), (None if score is None else float(score[0]))


def test_one_beam_equals_greedy_and_transformers(smollm):
    for prompt, mode, n in (("The capital of France is", "raw", 8), ("What is the capital of France?", "chat", 24)):
        s = make(B.BeamSettings, num_beams=1, max_new_tokens=n)
        ours = B.beam_search(smollm, prompt, s, mode).best.ids
        greedy = D.generate(smollm, prompt, make(D.DecodingSettings, do_sample=False, max_new_tokens=n,
                                                 num_return_sequences=1), mode)
        assert ours == [t.id for t in greedy.sequences[0].tokens]
        assert ours == _hf(smollm, prompt, mode, s)[0]
    assert ours[-1] in D.eos_ids(smollm)  # the chat answer ended at EOS, as greedy does


@pytest.mark.parametrize("prompt,mode,knobs", [
    ("The capital of France is", "raw", dict(num_beams=4, max_new_tokens=12)),
    ("Once upon a time", "raw", dict(num_beams=3, length_penalty=2.0, no_repeat_ngram_size=2, max_new_tokens=12)),
    ("What is 2+2?", "chat", dict(num_beams=3, length_penalty=-1.0, early_stopping="true", max_new_tokens=14)),
    ("Name a colour.", "chat", dict(num_beams=4, early_stopping="never", repetition_penalty=1.3, max_new_tokens=14)),
])
def test_best_beam_equals_transformers_generate(smollm, prompt, mode, knobs):
    s = make(B.BeamSettings, **knobs)
    result = B.beam_search(smollm, prompt, s, mode)
    want_ids, want_score = _hf(smollm, prompt, mode, s)
    assert result.best.ids == want_ids
    assert result.best.final == pytest.approx(want_score, abs=1e-3)
    # the score is the sum of the token log probs over length ** length_penalty, by hand
    assert result.best.final == pytest.approx(result.best.score / len(result.best.ids) ** s.length_penalty, rel=1e-5)
    finals = [h.final for h in result.finished]
    assert finals == sorted(finals, reverse=True) and len(finals) <= s.num_beams
    # every step: kept beams are the best candidates that did not end, and extend their parent
    for prev, st in zip([None, *result.steps], result.steps):
        kept = [c for c in st.candidates if c.status == "kept"]
        assert [c.score for c in kept] == sorted((c.score for c in kept), reverse=True)
        assert len(st.beams) == len(kept) <= s.num_beams
        for c, beam in zip(kept, st.beams):
            parent_score = 0.0 if prev is None else prev.beams[c.parent].score
            assert c.score == pytest.approx(parent_score + c.logprob, abs=1e-3)
            parent_ids = [] if prev is None else prev.beams[c.parent].ids
            assert beam.ids == parent_ids + [c.token]
    if s.no_repeat_ngram_size:
        ids = result.best.ids
        grams = [tuple(ids[i:i + 2]) for i in range(len(ids) - 1)]
        assert len(grams) == len(set(grams))


def test_ngram_ban_equals_transformers_processor():
    from transformers import NoRepeatNGramLogitsProcessor

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 6, (3, 14), generator=g)  # a small vocabulary: many repeated n-grams
    scores = torch.randn(3, 6, generator=g)
    for n in (1, 2, 3, 4, 20):
        assert torch.equal(B.ban_repeated_ngrams(scores, ids, n), NoRepeatNGramLogitsProcessor(n)(ids, scores)), n


def test_bad_beam_settings_name_the_value_and_range():
    with pytest.raises(UserInputError, match="num_beams.*1.*8"):
        make(B.BeamSettings, num_beams=9)
    with pytest.raises(UserInputError, match="early_stopping"):
        make(B.BeamSettings, early_stopping="sometimes")
    with pytest.raises(UserInputError, match="beams"):
        make(B.BeamSettings, beams=2)
