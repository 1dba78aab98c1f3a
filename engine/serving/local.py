"""Start and stop scripts/serve_vllm.sh on loopback with the app's own SmolLM2 weights: what the
tests and `python -m bench serving` need (an operator starts the script by hand)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..core.config import child_env
from .client import Client, ServingConfig

ROOT = Path(__file__).resolve().parents[2]
KEY = "smollm2-135m-instruct"


def float_copy(key: str = KEY) -> str:
    """The app's weights as safetensors, the folder vLLM serves (made once, then reused)."""
    from ..core.models import float_copy_of_gguf
    from ..core.registry import Registry

    src = Registry(online=False, reason="serve").resolve(key)
    return str(float_copy_of_gguf(src.path, src.filename))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def start(eager: str = "1", timeout_s: float = 300) -> tuple[subprocess.Popen, str, float]:
    """(process, base URL, seconds to healthy). eager "" lets vLLM compile. Raises RuntimeError
    (after stopping it) when the server exits or is not healthy within timeout_s."""
    port = free_port()
    env = child_env(VLLM_PORT=str(port), VLLM_EAGER=eager, VLLM_CPU_KVCACHE_SPACE="1",
                    VLLM_MODEL=float_copy(), APP_PYTHON=sys.executable)
    t = time.perf_counter()
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "serve_vllm.sh")], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    probe = Client(ServingConfig(url=f"http://127.0.0.1:{port}/v1"))
    while not probe.health(fresh=True)["up"]:
        if proc.poll() is not None or time.perf_counter() - t > timeout_s:
            stop(proc)
            raise RuntimeError("vLLM did not start: run scripts/serve_vllm.sh by hand to see why")
        time.sleep(1)
    return proc, probe.config.url, time.perf_counter() - t
