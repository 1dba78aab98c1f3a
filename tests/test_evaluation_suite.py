"""Engine tests for Evaluation part 2: the multiple-choice suite (acc, acc_norm, bootstrap), the
perturbation rules and the stress test, consistency over samples, and GLTR rank buckets. The
numbers are checked against formulas computed here from a tiny model's raw logits."""
from __future__ import annotations

import json
import math
import re
import unicodedata
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.core.errors import UserInputError
from engine.evaluation import consistency as C
from engine.evaluation import metrics as M
from engine.evaluation import plots as P
from engine.evaluation import ranks as K
from engine.evaluation import robustness as R
from engine.evaluation import suite as S

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tiny_llama):
    """The shared tiny random Llama with SmolLM2's vocabulary and tokenizer (its eos, 2, is the
    tokenizer's), as a TextModel-like bundle."""
    assert tiny_llama.model.config.eos_token_id == tiny_llama.tokenizer.eos_token_id
    return SimpleNamespace(model=tiny_llama.model, tokenizer=tiny_llama.tokenizer, device=torch.device("cpu"),
                           key="tiny")


ITEMS = [
    S.Item("What is 2 + 2?", ("4", "five hundred and twelve", "3"), 0, "arith", "test", "a"),
    S.Item("Capital of Italy?", ("Rome", "Milan", "the city of Naples in the south"), 0, "facts", "test", "b"),
    S.Item("Ice in the sun will", ("melt", "freeze solid forever", "sing"), 0, "common", "test", "c"),
    S.Item("Which is not a fruit?", ("apple", "pear", "hammer"), 2, "neg", "test", "d"),
    S.Item("What is 3 × 3?", ("9", "6", "33"), 0, "arith", "test", "e"),
    S.Item("Opposite of hot?", ("cold", "warm", "very very spicy"), 0, "common", "test", "f"),
]


def raw_choice_loglik(model, tokenizer, context: str, choice: str) -> float:
    """Independent reference, lm-evaluation-harness's HF backend with its defaults written out:
    tok_encode is tokenizer(text, add_special_tokens=False) (no add_bos_token, and SmolLM2's tokenizer
    adds no begin token of its own); whole = enc(context + continuation); continuation =
    whole[len(enc(context)):]; one forward over (context + continuation)[:-1]; the last
    len(continuation) positions' log-softmax at the continuation's tokens, summed."""
    continuation = " " + choice
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    cont = whole[len(ctx):]
    inp = torch.tensor([(ctx + cont)[:-1]])
    with torch.no_grad():
        logits = model(inp).logits[0, -len(cont):].float()  # (len(cont), V)
    logp = torch.log_softmax(logits, -1)
    return sum(float(logp[i, t]) for i, t in enumerate(cont))


def test_acc_and_acc_norm_equal_the_formulas_from_raw_logprobs(tiny):
    rep = S.score_items(tiny.model, tiny.tokenizer, ITEMS, k_shot=1, seed=7, resamples=200, model_name="tiny")
    accs, norms = [], []
    for item, row in zip(ITEMS, rep.items):
        assert row["context"].endswith(f"Question: {item.question}\nAnswer:") and row["context"].count("Question:") == 2
        ll = [raw_choice_loglik(tiny.model, tiny.tokenizer, row["context"], c) for c in item.choices]
        assert row["loglik"] == pytest.approx(ll, abs=2e-4)  # batched + padded == one plain forward each
        acc = int(np.argmax(ll) == item.answer)
        per_char = [x / len(c) for x, c in zip(ll, item.choices)]  # lm-eval: divide by len(choice)
        acc_norm = int(np.argmax(per_char) == item.answer)
        assert (row["acc"], row["acc_norm"]) == (acc, acc_norm)
        assert row["chosen"] == item.choices[int(np.argmax(ll))]
        p = np.exp(np.array(ll) - max(ll))
        assert row["p_correct"] == pytest.approx(p[item.answer] / p.sum(), rel=1e-6)
        accs.append(acc)
        norms.append(acc_norm)
    summary = rep.summary()
    assert summary["acc"]["value"] == pytest.approx(np.mean(accs))
    assert summary["acc_norm"]["value"] == pytest.approx(np.mean(norms))
    assert summary["acc"]["stderr"] == pytest.approx(np.std(accs, ddof=1) / math.sqrt(len(accs)))
    # few-shot examples come from the same skill and are never the item itself
    assert "What is 3 × 3?" in rep.items[0]["context"] and rep.items[0]["context"].count("2 + 2") == 1


def test_no_begin_token_is_added_where_the_tokenizer_adds_none(tiny, smollm2_tokenizer):
    """lm-eval's default: SmolLM2's contexts start at their first word, not at <|endoftext|>."""
    assert S.own_prefix(smollm2_tokenizer) == []
    ctx, cont = S.encode_pair(smollm2_tokenizer, "Question: What is 2 + 2?\nAnswer:", " 4")
    assert ctx == smollm2_tokenizer("Question: What is 2 + 2?\nAnswer:", add_special_tokens=False).input_ids
    got = S.loglikelihoods(tiny.model, tiny.tokenizer, [("Question: Capital of France?\nAnswer:", " Paris")])
    want = raw_choice_loglik(tiny.model, tiny.tokenizer, "Question: Capital of France?\nAnswer:", "Paris")
    assert got[0]["logprob"] == pytest.approx(want, abs=2e-4)

    class Bos:  # a tokenizer that puts its own <bos> (id 2) first, as Gemma's does: kept, as lm-eval keeps it
        def __call__(self, text, add_special_tokens=True):
            ids = [ord(c) for c in text]
            return SimpleNamespace(input_ids=([2] if add_special_tokens else []) + ids)

    assert S.own_prefix(Bos()) == [2] and S.encode_pair(Bos(), "ab", "c")[0] == [2, 97, 98]


def test_bootstrap_interval_is_seeded_and_contains_the_estimate():
    values = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1]
    a = S.bootstrap_interval(values, 2000, seed=5)
    assert a == S.bootstrap_interval(values, 2000, seed=5)
    spread = [0.1 * i + 0.01 * i * i for i in range(20)]  # distinct values: another seed, another interval
    assert S.bootstrap_interval(spread, 500, seed=5) != S.bootstrap_interval(spread, 500, seed=6)
    assert a[0] <= np.mean(values) <= a[1] and 0 <= a[0] < a[1] <= 1
    # the same numbers by hand: resample with numpy's generator, take the percentiles
    rng = np.random.default_rng(5)
    x = np.array(values, float)
    means = x[rng.integers(0, len(x), size=(2000, len(x)))].mean(1)
    assert a == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


def test_user_jsonl_shape_and_bounds():
    good = "\n".join(json.dumps(d) for d in (
        {"question": "2+2?", "choices": ["4", "5"], "answer": 0},
        {"question": "Sky?", "choices": ["blue", "green"], "answer": "blue"}))
    items = S.parse_jsonl(good)
    assert [i.answer for i in items] == [0, 0] and items[1].correct == "blue"
    for bad, match in (('{"question": "q", "choices": ["a", "b"], "answer": 2}', "answer = 2 must be the index"),
                       ('{"question": "q", "choices": ["a"], "answer": 0}', "2 to 8 texts"),
                       ("not json", "line 1 is not JSON"),
                       ('{"question": "q", "choices": ["a", "a"], "answer": 0}', "two choices are the same"),
                       ('{"question": "q", "choices": ["a", "b"], "answer": true}', "must be the index")):
        with pytest.raises(UserInputError, match=match):
            S.parse_jsonl(bad)
    line = json.dumps({"question": "q", "choices": ["a", "b"], "answer": 0})
    with pytest.raises(UserInputError, match="more than 300 items"):
        S.parse_jsonl("\n".join([line] * 301))
    suite = S.bundled()
    assert 100 <= len(suite) <= 300 and all(i.source for i in suite)
    assert {i.skill for i in S.take(suite, 5)} == {i.skill for i in suite}  # a small take covers every skill


def test_model_options_list_every_causal_model_and_its_variants(engine):
    values = [v for _, v in S.model_options(engine)]
    for key in engine.registry.keys("causal-lm"):
        if engine.registry.usable(key):
            assert key in values and f"{key} · int8-weights" in values
    with pytest.raises(UserInputError, match="model = 'gpt-9' is not a valid choice"):
        S.load_option(engine, "gpt-9")


# ---- perturbation rules --------------------------------------------------------------------------
Q = "Which of these is a fruit, and is 12 greater than 7?"


@pytest.mark.parametrize("rule", R.RULES, ids=lambda r: r.name)
def test_each_rule_is_deterministic(rule):
    for text in (Q, "What is the capital of France?", "What is twelve + seven?"):
        assert rule.fn(text) == rule.fn(text)


def test_each_rule_changes_what_it_says():
    t = R.typo(Q)  # two neighbouring letters of the longest word swapped, nothing else
    diff = [i for i, (a, b) in enumerate(zip(Q, t)) if a != b]
    assert len(t) == len(Q) and len(diff) == 2 and diff[1] == diff[0] + 1 and sorted(t) == sorted(Q)
    assert Q[diff[0]:diff[0] + 2] == t[diff[0]:diff[0] + 2][::-1] and "greater" not in t
    assert R.upper_case(Q) == Q.upper() and R.lower_case(Q) == Q.lower()
    ws = R.extra_whitespace(Q)
    assert ws.split() == Q.split() and ws != Q and "   " in ws
    np_ = R.no_punctuation("Hello, world! «Yes» — it's 3.5?")
    assert not any(unicodedata.category(c).startswith("P") for c in np_) and np_ == "Hello world Yes  its 35"
    assert R.number_format("What is 12 + 7?") == "What is twelve + seven?"
    assert R.number_format("I have 47 and 305") == "I have forty-seven and three hundred five"
    assert R.number_format("What is twelve + forty-two?") == "What is 12 + 42?"
    assert R.negation_swap("Which of these is a fruit?") == "Which of these is not a fruit?"
    assert R.negation_swap("Which of these is not a fruit?") == "Which of these is a fruit?"
    assert R.negation_swap("It isn't cold.") == "It is cold." and R.negation_swap("Is 12 greater than 7?") == "Is 12 not greater than 7?"
    assert R.negation_swap(R.negation_swap(Q)) == Q
    syn = R.synonym_swap("Which of these is the largest city?")
    assert syn == "Which of the following is the biggest town?"
    for old, new in zip("Is it big and fast?".split(), R.synonym_swap("Is it big and fast?").split()):
        assert old == new or R.SYNONYMS[old.strip("?").lower()] == new.strip("?")
    assert R.translate("What is the capital of Peru?", "French") == "Quelle est la capitale de Peru ?"
    assert R.translate("Why is the sky blue?", "German") == "Why is the sky blue?"  # no template: no variant
    names = [r.name for r, _ in R.variants("Why is the sky blue?")]
    assert "in German" not in names and "number format" not in names and "upper case" in names


def test_every_stress_rule_has_help_and_the_language_rules_name_their_few_templates():
    for rule in R.RULES:
        assert len(rule.description) > 20, rule.name  # the tab shows it beside the rule's name
    shapes = len(R._TEMPLATES)
    for lang in ("French", "German", "Spanish"):
        help_ = next(r for r in R.RULES if r.name == f"in {lang}").description
        assert f"only {shapes} question shapes are translated" in help_ and "left unchanged" in help_
        for pattern, _ in R._TEMPLATES:  # every shape the help names is one a template translates
            assert any(pattern.match(x.replace("X", "Peru").replace("N + M", "3 + 4").replace(" (or -, ×, /)", ""))
                       for x in R.TEMPLATE_SHAPES)


def test_stress_test_rows_and_score(tiny):
    res = R.stress_test(tiny, "What is the capital of France?", "Paris\nLondon\nRome")
    assert res["original_answer"] in ("Paris", "London", "Rome") and 0 <= res["p_original"] <= 1
    assert len(res["rows"]) == len(R.variants("What is the capital of France?"))
    for row in res["rows"]:
        assert 0 <= row["p_original"] <= 1
        assert row["kept"] == (row["answer"] == res["original_answer"])
        assert row["passed"] == (row["kept"] if row["keeps_meaning"] else not row["kept"])
    assert res["robustness"] == pytest.approx(np.mean([r["passed"] for r in res["rows"]]))
    assert sum(c["variants"] for c in res["clusters"]) == len(res["rows"])
    assert sum(c["failures"] for c in res["clusters"]) == sum(not r["passed"] for r in res["rows"])
    with pytest.raises(UserInputError, match="give 2 to 8 choices"):
        R.stress_test(tiny, "Q?", "only one")


# ---- consistency ---------------------------------------------------------------------------------
def test_consistency_counts_and_greedy(tiny):
    res = C.consistency(tiny, "Question: Name a colour.\nAnswer:", "0, 1.5", samples=5, max_new_tokens=4, seed=3)
    greedy, hot = res["temperatures"]
    assert greedy["temperature"] == 0 and greedy["distinct"] == 1 and greedy["mode_share"] == 1.0
    for row in res["temperatures"]:
        assert len(row["samples"]) == 5 and sum(g["count"] for g in row["groups"]) == 5
        assert row["distinct"] == len({C.answers.normalize(a) for a in row["samples"]})
        assert row["mode_share"] == max(g["count"] for g in row["groups"]) / 5
    again = C.consistency(tiny, "Question: Name a colour.\nAnswer:", "0, 1.5", samples=5, max_new_tokens=4, seed=3)
    assert again["temperatures"][1]["samples"] == hot["samples"]  # seeded
    with pytest.raises(UserInputError, match="temperature"):
        C.parse_temperatures("0.5, 9")


# ---- GLTR ranks ----------------------------------------------------------------------------------
def test_rank_buckets_sum_to_scored_tokens_and_ranks_match_raw_softmax(tiny):
    text = "The quick brown fox jumps over the lazy dog, and the dog sleeps on."
    rep = K.rank_report(tiny.model, tiny.tokenizer, text, "tiny")
    ids = [M.begin_token_id(tiny.tokenizer)] + tiny.tokenizer(text, add_special_tokens=False).input_ids
    assert rep["n_tokens"] == len(ids) - 1 == sum(rep["counts"].values())
    with torch.no_grad():
        probs = torch.softmax(tiny.model(torch.tensor([ids])).logits[0, :-1].float(), -1)  # (n-1, V)
    for t, (row, target) in enumerate(zip(rep["tokens"], ids[1:])):
        assert row["token_id"] == target
        assert row["rank"] == int((probs[t] > probs[t, target]).sum()) + 1
        assert row["bucket"] == K.bucket_of(row["rank"])
    assert [K.bucket_of(r) for r in (1, 10, 11, 100, 101, 1000, 1001)] == [
        "top-10", "top-10", "top-100", "top-100", "top-1000", "top-1000", "beyond"]
    html = P.ranks_html(rep)
    assert len(re.findall(r"data-bucket='", html)) == rep["n_tokens"]
