import threading
import time

import pytest
import torch

from engine.core.cache import ModelCache, estimate_bytes

MB = 2**20


def fake_model(mb: int) -> torch.nn.Module:
    m = torch.nn.Module()
    m.w = torch.nn.Parameter(torch.zeros(mb * MB // 4))  # float32: 4 bytes each
    return m


def test_estimate_counts_parameters_and_tied_weights_once():
    m = torch.nn.Linear(256, 256, bias=False)
    assert estimate_bytes(m) == 256 * 256 * 4
    pair = torch.nn.ModuleDict({"a": m, "b": m})
    assert estimate_bytes(pair) == 256 * 256 * 4


def test_lru_eviction_respects_byte_budget():
    cache = ModelCache(25 * MB)
    for name in "abc":
        cache.get_or_load(name, lambda: fake_model(10))
    # 3 x 10 MB does not fit in 25 MB: the least recently used ("a") went
    assert "a" not in cache and "b" in cache and "c" in cache
    assert cache.used_bytes <= cache.budget_bytes
    assert cache.evictions == 1
    cache.get_or_load("b", lambda: pytest.fail("b is cached"))  # touch b: now c is the oldest
    cache.get_or_load("d", lambda: fake_model(10))
    assert "c" not in cache and "b" in cache and "d" in cache
    st = cache.stats()
    assert (st["hits"], st["misses"], st["evictions"]) == (1, 4, 2)


def test_eviction_really_frees_the_memory():
    import weakref

    cache = ModelCache(15 * MB)
    model = fake_model(10)
    ref = weakref.ref(model)
    cache.get_or_load("a", lambda: model)
    del model
    cache.get_or_load("b", lambda: fake_model(10))
    assert ref() is None, "the evicted model is still referenced"


def test_model_larger_than_budget_is_kept_alone():
    cache = ModelCache(5 * MB)
    cache.get_or_load("small", lambda: fake_model(1))
    cache.get_or_load("big", lambda: fake_model(8))
    assert "big" in cache and "small" not in cache


def test_concurrent_first_requests_load_once():
    cache = ModelCache(100 * MB)
    calls = []

    def loader():
        calls.append(1)
        time.sleep(0.3)
        return fake_model(1)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_load("k", loader))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert cache.misses == 1 and cache.hits == 7


def test_different_keys_load_in_parallel():
    cache = ModelCache(100 * MB)

    def loader():
        time.sleep(0.4)
        return fake_model(1)

    threads = [threading.Thread(target=cache.get_or_load, args=(k, loader)) for k in "abcd"]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.perf_counter() - t0 < 1.2  # not 4 x 0.4 s in series


def test_failed_load_is_counted_and_retried():
    cache = ModelCache(10 * MB)

    def broken():
        raise OSError("corrupt file")

    with pytest.raises(OSError):
        cache.get_or_load("x", broken)
    assert cache.loads_failed == 1 and "x" not in cache
    cache.get_or_load("x", lambda: fake_model(1))
    assert "x" in cache


@pytest.mark.slow  # loads the real MiniLM
def test_key_includes_device_and_dtype(engine):
    enc = engine.load("minilm-l6")
    keys = [e["key"] for e in engine.cache.stats()["entries"]]
    assert any(k.startswith("minilm-l6 / cpu / float32") for k in keys)
    assert engine.load("minilm-l6") is enc


def test_free_all_empties_every_cache():
    from engine.core.cache import free_all

    a, b = ModelCache(50 * MB), ModelCache(50 * MB)
    a.get_or_load("x", lambda: fake_model(1))
    b.get_or_load("y", lambda: fake_model(1))
    free_all()
    assert a.used_bytes == 0 and b.used_bytes == 0
