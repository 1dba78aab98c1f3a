"""Bad input that got a generic error or did harm (issue 39): a PDF that unpacks to a huge
stream, an image whose header announces 81 million pixels, scratch folders left behind by a
SIGTERM, a zero-width word in the static-embedding view, a reward-model length that keeps no
pair. Each is refused before the work, with a message that names the value and the limit."""
from __future__ import annotations

import time
import zlib

import pytest

from engine.core.errors import UserInputError


# ---- a PDF that inflates to a huge stream ------------------------------------------------------
def pdf_with(page_extra: bytes = b"", stream: bytes = b"") -> bytes:
    """A one-page PDF (correct xref) whose page holds `page_extra` and whose content stream is
    `stream`, FlateDecode."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R /Resources << /Font << /F1 "
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> " + page_extra + b">>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def zeros_deflated(n_bytes: int) -> bytes:
    comp, chunk = zlib.compressobj(9), b"\0" * 1_000_000
    return b"".join(comp.compress(chunk) for _ in range(n_bytes // len(chunk))) + comp.flush()


def test_a_pdf_that_inflates_past_the_limit_is_refused_naming_the_file():
    from engine.retrieval import corpus

    ok = pdf_with(stream=zlib.compress(b"BT /F1 12 Tf 10 10 Td (hello) Tj ET"))
    assert corpus.pdf_text(ok, "fine.pdf") == "hello"  # a small valid PDF still reads
    bomb = pdf_with(stream=zeros_deflated(80_000_000))  # ~80 kB that unpacks to 80 MB
    assert len(bomb) < 100_000
    start = time.perf_counter()
    with pytest.raises(UserInputError, match=r"'bomb\.pdf' could not be read as a PDF.*LimitReachedError.*16,000,000"):
        corpus.pdf_text(bomb, "bomb.pdf")
    assert time.perf_counter() - start < 5  # refused at the limit, not after parsing 75 MB of zeros


def test_any_pypdf_error_is_refused_by_its_base_class():
    from engine.retrieval import corpus

    many = b"/Junk [" + b"0 " * 100_001 + b"]"  # past pypdf's own array limit (100,000 elements)
    with pytest.raises(UserInputError, match=r"'arrays\.pdf' could not be read as a PDF.*LimitReachedError"):
        corpus.pdf_text(pdf_with(many, zlib.compress(b"BT ET")), "arrays.pdf")


# ---- a picture whose header announces too many pixels ---------------------------------------------
@pytest.fixture(scope="module")
def big_pngs(tmp_path_factory):
    """9000x9000 (past twice PIL's process bound) and 5000x5000 (past the bound): 1-bit, a few kB."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("pictures")
    out = {}
    for side in (9000, 5000):
        out[side] = folder / f"{side}.png"
        Image.new("1", (side, side)).save(out[side])
    return out


@pytest.fixture
def no_decoding(monkeypatch):
    from PIL import ImageFile

    def load(self, *args, **kwargs):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_huge_pictures_are_refused_from_their_header_before_decoding(big_pngs, no_decoding):
    from PIL import Image

    from engine.diffusion import teach

    with pytest.raises(UserInputError, match=r"image 1 is 81,000,000 pixels: the limit is 16,777,216 pixels"):
        teach.prepare_images([str(big_pngs[9000])], check_count=False)
    with pytest.raises(UserInputError, match=r"image 1 is 5000x5000 = 25,000,000 pixels: the limit is 16,777,216"):
        teach.prepare_images([str(big_pngs[5000])], check_count=False)
    from engine.core import images

    assert Image.MAX_IMAGE_PIXELS == images.MAX_IMAGE_PIXELS == 4096 * 4096  # the process bound
    with pytest.raises(UserInputError, match=r"picture\.png is 81,000,000 pixels"):
        images.open_image(big_pngs[9000], "picture.png")


def test_a_decoded_init_image_past_the_bound_is_refused_before_conversion():
    from PIL import Image

    from engine.diffusion import generation as G

    with pytest.raises(UserInputError, match=r"init image is 5000x5000 = 25,000,000 pixels: the limit is 16,777,216"):
        G.prepare_init_image(Image.new("1", (5000, 5000)), G.profile_for("digits-16px"))
    assert G.prepare_init_image(Image.new("L", (64, 64)), G.profile_for("digits-16px")).size == (16, 16)


# ---- SIGTERM removes the scratch folders ---------------------------------------------------------
SIGTERM_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
import app
from engine.core.scratch import new_work_dir
from tabs._ui import scratch_dir


class Demo:  # stands in for the built app: launch() blocks the main thread as Gradio's does
    def launch(self, **kwargs):
        print("FOLDERS", scratch_dir("download").parent, new_work_dir("train"), flush=True)
        while True:
            time.sleep(0.1)


app.build_demo = lambda engine: Demo()
app.main(["--offline", "--device", "cpu"])
"""


@pytest.mark.timeout(300)
def test_sigterm_removes_the_scratch_folders(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import ROOT

    env = dict(os.environ, TMPDIR=str(tmp_path), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    child = subprocess.Popen([sys.executable, "-c", SIGTERM_CHILD.format(root=str(ROOT))], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while not line.startswith("FOLDERS") and child.poll() is None:  # printed once both folders exist
            line = child.stdout.readline()
        folders = [Path(p) for p in line.split()[1:]]
        assert len(folders) == 2 and all(p.is_dir() for p in folders), (line, child.stderr.read() if not line else "")
        (folders[0] / "x.csv").write_text("a,b\n")  # a download in it
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
    assert not any(p.exists() for p in folders)
    assert not list(tmp_path.glob("llm-playground-*"))


# ---- a zero-width word in the static-embedding view -------------------------------------------------
@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m-instruct"])
@pytest.mark.parametrize("word", ["\u200b", "\u200d\u2060"])
def test_a_zero_width_word_is_refused_naming_it(engine, model, word):
    from engine.inside.lens import static_vs_contextual

    first, second = f"We sat on the river {word} bank.", f"I opened a {word} bank account."
    with pytest.raises(UserInputError, match=r"word = '\\u200[bd].*no visible character"):
        static_vs_contextual(engine, first, second, word, model)


def test_a_word_the_tokenizer_drops_is_refused_naming_it(engine, minilm):
    from engine.inside.lens import _word_positions

    with pytest.raises(UserInputError, match=r"'\\u200b' .*no token"):  # BERT's normalizer drops it
        _word_positions(minilm, "x \u200b y", "\u200b")  # the guard under the visible-character check