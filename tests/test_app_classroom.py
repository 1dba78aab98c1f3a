"""Class mode through the running app's API, as a class of 40 would use it: a host makes a room and
opens a predict-the-next-token round on the embedded SmolLM2, 40 students join and answer at once,
every answer is counted once, and each score is the model's probability computed here. Host
actions need the host key, through the API too."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from engine.classroom.store import Store

MODEL = "smollm2-135m-instruct"
PROMPT = "The capital of France is"
GUESSES = ["Paris", "Lyon", "a", "the", "Marseille", "paris", "not", "located"]


def _all(clients, api_name: str, arg_lists: list[list]) -> list:
    """One call per student; student i goes through session i % 4 (the join limit is per session:
    40 joins from one session are refused). The sessions call side by side, each one call at a time
    (gradio_client's event stream of one session is not meant for overlapping calls)."""
    lanes = [list(range(k, len(arg_lists), len(clients))) for k in range(len(clients))]

    def lane(k):
        return [(i, clients[k].predict(*arg_lists[i], api_name=api_name)) for i in lanes[k]]

    with ThreadPoolExecutor(len(clients)) as pool:
        done = dict(pair for part in pool.map(lane, range(len(clients))) for pair in part)
    return [done[i] for i in range(len(arg_lists))]


def test_a_class_of_40_answers_through_the_api(client, app_url, engine, smollm):
    from gradio_client import Client

    clients = [client] + [Client(app_url, verbose=False) for _ in range(3)]
    code, key = client.predict(api_name="/class_create")[:2]
    client.predict(code, key, PROMPT, MODEL, api_name="/class_open_predict")
    joined = _all(clients, "/class_join", [[code, f"student {i:02d}"] for i in range(40)])
    tokens = [out[0] for out in joined]
    assert len(set(tokens)) == 40
    sent = {f"student {i:02d}": GUESSES[i % len(GUESSES)] for i in range(40)}
    _all(clients, "/class_answer", [[code, tok, "Berlin"] for tok in tokens[:10]])  # replaced just below
    _all(clients, "/class_answer", [[code, tok, sent[f"student {i:02d}"]] for i, tok in enumerate(tokens)])

    # a student cannot change the round or reveal it, with their token or another room's key
    other_code, other_key = client.predict(api_name="/class_create")[:2]
    for bad_key in (tokens[0], other_key, ""):
        with pytest.raises(Exception, match="host key"):
            client.predict(code, bad_key, "Q?", "one", "two", api_name="/class_open_vote")
        with pytest.raises(Exception, match="host key"):
            client.predict(code, bad_key, api_name="/class_reveal")
    before = client.predict(code, tokens[0], api_name="/class_student_refresh")[0]
    assert "student 01" not in before and "model: next-token probability" not in before

    page = client.predict(code, key, False, api_name="/class_host_refresh")
    assert "<b>40</b> of 40 answered" in page
    store = Store(engine.config.class_db_url)
    rnd = store.current_round(code)
    rows = store.answers_of(rnd.id)
    assert len(rows) == 40 and {a["nickname"]: a["value"] for a in rows} == sent
    ids = smollm.tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        probs = smollm.model(input_ids=ids).logits[0, -1].float().softmax(-1)
    for a in rows:
        tid = smollm.tokenizer.encode(" " + a["value"], add_special_tokens=False)[0]
        assert a["score"] == pytest.approx(float(probs[tid]), rel=1e-3, abs=1e-7), a
        assert abs(a["rank"] - (int((probs > probs[tid]).sum()) + 1)) <= 1, a
    client.predict(code, key, api_name="/class_reveal")
    after = client.predict(code, tokens[0], api_name="/class_student_refresh")[0]
    assert "model: next-token probability" in after and "Paris" in after
    store.close()


def test_a_rooms_votes_load_into_post_training_as_pairs(client, engine):
    """Activity 3's votes become Post-training's comparison data in one click: each revealed vote
    round with a majority is one pair whose chosen answer is the one most students picked; a tie is
    left out; the host key is required."""
    code, key = client.predict(api_name="/class_create")[:2]
    tokens = [client.predict(code, f"voter {i}", api_name="/class_join")[0] for i in range(3)]
    with pytest.raises(Exception, match="has 0 revealed vote round"):
        client.predict(code, key, api_name="/pref_room_votes")
    store = Store(engine.config.class_db_url)
    shown = []
    rounds = [("Capital of Italy?", "Rome.", "Milan.", "AAB"), ("Two plus two?", "4", "5", "AB"),  # a tie
              ("Largest planet?", "Jupiter.", "Mars.", "BBA"), ("Water boils at?", "100 °C.", "50 °C.", "AAA"),
              ("Author of Hamlet?", "Shakespeare.", "Dickens.", "ABB")]
    for prompt, first, second, picks in rounds:
        client.predict(code, key, prompt, first, second, api_name="/class_open_vote")
        for tok, side in zip(tokens, picks):  # an API client votes through /class_answer, as it guesses
            client.predict(code, tok, side, api_name="/class_answer")
        client.predict(code, key, api_name="/class_reveal")
        shown.append(store.current_round(code).public)
    store.close()
    for bad in ("", tokens[0]):
        with pytest.raises(Exception, match="host key"):
            client.predict(code, bad, api_name="/pref_room_votes")
    assert "/class_choose" not in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    table, source, about = client.predict(code, key, api_name="/pref_room_votes")
    assert source == "table" and "4 votes" in about
    expected = []
    for (prompt, _, _, picks), public in zip(rounds, shown):
        a, b = picks.count("A"), picks.count("B")
        if a != b:  # the class's majority is chosen, whichever text the room showed as A
            expected.append([prompt, public["A"], public["B"]] if a > b else [prompt, public["B"], public["A"]])
    assert [row[:3] for row in table["data"]] == expected and len(expected) == 4
