"""Preference tuning (engine/training/preference.py): trl's DPO and reward losses checked against
the formulas computed here from log-probs and rewards of our own forward passes (a tiny Llama
built from a config, the real SmolLM2 tokenizer); then short real runs on SmolLM2-135M-Instruct:
held-out accuracy, the reference (adapter off) and the shared model unchanged, the adapter zip
that peft loads, two sessions that do not mix; and the data checks."""
from __future__ import annotations

import json
import zipfile

import pytest
import torch
import torch.nn.functional as F

from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.training import lora as L
from engine.training import preference as P
from tests.conftest import both_cores, tiny_causal_lm

pytestmark = pytest.mark.usefixtures("one_thread")

PAIRS = [P.Pair("What is 2 + 3?", "5.", "Well, maybe 6, I am not sure."),
         P.Pair("What is the capital of Peru?", "Lima.", "Hmm, it could be Quito, perhaps."),
         P.Pair('Who said "A yawn is a silent shout."?', "G. K. Chesterton.", "Kin Hubbard."),
         P.Pair("What is 9 - 4?", "5.", "Let me see... 3, or so.")]


def _chat(tok, prompt: str, response: str | None = None) -> str:
    """The conversation as the instruct model is served it: its chat template, rendered as text."""
    messages = [{"role": "user", "content": prompt}]
    if response is None:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tok.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=False)


@pytest.fixture(scope="module")
def tiny(smollm2_tokenizer):
    """A 2-layer Llama with SmolLM2's vocabulary, random weights: the losses' arithmetic is the point.
    Its own copy (tied head, pad and eos from the tokenizer): the trainers wrap it in adapters."""
    tok = smollm2_tokenizer
    model = tiny_causal_lm(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=True,
                           pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return model, tok


def _perturb_lora(model, seed: int = 1) -> None:
    """Nonzero LoRA B (and a nonzero head), so that the policy differs from the reference."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.2)


def _logp(model, tok, prompt: str, response: str) -> float:
    """log π(response + end of turn | prompt in the chat template), by hand: the rendered template
    text tokenized, one plain forward, log-softmax, the response's tokens."""
    p = tok(_chat(tok, prompt), add_special_tokens=False)["input_ids"]
    full = tok(_chat(tok, prompt, response), add_special_tokens=False)["input_ids"]
    assert full[:len(p)] == p  # the template's generation prompt ends on a token boundary
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([full])).logits[0]  # (n, vocab)
    logp = torch.log_softmax(logits.float(), -1)
    return float(sum(logp[t - 1, full[t]] for t in range(len(p), len(full))))


def test_dpo_loss_is_minus_log_sigmoid_of_beta_times_the_log_ratio_gap(tiny, tmp_path):
    model, tok = tiny
    s = make(P.DPOSettings, beta=0.3, max_steps=1, batch_size=4, max_length=64)
    trainer = P.dpo_trainer(model, tok, PAIRS, s, str(tmp_path))
    policy = trainer.model
    _perturb_lora(policy)
    engine_loss = P.batch_loss(trainer, PAIRS)
    terms = []
    for p in PAIRS:
        pc, pr = _logp(policy, tok, p.prompt, p.chosen), _logp(policy, tok, p.prompt, p.rejected)
        with policy.disable_adapter():
            rc, rr = _logp(policy, tok, p.prompt, p.chosen), _logp(policy, tok, p.prompt, p.rejected)
        terms.append(-F.logsigmoid(torch.tensor(0.3 * ((pc - rc) - (pr - rr)))))
    expected = float(torch.stack(terms).mean())
    assert max(abs(float(t) - 0.6931) for t in terms) > 0.01  # the policy really differs from the reference
    assert engine_loss == pytest.approx(expected, abs=1e-4)


def test_reward_loss_is_minus_log_sigmoid_of_the_reward_gap(tiny, tmp_path):
    model, tok = tiny
    s = make(P.RewardSettings, max_steps=1, batch_size=4, max_length=64)
    trainer = P.reward_trainer(model, tok, PAIRS, s, str(tmp_path))
    rm = trainer.model
    _perturb_lora(rm)
    engine_loss = P.batch_loss(trainer, PAIRS)
    terms = []
    for p in PAIRS:
        r = []
        for y in (p.chosen, p.rejected):
            ids = tok(_chat(tok, p.prompt, y), add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                r.append(rm(input_ids=torch.tensor([ids])).logits[0, 0])  # one sequence, no padding
        terms.append(-F.logsigmoid(r[0] - r[1]))
    assert engine_loss == pytest.approx(float(torch.stack(terms).mean()), abs=1e-4)
    # the batched scorer (right padding) gives the same rewards as one sequence at a time
    batched = P.rewards(rm, tok, PAIRS[0].prompt, [PAIRS[0].chosen, PAIRS[0].rejected])
    single = [P.rewards(rm, tok, PAIRS[0].prompt, [y])[0] for y in (PAIRS[0].chosen, PAIRS[0].rejected)]
    assert batched == pytest.approx(single, abs=1e-4)


def test_both_trainers_tokenize_the_chat_template_not_raw_text(tiny, tmp_path):
    """No train/serve skew: the ids trl trains on are the conversation in the instruct model's chat
    template (system turn, <|im_start|>user ... <|im_start|>assistant ... <|im_end|>)."""
    model, tok = tiny
    dpo = P.dpo_trainer(model, tok, PAIRS, make(P.DPOSettings, max_steps=1), str(tmp_path / "dpo"))
    rm = P.reward_trainer(model, tok, PAIRS, make(P.RewardSettings, max_steps=1), str(tmp_path / "rm"))
    for p, d, r in zip(PAIRS, dpo.train_dataset, rm.train_dataset):
        assert tok.decode(d["prompt_ids"]) == _chat(tok, p.prompt)
        assert tok.decode(d["prompt_ids"] + d["chosen_ids"]) == _chat(tok, p.prompt, p.chosen)
        assert tok.decode(d["prompt_ids"] + d["rejected_ids"]) == _chat(tok, p.prompt, p.rejected)
        assert tok.decode(r["chosen_ids"]) == _chat(tok, p.prompt, p.chosen)
        assert tok.decode(r["rejected_ids"]) == _chat(tok, p.prompt, p.rejected)
        assert "<|im_start|>assistant\n" in _chat(tok, p.prompt)
    # the scorers encode the same ids (the response starts where trl's completion starts)
    ids, start = P.encode_response(tok, PAIRS[0].prompt, PAIRS[0].chosen)
    first = dpo.train_dataset[0]
    assert ids == first["prompt_ids"] + first["chosen_ids"] and start == len(first["prompt_ids"])


def test_the_batched_likelihood_equals_the_hand_computed_one(tiny):
    model, tok = tiny
    got = P.sequence_logprobs(model, tok, [(p.prompt, y) for p in PAIRS for y in (p.chosen, p.rejected)])
    want = [_logp(model, tok, p.prompt, y) for p in PAIRS for y in (p.chosen, p.rejected)]
    assert [g[0] for g in got] == pytest.approx(want, abs=1e-3)


# ---- real runs on the embedded SmolLM2-135M-Instruct -------------------------------------------
def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture(scope="module")
def dpo_run(engine, smollm):
    pairs = P.load_pairs()
    ids = smollm.tokenizer("Question: What is 3 + 4?\nAnswer: 7.", return_tensors="pt")["input_ids"]
    shared_before = _logits(smollm.model, ids)
    session = P.PreferenceSession()
    s = make(P.DPOSettings, max_steps=4, batch_size=4, max_length=48)
    with both_cores():
        updates = list(P.train_dpo(engine, session, pairs, s))
    return session, updates, ids, shared_before


def test_dpo_streams_every_step_and_moves_the_held_out_preference(dpo_run):
    session, updates, _, _ = dpo_run
    assert [u.step for u in updates] == [1, 2, 3, 4] and updates[-1].done
    h = updates[-1].history
    assert h["loss"][0] == pytest.approx(0.6931, abs=1e-3)  # π = π_ref at step 1: loss = log 2
    assert h["chosen"][0] == h["rejected"][0] == 0.0
    assert h["margin"][-1] == pytest.approx(h["chosen"][-1] - h["rejected"][-1], abs=1e-4)
    assert h["margin"][-1] > 0
    before, after = session.before, session.after
    assert before["pairs"] == after["pairs"] == 32
    def margin(stats):  # mean log π(chosen) − log π(rejected) over the held-out pairs: what DPO pushes up
        return sum(r["chosen"] - r["rejected"] for r in stats["rows"]) / stats["pairs"]

    assert after["accuracy"] > 0.5 and margin(after) > margin(before)


def test_the_reference_and_the_shared_model_are_unchanged_and_the_zip_loads(dpo_run, smollm, tmp_path):
    session, _, ids, shared_before = dpo_run
    policy = session.policy
    assert torch.equal(_logits(smollm.model, ids), shared_before)  # the cached model did not move
    with policy.disable_adapter():
        ref = _logits(policy, ids)
    assert torch.allclose(ref, shared_before, atol=1e-5)  # the reference is the untouched model
    tuned = _logits(policy, ids)
    assert not torch.allclose(tuned, ref, atol=1e-3)  # the adapter did learn something
    from peft import PeftModel

    with zipfile.ZipFile(P.export_dpo_adapter(session, tmp_path)) as zf:
        zf.extractall(tmp_path / "unzipped")
    loaded = PeftModel.from_pretrained(L.shared_copy(smollm.model), str(tmp_path / "unzipped")).eval()
    assert torch.allclose(_logits(loaded, ids), tuned, atol=1e-4)


def test_two_sessions_do_not_mix(dpo_run, engine):
    first, _, ids, _ = dpo_run
    mine = {k: v.clone() for k, v in first.policy.named_parameters() if "lora_" in k}
    fresh = P.PreferenceSession()
    with pytest.raises(UserInputError, match="no DPO adapter in this session"):
        P.compare_outputs(fresh, ["What is 1 + 1?"], 7)
    few = P.load_pairs()[:30]  # a few held-out pairs, to keep the run short
    list(P.train_dpo(engine, fresh, few, make(P.DPOSettings, max_steps=1, batch_size=2, max_length=64, seed=3)))
    assert fresh.policy is not first.policy
    after = dict(first.policy.named_parameters())
    assert all(torch.equal(after[k], v) for k, v in mine.items())  # the other session's run left it alone
    assert not torch.allclose(_logits(fresh.policy, ids), _logits(first.policy, ids), atol=1e-4)


@pytest.mark.slow  # trains on the real SmolLM2
def test_on_the_reward_hacking_set_the_reward_model_learns_shortness(engine):
    """Every chosen answer there is the shorter one: a run of 8 of the default 30 steps already ranks
    a short wrong answer above a long right one (measured 3.06 for 'Milan.' against 0.24; 4.59
    against -0.60 after 12 steps) and separates every held-out pair by length."""
    session = P.PreferenceSession()
    with both_cores():
        list(P.train_reward(engine, session, P.load_pairs(P.SHORT_PAIRS), make(P.RewardSettings, max_steps=8)))
    ev = session.reward_eval
    assert ev["accuracy"] > 0.9  # length alone separates every held-out pair
    _, held = P.split(P.load_pairs(P.SHORT_PAIRS))
    for p, row in list(zip(held, ev["rows"]))[:4]:  # the table's rewards are the model's, pair by pair
        assert P.rewards(session.reward, session.tokenizer, p.prompt, [p.chosen, p.rejected]) == pytest.approx(
            [row["chosen"], row["rejected"]], abs=1e-4)
    assert ev["accuracy"] == sum(r["chosen"] > r["rejected"] for r in ev["rows"]) / ev["pairs"]
    scored = P.score_responses(session, "What is the capital of Italy?", "Milan.\nThe capital of Italy is Rome.")
    assert [t for t, _ in scored] == ["Milan.", "The capital of Italy is Rome."]  # one response a line
    assert dict(scored)["Milan."] > dict(scored)["The capital of Italy is Rome."] + 1.0


def test_the_reward_verdict_names_the_chance_range():
    """32 held-out pairs: a coin flip lands in 50% ± 17% 95% of the time (1.96·√(¼/32) = 0.173)."""
    from tabs import _posttraining_preference as T

    assert P.chance_band(32) == pytest.approx(0.1732, abs=1e-4)
    assert P.chance_band(128) == pytest.approx(P.chance_band(32) / 2)
    noisy = T._reward_verdict(dict(accuracy=0.5625, pairs=32, chance_band=P.chance_band(32)))
    assert "56%" in noisy and "33% and 67%" in noisy and "cannot be told apart from chance" in noisy
    learned = T._reward_verdict(dict(accuracy=0.97, pairs=32, chance_band=P.chance_band(32)))
    assert "97%" in learned and "cannot be told apart" not in learned


# ---- data --------------------------------------------------------------------------------------
def test_bundled_data_and_its_split():
    for path in (P.PAIRS, P.SHORT_PAIRS):
        pairs = P.load_pairs(path)
        assert 300 <= len(pairs) <= 400 and sum(p.held_out for p in pairs) == 32
        assert all(p.chosen != p.rejected for p in pairs)
        assert {p.kind for p in pairs} == {"arithmetic", "capital", "quote"}
        assert not any(p.prompt.startswith("Question:") for p in pairs)  # the chat template frames them


def _length_correlation(pairs) -> float:
    """Point-biserial correlation between "this side is the chosen one" and its length minus the
    other side's, over both orders of every pair: mean(d) / sqrt(mean(d²)) for d = len(c) − len(r)."""
    d = [len(p.chosen) - len(p.rejected) for p in pairs]
    return sum(d) / len(d) / (sum(x * x for x in d) / len(d)) ** 0.5


def test_length_does_not_predict_the_choice_in_the_default_data():
    pairs = P.load_pairs()
    for group in (pairs, [p for p in pairs if p.held_out],
                  *([p for p in pairs if p.kind == k] for k in ("arithmetic", "capital", "quote"))):
        assert abs(_length_correlation(group)) < 0.15, group[0].kind
    longer = sum(len(p.chosen) > len(p.rejected) for p in pairs)
    shorter = sum(len(p.chosen) < len(p.rejected) for p in pairs)
    assert 0.4 <= longer / (longer + shorter) <= 0.6 and longer + shorter >= 0.8 * len(pairs)  # few ties
    held = [p for p in pairs if p.held_out]
    assert 0.35 <= sum(len(p.chosen) < len(p.rejected) for p in held) / len(held) <= 0.65  # "pick the shorter"


def test_the_reward_hacking_data_ties_the_choice_to_shortness():
    pairs = P.load_pairs(P.SHORT_PAIRS)
    assert all(len(p.chosen) < len(p.rejected) for p in pairs) and _length_correlation(pairs) < -0.9


def test_user_data_is_bounded_and_checked(tmp_path):
    line = json.dumps({"prompt": "Q:", "chosen": " yes", "rejected": " no"})
    pairs = P.parse_pairs("\n".join([line] * 20))
    assert len(pairs) == 20 and sum(p.held_out for p in pairs) == 2  # every tenth held out
    with pytest.raises(UserInputError, match="3 pairs: give 4 to 2,000"):
        P.parse_pairs("\n".join([line] * 3))
    with pytest.raises(UserInputError, match='no "rejected" text'):
        P.parse_pairs("\n".join([json.dumps({"prompt": "Q", "chosen": "a"})] * 5))
    with pytest.raises(UserInputError, match="the same chosen and rejected"):
        P.pairs_from_rows([["Q", "a", "a"]] * 5)
    with pytest.raises(UserInputError, match="limit is 400"):
        P.pairs_from_rows([["Q", "a" * 401, "b"]] * 5)
    with pytest.raises(UserInputError, match="not valid JSON"):
        P.parse_pairs("{oops\n" * 5)
    big = tmp_path / "big.jsonl"
    big.write_bytes(b" " * (P.MAX_PAIRS_BYTES + 1))
    with pytest.raises(UserInputError, match="limit is 1,000,000 bytes"):
        P.read_pairs_file(big)
    with pytest.raises(UserInputError, match="beta = 5"):
        make(P.DPOSettings, beta=5)
    bundled = P.load_pairs()
    first = [p for p in bundled if not p.held_out][:10] + [p for p in bundled if p.held_out][:2]
    back = P.pairs_from_rows(P.pairs_to_rows(first) + [["", "", "", ""]])  # an empty last row is skipped
    assert [(p.prompt, p.chosen, p.rejected, p.held_out) for p in back] == \
        [(p.prompt, p.chosen, p.rejected, p.held_out) for p in first]


# ---- the runner's gate and fit, through the trainers (a tiny model served by a fake engine) -------
class TinyEngine:
    """The engine surface the preference runs use, serving the tiny Llama as the instruct model,
    with a cap of `cap` seconds."""

    def __init__(self, engine, tiny, cap: float = 600.0):
        from types import SimpleNamespace

        from engine.core.models import TextModel

        self.registry, self.device = engine.registry, engine.device
        self.config = SimpleNamespace(train_minutes=cap / 60)
        self.bundle = TextModel(tiny[0], tiny[1], engine.registry.resolve(L.BASE_KEY), torch.device("cpu"),
                                torch.float32)

    def load(self, key, progress=None):
        assert key == L.BASE_KEY
        return self.bundle


def test_the_held_out_scoring_runs_after_the_gate_is_free(engine, tiny, monkeypatch):
    """A second session enters the one-training gate while the first one's DPO run scores its
    held-out pairs (the class trial: a call ended 100 s after a 15 s cap, holding the gate)."""
    from engine.training import runner as R

    seen, threads = [], []
    real = P.held_out_stats

    def scoring(policy, tokenizer, pairs, adapter=True):
        with R.start(60.0) as second:  # raises TrainingBusy while the first run holds the gate
            seen.append(second.gate is R.GATE)
        threads.append(torch.get_num_threads())
        return real(policy, tokenizer, pairs[:2], adapter)

    monkeypatch.setattr(P, "held_out_stats", scoring)
    monkeypatch.setattr(R, "fit_threads", lambda default: 2)  # as the load would have it
    session = P.PreferenceSession()
    updates = list(P.train_dpo(TinyEngine(engine, tiny), session, P.load_pairs()[:40],
                               make(P.DPOSettings, max_steps=2, batch_size=2, max_length=64)))
    assert seen == [True, True] and updates[-1].done and session.after["pairs"] == 2
    assert threads == [2, 2] and torch.get_num_threads() == 1  # scored with the threads fitted, then put back
    assert not session.training and not R.GATE.busy


def test_a_dpo_run_too_slow_for_the_cap_is_refused_after_two_steps(engine, tiny, monkeypatch):
    from trl import DPOTrainer

    from engine.training import runner as R

    clock = {"t": 0.0}
    real_step = DPOTrainer.training_step

    def slow_step(self, *args, **kwargs):  # each optimizer step takes 30 s of the fake clock
        clock["t"] += 30.0
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(R, "now", lambda: clock["t"])
    monkeypatch.setattr(DPOTrainer, "training_step", slow_step)
    monkeypatch.setattr(P, "held_out_stats", lambda *a, **k: pytest.fail("a refused run is not scored"))
    session = P.PreferenceSession()
    updates = list(P.train_dpo(TinyEngine(engine, tiny, cap=100.0), session, P.load_pairs()[:40],
                               make(P.DPOSettings, max_steps=12, batch_size=2, max_length=64)))
    last = updates[-1]  # after 2 steps (60 s): floor((95 - 60) / 30) = 1 more fits, 3 of 12
    assert last.refused and last.done and last.step == 2 and last.max_steps == 3 and len(updates) == 2
    assert last.message.startswith("not run: at the measured 30.0 s/step only 3 of 12 steps fit")
    assert session.policy is None and session.dpo_steps == 0 and session.after is None
    assert not session.training and not R.GATE.busy
    clock["t"] = 0.0  # the same run fitted: 7 of 12 steps fit in a 5-min budget
    monkeypatch.setattr(P, "held_out_stats", lambda *a, **k: {"pairs": 0})
    updates = list(P.train_dpo(TinyEngine(engine, tiny, cap=100.0 * 60), session, P.load_pairs()[:40],
                               make(P.DPOSettings, max_steps=12, batch_size=2, max_length=64, time_budget=4)))
    assert [u.step for u in updates] == list(range(1, 8))
    last = updates[-1]
    assert last.done and not last.stopped and last.step == last.max_steps == 7 and session.dpo_steps == 7
    assert last.pace.note == "fitted to your 4 min time budget: 7 of 12 steps, measured 30.0 s/step"
