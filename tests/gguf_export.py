"""Write a tiny transformers causal LM (and a byte-level BPE tokenizer) as a float32 GGUF file, so
tests can add GGUF files through --model without any download. Covers the families whose GGUF
layout is plain renaming: Llama and Mistral (Q and K rows in llama.cpp's rotary order) and Qwen2.
The tensor names come from the gguf package's own name map."""
from __future__ import annotations

import json

import numpy as np

ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}  # model type -> GGUF architecture
PERMUTED = ("llama", "mistral")  # llama.cpp stores their Q/K rows pairwise interleaved


def _to_interleaved(w: np.ndarray, heads: int) -> np.ndarray:
    """Per head, rows [x0..x(d/2-1), y0..y(d/2-1)] -> [x0, y0, x1, y1, ...]: the order llama.cpp
    stores for a rotary projection (transformers undoes it when it reads the file)."""
    half = w.shape[0] // heads // 2
    return w.reshape(heads, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model, tokenizer, path) -> None:
    import gguf

    cfg = model.config
    arch = ARCH[cfg.model_type]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], cfg.num_hidden_layers)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"tiny-{cfg.model_type}")  # transformers reads "mistral" in the name as Mistral
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    _add_tokenizer(writer, tokenizer)
    for hf_name, tensor in model.state_dict().items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ValueError(f"no GGUF name for {hf_name}")
        w = tensor.detach().float().numpy()
        if cfg.model_type in PERMUTED and name.endswith("attn_q.weight"):
            w = _to_interleaved(w, cfg.num_attention_heads)
        elif cfg.model_type in PERMUTED and name.endswith("attn_k.weight"):
            w = _to_interleaved(w, cfg.num_key_value_heads)
        writer.add_tensor(name, np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _add_tokenizer(writer, tokenizer) -> None:
    """A byte-level BPE tokenizer (as SmolLM2's) under llama.cpp's 'gpt2' tokenizer keys."""
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    tokens = [None] * len(vocab)
    for piece, i in vocab.items():
        tokens[i] = piece
    special = {t["id"] for t in data.get("added_tokens", []) if t.get("special")}
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if i in special else 1 for i in range(len(tokens))])  # 3: control, 1: normal
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id if tokenizer.bos_token_id is not None else 0)
    writer.add_eos_token_id(tokenizer.eos_token_id)
