"""The preference sub-tab through its API (gradio_client) on the real SmolLM2: a 2-step reward
model and scoring, a 2-step DPO run with its before/after, the adapter zip, a bad value named,
and a new session that has neither model."""
from __future__ import annotations

import zipfile

import pytest

from engine.training import lora as L

pytestmark = pytest.mark.usefixtures("one_thread")
TABLE = {"headers": ["prompt", "chosen", "rejected", "held out"], "data": [["", "", "", ""]]}
RM = ("bundled", TABLE, 0.001, 2, 2, 4, 40, 42)  # source, table, lr, steps, batch, r, max_len, seed
DPO = ("bundled", TABLE, 0.1, 0.001, 2, 2, 4, 40, 42)  # source, table, beta, lr, steps, batch, r, max_len, seed


def test_reward_model_dpo_compare_and_download(client):
    status, plot, md, held = client.predict(*RM, api_name="/pref_reward_train")
    assert "Done" in status and "2 / 2" in status, status
    assert "Held-out pairwise accuracy" in md and len(held["data"]) == 32
    scored = client.predict("Question: What is 2 + 2?\nAnswer:", "4.\nHmm, maybe 5, I am not sure.",
                            api_name="/pref_reward_score")
    assert [r[0] for r in scored["data"]] == ["4.", "Hmm, maybe 5, I am not sure."]
    status, plot, ba, ba_plot = client.predict(*DPO, api_name="/pref_dpo_train")
    assert "Done" in status and "2 / 2" in status, status
    assert "before (adapter off)" in ba and "after" in ba
    rows = client.predict("bundled", TABLE, 7, 8, 0.0, api_name="/pref_dpo_compare")["data"]
    assert len(rows) == 4 and all(r[0].startswith("Question:") for r in rows)
    with zipfile.ZipFile(client.predict(api_name="/pref_dpo_download")) as zf:
        assert sorted(zf.namelist()) == sorted([L.ADAPTER_FILE, L.CONFIG_FILE])


def test_a_bad_value_is_named_and_a_new_session_has_no_models(client, app_url):
    bad = list(DPO)
    bad[2] = 3.0  # beta
    with pytest.raises(Exception, match=r"(beta = 3.0 .*0.01 to 1.0|Value 3.0 is greater than maximum value 1)"):
        client.predict(*bad, api_name="/pref_dpo_train")
    from gradio_client import Client

    fresh = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="no reward model in this session"):
        fresh.predict("Q:", "a", api_name="/pref_reward_score")
    with pytest.raises(Exception, match="no DPO adapter in this session"):
        fresh.predict("bundled", TABLE, 7, 8, 0.0, api_name="/pref_dpo_compare")
