"""Server limits: one upload limit stated once, the training time cap set by the operator, and
download files that do not pile up in the temp folder."""
from __future__ import annotations

import re
import tempfile
import zipfile

import gradio as gr
import pandas as pd
import pytest
import torch

from engine.core.settings import MAX_UPLOAD_BYTES, make
from engine.training import lora as L
from engine.training import runner as R
from tabs import _ui
from tests.conftest import ROOT, tiny_causal_lm


@pytest.fixture(scope="module")
def demo(engine):
    import app

    return app.build_demo(engine)


def _fn(demo, api_name):
    return next(f for f in demo.fns.values() if f.api_name == api_name)


def test_one_upload_limit_for_the_app_and_the_lora_tab(demo):
    import app

    assert app.launch_kwargs()["max_file_size"] == MAX_UPLOAD_BYTES
    assert L.MAX_ADAPTER_BYTES == MAX_UPLOAD_BYTES
    labels = [b.label for b in demo.blocks.values() if isinstance(b, gr.File) and "adapter" in (b.label or "")]
    upload = next(lb for lb in labels if lb.startswith("Upload an adapter"))
    assert f"{MAX_UPLOAD_BYTES / 2**20:,.1f} MiB max" in upload
    # no other upload limit in MB is written anywhere in the code
    for path in [ROOT / "app.py", *(ROOT / "tabs").glob("*.py")]:
        assert not re.search(r"max_file_size\s*=\s*['\"]", path.read_text()), path


def test_the_app_flag_and_environment_set_the_training_time_cap(monkeypatch):
    import app

    class FakeDemo:
        def launch(self, **kwargs):
            pass

        def block_thread(self):
            pass

    engines = []
    monkeypatch.setattr(app, "build_demo", lambda engine: engines.append(engine) or FakeDemo())
    monkeypatch.delenv("LLM_PLAYGROUND_PASSWORD", raising=False)
    monkeypatch.setenv("LLM_PLAYGROUND_TRAIN_MINUTES", "3")
    app.main(["--offline", "--device", "cpu"])
    assert R.cap_seconds(engines[-1]) == 180
    app.main(["--offline", "--device", "cpu", "--train-minutes", "0.25"])
    assert R.cap_seconds(engines[-1]) == 15
    with pytest.raises(L.UserInputError, match="train-minutes"):
        app.main(["--offline", "--device", "cpu", "--train-minutes", "0"])


def _tiny_session():
    base = tiny_causal_lm(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    settings = make(L.LoraSettings, r=2, alpha=4)
    return L.LoraSession(model=L.session_model(base, settings), settings=settings, source="trained")


def test_repeated_downloads_do_not_grow_the_temp_folder(demo, tmp_path, monkeypatch):
    """20 rounds of a table CSV and an adapter zip, through the tabs' own listeners: each file is
    whole when the listener returns (Gradio copies it then), and the temp folder holds one
    scratch folder with at most SCRATCH_KEEP download folders, however many downloads there were."""
    session = _tiny_session()  # first: torch may make its own cache folder in the temp folder once
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(_ui, "_scratch_root", None)
    monkeypatch.setattr(_ui, "SCRATCH_KEEP", 5)
    csv_fn = next(f for f in demo.fns.values()
                  if any(isinstance(o, gr.DownloadButton) for o in f.outputs)
                  and isinstance(demo.blocks.get(f.targets[0][0]), gr.Dataframe))
    download = _fn(demo, "lora_download").fn
    for i in range(20):
        csv_path = csv_fn.fn(pd.DataFrame({"n": [i], "text": [f"row {i}"]}))["value"]
        assert f"row {i}" in open(csv_path, encoding="utf-8").read()
        zip_path = download(session)
        with zipfile.ZipFile(zip_path) as zf:
            assert sorted(zf.namelist()) == sorted([L.ADAPTER_FILE, L.CONFIG_FILE])
    entries = list(temp.iterdir())
    assert len(entries) == 1, entries  # the one scratch folder of this app
    assert len(list(entries[0].iterdir())) <= _ui.SCRATCH_KEEP


def test_no_code_makes_temp_files_outside_the_scratch_helper():
    """Every file written for a download goes through tabs/_ui.py scratch_dir (GIFs, PNGs, frames,
    sweeps, CSVs, adapters), every working folder of the engine through engine/core/scratch.py
    (removed when the work ends): a tempfile call anywhere else would leak files again."""
    pattern = re.compile(r"\btempfile\.(mkdtemp|mkstemp|NamedTemporaryFile|TemporaryDirectory|mktemp)\b")
    offenders = [str(p.relative_to(ROOT)) for d in ("engine", "tabs") for p in (ROOT / d).rglob("*.py")
                 if pattern.search(p.read_text())
                 and p not in (ROOT / "tabs" / "_ui.py", ROOT / "engine" / "core" / "scratch.py")]
    offenders += ["app.py"] if pattern.search((ROOT / "app.py").read_text()) else []
    assert not offenders, offenders
