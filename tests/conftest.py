"""Shared fixtures. Tests never touch the Hub: the engine is built offline on the CPU."""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Cached examples go to a fresh folder per run: a cache left by older code can never pass a test.
os.environ["GRADIO_EXAMPLES_CACHE"] = tempfile.mkdtemp(prefix="examples-cache-")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op threads set to n for the block, then put back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_thread():
    """Use with `pytestmark = pytest.mark.usefixtures("one_thread")`: on a shared 2-core machine
    two OpenMP threads can thrash (a tiny training step took 48 s instead of 1.7 s)."""
    with torch_threads(1):
        yield


def both_cores():
    """Inside a one_thread module: a single real-model training (nothing else running in the
    process) uses up to two threads; on this 2-core machine the default reward run took 63 s with
    two against 94 s with one. Tiny models and concurrent calls keep one thread (they thrash)."""
    return torch_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def engine():
    from engine import Engine

    return Engine(device="cpu", offline=True)


@pytest.fixture(scope="session")
def smollm(engine):
    """The real embedded SmolLM2-135M-Instruct (TextModel bundle)."""
    return engine.load("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def minilm(engine):
    """The real embedded all-MiniLM-L6-v2 encoder (TextModel bundle)."""
    return engine.load("minilm-l6")


@pytest.fixture(scope="session")
def app_url(engine):
    """The whole app served on loopback for the session (one process, one engine)."""
    import app

    demo = app.build_demo(engine)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **app.launch_kwargs())
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by playwright (no browser download)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install.sh --test` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, tmp_path):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    yield pg
    ctx.close()


SCREENSHOTS = ROOT / "docs" / "screenshots"
