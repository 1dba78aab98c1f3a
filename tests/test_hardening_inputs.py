"""Bad input that got a generic error or did harm (issue 39, second part): a number that is not
finite, or not whole where a knob must be whole, reaching int() before any check; a sweep value
silently cut to a whole number. Each is refused by the one check every knob goes through
(engine.core.settings.check_knob), with a message that names the knob, the value and the range."""
from __future__ import annotations

import math
import re

import gradio as gr
import pytest

from engine.core.errors import UserInputError, short_repr
from engine.core.settings import knob_info

BAD_NUMBERS = {"nan": float("nan"), "inf": float("inf"), "'1e400'": "1e400"}
DIGITS = "digits-16px"


@pytest.fixture(scope="module")
def demo(engine):
    import app

    return app.build_demo(engine)


def listener(demo, api_name):
    return next(f.fn for f in demo.fns.values() if f.api_name == api_name)


def refusal(call) -> str:
    """The message of the gr.Error that `call` raises (a generator listener is run to its end)."""
    with pytest.raises(gr.Error) as info:
        out = call()
        if hasattr(out, "__next__"):
            list(out)
    return str(info.value.message)


def assert_names(message: str, knob: str, value, lo, hi):
    assert "Something went wrong" not in message
    assert message.startswith(f"{knob} "), message
    assert short_repr(value) in message and f"{lo}" in message and f"{hi}" in message, message


# ---- one check for every knob -------------------------------------------------------------------
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "nan", "1e400", "-1e400", 10 ** 400,
                                   True, "2.9", 2.5, "abc", None, [3]])
def test_check_knob_refuses_what_is_not_a_finite_whole_number_in_range(value):
    from engine.core.settings import check_knob
    from engine.diffusion.generation import DiffusionSettings

    with pytest.raises(UserInputError) as info:
        check_knob(DiffusionSettings, "steps", value)
    assert_names(str(info.value), "steps", value, 1, 100)


def test_check_knob_converts_only_what_it_checked():
    from engine.core.settings import check_knob
    from engine.diffusion.generation import DiffusionSettings

    assert check_knob(DiffusionSettings, "steps", 7.0) == 7 and type(check_knob(DiffusionSettings, "steps", "7")) is int
    assert check_knob(DiffusionSettings, "guidance_scale", "2.5") == 2.5
    assert check_knob(DiffusionSettings, "scheduler", "DDIM") == "DDIM"
    with pytest.raises(UserInputError, match="scheduler"):
        check_knob(DiffusionSettings, "scheduler", "nope")
    with pytest.raises(KeyError):
        check_knob(DiffusionSettings, "no_such_knob", 1)


# ---- the diffusion tab: txt2img, img2img, sweep -------------------------------------------------
def _diffusion_values(**changes) -> dict:
    from engine.diffusion.generation import defaults_for
    from tabs.diffusion import KNOBS, MEMORY

    s = defaults_for(DIGITS)
    values = {k: getattr(s, k) for k in KNOBS}
    values.update(seed=1, **{k: False for k in MEMORY})
    values.update(changes)
    return values


DIFFUSION_CALLS = {
    "txt2img": lambda fn, values: fn(DIGITS, "a handwritten 3", "", **values),
    "img2img": lambda fn, values: fn(DIGITS, None, "a handwritten 3", "", 0.6, **values),
    "diffusion_sweep": lambda fn, values: fn(DIGITS, "a handwritten 3", "", "1, 3", "steps", "1, 2", **values),
}


@pytest.mark.parametrize("bad", list(BAD_NUMBERS), ids=list(BAD_NUMBERS))
@pytest.mark.parametrize("knob", ["steps", "num_images", "width", "height", "gallery_every"])
@pytest.mark.parametrize("api_name", list(DIFFUSION_CALLS))
def test_a_diffusion_knob_that_is_not_a_finite_number_is_refused_naming_it(demo, api_name, knob, bad):
    from engine.diffusion.generation import DiffusionSettings

    value = BAD_NUMBERS[bad]
    fn = listener(demo, api_name)
    message = refusal(lambda: DIFFUSION_CALLS[api_name](fn, _diffusion_values(**{knob: value})))
    info = knob_info(DiffusionSettings, knob)
    assert_names(message, knob, value, info.minimum, info.maximum)


@pytest.mark.parametrize("column_values, shown", [("1, nan", "'nan'"), ("1e400", "'1e400'"), ("2.9", "'2.9'"),
                                                   ("0", "'0'"), ("1, x", "'x'")])
def test_sweep_step_values_are_checked_as_the_steps_knob(demo, column_values, shown):
    message = refusal(lambda: listener(demo, "diffusion_sweep")(DIGITS, "a handwritten 3", "", "1", "steps",
                                                                column_values, **_diffusion_values()))
    assert message.startswith("steps ") and shown in message and "1 " in message and "100" in message, message


@pytest.mark.parametrize("guidance_values, shown", [("nan", "'nan'"), ("3, -1e400", "'-1e400'"), ("25", "'25'")])
def test_sweep_guidance_values_are_checked_as_the_guidance_knob(demo, guidance_values, shown):
    message = refusal(lambda: listener(demo, "diffusion_sweep")(DIGITS, "a handwritten 3", "", guidance_values,
                                                                "steps", "1", **_diffusion_values()))
    assert message.startswith("guidance_scale ") and shown in message and "0.0" in message and "20.0" in message, message


def test_the_engine_sweep_refuses_a_fractional_step_count_before_any_cell(engine, monkeypatch):
    """2.9 steps used to run as 2 (int() cut it); now nothing runs."""
    from engine.diffusion import generation

    def no_cell(*args, **kwargs):
        raise AssertionError("a cell was generated")

    monkeypatch.setattr(generation, "generate", no_cell)
    with pytest.raises(UserInputError, match=r"steps must be a whole number between 1 and 100, got 2\.9"):
        generation.sweep(engine, DIGITS, "a 3", "", generation.defaults_for(DIGITS), [1.0], [1, 2.9])
    with pytest.raises(UserInputError, match=r"guidance_scale must be a number between 0\.0 and 20\.0, got nan"):
        generation.sweep(engine, DIGITS, "a 3", "", generation.defaults_for(DIGITS), [math.nan], [1])


# ---- teaching a symbol, and SFT's rank -----------------------------------------------------------
TEACH_WHOLE = ["steps", "batch_size", "seed", "num_class_images", "lora_rank"]


@pytest.mark.parametrize("bad", list(BAD_NUMBERS), ids=list(BAD_NUMBERS))
@pytest.mark.parametrize("knob", TEACH_WHOLE)
def test_a_teach_knob_that_is_not_a_finite_number_is_refused_naming_it(demo, knob, bad):
    from engine.diffusion import teach

    s = teach.TeachSettings()
    values = {k: getattr(s, k) for k in ("steps", "learning_rate", "batch_size", "seed", "prior_preservation",
                                         "class_prompt", "num_class_images", "prior_weight", "train_text_encoder",
                                         "lora_rank")}
    values[knob] = BAD_NUMBERS[bad]
    message = refusal(lambda: listener(demo, "teach_train")(None, "zorb", "dreambooth", None, **values))
    info = knob_info(teach.TeachSettings, knob)
    assert_names(message, knob, BAD_NUMBERS[bad], info.minimum, info.maximum)


@pytest.mark.parametrize("bad", list(BAD_NUMBERS) + ["2.5"], ids=list(BAD_NUMBERS) + ["2.5"])
def test_an_sft_rank_that_is_not_a_finite_whole_number_is_refused_naming_it(engine, bad):
    from engine.training import sft
    from tabs import posttraining

    value = BAD_NUMBERS.get(bad, 2.5)
    train = posttraining.make_train(engine)
    with pytest.raises(UserInputError) as info:
        next(train("bundled", None, "response", value, 0.001, 5, 2, 64, 1, ["q_proj"], None, None))
    r = knob_info(sft.SftSettings, "r")
    assert_names(str(info.value), "r", value, r.minimum, r.maximum)


@pytest.mark.parametrize("name, args", [("encoder layer", (float("nan"), 1)), ("causal layer", (1, float("inf")))])
def test_attention_compare_refuses_a_layer_that_is_not_a_finite_number_before_any_model_runs(demo, name, args):
    message = refusal(lambda: listener(demo, "attention_compare")("The cat sat.", *args))
    assert message.startswith(f"{name} must be") and "1 and 30" in message, message


def raw_call(app_url: str, api_name: str, data: list) -> str:
    """One call of an endpoint over plain HTTP, its JSON body written by hand so that it can hold
    NaN and Infinity (gradio_client refuses to send them; a script need not). Returns the
    streamed reply's text."""
    import json

    import httpx

    body = json.dumps({"data": data}, allow_nan=True)  # NaN / Infinity literals, as json.loads reads them
    with httpx.Client(base_url=app_url, timeout=60) as http:
        event = http.post(f"gradio_api/call/{api_name}", content=body,
                          headers={"content-type": "application/json"}).json()["event_id"]
        return http.get(f"gradio_api/call/{api_name}/{event}").text


@pytest.mark.parametrize("api_name, knob", [("txt2img", "num_images"), ("teach_train", "lora_rank")])
def test_a_nan_knob_sent_over_http_is_refused_naming_it(client, app_url, api_name, knob):
    """Through the served app: NaN passes Gradio's slider (its range check compares, and every
    comparison with NaN is false), reaches the listener as a float and is named in the reply.
    (Infinity is refused by the slider itself: 'Value inf is greater than maximum value 8.')"""
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"][f"/{api_name}"]["parameters"]
    names = [p["parameter_name"] for p in params]
    data = [p.get("parameter_default") for p in params]
    if "model" in names:
        data[names.index("model")] = DIGITS
    data[names.index(knob)] = float("nan")
    reply = raw_call(app_url, api_name, data)
    assert "event: error" in reply and "Something went wrong" not in reply, reply
    assert f"{knob} must be a number between" in reply and "got nan" in reply, reply


# ---- Inside one block: the slider maxima follow the model ------------------------------------------
def test_inside_block_takes_a_head_valid_for_its_model_after_another_models_journey(client):
    """A SmolLM2 journey (9 heads) set the head slider's maximum to 9 in this session; MiniLM has
    12 heads, and head 12 on MiniLM was refused by that stale maximum. The model asked for decides."""
    client.predict("The capital of France is", "smollm2-135m-instruct", api_name="/inside_journey")
    out = client.predict("The cat sat on the mat.", "minilm-l6", 2, 12, api_name="/inside_block")
    assert "post-norm (BERT)" in out[3]
    weights = out[8]["data"]  # softmax weights of head 12: one row per token, each sums to 1
    assert weights and all(abs(sum(r[1:]) - 1) < 1e-3 for r in weights)
    # the model's own range is still checked, with its numbers
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"this model has 9 heads per block.*1 to 9"):
        client.predict("The capital of France is", "smollm2-135m-instruct", 2, 12, api_name="/inside_block")


@pytest.mark.slow  # loads SmolLM2 and MiniLM
def test_choosing_a_model_moves_the_block_sliders_to_its_size(demo):
    on_model = listener(demo, "inside_model_dims")
    layer, head = on_model("minilm-l6", 30, 12)
    assert (layer["maximum"], layer["value"], head["maximum"], head["value"]) == (6, 6, 12, 12)
    layer, head = on_model("smollm2-135m-instruct", 6, 12)
    assert (layer["maximum"], layer["value"], head["maximum"], head["value"]) == (30, 6, 9, 9)


# ---- a reward-model max_length that keeps no pair -------------------------------------------------
def test_a_reward_max_length_that_keeps_no_pair_is_refused_before_training(engine, smollm, monkeypatch):
    """The reward trainer drops (does not cut) every pair longer than max_length: at 16, the knob's
    own minimum, it dropped all of them and trl raised ValueError. Refused before any trainer is
    built, naming the shortest max_length that keeps 2 pairs; trl's own filter agrees with it."""
    import re

    from trl import RewardConfig, RewardTrainer

    from engine.core.settings import make
    from engine.training import preference as P
    from engine.training import runner

    def no_trainer(*args, **kwargs):
        raise AssertionError("a trainer was built")

    monkeypatch.setattr(P, "reward_trainer", no_trainer)
    pairs, session = P.load_pairs(), P.PreferenceSession()
    with pytest.raises(UserInputError, match=r"max_length = 16 keeps 0 of the \d+ training pairs") as err:
        list(P.train_reward(engine, session, pairs, make(P.RewardSettings, max_length=16)))  # the knob's minimum
    need = int(re.search(r"give at least (\d+) \(keeps 2 pairs", str(err.value)).group(1))
    assert not session.training and not runner.GATE.busy

    def kept_by_trl(max_length: int) -> int:  # trl's own preparation and filter, no model
        train = P._dataset(P.split(pairs)[0])  # the conversational pairs the engine hands trl
        args = RewardConfig(output_dir="unused", max_length=max_length, report_to=[], use_cpu=True, bf16=False)
        return len(RewardTrainer._prepare_dataset(None, train, smollm.tokenizer, args, "train"))

    assert kept_by_trl(need) >= 2 > kept_by_trl(need - 1)
    P.check_pairs(smollm.tokenizer, pairs, make(P.RewardSettings, max_length=need))  # the length it names works
    P.check_pairs(smollm.tokenizer, pairs, make(P.DPOSettings, max_length=16))  # DPO cuts, it does not drop


# ---- the per-session upload pool: scripts cannot crowd out the students ----------------------------
def upload_over_http(app_url: str, path, *, page: bool) -> str:
    """One /rag_upload call in a new session over plain HTTP, as a script sends it, or (page=True)
    marked as Gradio's own front end marks the calls of the app's page. Returns the reply's text."""
    import json

    import httpx

    headers = {"x-gradio-user": "app"} if page else {}
    with httpx.Client(base_url=app_url, timeout=120, headers=headers) as http:
        with open(path, "rb") as f:
            server_path = http.post("gradio_api/upload", files={"files": (path.name, f)}).json()[0]
        data = [[{"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}],
                64, 8, "fixed tokens"]
        event = http.post("gradio_api/call/rag_upload", content=json.dumps({"data": data}),
                          headers={"content-type": "application/json"}).json()["event_id"]
        return http.get(f"gradio_api/call/rag_upload/{event}").text


def test_anonymous_api_sessions_cannot_fill_the_upload_pool(app_url, tmp_path, monkeypatch):
    """Scripts (each call a new session, no page) filled every slot of the upload pool for an hour;
    then a student's upload from the page was refused. They now get a share of it, and a session
    whose upload failed holds no slot. (The pool is made small here; the app's is MAX_SESSIONS.)"""
    import gc

    from engine.retrieval import search

    for library in [o for o in gc.get_objects() if isinstance(o, search.Library)]:
        for s in list(library._sessions.values()):
            s.close()  # earlier tests' uploads to this server: the pool starts empty
    monkeypatch.setattr(search, "MAX_SESSIONS", 6)
    monkeypatch.setattr(search, "MAX_API_SESSIONS", 2, raising=False)
    doc = tmp_path / "giraffes.txt"
    doc.write_text("Giraffes are the tallest animals on land. They eat leaves from acacia trees.\n\n" * 3)
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    for _ in range(3):  # failed uploads: their sessions are dropped at once
        assert "holds no text" in upload_over_http(app_url, empty, page=False)
    replies = [upload_over_http(app_url, doc, page=False) for _ in range(6)]
    assert all("event: complete" in r for r in replies[:2]), replies[:2]
    assert all("event: error" in r and "2 sessions not opened from the app's page hold uploads" in r
               for r in replies[2:]), replies[2:]
    for _ in range(4):  # the students' share of the pool is still free
        reply = upload_over_http(app_url, doc, page=True)
        assert "event: complete" in reply and "chunks" in reply, reply


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class NoStore:
    """What a Library needs of its store when no collection is built: drop()."""

    def __init__(self):
        self.dropped = []

    def drop(self, name):
        self.dropped.append(name)


def a_doc():
    from engine.retrieval import corpus

    return corpus.Document("upload-1-notes", "notes.txt", "Giraffes eat leaves.", "upload: notes.txt")


@pytest.fixture
def pool(engine):
    from engine.retrieval import search

    clock = Clock()
    return search.Library(engine, store=NoStore(), clock=clock), clock


def test_sessions_without_documents_leave_a_full_pool_after_a_minute(pool):
    from engine.retrieval import search

    lib, clock = pool
    empty = [lib.session() for _ in range(search.MAX_SESSIONS)]
    with pytest.raises(UserInputError, match=f"{search.MAX_SESSIONS} sessions hold uploads"):
        lib.session()
    clock.now += search.EMPTY_IDLE_S + 1
    fresh = lib.session()
    assert lib.sessions == 1 and all(s.closed for s in empty) and not fresh.closed
    assert len(lib.store.dropped) == search.MAX_SESSIONS


def test_idle_limits_by_kind_and_never_while_in_use(pool):
    from engine.retrieval import search

    lib, clock = pool
    page, script, working = lib.session(), lib.session(from_page=False), lib.session(from_page=False)
    for s in (page, script, working):
        s.docs.append(a_doc())
    working.busy = 1  # an upload or a search running now
    clock.now += search.API_IDLE_S + 1
    assert lib.expire() == 1 and script.closed and not page.closed and not working.closed
    clock.now += 24 * 3600  # a page session's uploads stay until gr.State's own time-to-live ends them
    assert lib.expire() == 0 and lib.sessions == 2


def test_scripts_get_a_share_of_the_pool_and_the_page_the_rest(pool):
    from engine.retrieval import search

    lib, clock = pool
    for _ in range(search.MAX_API_SESSIONS):
        lib.session(from_page=False).docs.append(a_doc())
    with pytest.raises(UserInputError, match=f"{search.MAX_API_SESSIONS} sessions not opened from the app's page "
                                             r"hold uploads.*try again in 10 minutes"):
        lib.session(from_page=False)
    pages = [lib.session() for _ in range(search.MAX_SESSIONS - search.MAX_API_SESSIONS)]
    assert lib.sessions == search.MAX_SESSIONS and all(s.from_page for s in pages)


def test_a_new_session_whose_first_upload_fails_holds_no_slot(pool, tmp_path):
    from engine.core.settings import make
    from engine.retrieval import chunking

    lib, _ = pool
    bad = tmp_path / "empty.txt"
    bad.write_text(" ")
    with pytest.raises(UserInputError, match="holds no text"):
        lib.upload(None, [str(bad)], make(chunking.ChunkSettings), from_page=False)
    assert lib.sessions == 0 and len(lib.store.dropped) == 1
    kept = lib.session()
    kept.docs.append(a_doc())
    with pytest.raises(UserInputError, match="holds no text"):  # a session that already holds documents stays
        lib.upload(kept, [str(bad)], make(chunking.ChunkSettings))
    assert lib.sessions == 1 and not kept.closed


def test_the_page_is_told_from_a_script_by_gradios_own_header():
    from types import SimpleNamespace

    from tabs.retrieval import from_page

    assert from_page(SimpleNamespace(headers={"x-gradio-user": "app"}))
    assert not from_page(SimpleNamespace(headers={"x-gradio-user": "api"}))
    assert not from_page(SimpleNamespace(headers={})) and not from_page(None)


# ---- Gradio's cache of served files: bounded in size, not only in age ------------------------------
def _files(folder, sizes) -> list:
    """Files of the given sizes written one after the other (their ctimes in that order)."""
    import time

    out = []
    for i, size in enumerate(sizes):
        sub = folder / f"hash{i}"
        sub.mkdir()
        path = sub / f"file{i}.bin"
        path.write_bytes(b"x" * size)
        out.append(path)
        time.sleep(0.02)
    return out


def test_trim_folder_removes_the_oldest_files_past_the_budget(tmp_path):
    import time

    from engine.core.scratch import trim_folder

    old = _files(tmp_path, [1000] * 5)
    later = time.time() + 120  # every file is past the minimum age, none near the maximum
    assert trim_folder(tmp_path, max_bytes=2500, max_age_s=7200, now=later) == 3
    assert [p.exists() for p in old] == [False, False, False, True, True]
    assert not (tmp_path / "hash0").exists()  # its emptied folder went too
    assert trim_folder(tmp_path, max_bytes=2500, max_age_s=7200, now=later) == 0


def test_trim_folder_spares_kept_and_young_files_and_drops_the_too_old(tmp_path):
    import time

    from engine.core.scratch import trim_folder

    files = _files(tmp_path, [1000] * 4)
    assert trim_folder(tmp_path, max_bytes=10, max_age_s=7200) == 0  # under a minute old: a listener may read them
    later = time.time() + 120
    kept = {str(files[0])}  # e.g. a component's initial value, which Gradio keeps in its cache
    assert trim_folder(tmp_path, max_bytes=2000, max_age_s=7200, keep=kept, now=later) == 2  # kept bytes count
    assert [p.exists() for p in files] == [True, False, False, True]
    assert trim_folder(tmp_path, max_bytes=10**9, max_age_s=7200, keep=kept, now=time.time() + 7300) == 1
    assert files[0].exists() and not files[3].exists()


def test_the_app_serves_files_from_its_own_folder_bounded_by_the_operators_budget(monkeypatch, tmp_path):
    """main() gives Gradio a folder of the app's own (inside the operator's GRADIO_TEMP_DIR, when
    set) and trims it to --served-files-gb / LLM_PLAYGROUND_SERVED_FILES_GB, oldest first."""
    import app
    from engine.core import scratch

    class FakeDemo:
        blocks = {}

        def launch(self, **kwargs):
            pass

        def block_thread(self):
            pass

    started = []
    monkeypatch.setattr(app, "build_demo", lambda engine: FakeDemo())
    monkeypatch.setattr(scratch, "trim_every", lambda *args, **kwargs: started.append((args, kwargs)))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.delenv("LLM_PLAYGROUND_PASSWORD", raising=False)
    monkeypatch.setenv("LLM_PLAYGROUND_SERVED_FILES_GB", "0.5")
    app.main(["--offline", "--device", "cpu"])
    import os

    folder = os.environ["GRADIO_TEMP_DIR"]
    assert os.path.dirname(folder) == str(tmp_path) and os.path.isdir(folder)
    (every, where, budget, max_age), kw = started[-1]
    assert (str(where), budget, max_age) == (folder, 2**29, app.SERVED_FILES_MAX_AGE_S) and callable(kw["keep"])
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    app.main(["--offline", "--device", "cpu", "--served-files-gb", "2"])
    assert started[-1][0][2] == 2 * 2**30
    with pytest.raises(UserInputError, match="served-files-gb"):
        app.main(["--offline", "--device", "cpu", "--served-files-gb", "nan"])


@pytest.mark.parametrize("bad", [float("nan"), "NaN", float("inf"), True])
def test_every_whole_number_box_refuses_what_is_not_a_number_by_name(demo, bad):
    """Gradio's precision-0 Number rounded before any check of ours: NaN failed inside it with
    'cannot convert float NaN to integer'. Every such box is now a WholeNumber that names itself."""
    from tabs._ui import WholeNumber

    boxes = [b for b in demo.blocks.values() if isinstance(b, gr.Number) and b.precision == 0]
    assert len(boxes) >= 5 and all(isinstance(b, WholeNumber) for b in boxes)
    for box in boxes:
        with pytest.raises(gr.Error, match=re.escape(f"{box.label} = ") + ".*is not a number: enter a whole number"):
            box.preprocess(bad)
        assert box.preprocess(2.9) == 3 and box.get_block_name() == "number"
