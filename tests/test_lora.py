"""LoRA engine: tiny random Llama models built from a config (with SmolLM2's real tokenizer), so
every test trains in well under a second of CPU per step."""
from __future__ import annotations

import copy
import json
import zipfile

import pytest
import torch

from engine.training import lora as L
from engine.core.errors import UserInputError


@pytest.fixture(scope="module")
def tokenizer(engine):
    """SmolLM2's tokenizer alone (no weights), from the local float copy of the embedded GGUF."""
    from transformers import AutoTokenizer

    from engine.core.models import float_copy_of_gguf

    src = engine.registry.resolve(L.BASE_KEY)
    folder = float_copy_of_gguf(src.path, src.filename) if src.filename else src.path
    return AutoTokenizer.from_pretrained(str(folder))


def tiny_llama(vocab: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True, attn_implementation="sdpa")
    return LlamaForCausalLM(cfg).eval()


VOCAB = 512  # a tiny vocabulary keeps the output layer small; ids >= VOCAB are folded into it


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base():
    return tiny_llama(VOCAB)


@pytest.fixture(scope="module")
def examples(tokenizer):
    assert tokenizer.eos_token_id < VOCAB
    ids = L.encode_examples(tokenizer, L.load_quotes()[:64], 40)
    return [[t % VOCAB for t in x] for x in ids]


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def fast(**kw):
    values = dict(r=4, alpha=8, dropout=0.0, learning_rate=0.01, max_steps=3, batch_size=4, max_length=40)
    values.update(kw)
    return L.lora_settings(**values)


def run(model, examples, settings, pad):
    return [u for u in L.train_steps(model, examples, settings, pad)]


# ---- data --------------------------------------------------------------------------------------
def test_bundled_quotes_are_attributed_bounded_and_unique():
    quotes = L.load_quotes()
    assert 2500 <= len(quotes) <= 3500
    assert len(set(quotes)) == len(quotes)
    for q in quotes:
        text, author = L.split_quote(q)
        assert author and text, q
        assert 15 <= len(text) <= 220, q
        assert "," not in author, q


def test_parse_dataset_txt_jsonl_and_errors():
    assert L.parse_dataset("a\n\nb\nc\nd\n", "txt") == ["a", "b", "c", "d"]
    rows = "\n".join(json.dumps(x) for x in [{"text": "x y"}, {"quote": "Q", "author": "A"}] * 2)
    assert L.parse_dataset(rows, "jsonl") == ["x y", "Q — A", "x y", "Q — A"]
    with pytest.raises(UserInputError, match="4 to"):
        L.parse_dataset("only one line", "txt")
    with pytest.raises(UserInputError, match="line 2 is not valid JSON"):
        L.parse_dataset('{"text": "a"}\n{oops\n{"text": "b"}\n{"text": "c"}', "jsonl")
    with pytest.raises(UserInputError, match="limit is 1,000"):
        L.parse_dataset("\n".join(["x" * 1001] * 4), "txt")
    with pytest.raises(UserInputError, match="2,000,000"):
        L.parse_dataset("a\n" * 1_000_001, "txt")


def test_dataset_file_types_are_checked(tmp_path):
    bad = tmp_path / "data.csv"
    bad.write_text("a\nb\nc\nd\n")
    with pytest.raises(UserInputError, match=".txt or .jsonl"):
        L.read_dataset_file(bad)
    good = tmp_path / "data.txt"
    good.write_text("a\nb\nc\nd\n")
    assert L.read_dataset_file(good) == ["a", "b", "c", "d"]


def test_examples_end_with_eos_and_collator_masks_only_padding(tokenizer):
    texts = ["Short. — A", "A much longer quote that takes more tokens. — Somebody Else"]
    ids = L.encode_examples(tokenizer, texts, 64)
    assert all(x[-1] == tokenizer.eos_token_id for x in ids)
    assert tokenizer.decode(ids[0][:-1]) == texts[0]  # decode(encode(x)) == x
    pad = L.pad_id_of(tokenizer)
    assert pad == tokenizer.eos_token_id  # SmolLM2 pads with EOS: why we mask by attention, not id
    batch = L.collate(ids, pad)
    mask, labels = batch["attention_mask"], batch["labels"]
    assert batch["input_ids"].shape == (2, max(map(len, ids)))
    assert ((labels == -100) == (mask == 0)).all()
    short = len(ids[0])
    assert labels[0, short - 1] == tokenizer.eos_token_id  # the real EOS is learned


# ---- settings and counts ------------------------------------------------------------------------
def test_settings_name_the_bad_value():
    with pytest.raises(UserInputError, match=r"r = 0 .*1 to 64"):
        L.lora_settings(r=0)
    with pytest.raises(UserInputError, match="lm_head"):
        L.lora_settings(target_modules=["lm_head"])
    with pytest.raises(UserInputError, match="target modules is empty"):
        L.lora_settings(target_modules=[])


def test_linear_layer_names_match_the_knob_choices(base):
    assert L.linear_layer_names(base) == list(L.LINEAR_NAMES)


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], list(L.LINEAR_NAMES)])
def test_trainable_count_is_r_times_in_plus_out(base, targets):
    s = fast(r=4, target_modules=targets)
    model = L.session_model(base, s)
    by_hand = sum(4 * (m.in_features + m.out_features) for n, m in base.named_modules()
                  if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in targets)
    trainable, total = L.count_params(model)
    assert trainable == by_hand == L.expected_trainable(base, s)
    base_total = sum(p.numel() for p in {p.data_ptr(): p for p in base.parameters()}.values())
    assert total == base_total + trainable
    rep = L.param_report(model, s)
    out_f, in_f = rep["w_shape"]
    assert rep["layer_lora"] == rep["a_params"] + rep["b_params"] == 4 * (in_f + out_f)
    assert rep["adapter_bytes"] == 4 * trainable


# ---- training and isolation ---------------------------------------------------------------------
def test_loss_decreases_over_a_few_steps(base, tokenizer, examples):
    s = fast(max_steps=12, target_modules=list(L.LINEAR_NAMES), batch_size=8)
    model = L.session_model(base, s)
    updates = run(model, examples[:8], s, L.pad_id_of(tokenizer))  # one batch, seen 12 times
    losses = updates[-1].losses
    assert len(losses) == 12 and updates[-1].done
    assert sum(losses[-3:]) / 3 < losses[0] - 0.1, losses
    assert all(b < a for a, b in zip(losses, losses[1:]))  # one batch: every step helps


def test_stop_ends_cleanly_and_keeps_the_adapter(base, tokenizer, examples):
    import threading

    s = fast(max_steps=50)
    model = L.session_model(base, s)
    stop = threading.Event()
    seen = []
    for u in L.train_steps(model, examples, s, L.pad_id_of(tokenizer), stop):
        seen.append(u)
        if u.step == 2:
            stop.set()
    assert seen[-1].stopped and seen[-1].step == 2 and len(seen[-1].losses) == 2
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # what was learned is still there
    assert not model.training


def test_base_model_is_unchanged_by_training(base, tokenizer, examples):
    ids = torch.tensor([examples[0]])
    before = logits(base, ids)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    flags = {n: p.requires_grad for n, p in base.named_parameters()}
    kinds = [type(m) for m in base.modules()]
    model = L.session_model(base, fast())
    run(model, examples, fast(), L.pad_id_of(tokenizer))
    assert torch.equal(logits(base, ids), before)
    assert all(torch.equal(v, state[k]) for k, v in base.state_dict().items())
    assert flags == {n: p.requires_grad for n, p in base.named_parameters()}
    assert kinds == [type(m) for m in base.modules()]  # no LoRA layers were injected into it
    assert not torch.allclose(logits(model, ids), before)  # while the adapted one did change
    # the session's frozen weights are the cached ones (shared storage, not a copy)
    w = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
    assert w.data_ptr() == base.model.layers[0].self_attn.q_proj.weight.data_ptr()


def test_two_sessions_do_not_mix(base, tokenizer, examples):
    pad = L.pad_id_of(tokenizer)
    ids = torch.tensor([examples[3]])
    a = L.session_model(base, fast(seed=1))
    b = L.session_model(base, fast(seed=2))
    run(a, examples[:32], fast(seed=1), pad)
    b_state = {k: v.clone() for k, v in b.state_dict().items() if "lora_" in k}
    assert torch.equal(logits(b, ids), logits(base, ids))  # B untouched by A's training: still the base
    a_out = logits(a, ids)
    run(b, examples[32:], fast(seed=2, learning_rate=0.005), pad)
    assert torch.equal(logits(a, ids), a_out)  # A untouched by B's training
    assert any(not torch.equal(v, b_state[k]) for k, v in b.state_dict().items() if "lora_" in k)
    assert not torch.allclose(logits(a, ids), logits(b, ids))


def test_generate_pair_same_seed_is_reproducible_and_fresh_adapter_equals_base(base, tokenizer):
    prompt = "A is a"
    assert max(tokenizer(prompt, add_special_tokens=False)["input_ids"]) < VOCAB
    model = L.session_model(base, fast())
    one = L.generate_pair(model, tokenizer, prompt, seed=3, max_new_tokens=6)
    two = L.generate_pair(model, tokenizer, prompt, seed=3, max_new_tokens=6)
    assert one == two
    assert one["base"]["text"] == one["adapted"]["text"]  # B = 0 before training
    assert one["base"]["text"].startswith(prompt)
    with pytest.raises(UserInputError, match="temperature"):
        L.generate_pair(model, tokenizer, "x", seed=1, temperature=9)


# ---- adapter files ------------------------------------------------------------------------------
def trained(base, tokenizer, examples, **kw):
    s = fast(**kw)
    model = L.session_model(base, s)
    run(model, examples, s, L.pad_id_of(tokenizer))
    return model


def test_downloaded_adapter_loads_with_peft_and_gives_the_same_logits(base, tokenizer, examples, tmp_path):
    from peft import PeftModel

    model = trained(base, tokenizer, examples)
    zpath = L.export_adapter(model, tmp_path)
    with zipfile.ZipFile(zpath) as zf:
        assert sorted(zf.namelist()) == sorted([L.ADAPTER_FILE, L.CONFIG_FILE])
        zf.extractall(tmp_path / "unzipped")
    config = json.loads((tmp_path / "unzipped" / L.CONFIG_FILE).read_text())
    assert config["r"] == 4 and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "unzipped").eval()
    ids = torch.tensor([examples[5]])
    assert torch.allclose(logits(loaded, ids), logits(model, ids), atol=1e-5)
    # and back through our own validated upload path, both as the zip and as the bare file
    for path in (zpath, tmp_path / "unzipped" / L.ADAPTER_FILE):
        again, settings = L.load_adapter_file(base, path)
        assert settings.r == 4
        assert torch.allclose(logits(again, ids), logits(model, ids), atol=1e-5)


def test_bad_adapter_uploads_are_refused(base, tokenizer, examples, tmp_path):
    from safetensors.torch import save_file

    model = trained(base, tokenizer, examples)
    zpath = L.export_adapter(model, tmp_path)
    with zipfile.ZipFile(zpath) as zf:
        tensors_bytes = zf.read(L.ADAPTER_FILE)
    (tmp_path / "x.bin").write_bytes(tensors_bytes)
    with pytest.raises(UserInputError, match="not accepted"):
        L.load_adapter_file(base, tmp_path / "x.bin")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(UserInputError, match="readable safetensors"):
        L.load_adapter_file(base, tmp_path / "junk.safetensors")
    from peft import get_peft_model_state_dict

    state = {k: v.clone() for k, v in get_peft_model_state_dict(model).items()}
    key = next(k for k in state if "lora_B" in k)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])  # wrong shape
    save_file(state, tmp_path / "shape.safetensors")
    with pytest.raises(UserInputError, match="shape"):
        L.load_adapter_file(base, tmp_path / "shape.safetensors")
    state = {k: v.clone() for k, v in get_peft_model_state_dict(model).items()}
    state["base_model.model.lm_head.weight"] = torch.zeros(2, 2)
    save_file(state, tmp_path / "extra.safetensors")
    with pytest.raises(UserInputError, match="unexpected tensor"):
        L.load_adapter_file(base, tmp_path / "extra.safetensors")


def test_a_second_training_waits_with_a_message(engine):
    """While the gate is held, train() yields a queued message and loads nothing; Stop leaves."""
    assert L.GATE.try_enter()
    try:
        session = L.LoraSession()
        steps = L.train(engine, session, ["a — b"] * 4, fast(), wait_poll=0.01)
        first = next(steps)
        assert "Queued" in first.message and first.step == 0
        session.stop.set()
        last = list(steps)[-1]
        assert last.stopped and session.model is None
    finally:
        L.GATE.leave()
    assert not L.GATE.busy


def test_fit_threads_drops_to_one_only_when_oversubscribed():
    assert L.fit_threads(2, load=1.0, cores=2) == 2
    assert L.fit_threads(2, load=2.9, cores=2) == 2
    assert L.fit_threads(2, load=9.0, cores=2) == 1
    assert L.fit_threads(8, load=20.0, cores=16) == 8
