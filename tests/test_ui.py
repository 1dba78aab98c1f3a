"""The glue every tab relies on: errors become clear gr.Error messages, out-of-memory empties
the model caches, unexpected crashes do not leak a stack trace, ZeroGPU wrapping is inert here."""
import gradio as gr
import pytest
import torch

from engine.core.cache import ModelCache
from engine.core.errors import ModelUnavailableError, UserInputError
from tabs._ui import on_gpu, user_errors


def test_user_errors_keep_their_message():
    @user_errors
    def bad(x):
        raise UserInputError(f"temperature = {x} is out of range: valid values are 0 to 2.")

    with pytest.raises(gr.Error, match="temperature = 5 is out of range: valid values are 0 to 2"):
        bad(5)

    @user_errors
    def missing():
        raise ModelUnavailableError("Install them with: pip install --no-deps x==1")

    with pytest.raises(gr.Error, match="pip install --no-deps x==1"):
        missing()


def test_unexpected_crash_is_a_short_message_not_a_trace():
    @user_errors
    def boom():
        raise KeyError("internal detail")

    with pytest.raises(gr.Error) as err:
        boom()
    assert "KeyError" in err.value.message and "still running" in err.value.message
    assert "internal detail" not in err.value.message


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   MemoryError()])
def test_out_of_memory_frees_the_caches_and_fails_cleanly(error):
    cache = ModelCache(10 * 2**20)
    cache.get_or_load("m", lambda: torch.nn.Linear(64, 64))

    @user_errors
    def oom():
        raise error

    with pytest.raises(gr.Error, match="ran out of memory"):
        oom()
    assert "m" not in cache and cache.used_bytes == 0


@pytest.mark.parametrize("error", [KeyError("out of memory"), RuntimeError("CUDA out of memory"),
                                   UserInputError("labels 'out of memory' ...")])
def test_out_of_memory_is_decided_by_type_never_by_text(error):
    """A user controls much of an error's text (a zero-shot template "{out of memory} {}" once
    raised KeyError('out of memory')): text alone must never empty everyone's model cache."""
    cache = ModelCache(10 * 2**20)
    cache.get_or_load("m", lambda: torch.nn.Linear(64, 64))

    @user_errors
    def fails():
        raise error

    with pytest.raises(gr.Error) as err:
        fails()
    assert "ran out of memory" not in err.value.message
    assert "m" in cache


def test_a_model_that_fails_to_load_with_memory_words_is_unavailable_not_out_of_memory(monkeypatch):
    import engine.core.models as models
    from engine import Engine
    from engine.core.registry import ALL_SPECS

    engine = Engine(device="cpu", offline=True)  # its own cache: the shared models stay loaded
    spec = next(s for s in ALL_SPECS if s.loader.startswith("engine.core.models:"))
    name = spec.loader.split(":")[1]

    def broken(*args, **kwargs):
        raise ValueError("weights say: out of memory")

    monkeypatch.setattr(models, name, broken)
    with pytest.raises(ModelUnavailableError, match="out of memory"):
        engine.load(spec.key)

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(models, name, oom)
    with pytest.raises(torch.OutOfMemoryError):
        engine.load(spec.key)


def test_user_errors_log_one_line_and_bugs_log_their_traceback(caplog):
    @user_errors
    def bad():
        raise UserInputError("text = 'a\nforged: line' is out of range")

    @user_errors
    def bug():
        raise KeyError("internal detail")

    with caplog.at_level("WARNING", logger="llm_playground"):
        with pytest.raises(gr.Error) as err:
            bad()
        assert err.value.print_exception is False  # Gradio prints no traceback for it
        with pytest.raises(gr.Error) as err:
            bug()
        assert err.value.print_exception is False  # logged below, once
    user, crash = caplog.records
    assert user.getMessage().count("\n") == 0 and "UserInputError: text = " in user.getMessage()
    assert user.exc_info is None and "Traceback" not in user.getMessage()
    assert "Traceback" in crash.getMessage() and "KeyError: 'internal detail'" in crash.getMessage()


def test_generators_are_wrapped_too():
    @user_errors
    def stream():
        yield 1
        raise UserInputError("max_new_tokens = 9999 is out of range: valid values are 1 to 512.")

    gen = stream()
    assert next(gen) == 1
    with pytest.raises(gr.Error, match="9999"):
        next(gen)


def test_on_gpu_is_inert_off_zerogpu():
    fn = lambda: 1  # noqa: E731
    assert on_gpu(fn) is fn


def test_on_zerogpu_model_work_gets_a_gpu_and_cheap_work_does_not(monkeypatch, engine):
    """With a stand-in `spaces` package and SPACES_ZERO_GPU set: every heavy listener and every
    example that runs a model is wrapped by spaces.GPU; tokenizing and the toy maths are not."""
    import dataclasses
    import functools
    import sys
    import types

    import app

    def gpu(duration=60):
        def decorate(fn):
            @functools.wraps(fn)
            def wrapped(*args, **kwargs):
                return fn(*args, **kwargs)
            return wrapped
        return decorate

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    # SPACES_ZERO_GPU=1 reaches the app as engine.config.zero_gpu (engine/core/config.py)
    monkeypatch.setattr(engine, "config", dataclasses.replace(engine.config, zero_gpu=True))
    demo = app.build_demo(engine)
    fns = [f for f in demo.fns.values() if f.fn is not None]
    heavy = [f for f in fns if f.concurrency_id == "model"]
    assert len(heavy) > 15 and all(getattr(f.fn, "_on_gpu", False) for f in heavy)
    examples = {ds.example_fn.__name__: getattr(ds.example_fn, "_on_gpu", False)
                for ds in demo.blocks.values() if getattr(ds, "example_fn", None) is not None}
    for name in ("run_zero_shot", "run_fill_mask", "run_ner", "run_generation", "show_next_token", "attention",
                 "embedding_similarity", "run"):  # run: perplexity and answer metrics
        assert examples.get(name) is True, (name, examples.get(name))
    for name in ("compare_tokenizers", "cross_entropy"):
        assert examples.get(name) is False, (name, examples.get(name))
