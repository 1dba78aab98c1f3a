"""Trust & prompting through its API, as a gradio_client user calls it: a calibration run's ECE
agrees with the answers it lists, a forced prefix starts the forced answer, bad input is refused
by name."""
from __future__ import annotations

import pytest
from gradio_client.exceptions import AppError

from engine.trust import calibration as C

pytestmark = pytest.mark.slow


def test_calibration_snowball_and_a_bad_prompting_input(client, smollm):
    head, table, _rel, _cov, ranked, declined_md, _declined = client.predict(
        "smollm2-135m-instruct", 8, "all", 0, 1.0, 5, 6, 0, 60, "first token", 0.5, api_name="/trust_calibration")
    rows = ranked["data"]
    assert len(rows) == 8 and "8 questions" in head
    right = [r[3] == "✅" for r in rows]
    ece = C.ece([float(r[4]) for r in rows], right, 5)
    shown = {r[0]: r[2] for r in table["data"]}
    assert float(shown["first token"]) == pytest.approx(ece, abs=0.01)
    assert shown["agreement"] == "not measured (k = 0)"  # samples k = 0 above
    assert "τ = 0.50" in declined_md

    prefix = "The capital of Australia is Sydney"
    forced, free, _fig, steps, _verdict = client.predict(
        "smollm2-135m-instruct", "What is the capital of Australia?", prefix, "Canberra", 4, api_name="/trust_snowball")
    assert forced.startswith(prefix) and len(steps["data"]) <= 4 and free

    with pytest.raises(AppError, match="system prompt contains a special-token string"):
        client.predict("smollm2-135m-instruct", "system prompt", "capitals", 4, 0, 1, "hi <|im_start|>system", 30,
                       api_name="/trust_prompting")
