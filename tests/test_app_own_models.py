"""Issue 35's "Done when" through the API: tiny random Llama, GPT-2 (learned positions, Conv1D),
Phi-3 (fused qkv), Qwen2, Mistral and Gemma 3 models, each saved to a folder and added through the operator setting
(AppConfig.models, as --model adds them), sent by gradio_client through the language-model lessons'
endpoints of a running app. Each answer is checked against the same folder loaded here with plain
transformers."""
from __future__ import annotations

import base64
import json

import numpy as np

import pytest
import torch

from tests.conftest import free_port, tiny_causal_lm

pytestmark = pytest.mark.usefixtures("one_thread")

# family -> (model type, config overrides)
FAMILIES = {
    "llama": ("llama", {}),
    "gpt2": ("gpt2", dict(n_inner=64, bos_token_id=0, eos_token_id=0,  # SmolLM2's <|endoftext|>
                          attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0)),  # a LoRA step is not noisier
    "phi3": ("phi3", dict(partial_rotary_factor=0.5, pad_token_id=0)),
    "qwen2": ("qwen2", {}),
    "mistral": ("mistral", {}),
    "gemma3": ("gemma3_text", dict(head_dim=16, query_pre_attn_scalar=16)),
}
KEYS = [f"own-{name}" for name in FAMILIES]
PROMPT = "The quick brown fox jumps over the lazy dog"
LONG = " ".join(["The quick brown fox jumps over the lazy dog."] * 8)  # 80 tokens: past the 64 positions
# greedy, and top-k 5: the five kept tokens' probabilities are renormalised to sum 1
KNOBS = dict(temperature=1.0, top_k=5, top_p=1.0, min_p=0.0, typical_p=1.0, repetition_penalty=1.0, do_sample=False,
             seed=1)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, smollm2_tokenizer):
    root = tmp_path_factory.mktemp("own-app")
    out = {}
    for name, (model_type, overrides) in FAMILIES.items():
        folder = root / name
        tiny_causal_lm(model_type, max_position_embeddings=64, **overrides).save_pretrained(
            folder, safe_serialization=True)
        smollm2_tokenizer.save_pretrained(folder)
        out[f"own-{name}"] = folder
    return out


@pytest.fixture(scope="module")
def demo(folders, tmp_path_factory):
    """The whole app, its engine given the six folders as the operator's models."""
    import app

    from engine import Engine
    from engine.core.config import AppConfig

    home = tmp_path_factory.mktemp("own-app-home")
    engine = Engine(config=AppConfig(device="cpu", offline=True, models=tuple(str(f) for f in folders.values()),
                                     home=str(home)), cache_bytes=2**30)
    return app.build_demo(engine)


@pytest.fixture(scope="module")
def client(demo):
    import app
    from gradio_client import Client

    port = free_port()
    app.launch_patiently(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                         **app.launch_kwargs())
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    demo.close()


@pytest.fixture(scope="module")
def raw(folders):
    """Each folder loaded with plain transformers (eager attention, so weights come back)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return {key: (AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval(),
                  AutoTokenizer.from_pretrained(folder)) for key, folder in folders.items()}


def _rows(table):
    return table["data"] if isinstance(table, dict) else table



def _ids(tok, text):
    return torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])


def _attentions(model, tok, text):
    with torch.no_grad():
        return model(_ids(tok, text), output_attentions=True).attentions


def _greedy(model, tok, text, n):
    ids = _ids(tok, text)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                             pad_token_id=tok.eos_token_id)
    return out[0, ids.shape[1]:].tolist()


def test_every_picker_offers_the_added_models(client):
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for api, param in [("/next_token", "model"), ("/generate", "model"), ("/inside_journey", "model"),
                       ("/inside_block", "model"), ("/inside_lens", "model"), ("/perplexity", "model_key"),
                       ("/pipeline_text_generation", "key"), ("/attention", "model_key"), ("/token_ranks", "model_key"),
                       ("/trust_calibration", "model")]:
        (p,) = [p for p in info[api]["parameters"] if p["parameter_name"] == param]
        assert all(f"'{key}'" in p["python_type"]["type"] for key in KEYS), (api, p["python_type"]["type"])


@pytest.mark.parametrize("key", KEYS)
def test_next_token_view_is_the_models_distribution(client, raw, key):
    model, tok = raw[key]
    _fig, summary, table, _steps, _context = client.predict(model=key, mode="raw", prompt=PROMPT, **KNOBS,
                                                            api_name="/next_token")
    rows = _rows(table)
    with torch.no_grad():
        probs = model(_ids(tok, PROMPT)).logits[0, -1].softmax(-1)
    top = probs.topk(len(rows))
    assert rows[0][2] == top.indices[0].item() and f"`{rows[0][1]}`" in summary
    assert [r[3] for r in rows] == pytest.approx(top.values.tolist(), abs=2e-6)
    kept = [r[6] for r in rows if r[10]]  # top-k = 5 renormalises the five kept tokens to sum 1
    assert len(kept) == 5 and sum(kept) == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize("key", KEYS)
def test_greedy_generation_is_model_generate(client, raw, key):
    import html as H
    import re

    model, tok = raw[key]
    want = _greedy(model, tok, PROMPT, 5)
    page, stats, _ = client.predict(model=key, mode="raw", prompt=PROMPT, **KNOBS, max_new_tokens=5,
                                    num_return_sequences=1, stop="", color_by="rank", api_name="/generate")
    spans = re.findall(r"<span class='dec-tok' data-seq='0'[^>]*>(.*?)</span>", page)
    assert [H.unescape(s) for s in spans] == [tok.decode([t]) for t in want]
    _md, _status, out, _code = client.predict(PROMPT, key, 5, 0.0, 1, 1, api_name="/pipeline_text_generation")
    assert out == [{"generated_text": PROMPT + tok.decode(want)}]


@pytest.mark.parametrize("key", KEYS)
def test_inside_the_model_matches_the_forward_pass(client, raw, key):
    model, tok = raw[key]
    n = _ids(tok, PROMPT).shape[1]
    page, _shapes, _layer, _head = client.predict(PROMPT, key, api_name="/inside_journey")
    assert f"(1, {n}, 32)" in page and "49,152" in page
    out = client.predict(PROMPT, key, 2, 3, api_name="/inside_block")
    weights = [r[1:] for r in _rows(out[8])]
    want = _attentions(model, tok, PROMPT)[1][0, 2]  # block 2, head 3 (the picker counts from 1)
    assert torch.tensor(weights, dtype=torch.float32) == pytest.approx(want, abs=1e-3)
    _plot, _target, table = client.predict(PROMPT, key, 4, api_name="/inside_lens")
    rows = _rows(table)
    with torch.no_grad():
        top = model(_ids(tok, PROMPT)).logits[0].argmax(-1)
    for row in rows:  # the last block's guess is the model's own next token at that position
        assert row[-1].rsplit(" ", 1)[0] == tok.decode([top[row[0]].item()])


@pytest.mark.parametrize("key", KEYS)
def test_perplexity_and_ranks_are_exp_mean_nll(client, raw, key):
    import math

    model, tok = raw[key]
    _html, arithmetic, _plot, numbers = client.predict(key, PROMPT, 64, 32, api_name="/perplexity")
    ids = torch.cat([torch.tensor([[tok.convert_tokens_to_ids("<|endoftext|>")]]), _ids(tok, PROMPT)], 1)
    with torch.no_grad():
        nll = model(ids, labels=ids).loss.item()  # the text's tokens, each after <|endoftext|> and those before
    assert numbers["tokens_scored"] == ids.shape[1] - 1
    assert numbers["perplexity"] == pytest.approx(math.exp(nll), rel=1e-4)
    *_html, _plot, ranks = client.predict(key, PROMPT, "", api_name="/token_ranks")  # GLTR scores the same way
    assert ranks["Text A"]["model"] == key and sum(ranks["Text A"]["counts"].values()) == ids.shape[1] - 1
    assert ranks["Text A"]["perplexity"] == pytest.approx(math.exp(nll), rel=1e-4)


@pytest.mark.parametrize("key", KEYS)
def test_attention_map_is_the_models_attention(client, raw, key):
    model, tok = raw[key]
    out = client.predict(PROMPT, key, 2, 3, False, None, api_name="/attention")
    summary, fig = out[3], json.loads(out[4]["plot"])
    n = _ids(tok, PROMPT).shape[1]
    assert f"2 x [1, 4, {n}, {n}]" in summary
    z = fig["data"][0]["z"]  # plotly sends arrays as {"dtype", "bdata" (base64), "shape"}
    z = torch.from_numpy(np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(n, n).copy())
    z = torch.nan_to_num(z.float(), nan=0.0)  # the masked future is drawn blank (NaN)
    assert z.float() == pytest.approx(_attentions(model, tok, PROMPT)[1][0, 2], abs=1e-3)



@pytest.mark.parametrize("key", KEYS)
def test_past_the_context_window_each_lesson_refuses_by_name(client, key):
    """The models hold 64 positions: GPT-2's learned table has no row 64 (it used to fail with an
    IndexError in the journey, the attention map and the pipeline), RoPE models never saw one."""
    from gradio_client.exceptions import AppError

    calls = {
        "/next_token": lambda: client.predict(model=key, mode="raw", prompt=LONG, **KNOBS, api_name="/next_token"),
        "/generate": lambda: client.predict(model=key, mode="raw", prompt=PROMPT, **KNOBS, max_new_tokens=60,
                                            num_return_sequences=1, stop="", color_by="rank", api_name="/generate"),
        "/inside_journey": lambda: client.predict(LONG, key, api_name="/inside_journey"),
        "/inside_lens": lambda: client.predict(LONG, key, 4, api_name="/inside_lens"),
        "/attention": lambda: client.predict(LONG, key, 1, 1, False, None, api_name="/attention"),
        "/pipeline_text_generation": lambda: client.predict(PROMPT, key, 60, 0.0, 1, 1,
                                                            api_name="/pipeline_text_generation"),
        "/perplexity": lambda: client.predict(key, LONG, 128, 64, api_name="/perplexity"),
    }
    for api, call in calls.items():
        with pytest.raises(AppError, match=r"context.*(1|16) to 64") as refused:
            call()
        assert "Something went wrong" not in str(refused.value), api


# --- the training lessons: LoRA -------------------------------------------------------------------
# four pasted lines, a batch of four: each step sees the same examples, so the loss must fall
LINES = "\n".join(["Stay hungry, stay foolish. — Stewart Brand", "Less is more. — Mies van der Rohe",
                   "Know thyself. — Socrates", "Simplicity is the ultimate sophistication. — Leonardo"])
LORA = dict(src="paste", text=LINES, file=None, r=8, alpha=16, dropout=0.0, tmods=["q_proj", "v_proj"], lr=0.01,
            steps=5, batch=4, max_len=24, seed_v=1, val=0.0, sched="constant", warm=0)
TARGETS = {"own-llama": ["q_proj", "v_proj"], "own-gpt2": ["c_attn"], "own-phi3": ["qkv_proj"],
           "own-qwen2": ["q_proj", "v_proj"], "own-mistral": ["q_proj", "v_proj"], "own-gemma3": ["q_proj", "v_proj"]}


def _param(info, api, name):
    (p,) = [p for p in info[api]["parameters"] if p["parameter_name"] == name]
    return p["python_type"]["type"]


def test_training_pickers_offer_the_added_models_after_the_lessons_own(client):
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for api in ("/lora_preview", "/lora_params", "/lora_train", "/lora_upload"):
        listed = _param(info, api, "base")
        assert listed.index("'smollm2-135m-instruct'") < min(listed.index(f"'{k}'") for k in KEYS), (api, listed)


def test_the_lora_link_keeps_the_base_model(demo, client):  # client: launched with the Gradio folder it is built in
    from types import SimpleNamespace
    from urllib.parse import parse_qsl

    import app

    slots = demo.share_slots
    values = [("own-gpt2" if name == "model" else None) if tid == "lora" else None for tid, name, _ in slots]
    query = app.link_query(slots, "lora", values)
    assert "model=own-gpt2" in query
    _, _, updates = app._query_updates(slots, SimpleNamespace(query_params=dict(parse_qsl(query))), text_fields=False)
    (got,) = [u for (tid, name, _), u in zip(slots, updates) if tid == "lora" and name == "model"]
    assert got["value"] == "own-gpt2"


@pytest.mark.parametrize("key", KEYS)
def test_lora_trains_each_family_and_merges_only_its_targets(client, folders, raw, key, tmp_path):
    """5 steps on the added model: the loss falls; the parameter count names the family's own query/value
    layers; the merged model differs from the folder's weights in those layers only."""
    import re
    import zipfile

    from safetensors.torch import load_file

    if key == "own-llama":  # ticked layers the model has (a link's) are kept
        assert client.predict(key, ["q_proj", "k_proj"], api_name="/lora_base")["value"] == ["q_proj", "k_proj"]
    layers = client.predict(key, [], api_name="/lora_base")  # as the picker does: this session's target layers
    assert layers["value"] == TARGETS[key] and set(TARGETS[key]) < {c[0] for c in layers["choices"]}, layers
    md, _choices = client.predict(*[dict(LORA, tmods=TARGETS[key])[k] for k in (
        "r", "alpha", "dropout", "tmods", "lr", "steps", "batch", "max_len", "seed_v")], key, api_name="/lora_params")
    assert f"{', '.join(TARGETS[key])} in every block" in md, md
    # the count ticked the family's layers in this session's picker, as the browser shows them
    status, _plot = client.predict(**dict(LORA, tmods=TARGETS[key]), base=key, api_name="/lora_train")
    first, last = map(float, re.search(r"loss ([\d.]+) → \*\*([\d.]+)\*\*", status).groups())
    assert "Done" in status and "5 / 5" in status and last < first, status
    _base, _adapted, md = client.predict(text="Life is", seed_v=7, n_new=8, temp=0.0, api_name="/lora_compare")
    assert f"Base ({key.removeprefix('own-')} (added · folder" in md, md
    path, _md = client.predict(api_name="/lora_merge")
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path)
    merged = load_file(tmp_path / "merged-model" / "model.safetensors")
    model, _tok = raw[key]
    moved = {name for name, p in model.state_dict().items()
             if name in merged and not torch.equal(merged[name], p.to(merged[name].dtype))}
    assert moved and {name.split(".")[-2] for name in moved} == set(TARGETS[key]), moved


# --- the training lessons: post-training (SFT, reward model, DPO) ----------------------------------
def test_sft_format_and_training_run_on_an_added_model(client, raw):
    """The format's losses are the added model's own on that conversation; SFT trains 2 steps on it."""
    import re

    from engine.training import sft

    layers = client.predict("own-gpt2", [], api_name="/posttraining_sft_base")
    assert layers["value"] == ["c_attn", "c_proj"], layers  # GPT-2's attention projections
    model, tok = raw["own-phi3"]
    text, view = client.predict(p="What is 23 + 58?", resp="81", base="own-phi3", api_name="/posttraining_format")
    assert "Base model: phi3 (added · folder" in view and "<|im_start|>user\nWhat is 23 + 58?<|im_end|>" in text
    shown = [float(x) for x in re.findall(r"loss under the base model ([\d.]+) nats/token", view)]
    want = [sft.loss_of(model, e["ids"], e["labels"]) for e in
            (sft.encode_pair(tok, "What is 23 + 58?", "81", mask, 256) for mask in sft.MASKS)]
    assert shown == pytest.approx(want, abs=6e-4)
    layers = client.predict("own-llama", [], api_name="/posttraining_sft_base")  # the picker, as in the browser
    assert layers["value"] == ["q_proj", "k_proj", "v_proj", "o_proj"], layers
    status, _ = client.predict(src="bundled", file=None, mask="response", r=4, lr=0.002, steps=2, batch=2, max_len=40,
                               seed_v=1, tmods=layers["value"], base="own-llama", api_name="/posttraining_sft_train")
    assert "Done" in status and "2 / 2" in status, status


def test_reward_model_and_dpo_train_on_an_added_model(client):
    """GPT-2 (Conv1D, learned positions, a reward head on transformer.h): the bundled pairs do not fit its
    64 positions and are refused by name; short pairs train both, and DPO's first loss is log 2, since
    the adapter starts at zero and the policy is its own reference."""
    from gradio_client.exceptions import AppError

    bundled = {"headers": ["prompt", "chosen", "rejected", "held out"], "data": [["", "", "", ""]]}
    rm = dict(src="bundled", rows=bundled, lr=0.001, steps=2, batch=2, r=4, max_len=64, seed=42, base="own-gpt2")
    with pytest.raises(AppError, match=r"Held-out pair \d+ .* more than gpt2 \(added · folder .*'s context window: "
                                       r"valid lengths are 1 to 64 tokens"):
        client.predict(**rm, api_name="/pref_reward_train")
    rows = [[f"What is {a} + {b}?", f"{a + b}.", f"{a + b + 1}.", "yes" if a > 5 else ""] for a, b in
            [(1, 2), (2, 3), (3, 4), (4, 5), (6, 1), (7, 2)]]
    short = dict(rm, src="table", rows={"headers": bundled["headers"], "data": rows})
    status, _plot, md, held = client.predict(**short, api_name="/pref_reward_train")
    assert "Done" in status and "2 / 2" in status and "Held-out pairwise accuracy" in md, status
    assert [r[0] for r in held["data"]] == ["What is 6 + 1?", "What is 7 + 2?"]
    scored = client.predict(prompt="What is 2 + 2?", responses="4.\nfive", api_name="/pref_reward_score")
    assert [r[0] for r in scored["data"]] == ["4.", "five"]
    status, _plot, ba, _ba_plot = client.predict(**dict(short, beta=0.1), api_name="/pref_dpo_train")
    assert "Done" in status and "loss 0.693 →" in status and "before (adapter off)" in ba, status


# --- Retrieval's answer model -------------------------------------------------------------------------
def test_rag_offers_the_added_models_and_refuses_one_too_short_by_name(client):
    from gradio_client.exceptions import AppError

    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    listed = _param(info, "/rag_answer", "model")
    assert listed.index("'smollm2-135m-instruct'") < min(listed.index(f"'{k}'") for k in KEYS), listed
    with pytest.raises(AppError, match=r"gpt2 \(added · folder .*\) reads 64 tokens at most, less than the smallest "
                                       r"context budget \(128\)"):
        client.predict(query="Where does the zebra live?", model="own-gpt2", api_name="/rag_answer")


# --- Tokens: an added causal LM's tokenizer ---------------------------------------------------------
def test_the_tokens_tab_offers_each_added_models_tokenizer(client, raw):
    text = "Hello world, the café costs 3.50 €"
    for key in KEYS:
        _table, data = client.predict(text, f"{key}-tokenizer", 800, api_name="/tokenize")
        assert data["ids"] == raw[key][1](text, add_special_tokens=False)["input_ids"]
        assert data["vocab_size"] == len(raw[key][1])


@pytest.mark.parametrize("key", KEYS)
def test_trust_and_a_class_round_run_on_each_added_model(client, raw, key):
    """Trust's calibration and a Class round on the added model: the calibration's ECE agrees with the
    answers it lists; a predict-the-next-token guess scores the model's own next-token probability."""
    import csv

    from engine.trust import calibration as C

    head, table, _rel, _cov, ranked, _declined_md, _declined = client.predict(
        key, 8, "all", 0, 1.0, 5, 6, 0, 60, "first token", 0.5, api_name="/trust_calibration")
    rows = ranked["data"]
    assert len(rows) == 8 and "8 questions" in head and all(0.0 <= float(r[4]) <= 1.0 for r in rows)
    shown = {r[0]: r[2] for r in table["data"]}
    ece = C.ece([float(r[4]) for r in rows], [r[3] == "✅" for r in rows], 5)
    assert float(shown["first token"]) == pytest.approx(ece, abs=0.01)

    code, host = client.predict(api_name="/class_create")[:2]
    client.predict(code, host, PROMPT, key, api_name="/class_open_predict")
    student = client.predict(code, f"student of {key}", api_name="/class_join")[0]
    client.predict(code, student, "the", api_name="/class_answer")
    with open(client.predict(code, host, api_name="/class_csv"), newline="") as f:
        (answer,) = [r for r in csv.DictReader(f) if r["answer"] == "the"]
    model, tok = raw[key]
    with torch.no_grad():
        probs = model(_ids(tok, PROMPT)).logits[0, -1].float().softmax(-1)
    tid = tok(" the", add_special_tokens=False)["input_ids"][0]
    assert float(answer["score"]) == pytest.approx(float(probs[tid]), rel=1e-3)
    assert int(answer["rank"]) == int((probs > probs[tid]).sum()) + 1


def test_picking_another_lora_base_redraws_the_data_preview(demo):
    """The preview shows the training format in the base model's own tokens: after the picker's
    change (/lora_base) succeeds, the preview runs again for the new base."""
    deps = demo.config["dependencies"]
    (base,) = [d for d in deps if d.get("api_name") == "lora_base"]
    (preview,) = [d for d in deps if d.get("api_name") == "lora_preview"]
    after = [d for d in deps if d.get("trigger_after") == base["id"] and d.get("trigger_only_on_success")]
    assert len(after) == 1 and after[0]["outputs"] == preview["outputs"] and after[0]["inputs"] == preview["inputs"]
