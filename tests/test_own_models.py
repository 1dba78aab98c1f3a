"""Models the operator adds (engine/core/own.py): parsing --model entries into registry rows, the
loading rules checked before any weight is read, the curated Hub rows, and the pickers. Tiny random
models saved into temporary folders; nothing here touches the Hub."""
import json
import re

import pytest

from engine import Engine
from engine.core import own
from engine.core.config import AppConfig
from engine.core.errors import ModelUnavailableError, UserInputError
from engine.core.registry import ALL_SPECS, ONLINE_SPECS, ROOT, Registry
from tests.conftest import tiny_causal_lm


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, smollm2_tokenizer):
    """A tiny random Llama with SmolLM2's tokenizer, saved as save_pretrained writes it (safetensors)."""
    folder = tmp_path_factory.mktemp("own") / "Tiny-Llama"
    tiny_causal_lm("llama", max_position_embeddings=256).save_pretrained(folder, safe_serialization=True)
    smollm2_tokenizer.save_pretrained(folder)
    return folder


def _engine(tmp_path, *models, cache_bytes=2**30, **settings):
    config = AppConfig(device="cpu", offline=True, models=tuple(str(m) for m in models), home=str(tmp_path), **settings)
    return Engine(config=config, cache_bytes=cache_bytes)


# --- parsing ------------------------------------------------------------------------------------

def test_entries_become_labelled_rows_of_their_role(tmp_path):
    (tmp_path / "enc").mkdir()
    gguf = tmp_path / "m.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    rows = own.specs_from(["org/My-Model@abc123", f"encoder={tmp_path / 'enc'}", str(gguf),
                           f"pair=org/Base+{tmp_path / 'enc'}", "tokenizer=org/Tok"], taken=["own-enc"])
    by_key = {r.key: r for r in rows}
    # each causal LM's tokenizer joins as well, but a folder without tokenizer.json (enc) has none to give
    assert list(by_key) == ["own-my-model", "own-enc-2", "own-m-q4", "own-base", "own-enc-3", "own-tok",
                            "own-my-model-tokenizer", "own-m-q4-tokenizer", "own-base-tokenizer"]
    tok = by_key["own-m-q4-tokenizer"]
    assert (tok.task, tok.embedded, tok.loader) == ("tokenizer", by_key["own-m-q4"].embedded,
                                                    "engine.tokens.loading:load_gguf_tokenizer")
    assert by_key["own-my-model-tokenizer"].title == by_key["own-my-model"].title + " · its tokenizer"
    assert (by_key["own-base-tokenizer"].hub_id, by_key["own-base-tokenizer"].revision) == ("org/Base", "")
    hub = by_key["own-my-model"]
    assert (hub.task, hub.hub_id, hub.revision, hub.origin) == ("causal-lm", "org/My-Model", "abc123", "operator")
    assert "added · Hub org/My-Model@abc123" in hub.title
    assert by_key["own-enc-2"].task == "encoder" and by_key["own-enc-2"].embedded.folder == str(tmp_path / "enc")
    assert by_key["own-m-q4"].embedded.filename == "m.Q4.gguf" and "GGUF file" in by_key["own-m-q4"].title
    assert [by_key[k].task for k in ("own-base", "own-enc-3")] == ["causal-lm", "causal-lm"]
    assert "base" in by_key["own-base"].title and "instruct" in by_key["own-enc-3"].title
    assert by_key["own-tok"].task == "tokenizer"


@pytest.mark.parametrize("entry, named", [
    ("robot=org/x", "role 'robot'"), ("/no/such/folder", "does not exist"), ("not a hub id", "neither"),
    ("org/x@../../etc", "neither"), ("pair=org/x", "BASE+INSTRUCT"), ("encoder=/no/file.gguf", "does not exist")])
def test_bad_entries_are_refused_at_start_by_name(entry, named, tmp_path):
    with pytest.raises(UserInputError, match=re.escape(named)):
        _engine(tmp_path, entry)


# --- loading through the same path as the flag --------------------------------------------------

def test_an_added_folder_joins_the_causal_pickers_and_loads(tiny_folder, tmp_path):
    from tabs._ui import model_choices

    engine = _engine(tmp_path, tiny_folder, default_model="own-tiny-llama")
    choices = model_choices(engine, "causal-lm")
    assert choices[0][1] == "own-tiny-llama" and "smollm2-135m-instruct" in [k for _, k in choices]
    assert f"folder {tiny_folder}" in choices[0][0]
    assert "smollm2-1.7b-instruct" not in [k for _, k in choices]  # Hub-only rows stay hidden offline
    tm = engine.load("own-tiny-llama")
    assert tm.model.config.model_type == "llama" and tm.tokenizer.vocab_size == 49152


def test_default_model_must_be_a_causal_lm(tmp_path):
    with pytest.raises(UserInputError, match="minilm-l6"):
        _engine(tmp_path, default_model="minilm-l6")


def _never_read(monkeypatch):
    """Make every way of reading weights fail loudly: the refusals must come first."""
    import transformers

    def boom(*a, **k):
        raise AssertionError("weights were read")

    for cls in (transformers.AutoModelForCausalLM, transformers.AutoModel, transformers.AutoTokenizer):
        monkeypatch.setattr(cls, "from_pretrained", boom)


def test_pickle_only_folder_is_refused_with_the_reason(tmp_path, monkeypatch):
    folder = tmp_path / "Pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    engine = _engine(tmp_path, folder)
    _never_read(monkeypatch)
    with pytest.raises(ModelUnavailableError, match=r"Pickled.*only pickle weights \(pytorch_model.bin\)"):
        engine.load("own-pickled")


def test_remote_code_config_is_refused(tiny_folder, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "Remote"
    shutil.copytree(tiny_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModelForCausalLM": "x.Y"}}))
    engine = _engine(tmp_path, folder)
    _never_read(monkeypatch)
    with pytest.raises(ModelUnavailableError, match=r"Remote.*own code.*trust_remote_code stays off"):
        engine.load("own-remote")
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "my_secret_arch"}))
    with pytest.raises(ModelUnavailableError, match="'my_secret_arch' is not one transformers ships"):
        engine.load("own-remote")


def test_too_big_is_refused_by_name_with_its_size_before_reading(tiny_folder, tmp_path, monkeypatch):
    engine = _engine(tmp_path, tiny_folder, cache_bytes=1_000_000)
    _never_read(monkeypatch)
    n = sum(p.numel() for p in tiny_causal_lm("llama").parameters())
    with pytest.raises(ModelUnavailableError, match=rf"Tiny-Llama.*{n * 4 / 2**30:.2f} GiB.*{n:,} parameters"):
        engine.load("own-tiny-llama")


def test_gguf_is_sized_from_its_tensor_table(tmp_path):
    import numpy as np
    from gguf import GGUFWriter

    path = tmp_path / "toy.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((64, 1000), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert own.gguf_params(path) == (64_000, "llama")
    source = Registry(specs=own.specs_from([str(path)])).resolve("own-toy")
    with pytest.raises(ModelUnavailableError, match=r"toy.*0.00 GiB.*64,000 parameters.*float32"):
        own.preflight(source, budget=100_000, bytes_per=4)
    own.preflight(source, budget=10**6, bytes_per=4)  # fits: no error


# --- Hub ids: checked from the Hub's metadata, faked here ----------------------------------------

class FakeHub:
    def __init__(self, error=None, files=(), config=None, total=0):
        self.error, self.files, self.config, self.total = error, files, config or {"model_type": "llama"}, total

    def model_info(self, repo, revision=None, files_metadata=False):
        from types import SimpleNamespace as NS

        if self.error:
            err = self.error.__new__(self.error)
            Exception.__init__(err, "hub says no")
            raise err
        return NS(config=self.config, siblings=[NS(rfilename=f, size=s) for f, s in self.files],
                  safetensors=NS(total=self.total) if self.total else None)


@pytest.mark.parametrize("fake, named", [
    (FakeHub(error="GatedRepoError"), "gated: accept its terms on https://huggingface.co/org/M"),
    (FakeHub(error="RepositoryNotFoundError"), r"no repository org/M \(or it is private\)"),
    (FakeHub(error="RevisionNotFoundError"), "no revision 'v9'"),
    (FakeHub(files=[("pytorch_model.bin", 10)]), r"only pickle weights \(pytorch_model.bin\)"),
    (FakeHub(files=[("model.safetensors", 10)], config={"model_type": "x", "auto_map": {"A": "b"}}), "own code"),
    (FakeHub(files=[("model.safetensors", 10)], total=2_000_000_000), r"7.45 GiB.*2,000,000,000 parameters"),
])
def test_hub_ids_get_a_clear_message(fake, named):
    import huggingface_hub.errors as hub_errors

    if isinstance(fake.error, str):
        fake.error = getattr(hub_errors, fake.error)
    source = Registry(online=True, specs=own.specs_from(["org/M@v9"])).resolve("own-m")
    with pytest.raises(ModelUnavailableError, match=named):
        own.preflight(source, budget=2**30, bytes_per=4, api=fake)


def test_hub_model_that_fits_passes():
    source = Registry(online=True, specs=own.specs_from(["org/M"])).resolve("own-m")
    own.preflight(source, budget=2**30, bytes_per=2,
                  api=FakeHub(files=[("model.safetensors", 10), ("config.json", 1)], total=100_000_000))


# --- curated online rows ------------------------------------------------------------------------

def test_online_rows_resolve_to_pinned_commits_only_online():
    online, offline = Registry(online=True), Registry(online=False)
    tasks = sorted(s.task for s in ONLINE_SPECS)
    assert tasks == ["causal-lm", "causal-lm", "encoder"] and set(ONLINE_SPECS) <= set(ALL_SPECS)
    readme = (ROOT / "README.md").read_text()
    for spec in ONLINE_SPECS:
        assert re.fullmatch(r"[0-9a-f]{40}", spec.revision) and spec.license
        source = online.resolve(spec.key)
        assert (source.is_hub, source.path, source.revision) == (True, spec.hub_id, spec.revision)
        assert not offline.usable(spec.key)
        assert spec.hub_id in readme and spec.revision[:7] in readme


def test_an_added_tokenizer_joins_the_tokens_tab(tiny_folder, tmp_path, smollm2_tokenizer):
    from engine.tokens import views

    engine = _engine(tmp_path, f"tokenizer={tiny_folder}")
    assert "own-tiny-llama" in views.tokenizer_keys(engine)
    tok = views.get(engine, "own-tiny-llama")
    text = "Hello world, the café"
    ids = tok.encode(text)
    assert ids == smollm2_tokenizer(text, add_special_tokens=False)["input_ids"] and tok.decode(ids) == text


def test_an_added_causal_lm_brings_its_tokenizer_to_the_tokens_tab(tiny_folder, tmp_path, smollm2_tokenizer):
    """No tokenizer= entry needed: the model's folder gives its tokenizer, with the Tokens tab's counts
    and round trip; given as both, the tokenizer is listed once."""
    from engine.tokens import views

    engine = _engine(tmp_path, tiny_folder)
    key = "own-tiny-llama-tokenizer"
    assert key in views.tokenizer_keys(engine) and engine.registry.get(key).title.endswith(" · its tokenizer")
    text = "Hello world, the café costs 3.50 €"
    shown = views.tokenize(engine, key, text)
    assert shown.ids == smollm2_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert views.get(engine, key).decode(shown.ids) == text
    both = _engine(tmp_path, tiny_folder, f"tokenizer={tiny_folder}")
    assert [k for k in views.tokenizer_keys(both) if k.startswith("own-")] == ["own-tiny-llama-2"]


@pytest.fixture(scope="module")
def small_bpe():
    """A byte-level BPE of ~300 pieces trained here in milliseconds: a GGUF with SmolLM2's 49,152
    pieces takes transformers ~17 s to read back on 2 cores, this one well under a second."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["The capital of France is Paris.", "Once upon a time there was a fox."] * 5, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>")


@pytest.mark.parametrize("model_type", ["llama", "mistral", "qwen2"])
def test_a_gguf_file_loads_through_the_flag_as_the_same_model(model_type, small_bpe, tmp_path):
    import torch

    from tests.gguf_export import write_gguf

    model = tiny_causal_lm(model_type, vocab_size=len(small_bpe), max_position_embeddings=64)
    path = tmp_path / f"Tiny-{model_type}.F32.gguf"
    write_gguf(model, small_bpe, path)
    engine = _engine(tmp_path, path)
    key = f"own-tiny-{model_type}-f32"
    assert "GGUF file" in engine.registry.get(key).title
    tm = engine.load(key)  # dequantized once into a float copy under the home folder, then loaded
    # (llama.cpp files Mistral under the llama architecture: it comes back as a Llama, same weights)
    assert tm.model.config.model_type == {"mistral": "llama"}.get(model_type, model_type)  # llama.cpp files
    text = "The capital of France is Paris."
    ids = small_bpe(text, return_tensors="pt").input_ids
    assert tm.tokenizer(text, return_tensors="pt").input_ids.tolist() == ids.tolist()
    with torch.no_grad():
        assert torch.equal(tm.model(ids).logits, model(ids).logits)
    from engine.tokens import views  # the file's vocabulary, in the Tokens tab, without dequantizing
    from engine.training import lora

    assert own.gguf_architecture(path) == own.gguf_params(path)[1]  # from the header's first entries
    assert key in lora.base_keys(engine) and lora.base_layout(engine, key)[1] == ["q_proj", "v_proj"]

    tok = views.get(engine, f"{key}-tokenizer")
    ids = tok.encode(text)
    assert ids == small_bpe(text, add_special_tokens=False)["input_ids"] and tok.decode(ids) == text


def test_an_added_pair_is_what_base_vs_instruct_compares(tiny_folder, tmp_path):
    from engine.training import sft

    assert sft.comparison_keys(Registry(online=False)) == ("gemma3-270m-base", "smollm2-135m-instruct")
    assert not sft.same_family(Registry(online=False)) and sft.same_family(Registry(online=True))
    twin = tmp_path / "Tiny-Instruct"
    twin.symlink_to(tiny_folder, target_is_directory=True)
    engine = _engine(tmp_path, f"pair={tiny_folder}+{twin}")
    assert sft.comparison_keys(engine.registry) == ("own-tiny-llama", "own-tiny-instruct")
    assert sft.same_family(engine.registry)
    assert [engine.registry.get(k).title.split(" (")[0] for k in sft.comparison_keys(engine.registry)] == [
        "Tiny-Llama · base", "Tiny-Instruct · instruct"]


def test_an_added_model_is_served_only_while_the_server_lists_it(tiny_folder, tmp_path):
    class FakeServer:
        models: list = []

        def health(self, fresh=False):
            return dict(up=True, models=self.models)

    engine = _engine(tmp_path, tiny_folder)
    engine._client = FakeServer()
    assert "serving" not in engine.load("own-tiny-llama").extra  # not listed: in-process
    FakeServer.models = [str(tiny_folder)]  # `vllm serve FOLDER` lists the folder as the model's name
    route = engine.load("own-tiny-llama").extra["serving"]
    assert route.served_as == str(tiny_folder)
    assert [r["backend"] for r in engine.backends() if r["key"] == "own-tiny-llama"] == [f"server: {tiny_folder}"]


def test_views_with_fixed_models_add_only_the_operators_and_the_hubs(tiny_folder, tmp_path):
    from engine import inside
    from engine.embeddings import attention

    engine = _engine(tmp_path, tiny_folder)
    assert inside.models(engine) == (*inside.MODELS, "own-tiny-llama")  # not the embedded Gemma 3 base
    assert list(attention.attention_models(engine)) == [*attention.ATTENTION_MODELS, "own-tiny-llama"]
    online = Registry(online=True)
    assert online.added("causal-lm") == ["smollm2-135m-base", "smollm2-1.7b-instruct", "smollm2-1.7b-base"]
    assert online.added("encoder") == ["bge-base-en-v1.5"]


# --- training lessons on an added model (LoRA, post-training) -------------------------------------

@pytest.fixture(scope="module")
def neox_folder(tmp_path_factory, smollm2_tokenizer):
    """A tiny GPT-NeoX: a type transformers ships that has no row in engine/core/arch.py and not the
    Llama layout (gpt_neox.layers[i].attention.query_key_value), so LoRA's targets are unknown."""
    folder = tmp_path_factory.mktemp("own") / "Tiny-NeoX"
    tiny_causal_lm("gpt_neox").save_pretrained(folder, safe_serialization=True)
    smollm2_tokenizer.save_pretrained(folder)
    return folder


def test_lora_offers_trainable_added_models_and_refuses_unknown_targets_by_name(tiny_folder, neox_folder, tmp_path):
    from engine.training import lora

    engine = _engine(tmp_path, tiny_folder, neox_folder)
    assert lora.base_keys(engine) == [lora.BASE_KEY, "own-tiny-llama"]  # the lesson's own model first
    assert lora.base_layout(engine, "own-tiny-llama")[1] == ["q_proj", "v_proj"]
    with pytest.raises(UserInputError, match=r"LoRA cannot train Tiny-NeoX .*lacks its blocks at model\.layers"):
        lora.check_base(engine, "own-tiny-neox")
    with pytest.raises(UserInputError, match="not a valid choice"):
        lora.check_base(engine, "minilm-l6")  # an encoder is no base model


def test_a_lora_step_on_an_added_model_trains_only_the_adapter_from_the_models_own_loss(tiny_folder, tmp_path):
    """The first step's loss is the folder's own loss on that batch (B starts at 0, so the adapted model
    is the base); after it only lora_A/lora_B differ from the folder's weights, and the cached model
    the engine shares is unchanged."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.core.settings import make
    from engine.training import lora

    engine = _engine(tmp_path, tiny_folder)
    texts = lora.load_quotes()[:24]
    s = make(lora.LoraSettings, max_steps=1, batch_size=4, max_length=32, val_share=0.0, seed=3, learning_rate=0.01)
    session = lora.LoraSession()
    updates = list(lora.train(engine, session, texts, s, base_key="own-tiny-llama"))
    assert updates[-1].done and updates[-1].step == 1
    raw = AutoModelForCausalLM.from_pretrained(tiny_folder).eval()
    tok = AutoTokenizer.from_pretrained(tiny_folder)
    examples = lora.encode_examples(tok, texts, 32)
    batch = lora.collate([examples[i] for i in next(lora.batches(len(examples), 4, 3))], lora.pad_id_of(tok))
    with torch.no_grad():
        want = raw(**batch).loss.item()
    assert session.losses[0] == pytest.approx(want, abs=1e-5)
    raw_weights = dict(raw.named_parameters())
    adapters = []
    for name, p in session.model.named_parameters():
        if "lora_" in name:
            adapters.append((name.split(".")[-4], p))  # ...q_proj.lora_B.default.weight
            continue
        plain = name.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(p, raw_weights[plain]), name
    assert {layer for layer, _ in adapters} == {"q_proj", "v_proj"}
    assert all(float(p.detach().abs().max()) > 0 for layer, p in adapters)  # B left 0 after one step: it trained
    cached = engine.load("own-tiny-llama").model
    assert all(torch.equal(p, raw_weights[n]) for n, p in cached.named_parameters())


# --- Retrieval's answer model -----------------------------------------------------------------------

def test_rag_answers_with_an_added_model_as_its_own_generate_does(tiny_folder, tmp_path):
    """The answer without retrieval is the added model's own greedy continuation of the question in its
    chat template; the one with retrieval reads the chunks that fit its 256 positions."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.retrieval import rag

    engine = _engine(tmp_path, tiny_folder)
    assert rag.models(engine) == [rag.LM, "own-tiny-llama"]
    hits = [dict(title=f"doc {i}", doc_id="d", chunk=i, tokens=40, text=("zebra " * 40).strip()) for i in range(6)]
    question = "Where does the zebra live?"
    out = rag.answer(engine, question, hits, rag.AnswerSettings(budget=256, max_new_tokens=8), model="own-tiny-llama")
    assert out["done"] and out["prompt"]["included"] and out["prompt"]["dropped"]
    assert out["prompt"]["tokens"] + 8 <= 256
    model = AutoModelForCausalLM.from_pretrained(tiny_folder).eval()
    tok = AutoTokenizer.from_pretrained(tiny_folder)
    ids = torch.tensor([tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                                tokenize=True, return_dict=False)])
    with torch.no_grad():
        new = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                             pad_token_id=tok.eos_token_id)[0, ids.shape[1]:]
    assert out["plain"] == tok.decode(new, skip_special_tokens=True)
    with pytest.raises(UserInputError, match="answer model = 'minilm-l6' is not a valid choice"):
        rag.answer(engine, question, hits, model="minilm-l6")
