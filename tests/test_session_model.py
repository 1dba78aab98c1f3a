"""A model pre-trained in one browser session opens in Decoding, Inside the model and Evaluation for
that session only (engine.core.sessions, Engine.load(SESSION_MODEL_KEY)). Tiny models built from a
config on a small text: no training, no real model."""
from __future__ import annotations

import math

import pytest

from engine.core import sessions
from engine.core.errors import UserInputError

KEY = sessions.SESSION_MODEL_KEY
TEXT = "The cat sat on the mat. The dog ran to the park and back again. " * 200


def _session(arch: str = "llama"):
    from engine.core.settings import make
    from engine.pretraining import model as pt_model, train as pt_train

    s = make(pt_model.PretrainSettings, tokenizer="char", arch=arch, layers=2, width=32, heads=2, context=32,
             batch_size=4, max_steps=2)
    sess = pt_train.new_session(pt_train.prepare(TEXT, s), s, "The ")
    sess.steps_done = 1  # as after a run: the store takes what the tab would give it
    return sess


@pytest.fixture(scope="module")
def engine_a():
    """An engine whose store holds session "A"'s Llama-style model."""
    from engine import Engine
    from engine.pretraining import train as pt_train

    engine = Engine(device="cpu", offline=True)
    tm, nbytes = pt_train.session_model(_session())
    assert engine.session_models.put("A", tm, nbytes) and nbytes > 0
    return engine


def test_the_next_token_view_lens_journey_and_perplexity_run_on_the_session_model(engine_a):
    from engine import inside
    from engine.decoding.generation import StepSession
    from engine.decoding.generation import DecodingSettings
    from engine.evaluation import metrics

    with sessions.acting_for("A"):
        tm = engine_a.load(KEY)
        assert tm.source.spec.title == sessions.SESSION_MODEL_TITLE and tm.model.config.num_hidden_layers == 2
        view = StepSession(tm, "The ca", "raw", seed=0).view(DecodingSettings())
        assert view.prompt_tokens == 6 and view.context_max == 32  # one token per character; the model's window
        assert abs(float(view.stages[0].probs.sum()) - 1) < 1e-4 and len(view.stages[0].probs) == tm.model.config.vocab_size
        journey, tr = inside.journey(engine_a, "The cat", KEY)
        assert tr.title == sessions.SESSION_MODEL_TITLE and tr.n == 7
        lens, _ = inside.lens(engine_a, "The cat sat", 4, KEY)
        assert lens.layers == [1, 2] and abs(float(lens.last_probs.sum()) - 1) < 1e-4
        rep = metrics.perplexity(tm.model, tm.tokenizer, "The cat sat on the mat.", 32, 16, KEY)
        assert rep.n_tokens == 22 and math.isfinite(rep.perplexity) and rep.perplexity > 1
        assert inside.model_dims(engine_a, KEY) == (2, 2)


def test_another_session_and_a_call_without_one_are_refused(engine_a):
    for who in ("B", None):
        with sessions.acting_for(who), pytest.raises(UserInputError, match="no pre-trained model yet"):
            engine_a.load(KEY)
    with sessions.acting_for("B"), pytest.raises(UserInputError, match="no pre-trained model yet"):
        from engine import inside

        inside.lens(engine_a, "The cat", 4, KEY)


def test_views_that_cannot_work_on_it_refuse_by_name(engine_a):
    from engine import inside
    from engine.decoding import generation
    from engine.pretraining import train as pt_train

    with sessions.acting_for("A"):
        with pytest.raises(UserInputError, match="chat template, and session-pretrained has none"):
            generation.format_prompt(engine_a.load(KEY), "Hi", "chat")
        with pytest.raises(UserInputError, match="variant = 'int8' is not available"):
            engine_a.load(KEY, variant="int8")
    engine_a.session_models.put("G", *pt_train.session_model(_session("gpt2")))
    with sessions.acting_for("G"):  # GPT-2 has a row in engine/core/arch.py now: its journey is shown
        jr, tr = inside.journey(engine_a, "The cat", KEY)
    assert tr.arch.name == "gpt2" and not tr.arch.rope and jr.picked_id == int(tr.logits[-1].argmax())


def test_the_store_drops_the_least_recently_used_session():
    store = sessions.SessionModels(max_sessions=2, max_bytes=100)
    store.put("a", "model a", 10)
    store.put("b", "model b", 10)
    assert store.get("a") == "model a"  # a is now the most recent
    store.put("c", "model c", 10)
    assert "b" not in store and store.get("a") == "model a" and store.get("c") == "model c"
    store.put("c", "model c2", 91)  # one model per session; a (10) + 91 is over 100 bytes: a goes
    assert len(store) == 1 and store.get("c") == "model c2" and store.evictions == 2
    assert not store.put("d", "too big", 101) and not store.put(None, "no session", 1)


def test_user_errors_tells_the_engine_the_requests_session():
    from gradio.context import LocalContext

    from tabs._ui import user_errors

    class Request:
        session_hash = "hash-1"

    def plain():
        return sessions.current()

    def stream():
        yield sessions.current()
        yield sessions.current()

    token = LocalContext.request.set(Request())
    try:
        assert user_errors(plain)() == "hash-1"
        assert list(user_errors(stream)()) == ["hash-1", "hash-1"]
    finally:
        LocalContext.request.reset(token)
    assert user_errors(plain)() is None and sessions.current() is None
