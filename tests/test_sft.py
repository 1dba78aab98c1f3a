"""SFT engine: the loss mask, the loss, isolation of the base model and of sessions, and the bundled
data's checkers. A tiny random Llama built from a config stands in for the base model (the real
Gemma is not the point here); SmolLM2's real tokenizer and chat template give the format."""
from __future__ import annotations

import json

import pytest
import torch

from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.training import lora as L
from engine.training import sft as S
from engine.training import sft_tasks as T
from tests.conftest import tiny_causal_lm

pytestmark = pytest.mark.usefixtures("one_thread")
VOCAB = 512


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer):
    return smollm2_tokenizer


@pytest.fixture(scope="module")
def base():
    return tiny_causal_lm(vocab_size=50_000, intermediate_size=48, max_position_embeddings=256,
                          tie_word_embeddings=True)


# ---- data ------------------------------------------------------------------------------------------
def test_bundled_answers_pass_their_own_checkers_and_held_out_is_disjoint():
    train, held = S.load_train(), S.load_held_out()
    assert 250 <= len(train) <= 400 and 40 <= len(held) <= 80
    assert {r["task"] for r in train} == set(T.TASKS) == {r["task"] for r in held}
    for r in train + held:
        assert T.solve(r["prompt"])[0] == r["task"]
        assert T.check(r["prompt"], r["response"]) is True, r
        assert T.check(r["prompt"], r["response"] + " and more") is False
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in held}
    # by hand: the checkers compute, they do not read a stored answer
    assert T.check("What is 61 + 48?", "109") and not T.check("What is 61 + 48?", "108")
    assert T.check('How many times does the letter "s" appear in "mississippi"?', "4.")
    assert T.check_first_line("What is 9 - 3?", "6\nWhat is 7 - 2?") and not T.check("What is 9 - 3?", "6\nWhat")
    assert T.check("Hello there", "hi") is None
    # the file is exactly what the script writes
    rows, _ = T.build(seed=0)
    assert rows == train


def test_user_jsonl_is_bounded_and_checked():
    good = "\n".join(json.dumps({"prompt": f"What is {i} + 1?", "response": str(i + 1)}) for i in range(4))
    rows = S.parse_pairs(good)
    assert len(rows) == 4 and rows[0]["task"] == "add"
    with pytest.raises(UserInputError, match="prompt.*response"):
        S.parse_pairs('{"prompt": "x"}\n' * 4)
    with pytest.raises(UserInputError, match="4 to"):
        S.parse_pairs(good.splitlines()[0])
    with pytest.raises(UserInputError, match="1,000"):
        S.parse_pairs("\n".join([json.dumps({"prompt": "x" * 1001, "response": "y"})] * 4))


# ---- the loss mask -----------------------------------------------------------------------------------
def test_labels_are_ignored_exactly_on_prompt_and_template_tokens(tokenizer):
    prompt, response = "What is 12 + 7?", "19"
    head = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                         tokenize=False)
    n_head = len(tokenizer(head, add_special_tokens=False)["input_ids"])
    n_resp = len(tokenizer(response, add_special_tokens=False)["input_ids"])
    e = S.encode_pair(tokenizer, prompt, response, "response")
    assert tokenizer.decode(e["ids"]) == e["parts"]["text"]
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    counted = [i for i, x in enumerate(e["labels"]) if x != -100]
    assert counted == list(range(n_head, n_head + n_resp + 1))  # the response, then <|im_end|>
    assert e["ids"][counted[-1]] == end_of_turn
    assert all(e["labels"][i] == e["ids"][i] for i in counted)
    assert len(e["ids"]) > counted[-1] + 1  # the closing newline is template: not counted
    everything = S.encode_pair(tokenizer, prompt, response, "all")
    assert everything["labels"] == everything["ids"] and -100 not in everything["labels"]
    with pytest.raises(UserInputError, match="response or all"):
        S.encode_pair(tokenizer, prompt, response, "prompt")


def test_gemma_turn_template_renders_turns():
    from transformers.utils.chat_template_utils import render_jinja_template

    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    text = render_jinja_template([msgs], chat_template=S.GEMMA_TEMPLATE, bos_token="<bos>")[0][0]
    assert text == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"


def test_engine_loss_equals_masked_token_loss_by_hand(tokenizer, base):
    rows = S.load_train()[:3]
    for mask in S.MASKS:
        batch = S.collate_sft(S.encode_pairs(tokenizer, rows, 64, mask), L.pad_id_of(tokenizer))
        with torch.no_grad():
            logits = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            engine_loss = base(**batch).loss
        logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)  # position t predicts token t+1
        target = batch["labels"][:, 1:]
        keep = target != -100
        by_hand = -logp[keep].gather(-1, target[keep].unsqueeze(-1)).mean()
        assert keep.sum() > 0 and torch.isclose(engine_loss.double(), by_hand, atol=1e-5)
        with torch.no_grad():  # the training loop's loss runs the LM head on the counted positions only
            assert torch.isclose(L.counted_token_loss(base, batch).double(), by_hand, atol=1e-5)
        one = rows[0]
        e = S.encode_pair(tokenizer, one["prompt"], one["response"], mask, 64)
        single = S.collate_sft([(e["ids"], e["labels"])], 0)
        assert S.loss_of(base, e["ids"], e["labels"]) == pytest.approx(masked_loss(base, single), abs=1e-5)


def test_counted_token_loss_equals_the_models_own_loss_on_a_tiny_gemma3():
    """Gemma 3 (the SFT base) has its own norm, scaled embeddings and optional soft-capping: the
    head-on-counted-positions loss must still equal transformers' loss, value and gradient."""
    model = tiny_causal_lm("gemma3_text", vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=8,
                           final_logit_softcapping=5.0)
    assert model.config.model_type in L._HEAD_ON_COUNTED
    ids = torch.randint(1, 300, (3, 12))
    labels = ids.clone()
    labels[:, :5] = -100  # a prompt the loss does not count
    labels[2, 9:] = -100  # and padding
    batch = dict(input_ids=ids, attention_mask=(labels != -100) | (torch.arange(12) < 9), labels=labels)
    want = model(**batch).loss
    (g_want,) = torch.autograd.grad(want, model.model.layers[0].self_attn.q_proj.weight)
    got = L.counted_token_loss(model, batch)
    (g_got,) = torch.autograd.grad(got, model.model.layers[0].self_attn.q_proj.weight)
    assert torch.isclose(got, want, atol=1e-5) and torch.allclose(g_got, g_want, atol=1e-5)


def masked_loss(model, batch) -> float:
    """Mean -log p(token) over the positions whose label is not -100, computed here by hand."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    target = batch["labels"][:, 1:]
    keep = target != -100
    return float(-logp[keep].gather(-1, target[keep].unsqueeze(-1)).mean())


# ---- training through the LoRA lesson's loop -----------------------------------------------------------
class FakeEngine:  # the engine surface lora.train uses, serving the tiny model (the real one is slow here)
    def __init__(self, engine, model, tokenizer):
        from engine.core.models import TextModel

        self.registry, self.device, self.config = engine.registry, engine.device, engine.config
        self.bundle = TextModel(model, tokenizer, engine.registry.resolve(S.INSTRUCT_KEY), torch.device("cpu"),
                                torch.float32)

    def load(self, key, progress=None):
        assert key == S.BASE_KEY
        return self.bundle


def test_sft_trains_per_session_adapters_and_leaves_the_base_untouched(engine, tokenizer, base):
    fake = FakeEngine(engine, base, tokenizer)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    rows = S.load_train()[:24]
    a, b = L.LoraSession(), L.LoraSession()
    ua = list(S.train(fake, a, rows, make(S.SftSettings, max_steps=4, batch_size=4, learning_rate=0.01, seed=1)))
    ub = list(S.train(fake, b, rows, make(S.SftSettings, max_steps=2, batch_size=4, learning_rate=0.01, seed=2,
                                          mask="all")))
    assert ua[-1].done and ua[-1].step == 4 and ub[-1].step == 2 and a.settings.mask == "response"
    for k, v in base.state_dict().items():
        assert torch.equal(v, before[k]), k
    pa, pb = L.get_state_keys(a.model), L.get_state_keys(b.model)
    assert pa == pb
    from peft import get_peft_model_state_dict

    sa, sb = get_peft_model_state_dict(a.model), get_peft_model_state_dict(b.model)
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)
    ids = torch.tensor([S.encode_pair(tokenizer, "What is 2 + 2?", "4")["ids"]])
    with torch.no_grad():
        la, lb, l0 = a.model(input_ids=ids).logits, b.model(input_ids=ids).logits, base(input_ids=ids).logits
        with a.model.disable_adapter():
            assert torch.allclose(a.model(input_ids=ids).logits, l0, atol=1e-6)
    assert not torch.allclose(la, lb) and not torch.allclose(la, l0)
    # the engine's first loss is the masked loss of its first batch under the untouched base (B = 0)
    for session_updates, settings in ((ua, a.settings), (ub, b.settings)):
        order = next(L.batches(len(rows), settings.batch_size, settings.seed))
        examples = S.encode_pairs(tokenizer, rows, settings.max_length, settings.mask)
        first = S.collate_sft([examples[i] for i in order], L.pad_id_of(tokenizer))
        assert session_updates[0].loss == pytest.approx(masked_loss(base, first), abs=1e-4)
    # before/after runs and scores with the task checkers
    ba = S.before_after(a.model, tokenizer, S.eval_rows(1), max_new_tokens=3)
    assert ba["n"] == len(T.TASKS) and set(ba["score"]) == {"base", "tuned", "tuned_no_template"}
    for cond, score in ba["score"].items():
        assert score["exact"] == sum(r[cond]["exact"] for r in ba["rows"]) / ba["n"]
        assert all(not r[cond]["exact"] or r[cond]["stopped"] for r in ba["rows"])


# ---- Base vs instruct: which two models, and what the screen says about them ------------------------------
def test_offline_the_two_families_are_named_and_the_sft_part_is_pointed_to():
    from types import SimpleNamespace

    from engine.core.registry import Registry
    from tabs.posttraining import pairing_md

    offline = SimpleNamespace(registry=Registry(online=False))
    assert S.comparison_keys(offline.registry) == ("gemma3-270m-base", "smollm2-135m-instruct")
    text = pairing_md(offline)
    assert "the two differ in size, training data and tokenizer" in text
    assert "not one backbone before and after SFT" in text and "**SFT: train and compare**" in text


def test_online_the_base_and_the_instruct_model_are_one_family():
    from types import SimpleNamespace

    from engine.core.registry import Registry
    from tabs.posttraining import pairing_md

    online = SimpleNamespace(registry=Registry(online=True))
    base, inst = S.comparison_keys(online.registry)
    specs = [online.registry.get(k) for k in (base, inst)]
    assert [s.hub_id for s in specs] == ["HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert {s.title.split("-")[0] for s in specs} == {"SmolLM2"}
    text = pairing_md(online)
    assert "One family" in text and "Gemma" not in text and text.count("SmolLM2-135M") == 2
