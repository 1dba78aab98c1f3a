"""Class mode (engine/classroom/) over its storage layer, on SQLite and on a real PostgreSQL server
that the tests start on loopback (Debian's package, `bash scripts/install.sh --test`) and stop:
answers counted once, scores equal to the model's probabilities, draws that follow the knob
distribution (chi-square), host-key and room checks, expiry, votes that load in the preference
trainer, two processes sharing a room. The model is a tiny random Llama with SmolLM2's tokenizer."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from engine.classroom import activities as act
from engine.classroom import checks, plots
from engine.classroom import room as R
from engine.classroom.store import Store
from engine.core.errors import UserInputError
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPT = "The capital of France is"


class StubEngine:
    """What Classroom asks of the engine: the registry's row and the cached model."""

    def __init__(self, tm):
        self.tm = tm
        self.registry = SimpleNamespace(get=self._spec)

    def _spec(self, key):
        if key not in ("tiny", checks.MODEL_KEY):  # the quick checks name the embedded model: the tiny one stands in
            raise UserInputError(f"unknown model {key!r}")
        return SimpleNamespace(key=key, task="causal-lm", title="tiny Llama")

    def load(self, key):
        self._spec(key)
        return self.tm


# --- PostgreSQL on loopback, started and stopped here ------------------------------------------
def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def pg_url():
    bindir = _pg_bin()
    if bindir is None:
        pytest.fail("PostgreSQL is missing: run `bash scripts/install.sh --test` (installs Debian's postgresql)")
    data = Path(tempfile.mkdtemp(prefix="class-pg-"))
    as_user = []
    if os.geteuid() == 0:  # initdb refuses root: the server runs as the package's postgres user
        shutil.chown(data, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "class",
                              "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=60)
    opts = f"-p {port} -h 127.0.0.1 -k {data} -F -c max_connections=60"
    subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-o", opts, "-l", str(data / "log"),
                              "-w", "start"], check=True, capture_output=True, timeout=60)
    try:
        yield f"postgresql://class@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'class.sqlite3'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def room(url, tiny_llama):
    c = R.Classroom(StubEngine(tiny_llama), url)
    yield c
    c.store.close()


def _class(room, n: int):
    code, key = room.create_room()
    tokens = [room.join(code, f"student {i}")[0] for i in range(n)]
    return code, key, tokens


def model_probs(tm, prompt: str) -> torch.Tensor:
    """The next-token probabilities computed here: the tokenizer, one forward, a softmax."""
    ids = tm.tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        return tm.model(input_ids=ids).logits[0, -1].float().softmax(-1)


# --- the tests ----------------------------------------------------------------------------------
def test_each_answer_counts_once_and_scores_are_the_model_probabilities(room, tiny_llama):
    code, key, tokens = _class(room, 12)
    room.open_predict(code, key, PROMPT, "tiny")
    words = ["Paris", "Lyon", "London", "paris", "the", "a"]
    sent = {}
    for i, tok in enumerate(tokens):
        room.answer(code, tok, "Berlin")  # replaced by the next answer
        sent[f"student {i}"] = words[i % len(words)]
        room.answer(code, tok, sent[f"student {i}"])
    view = room.host_view(code, key)
    assert view["round"]["count"] == 12 and sorted(view["round"]["answered"]) == sorted(sent)
    r = room.store.current_round(code)
    rows = room.store.answers_of(r.id)
    assert {a["nickname"]: a["value"] for a in rows} == sent
    probs = model_probs(tiny_llama, PROMPT)
    for a in rows:
        tid = tiny_llama.tokenizer.encode(" " + a["value"], add_special_tokens=False)[0]
        assert a["score"] == pytest.approx(float(probs[tid]), rel=1e-4, abs=1e-9)
        assert a["rank"] == int((probs > probs[tid]).sum()) + 1
    assert room.model_calls == 1  # one forward for the whole room
    room.reveal(code, key)
    bars = dict(room.host_view(code, key)["results"]["class_bars"])
    assert bars["paris"] == 4 and sum(bars.values()) == 12


def test_only_the_host_key_changes_a_round_and_answers_stay_hidden_until_the_reveal(room):
    code, key, (tok,) = _class(room, 1)
    other, other_key, (other_tok,) = _class(room, 1)
    for bad in (other_key, "", tok, key + "x", None):
        with pytest.raises(R.HostKeyError):
            room.open_vote(code, bad, "Q?", "yes", "no")
        with pytest.raises(R.HostKeyError):
            room.reveal(code, bad)
        with pytest.raises(R.HostKeyError):
            room.host_view(code, bad)
        with pytest.raises(R.HostKeyError):
            room.csv_text(code, bad)
    with pytest.raises(UserInputError, match="no question is open"):
        room.answer(code, tok, "A")
    room.open_check(code, key, "tokens-space")
    with pytest.raises(R.NotInRoom):  # another room's student token
        room.answer(code, other_tok, "Yes")
    with pytest.raises(UserInputError, match="does not exist"):
        room.answer("ZZZZZZ", tok, "Yes")
    room.answer(code, tok, "Yes")
    seen = room.student_view(code, tok)
    assert "results" not in seen and seen["round"]["mine"]["score"] is None  # right or wrong: after the reveal
    assert "right" not in str(seen) and "why" not in str(seen)
    room.reveal(code, key)
    seen = room.student_view(code, tok)
    assert seen["results"]["right"] and seen["round"]["mine"]["score"] in (0.0, 1.0)
    with pytest.raises(UserInputError, match="no question is open"):  # revealed: closed
        room.answer(code, tok, "No")


def test_an_expired_room_is_gone_with_everything_it_held(url):
    store = Store(url)
    before = store.counts()
    code, _ = store.create_room(lifetime_s=5.0, max_rooms=5, now=time.time() - 10)  # expired 5 s ago
    member, _ = store.join(code, "Ann", 10)
    r = store.open_round(code, "vote", {"prompt": "Q", "A": "a", "B": "b"}, {}, dist=b"\0" * 16)
    store.answer(r.id, member.id, "A")
    assert store.room(code) is None  # expired rooms are never served
    assert store.counts() == {k: v + 1 for k, v in before.items()}
    assert store.purge() >= 1
    assert store.counts() == before
    store.close()


def test_nicknames_and_limits(room, monkeypatch):
    code, key, _ = _class(room, 0)
    room.join(code, "  Ann  ")
    with pytest.raises(UserInputError, match="taken"):
        room.join(code, "Ann")
    with pytest.raises(UserInputError, match=f"1 to {R.MAX_NICK_CHARS}"):
        room.join(code, "x" * (R.MAX_NICK_CHARS + 1))
    with pytest.raises(UserInputError, match="control or invisible"):
        room.join(code, "a\u200bb")
    token, nick = room.join(code, "<b>Bob</b>")
    room.open_vote(code, key, "<i>Q</i>", "one", "two")
    room.answer(code, token, "B")
    page = plots.host_html(room.host_view(code, key), "http://x/?room=" + code)
    assert "&lt;b&gt;Bob&lt;/b&gt;" in page and "<b>Bob</b>" not in page and "&lt;i&gt;Q" in page
    with pytest.raises(UserInputError, match=f"1 to {R.MAX_ANSWER_CHARS}"):
        room.answer(code, token, "x" * (R.MAX_ANSWER_CHARS + 1))
    with pytest.raises(UserInputError, match="control or invisible"):
        room.answer(code, token, "A\x00")
    room.open_vote(code, key, "a\x00 prompt", "one\x00", "two")  # kept as JSON: a NUL is stored escaped
    monkeypatch.setattr(R, "MAX_STUDENTS", 2)
    with pytest.raises(UserInputError, match="full"):
        room.join(code, "Cy")
    monkeypatch.setattr(R, "MAX_ROOMS", 1)
    with pytest.raises(UserInputError, match="limit of 1"):
        room.create_room()
    limit = R.RateLimit(3, 60)
    for _ in range(3):
        limit.check("s1")
    limit.check("s2")  # per session, not per address
    with pytest.raises(UserInputError, match="at most 3 every 60 s"):
        limit.check("s1")


def test_the_class_sampler_draws_from_the_knob_distribution(tmp_path, tiny_llama):
    """Chi-square over 200 draws (the students' seeds, fixed) against the distribution after
    temperature 0.7 and top-k 5 (the decoding lesson's processors); each student's draw is the one
    their own seed gives; a new knob setting on the same prompt makes no new model call."""
    from scipy.stats import chisquare

    room = R.Classroom(StubEngine(tiny_llama), f"sqlite:///{tmp_path / 'c.sqlite3'}")
    code, key, tokens = _class(room, 3)
    r = room.open_sample(code, key, PROMPT, "tiny", 0.7, 5, 1.0)
    probs = model_probs(tiny_llama, PROMPT)
    knobbed = act.after_knobs(probs, act.SamplerSettings(temperature=0.7, top_k=5, top_p=1.0))
    expected_ids = probs.topk(5).indices
    hand = torch.zeros_like(probs)
    hand[expected_ids] = (probs[expected_ids].log() / 0.7).softmax(-1)
    assert torch.allclose(knobbed, hand, atol=1e-6)
    draws = [act.draw(knobbed, act.round_seed(seed, r.number)) for seed in range(200)]
    assert set(draws) <= set(expected_ids.tolist())
    observed = [draws.count(int(t)) for t in expected_ids]
    p = [float(knobbed[t]) for t in expected_ids]
    assert chisquare(observed, [200 * x / sum(p) for x in p]).pvalue > 0.001
    for tok in tokens:
        got = room.sample(code, tok)
        member = room.student(code, tok)
        want = act.draw(knobbed, act.round_seed(member.seed, r.number))
        assert got["token"] == act.generation.token_label(tiny_llama, want)
    assert room.host_view(code, key)["results"]["class_bars"]  # fills in live, before any reveal
    room.open_sample(code, key, PROMPT, "tiny", 1.3, 5, 1.0)
    assert room.model_calls == 1
    room.store.close()


def test_fleiss_kappa_matches_the_textbook_example():
    """Fleiss (1971) as in the usual worked example: 10 items, 14 raters, 5 categories, kappa 0.210."""
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    items = [{str(j): n for j, n in enumerate(row)} for row in table]
    assert act.fleiss_kappa(items) == pytest.approx(0.210, abs=5e-4)
    assert act.fleiss_kappa([{"A": 3, "B": 0}]) is None  # one item: undefined


def test_the_vote_export_loads_in_the_preference_trainer(tmp_path, smollm2_tokenizer):
    from engine.core.settings import make
    from engine.training import preference as P
    from tests.conftest import tiny_causal_lm

    room = R.Classroom(None, f"sqlite:///{tmp_path / 'c.sqlite3'}")
    code, key, tokens = _class(room, 5)
    questions = [("What is 2 + 3?", "5.", "7."), ("Capital of Peru?", "Lima.", "Quito."),
                 ("What is 9 - 4?", "5.", "3."), ("Who wrote Hamlet?", "Shakespeare.", "Dickens."),
                 ("What is 1 + 1?", "2.", "11.")]
    items = []
    for n, (q, good, bad) in enumerate(questions):
        r = room.open_vote(code, key, q, good, bad, seed=n)
        good_side = "A" if r.public["A"] == good else "B"
        items.append({good_side: 4, "B" if good_side == "A" else "A": 1})
        for i, tok in enumerate(tokens):
            room.answer(code, tok, good_side if i < 4 else ("B" if good_side == "A" else "A"))
        room.reveal(code, key)
    text, n = room.votes_jsonl(code, key)
    assert n == 5
    pairs = P.parse_pairs(text)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == questions
    kappa, rounds = room.kappa(code)
    assert rounds == 5 and kappa == pytest.approx(act.fleiss_kappa(items))
    assert len({tuple(sorted(it.items())) for it in items}) == 2  # A and B were both the good side
    tok = smollm2_tokenizer
    model = tiny_causal_lm(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=True,
                           pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    trainer = P.dpo_trainer(model, tok, pairs, make(P.DPOSettings, max_steps=1, batch_size=4, max_length=64),
                            str(tmp_path / "dpo"))
    assert torch.isfinite(torch.tensor(P.batch_loss(trainer, pairs)))
    room.store.close()


def test_every_lesson_has_three_quick_checks_with_computed_answers(tiny_llama):
    lessons = {}
    for key, check in checks.CHECKS.items():
        lessons.setdefault(check.lesson, []).append(key)
        out = checks.build(tiny_llama, key)
        assert out["right"] and set(out["right"]) <= set(out["options"]) and out["why"], key
    assert len(lessons) >= 3 and all(len(v) >= 3 for v in lessons.values())


@pytest.mark.slow  # two app processes
def test_two_app_processes_share_a_room(pg_url):
    """Two app processes (replicas) on one PostgreSQL, driven through their APIs: the host's room is
    made on the first, a student joins and votes on the second, the first's projector shows that
    answer, and the student on the second sees the first's reveal."""
    from gradio_client import Client

    from tests.test_start_under_load import start_app, stop_app

    apps = [start_app(port, "--class-db", pg_url) for port in (free_port(), free_port())]
    try:
        urls = []
        for proc, lines, up in apps:
            assert up.wait(240), "".join(lines)[-3000:]
            urls.append(re.search(r"Running on local URL:\s*(\S+)", "".join(lines)).group(1))
        host, student = (Client(u, verbose=False) for u in urls)
        code, key = host.predict(api_name="/class_create")[:2]
        host.predict(code, key, "Which is better?", "this", "that", api_name="/class_open_vote")
        token = student.predict(code, "from the other replica", api_name="/class_join")[0]
        student.predict(code, token, "B", api_name="/class_answer")
        page = host.predict(code, key, False, api_name="/class_host_refresh")
        assert "<b>1</b> of 1 answered" in page and "from the other replica" in page
        before = student.predict(code, token, api_name="/class_student_refresh")[0]
        host.predict(code, key, api_name="/class_reveal")
        after = student.predict(code, token, api_name="/class_student_refresh")[0]
        assert "Fleiss" not in before and "Fleiss" in after
    finally:
        for proc, _, _ in apps:
            stop_app(proc)


def test_join_pressed_before_the_link_filled_the_boxes_takes_the_links_room():
    """A fast student presses Join on a join link's page before the page load's answer filled the
    code and the nickname: the link's room and a suggested nickname are used; typed values win."""
    from types import SimpleNamespace

    from tabs.classroom import _from_join_link

    link = SimpleNamespace(query_params={"tab": "classroom", "room": "ABC123"})
    code, nick = _from_join_link("", "", link)
    assert code == "ABC123" and R.check_nickname(nick) == nick
    assert _from_join_link("", "Ada", link) == ("ABC123", "Ada")
    assert _from_join_link("XYZ789", "", link) == ("XYZ789", "")  # a typed code: the room's own checks apply
    assert _from_join_link("", "", SimpleNamespace(query_params={"room": "ABC123"})) == ("", "")  # not a join link
    assert _from_join_link("", "", None) == ("", "")
