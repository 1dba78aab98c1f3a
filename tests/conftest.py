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
# The files Gradio serves and receives go to a folder of this process's own: two xdist workers
# sharing /tmp/gradio refused a browser upload ("not uploaded by a user").
os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="gradio-served-")
GRADIO_FOLDER = os.environ["GRADIO_TEMP_DIR"]


@pytest.fixture(autouse=True)
def _gradio_folder_kept():
    """Tests that run app.main() in this process give Gradio a new folder (use_gradio_cache): put the
    process's own back after each, or the session app refuses its later uploads ("not uploaded by a
    user": Gradio looks for them in the folder the variable names now)."""
    yield
    os.environ["GRADIO_TEMP_DIR"] = GRADIO_FOLDER

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


# Under pytest-xdist (the CI command runs 2 workers, one per core) each worker process keeps torch
# on 1 thread: two processes with a team of 2 OpenMP threads each on 2 cores wait on each other
# (engine/core/threads.py has the measurements).
UNDER_XDIST = {"on": False}


def _patient_clients() -> None:
    """gradio_client's requests wait 5 s by default (httpx's own default). Two xdist workers each
    serving an app on 2 cores answered a queue join later than that twice in full runs
    (httpx.ReadTimeout), though the calls passed alone: test clients wait for an answer as long as
    their stream does (no read limit; pytest-timeout bounds each test), 60 s for the rest."""
    import gradio_client
    import httpx

    init = gradio_client.Client.__init__
    if getattr(init, "patient", False):
        return

    def patient(self, *args, httpx_kwargs=None, **kwargs):
        init(self, *args, httpx_kwargs={"timeout": httpx.Timeout(60.0, read=None), **(httpx_kwargs or {})}, **kwargs)
    patient.patient = True
    gradio_client.Client.__init__ = patient


def pytest_configure(config):
    _patient_clients()
    if hasattr(config, "workerinput"):  # set by xdist on its worker processes only
        import torch

        UNDER_XDIST["on"] = True
        torch.set_num_threads(1)


def both_cores():
    """Inside a one_thread module: a single real-model training (nothing else running in the
    process) uses up to two threads; on this 2-core machine the default reward run took 63 s with
    two against 94 s with one. Tiny models and concurrent calls keep one thread (they thrash).
    Under xdist the other worker uses the other core: one thread."""
    return torch_threads(1 if UNDER_XDIST["on"] else max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def two_threads():
    """both_cores() for one test of a one_thread module that makes its app calls one at a time
    (a real-model training through the API): the reward + DPO API test took 56.6 s with one thread
    and 40.9 s with two."""
    with both_cores():
        yield


# --- the fast loop: `pytest -m "not slow and not browser"` --------------------------------------
# A test is marked slow when it uses one of these fixtures, itself or through other fixtures:
# each loads a real model or serves the whole app (whose listeners load them). A
# module-level fixture that loads a real model takes a name from this set or asks for one of
# these fixtures; a test that loads one in its body is marked slow by hand.
REAL_MODEL_FIXTURES = frozenset({
    "smollm", "minilm", "gemma",  # the three real language models (defined below)
    "app_url", "client", "browser", "page",  # the served app and the browser that drives it
    "vllm_server",  # test_serving: a real vLLM server serving SmolLM2
})
BROWSER_FIXTURES = frozenset({"browser", "page"})


def pytest_collection_modifyitems(config, items):
    """Mark `slow` every test whose fixture closure (item.fixturenames) holds a real-model or app
    fixture, and `browser` every test that drives Chromium, so no test has to remember to."""
    weight: dict[str, float] = {}
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        cost = 0.1
        if used & REAL_MODEL_FIXTURES:
            item.add_marker(pytest.mark.slow)
            cost = 5.0
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
            cost = 30.0
        weight[str(item.path)] = weight.get(str(item.path), 0.0) + cost
    # The heaviest files first (a file's rough cost: its browser and real-model tests), so that two
    # xdist workers (--dist loadfile) end together instead of one waiting on the other's last long
    # file. Within a file the order stays as written; the order is the same in every worker.
    items.sort(key=lambda it: -weight[str(it.path)])


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
def gemma(engine):
    """The real embedded Gemma 3 270M base, the SFT base (TextModel bundle; the first use dequantizes
    it, ~90 s)."""
    from engine.training import sft

    return engine.load(sft.BASE_KEY)


# --- tiny stand-ins: no real weights ------------------------------------------------------------
@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2's tokenizer alone (49,152 ids, its special tokens and chat template), read from
    assets/tokenizers/smollm2: no model weights, no GGUF to dequantize. test_tokens checks that
    this asset encodes and renders chat exactly as the model's own tokenizer."""
    from transformers import PreTrainedTokenizerFast

    from engine.tokens.loading import SPECIAL_NAMES, read_tokenizer_folder

    backend, config, chat = read_tokenizer_folder(ROOT / "assets" / "tokenizers" / "smollm2")
    names = {k: v for k, v in config.items() if k in SPECIAL_NAMES and v}
    return PreTrainedTokenizerFast(tokenizer_object=backend, chat_template=chat, **names)


@pytest.fixture(scope="session")
def minilm_tokenizer(engine):
    """MiniLM's WordPiece tokenizer alone, from the embedded package (no encoder weights)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(engine.registry.resolve("minilm-l6").path)


TINY_SIZES = dict(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2)  # SmolLM2's vocabulary size, everything else tiny


def tiny_causal_lm(model_type: str = "llama", seed: int | None = 0, **overrides):
    """A random causal LM of `model_type` ("llama", "gemma3_text", ...) built from its config with
    TINY_SIZES and `overrides`, in eval mode. `seed` seeds torch first (None: the caller's state)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, **{**TINY_SIZES, **overrides})
    if seed is not None:
        torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="session")
def tiny_llama(smollm2_tokenizer):
    """A 2-layer random Llama (untied head, bos 1, eos 2, 512 positions) with SmolLM2's real
    tokenizer, as a TextModel bundle: real token ids, forwards in milliseconds. Shared by the
    session: a test that changes the model builds its own with tiny_causal_lm()."""
    import torch

    from engine.core.models import TextModel
    from engine.core.registry import ModelSpec, Source

    spec = ModelSpec(key="tiny-llama", task="causal-lm", title="tiny random Llama", loader="tests:none")
    model = tiny_causal_lm(max_position_embeddings=512)
    return TextModel(model, smollm2_tokenizer, Source(spec, "embedded", "(memory)"), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="session")
def app_url(engine):
    """The whole app served on loopback for the session (one process, one engine)."""
    import app

    demo = app.build_demo(engine)
    port = free_port()
    app.launch_patiently(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                         **app.launch_kwargs())  # patient: Gradio's own page check gives up at 3 s
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
