"""The model on disk and in memory (the Hugging Face stack: config, weights, tokenizer files),
and what one generated token costs.

FLOPs per generated token (forward pass only, one multiply-add = 2 FLOPs):

    2 * N_matmul  +  4 * n_layers * ctx * d_attn

N_matmul counts every weight used in a matrix multiply for one token: the blocks' attention and
MLP matrices, plus the unembedding (vocab x d), which is paid on every token even when its
weights are tied to the input embeddings. The input embedding is a table lookup (no FLOPs);
norms and RoPE are a few d-sized vector operations, left out. The second term is attention over
the context: per block, q.k for ctx keys (ctx * d_attn multiply-adds) and the weighted sum of V
(another ctx * d_attn). d_attn = heads * head_dim.
"""
from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import check_range
from ..core.lazy import torch
from ..core.models import Progress, TextModel, no_progress, weights_origin
from .trace import arch_of, encode, load

GROUPS = ("embeddings", "attention", "MLP", "norms", "head")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt", "tokenizer.model", "chat_template.jinja", "added_tokens.json")
# Dense peak FLOP/s at the dtype the app uses on GPUs (fp16/bf16 tensor cores), from the vendors'
# datasheets. A CPU's peak depends on its cores, clocks and vector units: not known here.
GPU_PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12,
             "T4": 65e12}


def group_of(name: str) -> str:
    if "norm" in name.lower():
        return "norms"
    if "embed" in name or "embeddings" in name:
        return "embeddings"
    if any(s in name for s in ("self_attn", "attention")):
        return "attention"
    if any(s in name for s in ("mlp", "intermediate", "output.dense")):
        return "MLP"
    return "head"  # lm_head, BERT's pooler


def _pattern(name: str) -> tuple[str, bool]:
    """'model.layers.7.mlp.up_proj.weight' -> ('model.layers.*.mlp.up_proj.weight', True)."""
    out = re.sub(r"\.(\d+)\.", ".*.", name, count=1)
    return out, out != name


@dataclass
class Anatomy:
    title: str
    model_class: str
    config: list[tuple[str, str, object]]  # (field, what it means, value)
    groups: list[dict]  # group, tensors, parameters, share
    tensors: list[dict]  # pattern, shape, group, parameters each, copies, total
    total: int
    num_parameters: int  # model.num_parameters()
    tied: bool
    folder: str
    files: list[dict]  # name, bytes, kind
    bytes_in_memory: int
    origin: str = ""  # e.g. "GGUF Q4_1, dequantized to float32" (models.weights_origin)


CONFIG_FIELDS = (
    ("num_hidden_layers", "blocks (layers)"),
    ("num_attention_heads", "query heads per block"),
    ("num_key_value_heads", "K/V heads per block (fewer = grouped-query attention)"),
    ("hidden_size", "d_model: numbers per token in the residual stream"),
    ("head_dim", "numbers per head"),
    ("intermediate_size", "MLP width"),
    ("vocab_size", "vocabulary: one logit per entry"),
    ("max_position_embeddings", "context length (tokens)"),
    ("tie_word_embeddings", "unembedding shares the input embedding table"),
    ("hidden_act", "MLP activation"),
    ("model_type", "architecture family"),
)


def _config_rows(config) -> list[tuple[str, str, object]]:
    rows = []
    for key, meaning in CONFIG_FIELDS:
        value = getattr(config, key, None)
        if value is None and key == "num_key_value_heads":
            value = f"{config.num_attention_heads} (= heads: no grouping)"
        if value is None and key == "head_dim":
            value = config.hidden_size // config.num_attention_heads
        rows.append((key, meaning, value))
    return rows


def _folder_files(bundle: TextModel) -> tuple[str, list[dict]]:
    folder = Path(str(getattr(bundle.model, "name_or_path", "") or bundle.source.path))
    if not folder.is_dir():
        return str(folder), []
    files = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and ".git" not in path.parts and "__pycache__" not in path.parts:
            kind = ("tokenizer" if path.name in TOKENIZER_FILES else "weights"
                    if path.suffix in (".safetensors", ".bin", ".gguf") else "config" if path.suffix == ".json" else "other")
            files.append(dict(file=str(path.relative_to(folder)), bytes=path.stat().st_size, kind=kind))
    return str(folder), files


def anatomy_of(bundle: TextModel) -> Anatomy:
    model = bundle.model
    cfg = model.config
    tensors: "OrderedDict[str, dict]" = OrderedDict()
    parts = arch_of(model).part_of()  # the architecture table knows which module each tensor belongs to
    for name, p in model.named_parameters():  # tied weights appear once
        pattern, repeated = _pattern(name)
        row = tensors.setdefault(pattern, dict(tensor=pattern, shape=tuple(p.shape), group=parts.get(name, group_of(name)),
                                               each=p.numel(), copies=0))
        row["copies"] += 1
    for row in tensors.values():
        row["total"] = row["each"] * row["copies"]
    total = sum(r["total"] for r in tensors.values())
    groups = []
    tied = bool(getattr(cfg, "tie_word_embeddings", False)) and _is_tied(model)
    for g in GROUPS:
        members = [r for r in tensors.values() if r["group"] == g]
        count = sum(r["total"] for r in members)
        note = ""
        if g == "head" and tied and not members:
            note = "tied: lm_head reuses the embedding table (0 extra parameters)"
        groups.append(dict(group=g, tensors=sum(r["copies"] for r in members), parameters=count,
                           share=count / total if total else 0.0, note=note))
    folder, files = _folder_files(bundle)
    mem = sum(p.numel() * p.element_size() for p in model.parameters())
    return Anatomy(title=bundle.source.spec.title, model_class=type(model).__name__, config=_config_rows(cfg),
                   groups=groups, tensors=list(tensors.values()), total=total, num_parameters=model.num_parameters(),
                   tied=tied, folder=folder, files=files, bytes_in_memory=mem,
                   origin=weights_origin(bundle.source))


def _is_tied(model) -> bool:
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return out is not None and out.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def anatomy(engine, model_key: str, progress: Progress = no_progress) -> Anatomy:
    return anatomy_of(load(engine, model_key, progress))


# --- cost ---------------------------------------------------------------------------------------

@dataclass
class Cost:
    n_matmul: int  # weights in matrix multiplies per token
    non_embedding: int
    unembedding: int
    n_layers: int
    d_attn: int
    prompt_tokens: int
    new_tokens: int
    flops_weights: float  # 2 * n_matmul
    flops_attention_avg: float  # 4 * n_layers * ctx * d_attn at the average context of the run
    flops_per_token: float
    seconds: float
    tokens_per_second: float
    achieved: float  # FLOP/s
    peak: float | None
    device: str
    formula: str

    @property
    def utilization(self) -> float | None:
        return self.achieved / self.peak if self.peak else None


def flops_per_token(n_matmul: int, n_layers: int, d_attn: int, ctx: float) -> float:
    return 2.0 * n_matmul + 4.0 * n_layers * ctx * d_attn


def device_peak(bundle: TextModel) -> tuple[float | None, str]:
    dev = bundle.device
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        for key, peak in GPU_PEAKS.items():
            if key in name:
                return peak, name
        return None, name
    return None, dev.type


def cost(engine, text, new_tokens: int = 16, progress: Progress = no_progress, model_key: str | None = None) -> Cost:
    from .lens import CAUSAL, check_causal

    new_tokens = check_range("tokens to time", new_tokens, 1, 64, integer=True)
    bundle = load(engine, check_causal(model_key or CAUSAL, "the cost", engine=engine), progress)
    model, arch = bundle.model, arch_of(bundle.model)
    ids = encode(bundle, text).to(bundle.device)
    emb = model.get_input_embeddings().weight.numel()
    total = model.num_parameters()
    non_embedding = total - emb
    unembedding = arch.vocab * arch.d_model
    n_matmul = non_embedding - _norm_params(model) + unembedding
    d_attn = arch.n_heads * arch.head_dim
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                  pad_token_id=bundle.tokenizer.eos_token_id)
    with torch.inference_mode():
        model.generate(**kwargs, max_new_tokens=2)  # warm-up
        if bundle.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(**kwargs, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        if bundle.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    made = int(out.shape[1] - ids.shape[1])
    prompt = int(ids.shape[1])
    avg_ctx = prompt + (made - 1) / 2
    per_token = flops_per_token(n_matmul, arch.n_layers, d_attn, avg_ctx)
    tps = made / seconds
    peak, device = device_peak(bundle)
    return Cost(n_matmul=n_matmul, non_embedding=non_embedding, unembedding=unembedding, n_layers=arch.n_layers,
                d_attn=d_attn, prompt_tokens=prompt, new_tokens=made, flops_weights=2.0 * n_matmul,
                flops_attention_avg=per_token - 2.0 * n_matmul, flops_per_token=per_token, seconds=seconds,
                tokens_per_second=tps, achieved=per_token * tps, peak=peak, device=device,
                formula="FLOPs/token ≈ 2 × N_matmul + 4 × n_layers × ctx × d_attn")


def _norm_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "norm" in n.lower())
