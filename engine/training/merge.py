"""Merge-and-export: fold a session's LoRA update into the base weights, W' = W + (alpha/r)·B·A,
and write the result as a plain transformers model folder (config, safetensors weights,
tokenizer) zipped for one download. The folder loads with AutoModelForCausalLM.from_pretrained,
no peft needed.

The session's PeftModel shares its frozen weights with the cached base model (lora.shared_copy),
and peft's merge_and_unload writes W' into those weights. So the merge runs on a deep copy that
owns its weights; the cached model and the session's adapter are only read.
"""
from __future__ import annotations

import copy
import shutil
import zipfile
from pathlib import Path

from ..core.errors import UserInputError, short_repr
from ..core.lazy import no_grad, torch

DTYPES = {"bfloat16": 2, "float32": 4}  # name -> bytes per weight. The app exports bfloat16: SmolLM2's own
#                                         dtype on the Hub, half the size of float32 (~270 MB vs ~540 MB)
EXPORT_DTYPE = "bfloat16"
MAX_MERGED_BYTES = 600 * 2**20  # the weights of one merged model folder (SmolLM2-135M: ~257 MiB in bfloat16)
FOLDER = "merged-model"  # the zip's one top folder: unzipped, it is the model folder


def weight_count(model) -> int:
    """Weights of a model, a tied weight counted once (as save_pretrained writes it)."""
    seen, total = set(), 0
    for p in model.parameters():
        key = (p.data_ptr(), p.numel())
        if key not in seen:
            seen.add(key)
            total += p.numel()
    return total


def merged_bytes(peft_model, dtype: str = EXPORT_DTYPE) -> int:
    """The size of the merged weights in `dtype`: the base model's weights (the LoRA matrices are folded
    into them, not added)."""
    _check_dtype(dtype)
    lora = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    return (weight_count(peft_model) - lora) * DTYPES[dtype]


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise UserInputError(f"dtype = {short_repr(dtype)} is not valid: choose {', '.join(DTYPES)}.")


@no_grad
def merged_copy(peft_model, dtype: str = "float32"):
    """A plain transformers model with the adapter folded in: peft's merge_and_unload on a deep copy
    (its own weights), merged in float32, then cast to `dtype`. `peft_model` is left as it was."""
    _check_dtype(dtype)
    twin = copy.deepcopy(peft_model)  # new storage for every weight: the merge writes only into these
    merged = twin.merge_and_unload()
    merged.to(getattr(torch, dtype))
    merged.eval()
    return merged


def export_merged(peft_model, tokenizer, folder: str | Path, dtype: str = EXPORT_DTYPE,
                  max_bytes: int = MAX_MERGED_BYTES) -> Path:
    """`folder`/merged-model.zip holding merged-model/ (config.json, generation_config.json,
    model.safetensors, the tokenizer's files). The unzipped folder is removed once zipped; the zip
    is stored (safetensors weights barely compress). Refused before any copy when the weights would
    exceed `max_bytes`."""
    size = merged_bytes(peft_model, dtype)
    if size > max_bytes:
        raise UserInputError(f"the merged model would be {size:,} bytes in {dtype}: the limit is {max_bytes:,} "
                             "bytes. Download the adapter instead.")
    folder = Path(folder)
    out_dir, out = folder / FOLDER, folder / f"{FOLDER}.zip"
    try:
        merged = merged_copy(peft_model, dtype)
        merged.save_pretrained(out_dir, safe_serialization=True)
        del merged
        tokenizer.save_pretrained(out_dir)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            for path in sorted(out_dir.iterdir()):
                zf.write(path, arcname=f"{FOLDER}/{path.name}")
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return out


__all__ = ["merged_copy", "export_merged", "merged_bytes", "weight_count", "DTYPES", "EXPORT_DTYPE",
           "MAX_MERGED_BYTES", "FOLDER"]
