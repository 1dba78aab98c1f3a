"""The one architecture table (engine/core/arch.py) on six decoder families: tiny random models built
from configs, saved with save_pretrained and added through the operator's --model path, then read by
Inside the model (logit lens, block Q/K/V) and LoRA. Invariants against the model's own outputs."""
from types import SimpleNamespace

import numpy as np

import pytest
import torch

from engine import Engine, inside
from engine.core import arch as A
from engine.core.config import AppConfig
from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.inside.block import block_view
from engine.training import lora as L
from tests.conftest import tiny_causal_lm

pytestmark = pytest.mark.usefixtures("one_thread")

# family -> (model type, config overrides, facts the table must report)
FAMILIES = {
    "llama": ("llama", {}, dict(positions="rope", bias=False, fused_qkv=False, tied=False)),
    "qwen2": ("qwen2", dict(tie_word_embeddings=False), dict(positions="rope", bias=True, fused_qkv=False)),
    "gemma3": ("gemma3_text", dict(head_dim=8, query_pre_attn_scalar=16, sliding_window=3,
                                   layer_types=["sliding_attention", "full_attention"]),
               dict(positions="rope", head_norms=True, tied=True)),
    "gpt2": ("gpt2", dict(n_inner=64), dict(positions="learned", bias=True, fused_qkv=True, tied=True)),
    "phi3": ("phi3", dict(partial_rotary_factor=0.5, pad_token_id=0), dict(positions="rope", fused_qkv=True)),
    "mistral": ("mistral", dict(sliding_window=4), dict(positions="rope", bias=False)),
    "qwen3": ("qwen3", dict(head_dim=8, tie_word_embeddings=False), dict(positions="rope", head_norms=True)),
}
PROMPT = "The quick brown fox jumps over the lazy dog"  # 9 tokens: longer than the sliding windows above


@pytest.fixture(scope="module")
def engine(tmp_path_factory, smollm2_tokenizer):
    """An engine with one tiny model per family added as folders, as --model adds them."""
    root = tmp_path_factory.mktemp("families")
    folders = []
    for name, (model_type, overrides, _) in FAMILIES.items():
        folder = root / name
        tiny_causal_lm(model_type, max_position_embeddings=64, **overrides).save_pretrained(folder)
        smollm2_tokenizer.save_pretrained(folder)
        folders.append(str(folder))
    return Engine(config=AppConfig(device="cpu", offline=True, models=tuple(folders), home=str(root)),
                  cache_bytes=2**30)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_table_reads_each_family(engine, family):
    model_type, _, facts = FAMILIES[family]
    tm = engine.load(f"own-{family}")
    got = A.arch_of(tm.model).facts()
    assert got["model_type"] == model_type and got["family"] in (family, "llama")
    assert {k: got[k] for k in facts} == facts
    assert f"own-{family}" in inside.models(engine)


@pytest.mark.parametrize("family", FAMILIES)
def test_lens_and_recomputed_attention_equal_the_models_own(engine, family):
    lens, tr = inside.lens(engine, PROMPT, positions=4, model_key=f"own-{family}")
    assert tr.n == 9
    own = torch.softmax(tr.logits[-1].double(), -1).numpy()
    assert abs(lens.last_probs - own).max() < 1e-5  # the lens after the last block is the model's output
    assert lens.target_ranks[-1] == 1
    arch = tr.arch
    for layer in range(1, arch.n_layers + 1):
        for head in (1, arch.n_heads):
            b = block_view(tr, layer, head)
            assert abs(b.weights - b.model_weights).max() < 1e-5, (layer, head)  # from the shown Q and K
            assert abs(b.weights.sum(-1) - 1).max() < 1e-5
            assert abs(b.attn_add_recomputed - b.attn_add).max() < 1e-4
            assert abs(b.middle + b.mlp_add - b.after).max() < 1e-4  # pre-norm: the stream is added to


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_finds_targets_and_trains_each_family(engine, family):
    tm = engine.load(f"own-{family}")
    settings = make(L.LoraSettings, r=4, alpha=8, dropout=0.0, learning_rate=0.01, max_steps=5, batch_size=4,
                    max_length=24, warmup_steps=0, schedule="constant", val_share=0.0)
    before = [p.detach().clone() for p in tm.model.parameters()]
    peft_model = L.session_model(tm.model, settings)
    wanted = A.family_of(tm.model).lora_default
    assert sorted(peft_model.peft_config["default"].target_modules) == sorted(wanted)
    examples = L.encode_examples(tm.tokenizer, L.load_quotes()[:4], 24)
    updates = list(L.train_steps(peft_model, examples, settings, L.pad_id_of(tm.tokenizer)))
    losses = updates[-1].losses
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert all(torch.equal(a, p) for a, p in zip(before, tm.model.parameters()))  # the cached model is only read


def test_unknown_layout_is_refused_by_name():
    bare = SimpleNamespace(config=SimpleNamespace(model_type="rwkv"))
    with pytest.raises(UserInputError, match=r"model type 'rwkv' is not supported.*lacks its blocks at model.layers"):
        A.arch_of(bare)
    half = tiny_causal_lm("llama")
    half.config.model_type = "my_llama_like"
    assert A.arch_of(half).name == "my_llama_like"  # the Llama layout, probed
    del half.model.layers[0].self_attn.k_proj
    with pytest.raises(UserInputError, match=r"'my_llama_like'.*self_attn.k_proj missing"):
        A.arch_of(half)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_view_runs_on_each_family(engine, family):
    """Inside the model's journey, anatomy and cost, Decoding's next-token view and generation, the
    attention maps, Pipelines' text generation and Evaluation's perplexity on an added model of each family."""
    from engine.decoding import generation as G
    from engine.embeddings import attention as att
    from engine.evaluation import metrics
    from engine.pipelines import tasks

    key = f"own-{family}"
    jr, tr = inside.journey(engine, PROMPT, key)
    assert jr.n_layers == tr.arch.n_layers and jr.picked_id == int(tr.logits[-1].argmax())
    an = inside.anatomy(engine, key)
    groups = {g["group"]: g["parameters"] for g in an.groups}
    assert sum(groups.values()) == an.total == an.num_parameters
    assert groups["attention"] > 0 and groups["MLP"] > 0 and groups["norms"] > 0 and groups["embeddings"] > 0
    assert inside.cost(engine, PROMPT, new_tokens=2, model_key=key).new_tokens == 2
    tm = engine.load(key)
    settings = make(G.DecodingSettings, temperature=0.0, max_new_tokens=3)
    view = G.next_token_view(tm, PROMPT, settings)
    assert abs(float(view.stages[0].probs.sum()) - 1) < 1e-4
    result = G.generate(tm, PROMPT, settings)
    assert result.sequences[0].tokens and result.sequences[0].tokens[0].id == view.greedy_id
    maps = att.attention_maps(engine, PROMPT, key)  # Embeddings & attention
    assert maps.causal and abs(maps.weights.sum(-1) - 1).max() < 1e-4 and abs(np.triu(maps.weights, 1)).max() == 0
    assert att.model_dims(engine, key) == (maps.n_layers, maps.n_heads)
    gen = tasks.run(engine, "text-generation", key, PROMPT, max_new_tokens=3, temperature=0.0)
    assert gen.data and f"model={str(engine.registry.get(key).embedded.folder)!r}" in gen.code
    assert key in [k for _, k, usable in tasks.model_options(engine, "text-generation") if usable]
    report = metrics.perplexity(tm.model, tm.tokenizer, PROMPT, window=16, stride=8, model_key=key)
    assert len(report.tokens) >= 8 and all(t.logprob <= 0 and t.rank >= 1 for t in report.tokens)


@pytest.mark.parametrize("model_type, overrides, refused", [
    ("olmo", dict(eos_token_id=2, pad_token_id=1), ""),  # Llama's layout and recipe: read as Llama
    ("granite", dict(logits_scaling=4.0), "has the Llama layout but its output"),  # its own scalings
    ("granite", dict(residual_multiplier=0.5), "has the Llama layout but block 1 does not add"),
])
def test_a_type_without_a_row_is_checked_against_its_own_numbers(model_type, overrides, refused, smollm2_tokenizer):
    from engine.core.models import TextModel
    from engine.core.registry import ModelSpec, Source
    from engine.inside.trace import check_probed

    model = tiny_causal_lm(model_type, attn_implementation="eager", **overrides)
    assert A.arch_of(model).family.probed
    spec = ModelSpec(key="probe", task="causal-lm", title=model_type, loader="tests:none")
    bundle = TextModel(model, smollm2_tokenizer, Source(spec, "embedded", "(memory)"), torch.device("cpu"),
                       torch.float32)
    if refused:
        with pytest.raises(UserInputError, match=f"'{model_type}' {refused}"):
            check_probed(bundle)
    else:
        check_probed(bundle)
        assert bundle.extra["arch_checked"] == ""


def test_int8_variants_refuse_a_model_without_linear_layers(engine):
    from engine.evaluation import quantization as Q

    with pytest.raises(UserInputError, match="not available for model type 'gpt2'.*Conv1D"):
        Q.build_variant(engine.load("own-gpt2").model, "int8-weights")
    assert Q.build_variant(engine.load("own-phi3").model, "int8-weights") is not None
