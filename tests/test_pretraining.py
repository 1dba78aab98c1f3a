"""The Pre-training lesson's engine (engine/pretraining) on tiny configs: the self-supervised labels,
the tokenizers, the first loss against ln(vocab), a short run that learns, the power-law fit, the
model folder, session isolation, knob checks and the sweep's time cap."""
from __future__ import annotations

import copy
import math
import time

import pytest
import torch

from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.pretraining import data, model as pt_model, scaling, train, vocab
from engine.training import runner

pytestmark = pytest.mark.usefixtures("one_thread")
TEXT = data.bundled()[:300_000]  # a slice of the bundled corpus: enough for tiny models, fast to tokenize
TINY = dict(layers=1, width=32, heads=2, context=32, batch_size=16, learning_rate=0.01, warmup_steps=5,
            eval_every=20, sample_every=30, max_steps=60)


def tiny(**kw) -> pt_model.PretrainSettings:
    return make(pt_model.PretrainSettings, **{**TINY, **kw})


@pytest.fixture(scope="module")
def char_data():
    return train.prepare(TEXT, tiny(), "slice")


def test_the_bundled_corpus_is_over_2_mb_of_text_with_its_source_and_licence():
    assert len(data.bundled()) >= 2_000_000
    folder = data.CORPUS.parent
    assert "PSF" in (folder / "SOURCE.md").read_text() and "PSF LICENSE" in (folder / "LICENSE.txt").read_text()


def test_the_labels_are_the_inputs_shifted_by_one(char_data):
    ids = char_data.train_ids
    w = data.window(ids.tolist(), 10, 16, char_data.vocab.piece)
    assert w.labels[:-1] == w.input_ids[1:] and w.labels[-1] == int(ids[10 + 16])
    x, y = train.batch(ids, 8, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(UserInputError, match="window start"):
        data.window(ids.tolist(), len(ids), 16, char_data.vocab.piece)


def test_the_split_holds_out_the_end_and_counts_epochs():
    tr, va = data.split(TEXT, 0.1)
    assert tr + va == TEXT and 0.08 < len(va) / len(TEXT) < 0.12
    c = data.counts(1000, 100, steps=10, batch=4, context=50)
    assert c["training_tokens"] == 2000 and c["epochs"] == 2.0


def test_the_bpe_trained_here_round_trips_the_corpus_and_shows_its_merges():
    v = vocab.bpe_vocab(TEXT, 400)
    assert v.size == 400
    assert v.decode(v.encode(TEXT)) == TEXT
    assert v.decode(v.encode("naïve café — 東京")) == "naïve café — 東京"  # byte-level: nothing is unknown
    first = vocab.show_merges(v, 5)
    assert [m[0] for m in first] == [1, 2, 3, 4, 5] and all(m[3] == m[1] + m[2] for m in first)
    assert len(v.encode(TEXT)) < len(TEXT) / 1.8  # merges shorten the sequence


def test_char_and_gpt2_tokenizers_trade_vocabulary_for_length():
    c, g = vocab.char_vocab(TEXT), vocab.gpt2_vocab()
    assert c.decode(c.encode(TEXT[:5000])) == TEXT[:5000]
    rows = vocab.compare(TEXT[:20_000], [c, g])
    assert rows[0]["vocab"] < 120 < 50_000 < rows[1]["vocab"] and rows[0]["tokens"] > 3 * rows[1]["tokens"]


@pytest.mark.parametrize("arch", pt_model.ARCHS)
def test_the_first_loss_is_near_ln_vocab_and_the_counts_match_the_model(char_data, arch):
    s = tiny(arch=arch)
    m = pt_model.build(s, char_data.vocab.size)
    n = pt_model.size(s, char_data.vocab.size)
    assert n["total"] == sum(p.numel() for p in m.parameters())
    x, y = train.batch(char_data.train_ids, 16, s.context, torch.Generator().manual_seed(1))
    loss = train.loss_of(m, x, y).item()
    assert abs(loss - math.log(char_data.vocab.size)) < 0.1 * math.log(char_data.vocab.size)


def test_a_60_step_run_lowers_the_validation_loss_and_stop_keeps_the_model(char_data):
    sess = train.new_session(char_data, tiny(), "The ")
    updates = list(train.train(sess, 120.0))
    assert updates[-1].done and sess.steps_done == 60
    first_val, last_val = sess.curves.val[0][1], sess.curves.val[-1][1]
    assert last_val < first_val - 0.5, sess.curves.val
    assert [s[0] for s in sess.samples] == [0, 30, 60] and all(s[2].startswith("The ") for s in sess.samples)
    assert not runner.GATE.busy
    stop = __import__("threading").Event()
    sess2 = train.new_session(char_data, tiny(max_steps=500), "The ")
    for u in train.train(sess2, 120.0, stop):
        if u.step == 5:
            stop.set()
    assert u.stopped and sess2.steps_done == 5 and sess2.model is not None


def test_the_downloaded_folder_loads_in_plain_transformers_with_the_same_logits(char_data, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for arch in pt_model.ARCHS:
        s = tiny(arch=arch)
        m = pt_model.build(s, char_data.vocab.size).eval()
        folder = pt_model.save_folder(m, char_data.vocab.tokenizer, tmp_path / arch)
        loaded = AutoModelForCausalLM.from_pretrained(folder).eval()
        tok = AutoTokenizer.from_pretrained(folder)
        ids = tok("The function returns", return_tensors="pt")["input_ids"]
        assert ids[0].tolist() == char_data.vocab.encode("The function returns")
        with torch.no_grad():
            assert torch.allclose(m(input_ids=ids).logits, loaded(input_ids=ids).logits, atol=1e-5)
    z = pt_model.zip_folder(folder, tmp_path / "m.zip")
    import zipfile
    assert {"gpt2/model.safetensors", "gpt2/config.json", "gpt2/tokenizer.json"} <= set(zipfile.ZipFile(z).namelist())


def test_another_session_does_not_see_a_sessions_model(char_data):
    mine = train.Lesson()
    mine.run = train.new_session(char_data, tiny(), "The ")
    theirs = copy.deepcopy(train.Lesson())  # what gr.State hands a new browser session
    assert theirs.run is None and theirs.sweep is None and theirs.stop is not mine.stop
    assert copy.deepcopy(mine).run is None


@pytest.mark.parametrize("knobs, named", [
    (dict(width=96, heads=5), "heads = 5 does not divide width = 96"),
    (dict(context=pt_model.MAX_CONTEXT + 8), "context"),
    (dict(learning_rate=float("nan")), "learning_rate"),
    (dict(tokenizer="../etc"), "tokenizer"),
    (dict(layers=2.5), "layers"),
])
def test_bad_knobs_are_refused_by_name(knobs, named):
    with pytest.raises(UserInputError, match=named.replace("(", r"\(")):
        make(pt_model.PretrainSettings, **knobs)


def test_the_curve_fit_recovers_a_known_exponent():
    ns = [1e4, 3e4, 1e5, 3e5, 1e6, 3e6]
    losses = [scaling.power_law(n, 40.0, 0.35, 1.2) for n in ns]
    fit = scaling.fit_power_law(ns, losses)
    assert fit["alpha"] == pytest.approx(0.35, rel=0.02) and fit["c"] == pytest.approx(1.2, rel=0.02)
    with pytest.raises(UserInputError, match="at least 4"):
        scaling.fit_power_law(ns[:3], losses[:3])


def test_the_compute_optimal_size_is_read_between_checkpoints():
    rows = [dict(params=n, tokens=d, val_loss=loss, compute=6 * n * d) for n, d, loss in
            [(1000, 1e4, 3.0), (1000, 1e5, 2.8), (10_000, 1e4, 3.2), (10_000, 1e5, 2.5)]]
    best = scaling.compute_optimal(rows, 6 * 10_000 * 1e5)
    assert best["params"] == 10_000 and best["tokens"] == pytest.approx(1e5)
    assert scaling.compute_optimal(rows, 1e3) is None


def test_the_sweep_respects_its_time_cap(char_data):
    sw = make(scaling.SweepSettings, token_budget=5_000_000, context=32, batch_size=8)
    t = time.perf_counter()
    *_, (done, total, res) = scaling.sweep(char_data, sw, 1.5, sizes=((1, 32, 2), (1, 48, 2)))
    assert res.capped and done == 0 and "cap" in res.message
    assert time.perf_counter() - t < 1.5 + 2.0  # the cap, and one step and one model build of slack
    assert not runner.GATE.busy


def test_an_upload_is_bounded_and_tokenized_like_the_corpus(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("too short")
    with pytest.raises(UserInputError, match=f"at least {data.MIN_CHARS:,}"):
        data.read_upload(small)
    big = tmp_path / "big.txt"
    big.write_text("a" * (data.MAX_UPLOAD_BYTES + 10))
    with pytest.raises(UserInputError):
        data.read_upload(big)
    ok = tmp_path / "mine.txt"
    ok.write_text(TEXT[:20_000])
    p = train.prepare(data.read_upload(ok), tiny(tokenizer="bpe", bpe_vocab=300), "mine")
    assert p.vocab.size == 300 and p.vocab.decode(p.train_ids.tolist()) + p.vocab.decode(p.val_ids.tolist()) == TEXT[:20_000]


def test_the_compute_optimal_answer_names_the_sizes_it_compared():
    from tabs import pretraining as tab

    rows = [dict(params=n, tokens=d, val_loss=loss, compute=6 * n * d) for n, d, loss in
            [(1000, 1e4, 3.0), (1000, 1e5, 2.8), (3000, 1e4, 3.2), (3000, 1e5, 2.5), (100_000, 1e4, 3.5),
             (100_000, 1e5, 2.4)]]
    best = scaling.compute_optimal(rows, 3e8)  # D = 5e4 for N = 1,000 and 1.7e4 for N = 3,000: two sizes reach it
    assert [c["params"] for c in best["compared"]] == [1000, 3000] and best["params"] == 1000
    assert scaling.shared_budgets(rows) == pytest.approx((1.8e8, 6e8))
    lesson = train.Lesson()
    lesson.sweep = scaling.SweepResult(rows=rows)
    text, _ = tab.do_optimal(3e8, lesson)
    assert "of the 2 sizes" in text and "N = 3,000: 3.045 after 16,667 tokens" in text, text
    alone, _ = tab.do_optimal(3e10, lesson)  # only N = 100,000 reaches it (D = 5e4)
    assert "only one size" in alone and "nothing to compare" in alone, alone
    assert "between 180 MFLOP and 600 MFLOP" in alone, alone


def test_the_fit_caveat_states_the_sizes_and_the_published_ranges():
    from tabs import pretraining as tab

    ns = [16_480, 73_968, 295_392, 787_328, 2_361_024]
    rows = [dict(params=n, tokens=200_704, val_loss=scaling.power_law(n, 40.0, 0.3, 1.2), share=1.0) for n in ns]
    md, fit = tab._fit_md(scaling.SweepResult(rows=rows))
    assert fit["alpha"] == pytest.approx(0.3, rel=0.05)
    assert "16,480 to 2,361,024 non-embedding parameters" in md and "768 to 1.5 billion" in md
    assert "0.085 tokens per parameter" in md and "times smaller" not in md


def test_the_data_step_shows_bpe_merges_in_order_whatever_the_runs_tokenizer():
    from tabs import pretraining as tab

    md, window, merges, compare = tab.do_prepare("bundled", None, "char", 300, 0.1, 0, 32, 300, 32, 0)
    assert len(merges) == vocab.SHOW_MERGES and merges["rank"].tolist() == list(range(1, vocab.SHOW_MERGES + 1))
    assert (merges["merged"] == merges["left"] + merges["right"]).all()
    assert "trained on the first 100,000 characters" in md
    assert compare["vocabulary"].tolist()[1] == 300 and "input ids" in window
    assert all(" " in h for h in compare.columns[3:])  # a long header wraps at a space instead of being cut


def test_the_samples_box_opens_on_the_newest_sample():
    from engine.pretraining import plots

    html = plots.samples_html([(0, 0, "The xq"), (50, 1600, "The cat"), (100, 3200, "The dog")], "The ")
    assert html.index("step 0") < html.index("step 50") < html.index("step 100")  # read top-down, oldest first
    assert "flex-direction:column-reverse" in html and "overflow-y:auto" in html  # scrolled to the end at first


def test_the_tab_redraws_the_figures_at_most_once_a_second_while_training(monkeypatch):
    from types import SimpleNamespace

    from engine.core.sessions import SessionModels
    from tabs import pretraining as tab

    engine = SimpleNamespace(config=SimpleNamespace(train_minutes=2), device=SimpleNamespace(kind="cpu"),
                             session_models=SessionModels())
    monkeypatch.setattr(tab, "DRAW_EVERY_S", 3600.0)  # no redraw falls due during this run: only the first and last
    knobs = dict(arch="llama", layers=1, width=32, heads=2, context=32, learning_rate=0.01, warmup_steps=5,
                 batch_size=8, max_steps=30, token_budget=0, sample_every=10, eval_every=10, seed=0)
    outs = list(tab.make_train(engine)("bundled", None, "char", 512, 0.1, *[knobs[k] for k in tab.KNOBS], "The ",
                                       2.0, None))
    drawn = [i for i, o in enumerate(outs) if not (isinstance(o[2], dict) and o[2].get("__type__") == "update")]
    assert len(outs) == 31 and drawn == [0, 30]  # every step's status, the figures only before and at the end
    assert "Done" in outs[-1][1] and outs[-1][3].count("step ") == 4  # the last draw holds every sample
    lesson = outs[-1][0]
    assert {p.device.type for p in lesson.run.model.parameters()} == {"cpu"}  # what the intro says
    assert "on the CPU (the server's, when the app runs on one)" in tab.INTRO
