"""Many users at once (issue 11): 8+ gradio_client clients across tabs on loopback get the same
answers they get alone, with no cross-talk; memory stays inside the cache budget; a long job
can be cancelled and the server keeps serving."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client

DEC = dict(temperature=0.8, top_k=50, top_p=0.9, min_p=0.0, typical_p=1.0, repetition_penalty=1.0, do_sample=True)
M = "smollm2-135m-instruct"


def jobs():
    """(name, api_name, kwargs, pick) where pick(result) gives the comparable part of the answer;
    the kwargs are named as the API names the endpoint's parameters."""
    out = []
    for i, text in enumerate(["Hello world 🙂", "naïve café 東京"]):
        out.append((f"tokens{i}", "/compare_tokenizers",
                    dict(text=text, keys=["tok-gpt2", "tok-cl100k"], max_render=800, show_ids=True),
                    lambda r: json.dumps(r[1], sort_keys=True)))
    for i, prompt in enumerate(["The capital of France is", "My favourite colour is"]):
        out.append((f"next{i}", "/next_token", dict(model=M, mode="raw", prompt=prompt, **DEC, seed=7),
                    lambda r: json.dumps(r[2], sort_keys=True)))
    for i, seed in enumerate([1, 2]):
        out.append((f"gen{i}", "/generate", dict(model=M, mode="raw", prompt="Once upon a time", **DEC, seed=seed,
                                                 max_new_tokens=6, num_return_sequences=2, stop="", color_by="rank"),
                    lambda r: r[0]))
    passages = "The library lends books to readers.\nPhotosynthesis turns light into sugar.\nThe bakery sells bread."
    for i, q in enumerate(["Where can I borrow books?", "How do plants make food?"]):
        out.append((f"search{i}", "/semantic_search", dict(query_text=q, passages_text=passages, k=3),
                    lambda r: json.dumps(r, sort_keys=True, default=str)[:2000]))
    for i, text in enumerate(["Marie Curie worked in Paris.", "Ada Lovelace was born in London."]):
        out.append((f"ner{i}", "/pipeline_ner", dict(text=text, key="spacy-en-core-web-sm", strategy="simple"),
                    lambda r: json.dumps(r[3], sort_keys=True, default=str)))
    for i, text in enumerate(["The cat sat on the mat.", "Colorless green ideas sleep furiously."]):
        out.append((f"ppl{i}", "/perplexity", dict(model_key=M, text=text, window=1024, stride=512),
                    lambda r: round(r[3]["perplexity"], 4)))
    return out


@pytest.mark.timeout(900)
def test_twelve_concurrent_requests_from_eight_clients_match_sequential_answers(client, app_url, engine):
    work = jobs()
    expected = {name: pick(client.predict(**kwargs, api_name=api)) for name, api, kwargs, pick in work}
    clients = [Client(app_url, verbose=False) for _ in range(8)]

    def run(i_job):
        i, (name, api, kwargs, pick) = i_job
        t = time.perf_counter()
        result = clients[i % len(clients)].submit(**kwargs, api_name=api).result(timeout=600)
        return name, pick(result), time.perf_counter() - t

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        results = list(pool.map(run, enumerate(work)))
    for name, got, seconds in results:
        assert got == expected[name], f"{name}: concurrent answer differs from the sequential one"
    assert len(results) == len(work) >= 12
    assert engine.cache.used_bytes <= engine.cache.budget_bytes


@pytest.mark.timeout(300)
def test_sessions_keep_their_own_step_state(app_url):
    a, b = Client(app_url, verbose=False), Client(app_url, verbose=False)
    knobs = dict(DEC, do_sample=False)
    ja = a.submit(model=M, mode="raw", prompt="The capital of France is", **knobs, seed=1, n=2, api_name="/step")
    jb = b.submit(model=M, mode="raw", prompt="Once upon a time", **knobs, seed=1, n=2, api_name="/step")
    ra, rb = ja.result(timeout=120), jb.result(timeout=120)
    assert "Paris" in ra[3] and "Paris" not in rb[3]
    # a second step in session A continues A's text, whatever B did meanwhile
    ra2 = a.predict(model=M, mode="raw", prompt="The capital of France is", **knobs, seed=1, n=1, api_name="/step")
    assert ra2[3].count("class='dec-tok'") == 3 and "Paris" in ra2[3]


@pytest.mark.timeout(300)
def test_a_long_job_can_be_cancelled_and_the_server_keeps_serving(app_url):
    c = Client(app_url, verbose=False)
    job = c.submit(model=M, mode="raw", prompt="Write a long story:", **DEC, seed=3, max_new_tokens=400,
                   num_return_sequences=1, stop="", color_by="rank", api_name="/generate")
    time.sleep(2)
    job.cancel()
    t = time.perf_counter()
    status, _ = Client(app_url, verbose=False).predict(api_name="/engine_status")
    assert "Device:" in status and time.perf_counter() - t < 30
