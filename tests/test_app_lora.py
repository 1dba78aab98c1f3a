"""The LoRA tab through its API (gradio_client), on the real embedded SmolLM2: a 2-step training,
base vs adapted, the adapter zip, errors, and two sessions that do not see each other's adapter."""
from __future__ import annotations

import zipfile

import pytest
import torch

from engine.training import lora as L
from engine.training import merge as M
from engine.training import runner as R
from tabs import _ui

# /lora_train's arguments by the API's names: source, pasted, upload, r, alpha, dropout, targets, lr, steps, ...
SMALL = dict(src="quotes", text="", file=None, r=4, alpha=8, dropout=0.0, tmods=["q_proj", "v_proj"], lr=0.002,
             steps=2, batch=2, max_len=24, seed_v=42)


pytestmark = pytest.mark.usefixtures("one_thread")


def base_logits(smollm):
    ids = smollm.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return smollm.model(input_ids=ids).logits


def test_train_compare_download_and_the_base_stays_the_same(client, smollm, tmp_path):
    before = base_logits(smollm)
    status, plot = client.predict(**dict(SMALL, val=0.001), api_name="/lora_train")  # 2 of 2,616 lines held out
    assert "Done" in status and "2 / 2" in status, status
    assert "on 2 held-out lines" in status and "2,614 training examples" in status, status
    base, adapted, md = client.predict(text="Life is", seed_v=7, n_new=12, temp=0.0, api_name="/lora_compare")
    assert base.startswith("Life is") and adapted.startswith("Life is")
    assert "Base (SmolLM2-135M-Instruct):" in md and "Adapted" in md  # the session's base, named
    assert torch.equal(base_logits(smollm), before)  # the shared model did not move
    path = client.predict(api_name="/lora_download")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted([L.ADAPTER_FILE, L.CONFIG_FILE])
    # the full model with the adapter merged in: served whole, the app's own copy removed once served
    path, md = client.predict(api_name="/lora_merge")
    with zipfile.ZipFile(path) as zf:
        weights = zf.getinfo(f"{M.FOLDER}/model.safetensors").file_size
        assert f"{M.FOLDER}/config.json" in zf.namelist() and f"{M.FOLDER}/tokenizer.json" in zf.namelist()
    assert abs(weights - 2 * M.weight_count(smollm.model)) < 100_000 and "bfloat16" in md  # ~257 MiB
    assert not [p for p in _ui._scratch_root.iterdir() if p.name.startswith("lora-merged")]
    assert torch.equal(base_logits(smollm), before)


def test_bad_values_are_named(client):
    bad = dict(SMALL, r=0)  # refused by the slider's own check or by the engine, naming the value and range
    with pytest.raises(Exception, match=r"(r = 0 .*1 to 64|Value 0 is less than minimum value 1)"):
        client.predict(**bad, api_name="/lora_train")
    bad = dict(SMALL, tmods=["lm_head"])
    with pytest.raises(Exception, match="lm_head"):
        client.predict(**bad, api_name="/lora_train")


def test_a_new_session_has_no_adapter(app_url):
    from gradio_client import Client

    fresh = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="no adapter in this session"):
        fresh.predict(text="Life is", seed_v=7, n_new=8, temp=0.0, api_name="/lora_compare")


def test_a_training_stops_at_the_operators_time_cap_and_keeps_its_adapter(client, engine, monkeypatch):
    import dataclasses

    # the operator's cap, as the running app reads it: any first step takes longer than this
    monkeypatch.setattr(engine, "config", dataclasses.replace(engine.config, train_minutes=1e-6 / 60))
    status, plot = client.predict(**dict(SMALL, val=0.0), api_name="/lora_train")  # no held-out scoring
    assert "time cap" in status and "1 / 2" in status and "kept" in status, status
    base, adapted, md = client.predict(text="Life is", seed_v=7, n_new=8, temp=0.0, api_name="/lora_compare")
    assert "trained 1 steps" in md
