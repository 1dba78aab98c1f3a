"""Rules that keep the server safe for a public Space."""
import re


from tests.conftest import ROOT

CODE = [p for d in ("engine", "tabs", "scripts", "bench") for p in (ROOT / d).rglob("*.py")] + [ROOT / "app.py"]


def test_no_remote_code_and_no_pickle_loading():
    for path in CODE:
        text = path.read_text()
        assert not re.search(r"trust_remote_code\s*=\s*True", text), path
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in m.group(1), f"{path}: torch.load without weights_only=True"


def test_engine_never_imports_gradio_and_tabs_never_import_model_libraries():
    for path in (ROOT / "engine").rglob("*.py"):
        assert not re.search(r"^\s*(import gradio|from gradio)", path.read_text(), re.M), path
    for path in (ROOT / "tabs").rglob("*.py"):
        assert not re.search(r"^\s*(import|from) (torch|transformers|diffusers|peft)\b", path.read_text(), re.M), path


def test_share_is_off_by_default_and_password_turns_on_login(monkeypatch):
    import app

    seen = {}

    class FakeDemo:
        def launch(self, **kwargs):
            seen.update(kwargs)

        def block_thread(self):
            pass

    monkeypatch.setattr(app, "build_demo", lambda engine: FakeDemo())
    monkeypatch.setenv("LLM_PLAYGROUND_PASSWORD", "s3cret")
    app.main(["--offline", "--device", "cpu"])
    assert seen["share"] is False
    assert seen["auth"] == ("student", "s3cret")
    assert seen["max_file_size"], "uploads must be size-limited"
    monkeypatch.delenv("LLM_PLAYGROUND_PASSWORD")
    app.main(["--offline", "--device", "cpu"])
    assert seen["auth"] is None


def test_registry_keys_are_not_paths():
    from engine.core.registry import ALL_SPECS

    for spec in ALL_SPECS:
        assert re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", spec.key), spec.key
