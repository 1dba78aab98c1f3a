"""Evaluation part 2 through its API, as a gradio_client user calls it: the task suite's numbers
match the engine's, a bad stress-test input is refused by name, and the rank counts add up."""
from __future__ import annotations

import pytest
from gradio_client.exceptions import AppError

from engine.evaluation import suite as S


def test_suite_stress_and_ranks_endpoints(client, smollm):
    summary, _fig, _skills, items, numbers = client.predict(
        ["smollm2-135m-instruct"], "bundled", None, 0, 5, 1234, 200, api_name="/task_suite")
    s = numbers["summaries"][0]
    rows = numbers["items"]["smollm2-135m-instruct"]
    assert len(items["data"]) == len(rows) == s["n_items"] == 5
    assert s["acc"]["value"] == pytest.approx(sum(r["acc"] for r in rows) / 5)
    assert s["acc"]["ci_low"] <= s["acc"]["value"] <= s["acc"]["ci_high"]
    direct = S.score_items(smollm.model, smollm.tokenizer, S.take(S.bundled(), 5), 0, 1234, S.bundled(), 200)
    flat = lambda rs: [x for r in rs for x in r["loglik"]]  # noqa: E731
    assert flat(rows) == pytest.approx(flat(direct.items), abs=1e-3)
    assert summary["data"][0][3] == f"{direct.summary()['acc']['value']:.3f}"

    with pytest.raises(AppError, match="give 2 to 8 choices"):
        client.predict("smollm2-135m-instruct", "What is 2 + 2?", "4", ["typo"], api_name="/stress_test")

    html_a, html_b, _fig, counts = client.predict("smollm2-135m-instruct", "The cat sat on the mat.", "",
                                                  api_name="/token_ranks")
    c = counts["Text A"]
    assert sum(c["counts"].values()) == c["n_tokens"] == html_a.count("data-bucket=") and html_b == ""
