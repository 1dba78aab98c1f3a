"""Merge-and-export on a tiny random Llama built from a config: the merged model gives the adapter
model's logits, loads in plain transformers, and the shared base weights are never written."""
from __future__ import annotations

import zipfile

import pytest
import torch

from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.training import lora as L
from engine.training import merge as M
from tests.conftest import tiny_causal_lm

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base():
    return tiny_causal_lm(vocab_size=512, intermediate_size=48, max_position_embeddings=128, tie_word_embeddings=True)


@pytest.fixture(scope="module")
def adapted(base):
    """An adapter with every B non-zero (a fresh one is the base: B = 0), on every linear layer."""
    s = make(L.LoraSettings, r=4, alpha=8, dropout=0.0, target_modules=list(L.LINEAR_NAMES))
    model = L.session_model(base, s)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


IDS = torch.tensor([[5, 17, 300, 42, 7, 99, 250, 3]])


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits  # (1, 8, vocab)


def test_merged_logits_equal_the_adapters_and_the_shared_weights_are_not_written(base, adapted):
    before, with_adapter = logits(base), logits(adapted)
    assert not torch.allclose(with_adapter, before, atol=1e-3)  # the adapter does change the outputs
    merged = M.merged_copy(adapted, "float32")
    assert type(merged).__name__ == "LlamaForCausalLM" and not any("lora_" in n for n, _ in merged.named_parameters())
    assert torch.allclose(logits(merged), with_adapter, atol=1e-5, rtol=0)
    assert torch.equal(logits(base), before) and torch.equal(logits(adapted), with_adapter)  # both only read
    q = merged.model.layers[0].self_attn.q_proj.weight
    assert q.data_ptr() != base.model.layers[0].self_attn.q_proj.weight.data_ptr()


def test_exported_folder_loads_in_plain_transformers(base, adapted, smollm2_tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    zpath = M.export_merged(adapted, smollm2_tokenizer, tmp_path / "f32", dtype="float32")
    assert sorted(p.name for p in (tmp_path / "f32").iterdir()) == ["merged-model.zip"]  # the folder is gone
    with zipfile.ZipFile(zpath) as zf:
        names = set(zf.namelist())
        assert {f"{M.FOLDER}/config.json", f"{M.FOLDER}/model.safetensors", f"{M.FOLDER}/tokenizer.json"} <= names
        zf.extractall(tmp_path / "unzipped")
    folder = tmp_path / "unzipped" / M.FOLDER
    loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert torch.allclose(logits(loaded), logits(adapted), atol=1e-5, rtol=0)
    assert AutoTokenizer.from_pretrained(folder)("Life is")["input_ids"] == smollm2_tokenizer("Life is")["input_ids"]
    # the app's export: bfloat16, half the bytes, the same model to bfloat16's precision
    half = M.export_merged(adapted, smollm2_tokenizer, tmp_path / "bf16")
    with zipfile.ZipFile(half) as zf:
        zf.extractall(tmp_path / "half")
    small = AutoModelForCausalLM.from_pretrained(tmp_path / "half" / M.FOLDER, dtype="auto").eval()
    assert small.dtype == torch.bfloat16
    assert torch.allclose(logits(small).float(), logits(adapted), atol=0.05)
    weights = {n: zipfile.ZipFile(p).getinfo(f"{M.FOLDER}/model.safetensors").file_size for n, p in
               (("f32", zpath), ("bf16", half))}
    n = M.weight_count(base)
    assert M.merged_bytes(adapted, "float32") == 4 * n and abs(weights["f32"] - 4 * n) < 20_000
    assert abs(weights["bf16"] - 2 * n) < 20_000


def test_too_big_or_unknown_dtype_is_refused_before_any_copy(adapted, smollm2_tokenizer, tmp_path):
    with pytest.raises(UserInputError, match=r"would be [\d,]+ bytes in bfloat16: the limit is 1,000 bytes"):
        M.export_merged(adapted, smollm2_tokenizer, tmp_path, max_bytes=1000)
    with pytest.raises(UserInputError, match="dtype = 'int8' is not valid: choose bfloat16, float32"):
        M.export_merged(adapted, smollm2_tokenizer, tmp_path, dtype="int8")
    assert list(tmp_path.iterdir()) == []


def test_the_tabs_merged_download_is_whole_when_served_then_removed(adapted, smollm2_tokenizer, monkeypatch, tmp_path):
    """Gradio copies a yielded file into its own cache before it asks the generator for more: the zip
    is whole at the yield, and the listener's folder is gone once the generator ends."""
    import tempfile
    from pathlib import Path

    from tabs import _ui
    from tabs import lora as tab

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(_ui, "_scratch_root", None)
    settings = make(L.LoraSettings, r=4, alpha=8, target_modules=list(L.LINEAR_NAMES))
    session = L.LoraSession(model=adapted, tokenizer=smollm2_tokenizer, settings=settings, source="trained")
    served = tab.do_merge(session)
    path, md = next(served)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None and f"{M.FOLDER}/model.safetensors" in zf.namelist()
    assert f"bfloat16: {Path(path).stat().st_size / 2**20:,.0f} MiB" in md and "8/4·B·A" in md
    with pytest.raises(StopIteration):
        next(served)
    assert not Path(path).parent.exists()
    with pytest.raises(UserInputError, match="no adapter in this session"):
        next(tab.do_merge(L.LoraSession()))
