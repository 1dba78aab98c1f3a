"""What the lessons need to know about a model's architecture, in one place: one small row per family
(where the blocks, the final norm, the unembedding and the attention projections are; fused or
separate Q/K/V; RoPE or learned positions; per-head norms; which module's output is what a
sublayer adds to the residual stream; the LoRA targets), and Arch, the one adapter that reads a
loaded transformers model through its family's row.

Inside the model (trace, block, lens, anatomy) and LoRA's target detection go through here. A
model of a type not in FAMILIES is probed for the Llama layout (model.layers[i].self_attn.q_proj
...); a model that has neither is refused up front, by name, saying what it lacks.

Shapes: n tokens, d model width, hd head size; heads and kv heads as in the config.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import UserInputError
from .lazy import torch


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    blocks: str = "model.layers"  # the ModuleList of blocks, from the loaded model
    final_norm: str = "model.norm"  # "" for an encoder without one
    unembedding: str = "lm_head"  # "" for an encoder without a next-token head
    input_norm: str = "input_layernorm"  # in a block: the norm before attention ("" for post-norm)
    attention: str = "self_attn"  # in a block: the attention module
    q: str = "q_proj"  # in the attention module (unused when qkv is set)
    k: str = "k_proj"
    v: str = "v_proj"
    qkv: str = ""  # one fused projection whose output is Q, then K, then V
    out: str = "o_proj"  # in the attention module: heads back to d
    attn_add: str = "self_attn"  # in a block: the module whose output is what attention adds to the stream
    mlp_add: str = "mlp"  # in a block: the module whose output is what the MLP adds
    post_attn_norm: str = ""  # post-norm blocks (BERT): LayerNorm(x + attention) in the block
    head_norms: bool = False  # an RMSNorm on each head's q and k (q_norm, k_norm) before RoPE (Gemma 3, Qwen3)
    positions: str = "rope"  # "rope" (rotary on Q and K in every block) or "learned" (a table added once)
    position_table: str = ""  # learned positions: the embedding table, from the loaded model
    rotary: str = "model.rotary_emb"
    rope_per_layer_type: bool = False  # rotary_emb(x, positions, layer_type) (Gemma 3: local and global RoPE)
    causal: bool = True
    grouped_kv: bool = True  # reads num_key_value_heads (grouped-query attention); GPT-2 and BERT: one K/V per head
    linear: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lora_default: tuple[str, ...] = ("q_proj", "v_proj")  # query and value: the LoRA paper's choice
    probed: bool = False  # not a row of FAMILIES: read as Llama because it has the layout (checked on first use)

    @property
    def attention_projections(self) -> tuple[str, ...]:
        """The attention's linear layers: Q, K, V (or the fused one), then the output projection."""
        return ((self.qkv,) if self.qkv else (self.q, self.k, self.v)) + ((self.out,) if self.out else ())


LLAMA = Family("llama", ("llama", "mistral", "qwen2"))
FAMILIES: tuple[Family, ...] = (
    LLAMA,
    Family("gemma3", ("gemma3_text",), head_norms=True, rope_per_layer_type=True,
           attn_add="post_attention_layernorm", mlp_add="post_feedforward_layernorm"),
    Family("phi3", ("phi3",), qkv="qkv_proj", linear=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
           lora_default=("qkv_proj",)),
    Family("gpt2", ("gpt2",), blocks="transformer.h", final_norm="transformer.ln_f", input_norm="ln_1",
           attention="attn", qkv="c_attn", out="c_proj", attn_add="attn", positions="learned",
           position_table="transformer.wpe", rotary="", grouped_kv=False, linear=("c_attn", "c_proj", "c_fc"),
           lora_default=("c_attn",)),
    Family("bert", ("bert",), blocks="encoder.layer", final_norm="", unembedding="", input_norm="",
           attention="attention.self", q="query", k="key", v="value", out="", attn_add="attention.output.dense",
           mlp_add="output.dense", post_attn_norm="attention.output.LayerNorm", positions="learned",
           position_table="embeddings.position_embeddings", rotary="", causal=False, grouped_kv=False,
           linear=("query", "key", "value", "dense"), lora_default=("query", "value")),
    Family("qwen3", ("qwen3",), head_norms=True),  # Gemma 3's per-head q/k norms without its sandwich norms
)
LINEAR_NAMES: tuple[str, ...] = tuple(dict.fromkeys(n for f in FAMILIES for n in f.linear))


def get(module, path: str):
    """The submodule at a dotted path ('model.layers'), or None."""
    for part in path.split(".") if path else ():
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def _probe(model) -> Family:
    """A model type no row names: the Llama layout if the model has it, else a refusal that names
    the model type and the first part it lacks."""
    kind = getattr(model.config, "model_type", "?")
    known = ", ".join(t for f in FAMILIES for t in f.model_types)
    needs = [(LLAMA.blocks, "its blocks at model.layers"), (LLAMA.final_norm, "a final norm at model.norm"),
             (LLAMA.unembedding, "an unembedding (lm_head)"), (LLAMA.rotary, "rotary positions (model.rotary_emb)")]
    for path, what in needs:
        if get(model, path) is None:
            break
    else:
        block = get(model, LLAMA.blocks)[0]
        att = getattr(block, "self_attn", None)
        parts = [(att, "self_attn"), *((get(att, n) if att is not None else None, f"self_attn.{n}")
                                        for n in ("q_proj", "k_proj", "v_proj", "o_proj")),
                 (getattr(block, "input_layernorm", None), "input_layernorm")]
        missing = [name for m, name in parts if m is None]
        if not missing:
            return replace(LLAMA, name=kind, model_types=(kind,), head_norms=get(att, "q_norm") is not None,
                           probed=True)
        what = "a Llama-style block (" + ", ".join(missing) + " missing)"
    raise UserInputError(f"model type {kind!r} is not supported by these lessons: it lacks {what}. Known types: "
                         f"{known}; any other decoder-only model with the Llama layout also works.")


def family_of(model) -> Family:
    kind = getattr(model.config, "model_type", "")
    for family in FAMILIES:
        if kind in family.model_types:
            return family
    return _probe(model)


def context_length(config) -> int:
    """The most positions the model was built for (max_position_embeddings, GPT-2's n_positions), or
    0 when its config does not say. Past it a learned position table has no row (an IndexError), and
    RoPE runs on positions the model never saw."""
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 0


def check_fits(config, n_tokens: int, name: str, what: str = "The prompt", low: int = 1,
               fix: str = "Shorten it.") -> None:
    """A UserInputError naming the model (`name`) and its context when n_tokens do not fit in it."""
    limit = context_length(config)
    if limit and n_tokens > limit:
        raise UserInputError(f"{what} is {n_tokens} tokens long, more than {name}'s context window: valid "
                             f"lengths are {low} to {limit} tokens. {fix}")


def check_context(tm, n_tokens: int, what: str = "The prompt") -> None:
    """A UserInputError naming the model and its context when n_tokens do not fit in it."""
    check_fits(tm.model.config, n_tokens, tm.source.spec.title, what)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (heads, n, hd) rotated by position; a partial rotary (Phi-3's partial_rotary_factor) turns
    only the first cos.shape[-1] dimensions and passes the rest through."""
    r = cos.shape[-1]
    turned = x[..., :r] * cos + rotate_half(x[..., :r]) * sin
    return torch.cat((turned, x[..., r:]), dim=-1) if r < x.shape[-1] else turned


class Arch:
    """A loaded model read through its family's row. Sizes come from the config (kv heads and head
    size default to plain multi-head attention where the config has no such field, as BERT's)."""

    def __init__(self, model, family: Family | None = None):
        self.model, self.family = model, family or family_of(model)
        cfg = model.config
        self.name, self.causal = self.family.name, self.family.causal
        self.pre_norm = not self.family.post_attn_norm
        self.n_layers = int(getattr(cfg, "num_hidden_layers", None) or cfg.n_layer)
        self.n_heads = int(getattr(cfg, "num_attention_heads", None) or cfg.n_head)
        kv = getattr(cfg, "num_key_value_heads", None) if self.family.grouped_kv else None
        self.n_kv_heads = int(kv or self.n_heads)
        self.d_model = int(getattr(cfg, "hidden_size", None) or cfg.n_embd)
        self.head_dim = int(getattr(cfg, "head_dim", None) or self.d_model // self.n_heads)
        self.vocab = int(cfg.vocab_size)

    # --- facts a lesson can show ------------------------------------------------------------
    @property
    def rope(self) -> bool:
        return self.family.positions == "rope"

    @property
    def bias(self) -> bool:
        """Whether the attention projections carry a bias (GPT-2, Qwen2 on Q/K/V; not Llama)."""
        att = self.attention(0)
        proj = get(att, self.family.qkv or self.family.q)
        return getattr(proj, "bias", None) is not None

    @property
    def tied(self) -> bool:
        """Whether the unembedding reuses the input embedding table."""
        out = self.model.get_output_embeddings() if self.family.unembedding else None
        return out is not None and out.weight.data_ptr() == self.model.get_input_embeddings().weight.data_ptr()

    def facts(self) -> dict:
        return dict(family=self.name, model_type=getattr(self.model.config, "model_type", ""),
                    positions=self.family.positions, bias=self.bias, tied=self.tied, causal=self.causal,
                    fused_qkv=bool(self.family.qkv), head_norms=self.family.head_norms, layers=self.n_layers,
                    heads=self.n_heads, kv_heads=self.n_kv_heads, head_dim=self.head_dim)

    # --- where things are --------------------------------------------------------------------
    def layers(self):
        return get(self.model, self.family.blocks)

    def attention(self, layer_idx: int):
        return get(self.layers()[layer_idx], self.family.attention)

    def embed_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """The input embedding rows of `ids` (their static vectors, before any position is added)."""
        return self.model.get_input_embeddings()(ids)

    def hook_points(self, layer):  # (what attention adds, what the MLP adds)
        return get(layer, self.family.attn_add), get(layer, self.family.mlp_add)

    def scale(self, layer_idx: int) -> float:
        """The factor scores are multiplied by: 1/√hd for most, 1/√query_pre_attn_scalar for Gemma 3."""
        return float(getattr(self.attention(layer_idx), "scaling", None) or self.head_dim ** -0.5)

    def window(self, layer_idx: int) -> int | None:
        """A sliding-window layer's window (keys this many tokens back or more are masked), else None:
        the attention module's own (Qwen2, Gemma 3), else the config's per-layer types, else the
        config's one window for every layer (Mistral, Phi-3)."""
        att, cfg = self.attention(layer_idx), self.model.config
        if hasattr(att, "sliding_window"):
            return att.sliding_window
        types = getattr(cfg, "layer_types", None)
        if types is not None and types[layer_idx] != "sliding_attention":
            return None
        return getattr(cfg, "sliding_window", None)

    def middle(self, layer_idx: int, before: torch.Tensor, attn_add: torch.Tensor) -> torch.Tensor:
        """The stream after attention: before + what attention adds (pre-norm), or the block's
        LayerNorm of that sum (post-norm, BERT)."""
        if self.pre_norm:
            return before + attn_add
        return get(self.layers()[layer_idx], self.family.post_attn_norm)(before + attn_add)

    # --- recomputing one block's attention -----------------------------------------------------
    def _rope(self, layer_idx: int, x_in: torch.Tensor):
        rotary = get(self.model, self.family.rotary)
        positions = torch.arange(x_in.shape[0], device=x_in.device)[None]  # (1, n)
        if self.family.rope_per_layer_type:
            return rotary(x_in[None], positions, self.model.config.layer_types[layer_idx])  # (1, n, hd) each
        return rotary(x_in[None], positions)

    def qkv(self, layer_idx: int, x_in: torch.Tensor):
        """Q (heads, n, hd), K and V (kv heads, n, hd) of one block for its input x_in (n, d): the
        input norm (pre-norm), the projections (one fused or three), the per-head norms where the
        family has them, then RoPE on Q and K (V is not rotated)."""
        f, n = self.family, x_in.shape[0]
        block, att = self.layers()[layer_idx], self.attention(layer_idx)
        xn = get(block, f.input_norm)(x_in) if f.input_norm else x_in  # (n, d)
        if f.qkv:
            fused = get(att, f.qkv)(xn)  # (n, (heads + 2 kv) hd)
            sizes = (self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim, self.n_kv_heads * self.head_dim)
            q, k, v = fused.split(sizes, dim=-1)
        else:
            q, k, v = get(att, f.q)(xn), get(att, f.k)(xn), get(att, f.v)(xn)
        q = q.reshape(n, self.n_heads, self.head_dim).transpose(0, 1)  # (heads, n, hd)
        k = k.reshape(n, self.n_kv_heads, self.head_dim).transpose(0, 1)  # (kv, n, hd)
        v = v.reshape(n, self.n_kv_heads, self.head_dim).transpose(0, 1)  # (kv, n, hd)
        if f.head_norms:
            q, k = att.q_norm(q), att.k_norm(k)
        if self.rope:
            cos, sin = self._rope(layer_idx, x_in)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v

    def attention_weights(self, layer_idx: int, x_in: torch.Tensor):
        """One block's attention redone by hand from its input x_in (n, d), in float32: Q (heads, n, hd),
        K and V (kv heads, n, hd), the scores Q Kᵀ x scale (heads, n, n), the same masked (the future,
        and keys beyond a sliding window, at -inf; nothing for an encoder) and their softmax."""
        q, k, v = (t.float() for t in self.qkv(layer_idx, x_in))
        k_all = k.repeat_interleave(self.n_heads // self.n_kv_heads, 0)  # (heads, n, hd): repeat_kv's order
        scores = q @ k_all.transpose(1, 2) * self.scale(layer_idx)  # (heads, n, n)
        masked = scores
        if self.causal:
            hidden = torch.ones_like(scores[0], dtype=torch.bool).triu(1)  # (n, n) key after query
            window = self.window(layer_idx)
            if window:  # a sliding-window layer also hides keys `window` or more tokens back
                hidden |= torch.ones_like(hidden).tril(-window)
            masked = scores.masked_fill(hidden, float("-inf"))
        return q, k, v, scores, masked, masked.softmax(-1)

    def merge_heads(self, layer_idx: int, per_head: torch.Tensor) -> torch.Tensor:
        """(heads, n, hd) weighted sums of V -> what attention adds (n, d): concatenate the heads,
        then the output projection (and, in a sandwich-norm block, the norm after attention)."""
        n = per_head.shape[1]
        joined = per_head.transpose(0, 1).reshape(n, -1)  # (n, heads * hd)
        block, f = self.layers()[layer_idx], self.family
        if not f.out:  # BERT: the module that adds is the output projection itself
            return get(block, f.attn_add)(joined)
        added = get(self.attention(layer_idx), f.out)(joined)  # (n, d)
        if f.attn_add != f.attention:  # Gemma 3: post_attention_layernorm(o_proj(...)) is what is added
            added = get(block, f.attn_add)(added)
        return added

    def kv_head(self, head: int) -> int:
        """0-based query head -> the K/V head it reads (transformers' repeat_kv order)."""
        return head // (self.n_heads // self.n_kv_heads)

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm + unembedding (+ Gemma's logit soft-cap) for any layer's residual stream
        (..., d) -> (..., vocab)."""
        if not self.family.unembedding:
            raise UserInputError(f"{self.name} is an encoder without a next-token head: choose a causal "
                                 "language model for next-token views.")
        logits = get(self.model, self.family.unembedding)(get(self.model, self.family.final_norm)(hidden))
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    # --- anatomy ----------------------------------------------------------------------------------
    def part_of(self) -> dict[str, str]:
        """Every parameter name -> embeddings, attention, MLP, norms or head (the Anatomy groups): a
        norm module's weights are norms wherever they sit; inside a block, the attention module's
        are attention and the rest MLP; the embedding and position tables are embeddings."""
        tables = {id(self.model.get_input_embeddings())}
        if self.family.position_table and get(self.model, self.family.position_table) is not None:
            tables.add(id(get(self.model, self.family.position_table)))
        blocks = self.layers()
        attention_ids = set()
        for block in blocks:
            for name in {self.family.attention, self.family.attn_add}:
                module = get(block, name)
                if module is not None:
                    attention_ids |= {id(p) for p in module.parameters()}
        block_ids = {id(p) for p in blocks.parameters()}
        out = {}
        for mod_name, module in self.model.named_modules():
            for p_name, p in module.named_parameters(recurse=False):
                full = f"{mod_name}.{p_name}" if mod_name else p_name
                if "norm" in type(module).__name__.lower():
                    out[full] = "norms"
                elif id(module) in tables:
                    out[full] = "embeddings"
                elif id(p) in attention_ids:
                    out[full] = "attention"
                elif id(p) in block_ids:
                    out[full] = "MLP"
                else:
                    out[full] = "head"
        return out

    # --- LoRA -----------------------------------------------------------------------------------
    def linear_names(self) -> list[str]:
        """Distinct names of the linear layers inside the blocks (nn.Linear, or GPT-2's Conv1D)."""
        found = set()
        for name, module in self.layers().named_modules():
            last = name.rsplit(".", 1)[-1]
            if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
                found.add(last)
        order = {n: i for i, n in enumerate(self.family.linear)}
        return sorted(found, key=lambda s: (order.get(s, 99), s))

    def lora_targets(self) -> list[str]:
        """The family's default LoRA targets (query and value projections, or the fused QKV)."""
        have = self.linear_names()
        targets = [n for n in self.family.lora_default if n in have]
        if not targets:
            raise UserInputError(f"model type {getattr(self.model.config, 'model_type', '?')!r} has none of the "
                                 f"linear layers LoRA targets by default ({', '.join(self.family.lora_default)}).")
        return targets


def arch_of(model) -> Arch:
    return Arch(model)


def family_for_type(kind: str | None) -> Family | None:
    """The row of FAMILIES for a model_type, or None."""
    return next((f for f in FAMILIES if kind in f.model_types), None)


def lora_layout(config) -> tuple[list[str], list[str], list[str]]:
    """(linear layer names in the blocks, default LoRA targets, attention projections) of a model from
    its config alone, no weight read: a family row's names for a type the table holds; else the model
    built on the meta device (no memory) and read by Arch, whose probe refuses by name a type without
    a known layout."""
    family = family_for_type(getattr(config, "model_type", ""))
    if family is not None:
        return list(family.linear), list(family.lora_default), list(family.attention_projections)
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    found = Arch(model)
    return found.linear_names(), found.lora_targets(), list(found.family.attention_projections)
