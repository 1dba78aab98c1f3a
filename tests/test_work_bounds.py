"""Issue 39: every amount of work a user controls has a bound, stated in the UI and refused by
name before the work starts: operators and text per PDF, chunks per index, rules per stress
test, answers and characters per suite run."""
from __future__ import annotations

import json
import time
import zlib

import pytest

from engine.core.errors import UserInputError
from engine.core.settings import make
from test_hardening import pdf_with


def pdf_objects(objs: list[bytes]) -> bytes:
    """A PDF of these objects (1: catalog), with a correct xref table."""
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


FONT = b"/Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >>"


# ---- PDFs ----------------------------------------------------------------------------------------
def test_a_small_pdf_with_too_many_operators_is_refused_before_its_text_is_read():
    from engine.retrieval import corpus

    n = corpus.MAX_PDF_OPERATORS + 10_000
    pdf = pdf_with(stream=zlib.compress(b"BT /F1 12 Tf 10 10 Td " + b"(a) Tj " * n + b"ET", 9))
    assert len(pdf) < 5_000  # a few kB: its text (110,000 characters) is under the character limit
    started = time.process_time()
    with pytest.raises(UserInputError, match=r"'ops\.pdf' holds more than 100,000 drawing and text operators"):
        corpus.pdf_text(pdf, "ops.pdf")
    assert time.process_time() - started < 2  # counted, not read: reading them takes several seconds
    assert corpus.pdf_text(pdf_with(stream=zlib.compress(b"BT /F1 12 Tf 10 10 Td (fine) Tj ET")), "ok.pdf") == "fine"


def test_a_form_painted_many_times_counts_each_time():
    """One small form (1,000 operators) painted 150 times: 150,000 operators to read."""
    from engine.retrieval import corpus

    form = zlib.compress(b"BT /F1 12 Tf 10 10 Td " + b"(a) Tj " * 1000 + b"ET")
    page = zlib.compress(b"/X1 Do " * 150)
    pdf = pdf_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R /Resources << " + FONT
        + b" /XObject << /X1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(page) + page + b"\nendstream",
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 200 200] /Resources << " + FONT
        + b" >> /Length %d /Filter /FlateDecode >>\nstream\n" % len(form) + form + b"\nendstream"])
    assert corpus.pdf_operators(__import__("pypdf").PdfReader(__import__("io").BytesIO(pdf))) < 2_000
    with pytest.raises(UserInputError, match=r"'forms\.pdf' holds more than 100,000 drawing and text operators"):
        corpus.pdf_text(pdf, "forms.pdf")


def test_the_operator_count_reads_content_streams_like_pypdf():
    from engine.retrieval import corpus

    stream = (b"q 1 0 0 1 0 0 cm BT/F1 12 Tf[(a(b)c) -20 <4142>]TJ T* (x)' 1 2 (y)\" ET Q "
              b"/P <</MCID 0>> BDC EMC 0 0 m 1 1 l S f* W n (Tj Td in a string) Tj")
    assert corpus._operators_in(stream) == 19


# ---- chunks per index ----------------------------------------------------------------------------
@pytest.fixture
def no_embedding(monkeypatch, minilm_tokenizer):
    """MiniLM's tokenizer alone for chunking; embedding any chunk fails the test."""
    from engine.retrieval import search

    monkeypatch.setattr(search, "tokenizer", lambda engine, progress=None: minilm_tokenizer)

    def embed(*args, **kwargs):
        raise AssertionError("chunks were embedded: the bound must refuse before")

    monkeypatch.setattr(search, "embed", embed)


def test_an_upload_of_too_many_chunks_is_refused_before_embedding(engine, tmp_path, no_embedding):
    from engine.retrieval import chunking, search

    text = tmp_path / "notes.txt"
    text.write_text(" ".join(f"word{i} is here." for i in range(2_500)))  # ~12,000 tokens
    session = search.Library(engine).session()
    small = make(chunking.ChunkSettings, size=16, overlap=0)
    with pytest.raises(UserInputError, match=r"Your files give [\d,]+ chunks at chunk size 16 with overlap 0: your "
                                             r"files may have at most 300 chunks"):
        session.add([str(text)], small)
    assert session.docs == []  # refused whole: clicking again after a change starts clean
    session.close()


def test_a_bundled_index_of_too_many_chunks_is_refused_before_embedding(engine, no_embedding):
    from engine.retrieval import chunking, search

    with pytest.raises(UserInputError, match=r"The bundled documents give [\d,]+ chunks at chunk size 16 with "
                                             r"overlap 8: an index of them may have at most 2,000 chunks"):
        search.Library(engine).bundled(make(chunking.ChunkSettings, size=16, overlap=8))


# ---- rules per stress test -----------------------------------------------------------------------
def test_a_stress_test_takes_each_rule_at_most_once():
    from engine.evaluation import robustness

    never = object()  # no model call may happen: the refusal comes first
    with pytest.raises(UserInputError, match=r"rules: 15 given, 'typo' 15 times: choose each rule at most once, "
                                             r"up to 11 rules"):
        robustness.stress_test(never, "What is the capital of France?", None, ["typo"] * 15)
    with pytest.raises(UserInputError, match=r"up to 11 rules"):
        robustness.stress_test(never, "What is the capital of France?", None, list(robustness.RULE_NAMES) * 2)


# ---- answers and characters per suite run --------------------------------------------------------
@pytest.fixture
def no_model(monkeypatch):
    from engine.evaluation import suite

    def load_option(*args, **kwargs):
        raise AssertionError("a model was loaded: the bound must refuse before")

    monkeypatch.setattr(suite, "load_option", load_option)


def test_a_suite_run_past_its_answers_is_refused_before_any_model_loads(engine, no_model):
    from engine.evaluation import suite

    lines = [json.dumps(dict(question=f"Question {i}?", choices=[f"choice {j}" for j in range(8)], answer=0))
             for i in range(300)]
    items = suite.parse_jsonl("\n".join(lines), "the uploaded file")
    settings = make(suite.SuiteSettings, max_items=300)
    with pytest.raises(UserInputError, match=r"300 items with their choices x 1 model\(s\) = 2,400 answers to score: "
                                             r"one run scores at most 1,200"):
        suite.run_suite(engine, ["smollm2-135m-instruct"], settings, items)


def test_a_suite_run_past_its_characters_is_refused_before_any_model_loads(engine, no_model):
    from engine.evaluation import suite

    long_q = "Which of these is right? " + "Some context. " * 140  # ~2,000 characters
    lines = [json.dumps(dict(question=long_q + str(i), choices=["yes", "no", "maybe", "never"], answer=0, skill="s"))
             for i in range(100)]
    items = suite.parse_jsonl("\n".join(lines), "the uploaded file")
    settings = make(suite.SuiteSettings, max_items=100, k_shot=5)  # 400 answers, each reading six questions
    with pytest.raises(UserInputError, match=r"characters to read: one run reads at most 600,000"):
        suite.run_suite(engine, ["smollm2-135m-instruct"], settings, items)


def test_the_bounds_are_stated_where_the_work_is_chosen(engine):
    import app
    from engine.core.settings import knob_info
    from engine.evaluation import suite

    assert "1,200 answers" in knob_info(suite.SuiteSettings, "max_items").help
    demo = app.build_demo(engine)
    by_id = {c.elem_id: c for c in demo.blocks.values() if getattr(c, "elem_id", None)}
    limits = by_id["rag-upload-limits"].value
    assert "100,000 drawing and text operators" in limits and "at most 300 chunks" in limits
    rules = [c for c in demo.blocks.values() if getattr(c, "label", None) == "Rules"]
    assert rules and "Each at most once (up to 11)" in rules[0].info
