"""LoRA engine: tiny random Llama models built from a config (with SmolLM2's real tokenizer), so
every test trains in well under a second of CPU per step."""
from __future__ import annotations

import copy
import math
import json
import zipfile

import pytest
import torch

from engine.training import lora as L
from engine.training import runner as R
from engine.core.errors import MAX_JSON_DEPTH, UserInputError
from engine.core.settings import make
from tests.conftest import tiny_causal_lm


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer):
    """SmolLM2's tokenizer alone (no weights)."""
    return smollm2_tokenizer


VOCAB = 512  # a tiny vocabulary keeps the output layer small; ids >= VOCAB are folded into it


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base():
    return tiny_causal_lm(vocab_size=VOCAB, intermediate_size=48, max_position_embeddings=128,
                          tie_word_embeddings=True, attn_implementation="sdpa")


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
    return make(L.LoraSettings, **values)


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
        make(L.LoraSettings, r=0)
    with pytest.raises(UserInputError, match="lm_head"):
        make(L.LoraSettings, target_modules=["lm_head"])
    with pytest.raises(UserInputError, match="target modules is empty"):
        make(L.LoraSettings, target_modules=[])


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


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_base_side_is_the_base_models_own_generate_and_adapted_differs(base, tokenizer, examples, temperature):
    """After training (B is no longer zero), the 'base' side must be exactly what the base model
    itself generates with the same seed, and the adapted side must differ from it."""
    prompt, seed, n = "A is a", 5, 10
    model = trained(base, tokenizer, examples, max_steps=10, target_modules=list(L.LINEAR_NAMES), learning_rate=0.01)
    assert any(p.abs().sum() > 0 for n_, p in model.named_parameters() if "lora_B" in n_)
    pair = L.generate_pair(model, tokenizer, prompt, seed=seed, max_new_tokens=n, temperature=temperature)
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    kwargs = dict(max_new_tokens=n, pad_token_id=L.pad_id_of(tokenizer), eos_token_id=tokenizer.eos_token_id)
    kwargs.update(dict(do_sample=True, temperature=temperature, top_p=0.95) if temperature else dict(do_sample=False))
    torch.manual_seed(seed)
    with torch.no_grad():
        own = base.generate(**enc, **kwargs)[0, enc["input_ids"].shape[1]:]
    assert pair["base"]["text"] == prompt + tokenizer.decode(own.tolist(), skip_special_tokens=True)
    assert pair["base"]["new_tokens"] == len(own)
    assert pair["adapted"]["text"] != pair["base"]["text"]


def test_adapter_tensor_names_and_shapes_are_known_without_building_it(base):
    from peft import get_peft_model_state_dict

    for targets in (["q_proj", "v_proj"], list(L.LINEAR_NAMES)):
        s = fast(r=3, target_modules=targets)
        built = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(L.session_model(base, s)).items()}
        assert L.adapter_shapes(base, s) == built


def _zip_with(tmp_path, name, tensors_bytes, config_text):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(L.ADAPTER_FILE, tensors_bytes)
        zf.writestr(L.CONFIG_FILE, config_text)
    return path


def test_config_json_size_depth_and_numbers_are_bounded(base, tokenizer, examples, tmp_path):
    zpath = L.export_adapter(trained(base, tokenizer, examples), tmp_path)
    with zipfile.ZipFile(zpath) as zf:
        tensors_bytes, config = zf.read(L.ADAPTER_FILE), json.loads(zf.read(L.CONFIG_FILE))
    deep = "[" * 20_000 + "]" * 20_000  # under the size limit; json.loads alone: RecursionError
    with pytest.raises(UserInputError, match=f"nests more than {MAX_JSON_DEPTH} levels"):
        L.load_adapter_file(base, _zip_with(tmp_path, "deep.zip", tensors_bytes, deep))
    inner = 1
    for _ in range(MAX_JSON_DEPTH):
        inner = [inner]
    nested = json.dumps({**config, "x": inner})  # one level deeper than the limit, inside the object
    with pytest.raises(UserInputError, match="nests more than"):
        L.load_adapter_file(base, _zip_with(tmp_path, "nested.zip", tensors_bytes, nested))
    brackets_in_strings = json.dumps({**config, "note": "[" * 1000})  # text, not nesting: accepted
    assert L.load_adapter_file(base, _zip_with(tmp_path, "ok.zip", tensors_bytes, brackets_in_strings))[1].r == 4
    big = json.dumps({**config, "pad": "x" * L.MAX_CONFIG_BYTES})
    with pytest.raises(UserInputError, match=f"limit is {L.MAX_CONFIG_BYTES:,}"):
        L.load_adapter_file(base, _zip_with(tmp_path, "big.zip", tensors_bytes, big))
    huge_int = json.dumps(config)[:-1] + ', "n": ' + "9" * 5000 + "}"  # int() refuses > 4,300 digits
    with pytest.raises(UserInputError, match="not valid JSON"):
        L.load_adapter_file(base, _zip_with(tmp_path, "int.zip", tensors_bytes, huge_int))
    with pytest.raises(UserInputError, match="lora_alpha"):
        L.load_adapter_file(base, _zip_with(tmp_path, "alpha.zip", tensors_bytes, json.dumps({**config, "lora_alpha": [1]})))
    # the same bounded parser reads JSONL datasets
    with pytest.raises(UserInputError, match="dataset line 2 nests more than"):
        L.parse_dataset('{"text": "a"}\n' + deep + '\n{"text": "b"}\n{"text": "c"}', "jsonl")


def test_adapters_with_nan_inf_or_overflowing_values_are_refused(base, tokenizer, examples, tmp_path):
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    model = trained(base, tokenizer, examples)
    good = {k: v.clone() for k, v in get_peft_model_state_dict(model).items()}
    key = next(k for k in good if "lora_B" in k)
    cases = {"nan": (torch.float32, float("nan"), "NaN or infinite"), "inf": (torch.float32, float("inf"), "NaN or infinite"),
             "f64": (torch.float64, 1e300, "NaN or infinite"),  # finite in float64, Inf as float32
             "huge": (torch.float32, 1e30, "outputs NaN or infinite")}  # finite, but the logits overflow
    for name, (dtype, value, message) in cases.items():
        state = {k: v.to(dtype).clone() for k, v in good.items()}
        if name == "huge":
            state = {k: v.fill_(value) for k, v in state.items()}
        else:
            state[key][0, 0] = value
        save_file(state, tmp_path / f"{name}.safetensors")
        with pytest.raises(UserInputError, match=message):
            L.load_adapter_file(base, tmp_path / f"{name}.safetensors")
    # an adapter that went bad in this session (e.g. training diverged) gives a message in Compare
    with torch.no_grad():
        for n_, p in model.named_parameters():
            if "lora_B" in n_:
                p.fill_(float("nan"))
    with pytest.raises(UserInputError, match="outputs NaN or infinite"):
        L.generate_pair(model, tokenizer, "A is a", seed=1, max_new_tokens=4)


def test_keys_and_shapes_are_checked_before_a_model_copy_is_built(base, tokenizer, examples, tmp_path, monkeypatch):
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in get_peft_model_state_dict(trained(base, tokenizer, examples)).items()}
    built = []
    real = L.session_model
    monkeypatch.setattr(L, "session_model", lambda *a, **k: built.append(1) or real(*a, **k))
    bad = dict(state)
    key = next(k for k in bad if "lora_A" in k)
    bad[key] = torch.zeros(bad[key].shape[0], bad[key].shape[1] + 1)
    save_file(bad, tmp_path / "shape.safetensors")
    missing = dict(state)
    missing.pop(next(k for k in missing if "lora_B" in k))
    save_file(missing, tmp_path / "missing.safetensors")
    nan = {k: v.clone() for k, v in state.items()}
    nan[key][0, 0] = float("nan")
    save_file(nan, tmp_path / "nan.safetensors")
    for name, message in (("shape", "shape"), ("missing", "missing"), ("nan", "NaN")):
        with pytest.raises(UserInputError, match=message):
            L.load_adapter_file(base, tmp_path / f"{name}.safetensors")
    assert built == []  # refused from the file and the base model's layers alone
    save_file(state, tmp_path / "good.safetensors")
    L.load_adapter_file(base, tmp_path / "good.safetensors")
    assert built == [1]


@pytest.mark.slow
def test_the_biggest_adapter_the_app_trains_fits_the_upload_limit(smollm, tmp_path):
    """r and targets at the knobs' maxima on the real SmolLM2, with trained-like (random, so
    incompressible) values: both the zip and the bare file fit MAX_UPLOAD_BYTES and load again."""
    from engine.core.settings import MAX_UPLOAD_BYTES, knob_info

    s = make(L.LoraSettings, r=int(knob_info(L.LoraSettings, "r").maximum),
             target_modules=[t for t in knob_info(L.LoraSettings, "target_modules").choices
                             if t in L.linear_layer_names(smollm.model)])  # the tab offers the base model's own
    model = L.session_model(smollm.model, s)
    torch.manual_seed(0)
    with torch.no_grad():
        for n_, p in model.named_parameters():
            if "lora_" in n_:
                p.normal_(0, 0.01)
    zpath = L.export_adapter(model, tmp_path)
    bare = tmp_path / "adapter" / L.ADAPTER_FILE
    assert bare.stat().st_size >= 4 * L.expected_trainable(smollm.model, s)
    assert zpath.stat().st_size <= MAX_UPLOAD_BYTES and bare.stat().st_size <= MAX_UPLOAD_BYTES
    assert L.MAX_ADAPTER_BYTES == MAX_UPLOAD_BYTES
    del model
    again, settings = L.load_adapter_file(smollm.model, zpath)
    assert settings.r == s.r and settings.target_modules == s.target_modules


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


def test_a_second_training_returns_at_once_without_holding_a_thread(engine):
    """While the gate is held, train() says the machine is busy and returns: it neither waits on
    the gate (which would hold a worker thread for the whole other training) nor loads anything."""
    import threading

    assert R.GATE.try_enter()
    session = L.LoraSession()
    updates = []
    worker = threading.Thread(target=lambda: updates.extend(L.train(engine, session, ["a — b"] * 4, fast())),
                              daemon=True)
    try:
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "a queued training blocked its thread"
    finally:
        session.stop.set()  # lets a waiting training (the old behaviour) leave, so the gate can be freed
        worker.join(timeout=10)
        R.GATE.leave()
    assert not R.GATE.busy
    assert len(updates) == 1 and updates[0].busy and updates[0].done and updates[0].step == 0
    assert "Busy" in updates[0].message and "press Train again" in updates[0].message
    assert session.model is None and not session.training


@pytest.fixture
def paced(monkeypatch):
    """The training clock moves only inside a training step, by the seconds per example each step
    is given (the last value repeats) times the examples in its batch: a run's pace is exact,
    whatever the machine's load, and scales with the batch as a CPU step roughly does."""
    clock = {"t": 0.0, "steps": []}
    real_loss = L.counted_token_loss

    def loss(model, batch):
        per_example = clock["steps"].pop(0) if len(clock["steps"]) > 1 else clock["steps"][0]
        clock["t"] += per_example * batch["input_ids"].shape[0]
        return real_loss(model, batch)

    monkeypatch.setattr(R, "now", lambda: clock["t"])
    monkeypatch.setattr(L, "counted_token_loss", loss)
    return clock


def test_a_run_is_fitted_to_the_cap_with_a_smaller_batch_and_finishes(base, tokenizer, examples, paced):
    paced["steps"] = [2.5]  # 10 s a step at batch 4
    s = fast(max_steps=12)
    seen = list(L.train_steps(L.session_model(base, s), examples, s, L.pad_id_of(tokenizer), max_seconds=100))
    # after 2 steps (20 s) 9 of 12 fit; at batch 3 (7.5 s a step) floor((95 - 20) / 7.5) = 10 more: all 12
    assert [u.step for u in seen] == list(range(1, 13)) and [u.pace.batch for u in seen] == [4, 3] + [3] * 10
    last = seen[-1]
    assert last.done and not last.stopped and not last.capped and len(last.losses) == 12
    assert last.pace.note == "fitted to the 1 min 40 s cap: all 12 steps at batch 3 (of 4), measured 7.5 s/step"
    assert last.seconds == 20 + 10 * 7.5 and all(u.pace.left <= 100 - u.seconds for u in seen)


def test_a_run_that_cannot_make_half_its_steps_is_refused_and_keeps_nothing(engine, base, tokenizer, paced):
    from types import SimpleNamespace

    from engine.core.models import TextModel

    class Fake:  # the engine surface lora.train uses, serving the tiny model with a 100 s cap
        registry, device = engine.registry, engine.device
        config = SimpleNamespace(train_minutes=100 / 60)

        def load(self, key, progress=None):
            return TextModel(base, tokenizer, engine.registry.resolve(L.BASE_KEY), torch.device("cpu"), torch.float32)

    def encode(tok, texts, max_length):  # the tiny model's vocabulary
        return [[t % VOCAB for t in x] for x in L.encode_examples(tok, texts, max_length)]

    paced["steps"] = [10.0]  # 40 s a step at batch 4: after 2 steps (80 s) one more fits, even at batch 1
    session = L.LoraSession()
    updates = list(L.train(Fake(), session, L.load_quotes()[:16], fast(max_steps=12, max_length=24), encode=encode))
    assert [u.step for u in updates] == [1, 2] and updates[-1].refused and updates[-1].done
    assert updates[-1].message.startswith("not run: at the measured 40.0 s/step at batch 4 only 3 of 12 steps fit "
                                          "in the 1 min 40 s cap even at batch 1, and a run needs at least 6.")
    assert session.model is None and session.steps_done == 0 and not session.training and not R.GATE.busy
    paced["steps"] = [0.25]  # a time budget of the student's own, under the cap: 0.5 min; 1 s a step at batch 4
    updates = []
    for u in L.train(Fake(), session, L.load_quotes()[:16], fast(max_steps=40, max_length=24, time_budget=0.5),
                     encode=encode):
        assert R.GATE.busy != u.done  # the last update comes after the gate is free, the others inside it
        updates.append(u)
    # after 5 steps (5 s: the first steps are timed for PROBE_SECONDS), 28 of 40 fit; at batch 2 (0.5 s a
    # step) all 40 do
    assert updates[-1].done and updates[-1].step == 40 and updates[-1].seconds == 5 + 35 * 0.5
    assert updates[-1].pace.note == ("fitted to your 30 s time budget: all 40 steps at batch 2 (of 4), "
                                     "measured 0.5 s/step")
    assert session.model is not None and session.steps_done == 40


def test_the_time_cap_stops_a_slowing_run_and_keeps_what_it_trained(base, tokenizer, examples, paced):
    paced["steps"] = [0.25] * 6 + [15.0]  # 1 s a step at batch 4 (fitted after step 5: batch 3); busy at step 7
    s = fast(max_steps=50)
    model = L.session_model(base, s)
    seen = list(L.train_steps(model, examples, s, L.pad_id_of(tokenizer), max_seconds=45))
    last = seen[-1]
    assert last.capped and last.stopped and last.done and not last.busy and not last.refused
    assert last.step == 7 and len(last.losses) == 7 and "time cap of 45 s" in last.message and last.seconds > 45
    assert all(not u.capped and not u.done for u in seen[:-1]) and [u.step for u in seen] == list(range(1, 8))
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)  # kept
    assert not model.training
    # without a cap the same pace runs every step
    paced["steps"] = [15.0]
    assert list(L.train_steps(L.session_model(base, s), examples, fast(max_steps=6), L.pad_id_of(tokenizer)))[-1].step == 6


# ---- validation split, learning-rate schedule ---------------------------------------------------------
def test_split_holds_out_a_seeded_share_and_no_copy_of_a_held_out_line_is_trained_on():
    lines = [f"line {i} — author {i}" for i in range(40)]
    train, held = L.split_validation(lines, 0.25, seed=1)
    assert len(held) == 10 and len(train) == 30 and set(train) | set(held) == set(lines)
    assert L.split_validation(lines, 0.25, seed=1) == (train, held) != L.split_validation(lines, 0.25, seed=2)
    assert [x for x in lines if x in held] == held  # the dataset's order
    assert L.split_validation(lines, 0.0, seed=1) == (lines, [])
    assert len(L.split_validation(lines[:4], 0.1, seed=1)[1]) == 1  # at least one line when the share is > 0
    assert len(L.split_validation(lines * 100, 0.5, seed=1)[1]) == L.MAX_VAL_EXAMPLES == 32  # at most 32
    twice = lines[:10] + lines[:10]  # every line twice: a held-out line's copy is not trained on either
    train, held = L.split_validation(twice, 0.2, seed=0)
    assert len(held) == 4 and not set(train) & set(held) and len(train) == 20 - 2 * len(set(held))
    for bad in (float("nan"), 0.6, -0.1):
        with pytest.raises(UserInputError, match=r"validation share .*0(\.0)? (to|and) 0\.5"):
            L.split_validation(lines, bad, seed=0)
    with pytest.raises(UserInputError, match=r"val_share .*0(\.0)? (to|and) 0\.5"):
        make(L.LoraSettings, val_share=0.9)
    with pytest.raises(UserInputError, match="schedule = 'step' .*'constant', 'linear', 'cosine'"):
        make(L.LoraSettings, schedule="step")


def cosine_by_hand(step, total, peak, warmup):
    if step <= warmup:
        return peak * step / (warmup + 1)
    return peak * 0.5 * (1 + math.cos(math.pi * (step - 1 - warmup) / (total - warmup)))


def test_each_steps_learning_rate_is_the_schedules_formula_as_the_optimizer_used_it(base, tokenizer, examples,
                                                                                   monkeypatch, paced):
    used = []
    real_step = torch.optim.AdamW.step

    def step(self, *a, **kw):  # the rate the optimizer actually applies at each step
        used.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    paced["steps"] = [0.0]
    peak, pad = 0.01, L.pad_id_of(tokenizer)
    by_hand = {"constant": [peak * s / 4 for s in (1, 2, 3)] + [peak] * 7,
               "linear": [peak * s / 4 for s in (1, 2, 3)] + [peak * (1 - (s - 4) / 7) for s in range(4, 11)],
               "cosine": [cosine_by_hand(s, 10, peak, 3) for s in range(1, 11)]}
    for schedule, expected in by_hand.items():
        used.clear()
        s = fast(max_steps=10, schedule=schedule, warmup_steps=3, learning_rate=peak)
        curves = L.Curves()
        list(L.train_steps(L.session_model(base, s), examples, s, pad, curves=curves))
        assert used == pytest.approx(expected, rel=1e-12, abs=0) and curves.lrs == used, schedule
        assert used[2] < used[3] == peak and 0 < used[-1] < peak or schedule == "constant"
    # fitted to a time cap: from the fit on, the schedule decays over the steps the run will make
    used.clear()
    paced["steps"] = [10.0]  # 10 s a step at batch 1: after 2 steps (20 s), floor((95 - 20) / 10) = 7 more fit
    s = fast(max_steps=12, batch_size=1, schedule="cosine", warmup_steps=1, learning_rate=peak)
    seen = list(L.train_steps(L.session_model(base, s), examples, s, pad, max_seconds=100))
    assert seen[-1].step == 9 and seen[-1].done
    assert used == pytest.approx([cosine_by_hand(st, 12, peak, 1) for st in (1, 2)]
                                 + [cosine_by_hand(st, 9, peak, 1) for st in range(3, 10)], rel=1e-12, abs=0)


def test_validation_loss_is_on_held_out_lines_only_and_equals_a_hand_computation(engine, base, tokenizer):
    from types import SimpleNamespace

    from engine.core.models import TextModel

    class Fake:  # the engine surface lora.train uses, serving the tiny model
        registry, device = engine.registry, engine.device
        config = SimpleNamespace(train_minutes=10)

        def load(self, key, progress=None):
            return TextModel(base, tokenizer, engine.registry.resolve(L.BASE_KEY), torch.device("cpu"), torch.float32)

    def encode(tok, texts, max_length):  # the tiny model's vocabulary
        return [[t % VOCAB for t in x] for x in L.encode_examples(tok, texts, max_length)]

    trained_on = []

    def recording_collate(batch, pad_id):
        if torch.is_grad_enabled():  # a training batch (the validation loss runs without gradients)
            trained_on.extend(tuple(x) for x in batch)
        return L.collate(batch, pad_id)

    lines = [f"Quote number {i} says something — Author {i}" for i in range(40)]
    session = L.LoraSession()
    s = fast(max_steps=12, val_share=0.25, eval_every=5, max_length=24)
    updates = list(L.train(Fake(), session, lines, s, encode=encode, collate_fn=recording_collate))
    assert updates[-1].done and updates[-1].step == 12
    held = session.held_out
    assert len(held) == 10 and set(held) <= set(lines) and session.examples == 30
    held_ids = {tuple(x) for x in encode(tokenizer, held, 24)}
    assert trained_on and not held_ids & set(trained_on)  # no held-out line is ever in a training batch
    assert set(trained_on) <= {tuple(x) for x in encode(tokenizer, [x for x in lines if x not in held], 24)}
    assert [step for step, _ in session.curves.val] == [0, 5, 10, 12]  # before step 1, every 5, after the last
    # by hand: each held-out line alone, no padding; the mean over every next token of them all
    nll, count = 0.0, 0
    with torch.no_grad():
        for ids in encode(tokenizer, held, 24):
            logp = torch.log_softmax(session.model(input_ids=torch.tensor([ids])).logits[0, :-1].double(), -1)
            nll -= float(logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum())
            count += len(ids) - 1
    assert session.curves.val[-1][1] == pytest.approx(nll / count, abs=1e-5)
    assert session.curves.val[-1][1] < session.curves.val[0][1]  # the held-out lines share the training's format
