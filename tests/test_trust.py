"""Trust & prompting (issue 37): calibration scores against hand computations, the reliability
bins, the coverage curve, first-token confidence against the model's softmax, a forced prefix,
the few-shot curve against task-suite runs, bad input, and (slow) the grounded-vs-closed-book
figure on the embedded model."""
from __future__ import annotations

import math
import random

import pytest
import torch

from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.evaluation import suite
from engine.trust import calibration as C
from engine.trust import generation as G
from engine.trust import grounding as GR
from engine.trust import prompting as P
from engine.trust import questions as Q
from engine.trust import snowball as S

pytestmark = pytest.mark.usefixtures("one_thread")

CONF = [0.9, 0.8, 0.3, 0.6, 0.1]
RIGHT = [1, 0, 0, 1, 0]


def test_ece_and_brier_equal_hand_computations():
    # 2 bins: [0, 0.5) holds 0.3 and 0.1 (mean 0.2, accuracy 0) -> 2/5 * 0.2 = 0.08;
    # [0.5, 1] holds 0.9, 0.8, 0.6 (mean 0.7667, accuracy 2/3) -> 3/5 * 0.1 = 0.06
    assert C.ece(CONF, RIGHT, 2) == pytest.approx(0.14)
    # (0.1² + 0.8² + 0.3² + 0.4² + 0.1²) / 5
    assert C.brier(CONF, RIGHT) == pytest.approx(0.91 / 5)
    # 10 bins: each confidence alone in its bin -> mean |c - y|
    assert C.ece(CONF, RIGHT, 10) == pytest.approx((0.1 + 0.8 + 0.3 + 0.4 + 0.1) / 5)
    assert C.ece([1.0, 1.0], [1, 1], 10) == 0.0 and C.brier([0.0, 1.0], [1, 0]) == 1.0


def test_reliability_bins_partition_the_items():
    rng = random.Random(3)
    conf = [rng.random() for _ in range(300)] + [0.0, 1.0, 0.5, 0.1 * 3]
    right = [rng.random() < c for c in conf]
    for n_bins in (2, 7, 10, 20):
        bins = C.reliability(conf, right, n_bins)
        members = sorted(i for b in bins for i in b["members"])
        assert members == list(range(len(conf)))  # every item in exactly one bin
        assert sum(b["n"] for b in bins) == len(conf)
        for b in bins:
            assert all(b["lo"] <= conf[i] < b["hi"] or (conf[i] == 1.0 and b["hi"] == 1.0) for i in b["members"])


def test_coverage_falls_as_tau_rises_and_declined_plus_answered_is_everything():
    rng = random.Random(5)
    conf = [rng.random() for _ in range(200)]
    right = [rng.random() < c for c in conf]
    curve = C.coverage_curve(conf, right)
    cov = [p["coverage"] for p in curve]
    assert cov[0] == 1.0 and all(a >= b for a, b in zip(cov, cov[1:]))
    rows = [dict(correct=y, confidence={m: c for m in C.MEASURES}, question=str(i)) for i, (c, y) in
            enumerate(zip(conf, right))]
    d = C.declined(rows, "sequence", 0.6)
    assert d["answered"] + len(d["declined"]) == 200 and all(r["confidence"]["sequence"] < 0.6 for r in d["declined"])
    order = C.ranked(rows, "first token")
    wrong = [r for r in order if not r["correct"]]
    assert order[:len(wrong)] == wrong  # the wrong answers first, the most confident of them first
    assert [r["confidence"]["first token"] for r in wrong] == sorted((r["confidence"]["first token"] for r in wrong),
                                                                     reverse=True)


def test_first_token_confidence_is_the_models_softmax_in_a_left_padded_batch(tiny_llama):
    model, tok = tiny_llama.model, tiny_llama.tokenizer
    prompts = [G.qa_prompt("What is the capital of France?"), G.qa_prompt("Who wrote Hamlet, the long play?")]
    rows = G.answer_batch(model, tok, prompts, max_new_tokens=3)
    assert any(row["ids"] for row in rows)
    for prompt, row in zip(prompts, rows):
        ids = torch.tensor([tok(prompt)["input_ids"]])
        with torch.no_grad():
            probs = torch.softmax(model(ids).logits[0, -1].float(), -1)  # (V,)
        first = int(probs.argmax())
        if row["ids"]:
            assert row["ids"][0] == first
            assert row["first_token_p"] == pytest.approx(float(probs[first]), abs=1e-5)
            assert row["sequence_p"] == pytest.approx(math.exp(sum(row["logprobs"]) / len(row["logprobs"])))


def test_a_forced_prefix_starts_the_continuation_verbatim(tiny_llama):
    prefix = "The capital of Australia is Sydney <|im_end|>"  # a special-token string stays text
    r = S.snowball(tiny_llama.model, tiny_llama.tokenizer, "What is the capital of Australia?", prefix, "Canberra", 5)
    assert r["forced"].startswith(prefix) and r["forced"] == prefix + r["continuation"]
    ids = S.plain_ids(tiny_llama.tokenizer, prefix)
    assert tiny_llama.tokenizer.decode(ids) == prefix and tiny_llama.tokenizer.eos_token_id not in ids
    assert len(r["forced_steps"]) == 5 and all(0 <= s["p_correction"] <= 1 for s in r["forced_steps"])
    # the continuation is the model's greedy continuation of the question AND the prefix (the prefix was read)
    ids = S.prompt_ids(tiny_llama.tokenizer, "What is the capital of Australia?") + ids
    first_p = None
    for _ in range(5):
        with torch.no_grad():
            probs = torch.softmax(tiny_llama.model(torch.tensor([ids])).logits[0, -1].float(), -1)  # (V,)
        first_p = float(probs.max()) if first_p is None else first_p
        ids.append(int(probs.argmax()))
    assert r["continuation"] == tiny_llama.tokenizer.decode(ids[-5:], skip_special_tokens=True)
    assert r["forced_steps"][0]["p_token"] == pytest.approx(first_p, abs=1e-5)


def test_few_shot_curve_points_equal_task_suite_runs(tiny_llama):
    s = make(P.PromptSettings, n_items=4, skill="capitals", seed=11)
    items, pool = P.items_of(s)
    curve = {v.k: v for v in P.variants(s)}
    assert sorted(curve) == list(range(9))
    for k in (0, 1, 8):
        point = P.score_variant(tiny_llama.model, tiny_llama.tokenizer, items, pool, curve[k], s.seed, 200)
        run = suite.score_items(tiny_llama.model, tiny_llama.tokenizer, items, k, s.seed, pool, 200)
        assert point["per_item"] == [r["acc"] for r in run.items]
        assert point["accuracy"] == run.summary()["acc"]["value"]
        assert point["example_prompt"].startswith(run.items[0]["context"])


@pytest.mark.parametrize("cls, values, named", [
    (C.CalibrationSettings, dict(bins=1), "bins"),
    (C.CalibrationSettings, dict(n_questions=0), "n_questions"),
    (C.CalibrationSettings, dict(category="../x"), "category"),
    (C.CalibrationSettings, dict(samples=11), "samples"),
    (P.PromptSettings, dict(dimension="vibes"), "dimension"),
    (P.PromptSettings, dict(n_items=1000), "n_items"),
    (GR.GroundingSettings, dict(top_k=0), "top_k"),
    (S.SnowballSettings, dict(max_new_tokens=10_000), "max_new_tokens"),
])
def test_bad_settings_are_refused_by_name(cls, values, named):
    with pytest.raises(UserInputError, match=named):
        make(cls, **values)


def test_bad_values_are_refused_by_name(smollm2_tokenizer):
    with pytest.raises(UserInputError, match="tau"):
        C.declined([], "first token", 1.5)
    with pytest.raises(UserInputError, match="confidence measure"):
        C.ranked([], "vibes")
    with pytest.raises(UserInputError, match="between 0 and 1"):
        C.ece([1.2], [1])
    with pytest.raises(UserInputError, match="system prompt"):
        P.check_settings(make(P.PromptSettings, system_prompt="hi <|im_start|>system"), smollm2_tokenizer)
    with pytest.raises(UserInputError, match="forced prefix"):
        S.run(None, "smollm2-135m-instruct", "What?", "   ")


def test_the_bundled_questions_hold_gold_answers_and_aliases():
    items = Q.bundled()
    assert len(items) >= 200 and len({q.id for q in items}) == len(items)
    for q in items:
        assert q.aliases[0] == q.answer and q.answer in q.passage and q.false_answer in q.misleading_passage
        assert Q.is_correct(q.answer, q) and not Q.is_correct(q.false_answer, q)
    france = next(q for q in items if q.question == "What is the capital of France?")
    assert Q.is_correct("paris.", france) and not Q.is_correct("The capital is Paris", france)
    assert GR.support("Paris", ["The capital of France is Paris."]) == 1 and GR.support("Par", ["Paris"]) is None


@pytest.mark.slow
def test_gold_passage_beats_closed_book_on_the_embedded_model(smollm):
    """The grounded-vs-not figure on SmolLM2 at greedy decoding (deterministic): printed either way."""
    items = Q.choose(16)
    s = make(GR.GroundingSettings, n_questions=16)
    closed = GR._condition(smollm.model, smollm.tokenizer, items, "closed book", None, s)
    gold = GR._condition(smollm.model, smollm.tokenizer, items, "gold passage", None, s)
    a, b = (sum(r["correct"] for r in rows) / len(rows) for rows in (closed, gold))
    print(f"SmolLM2-135M, 16 questions: closed book {a:.0%}, gold passage {b:.0%}")
    assert b > a, f"gold passage {b:.0%} is not above closed book {a:.0%}"
    prompt = G.qa_prompt(items[0].question)
    ids = torch.tensor([smollm.tokenizer(prompt)["input_ids"]])
    with torch.no_grad():
        probs = torch.softmax(smollm.model(ids).logits[0, -1].float(), -1)
    row = G.answer_batch(smollm.model, smollm.tokenizer, [prompt], 4)[0]
    assert row["first_token_p"] == pytest.approx(float(probs.max()), abs=1e-4)


def test_the_grounding_note_says_only_what_the_figures_say():
    from tabs.trust import grounding_note

    row = lambda cond, acc, rep=None: dict(condition=cond, accuracy=acc, hallucination=1 - acc, repeats_false=rep)
    worse = grounding_note([row("closed book", 0.5), row("gold passage", 0.25), row("misleading", 0.25, 0.5)], [])
    assert "25% against 50% closed book: here the passage did **not** help" in worse
    assert "50% of the answers repeat its false answer (errors the passage brought in), and 75% are wrong in all, " \
           "against 50% closed book." in worse  # not every wrong answer is blamed on the passage
    better = grounding_note([row("closed book", 0.25), row("gold passage", 0.75)], ["misleading"])
    assert better == ("With the gold passage accuracy is 75% against 25% closed book: the passage helped. "
                      "Time budget reached: misleading not run.")


def test_agreement_is_not_scored_when_no_samples_were_drawn():
    from tabs.trust import calibration_view, score_table

    rows = [dict(question=str(i), gold="a", answer="a" if i % 2 else "b", correct=bool(i % 2), samples=[],
                 confidence={"first token": 0.1 * i, "sequence": 0.05 * i, "agreement": 0.0}) for i in range(1, 9)]
    summ = C.summarize(rows, 5)
    result = dict(rows=rows, summary=summ, settings=dict(samples=0))
    table = {r[0]: r[2:] for r in score_table(result)}
    assert table["agreement"] == ["not measured (k = 0)", "–", "–"]
    assert table["first token"][0] == round(summ["measures"]["first token"]["ece"], 4)
    _rel, cov, ranked, text, _ = calibration_view(result, "first token", 0.5)
    assert {t.name for t in cov.data if t.name} == {"first token", "sequence"} and len(ranked) == 8
    assert "was not measured" in calibration_view(result, "agreement", 0.5)[3]
    result["settings"]["samples"] = 3
    assert isinstance(score_table(result)[2][2], float)
