"""The preference sub-tab through its API (gradio_client) on the real SmolLM2: a 2-step reward
model and scoring, a 2-step DPO run with its before/after, the adapter zip, a bad value named,
and a new session that has neither model."""
from __future__ import annotations

import zipfile

import pytest

from engine.training import lora as L

pytestmark = pytest.mark.usefixtures("one_thread")
TABLE = {"headers": ["prompt", "chosen", "rejected", "held out"], "data": [["", "", "", ""]]}
RM = dict(src="bundled", rows=TABLE, lr=0.001, steps=2, batch=2, r=4, max_len=64, seed=42)  # by the API's names
DPO = dict(RM, beta=0.1)
COMPARE = dict(src="bundled", rows=TABLE, seed=7, n_new=8, temp=0.0)


def test_reward_model_dpo_compare_and_download(client, two_threads):
    status, plot, md, held = client.predict(**RM, api_name="/pref_reward_train")
    assert "Done" in status and "2 / 2" in status, status
    assert "Held-out pairwise accuracy" in md and len(held["data"]) == 32
    scored = client.predict(prompt="What is 2 + 2?", responses="4.\nHmm, maybe 5, I am not sure.",
                            api_name="/pref_reward_score")
    assert [r[0] for r in scored["data"]] == ["4.", "Hmm, maybe 5, I am not sure."]
    status, plot, ba, ba_plot = client.predict(**DPO, api_name="/pref_dpo_train")
    assert "Done" in status and "2 / 2" in status, status
    assert "before (adapter off)" in ba and "after" in ba
    rows = client.predict(**COMPARE, api_name="/pref_dpo_compare")["data"]
    assert len(rows) == 4 and all(r[0].startswith(("What is", "Who said")) for r in rows)
    with zipfile.ZipFile(client.predict(api_name="/pref_dpo_download")) as zf:
        assert sorted(zf.namelist()) == sorted([L.ADAPTER_FILE, L.CONFIG_FILE])


def test_a_bad_value_is_named_and_a_new_session_has_no_models(client, app_url):
    bad = dict(DPO, beta=3.0)
    with pytest.raises(Exception, match=r"(beta = 3.0 .*0.01 to 1.0|Value 3.0 is greater than maximum value 1)"):
        client.predict(**bad, api_name="/pref_dpo_train")
    from gradio_client import Client

    fresh = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="no reward model in this session"):
        fresh.predict(prompt="Q:", responses="a", api_name="/pref_reward_score")
    with pytest.raises(Exception, match="no DPO adapter in this session"):
        fresh.predict(**COMPARE, api_name="/pref_dpo_compare")


def test_the_reward_hacking_set_is_labelled_and_loads_into_the_table():
    from tabs import _posttraining_preference as T

    rows, about = T.do_source("short")
    assert "reward-hacking lesson" in about and "always the shorter one" in str(T.SOURCES)
    assert len(rows) == 320 and all(len(r[1]) < len(r[2]) for r in rows)
    rows, about = T.do_source("bundled")
    assert "length says nothing" in str(T.SOURCES) and "about half of the pairs" in about
    longer, shorter = sum(len(r[1]) > len(r[2]) for r in rows), sum(len(r[1]) < len(r[2]) for r in rows)
    assert 0.4 < longer / (longer + shorter) < 0.6
