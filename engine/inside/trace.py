"""One forward pass, recorded: every tensor the "Inside the model" views draw.

A forward with output_hidden_states and output_attentions, plus forward hooks that keep what
each block's attention and MLP *add* to the residual stream. Everything else the views show
(Q, K, V of one head, scores, the logit lens) is recomputed from these tensors with the
model's own modules, so the numbers on screen are the model's numbers.

Where each part of a model is (blocks, norms, Q/K/V, positions) comes from engine/core/arch.py,
one row per family: pre-norm decoders (Llama, Gemma 3, Phi-3, GPT-2: x + attn(norm(x)) then +
mlp(norm(.))) with RoPE or learned positions, and the post-norm BERT encoder (MiniLM).
"""
from __future__ import annotations

from dataclasses import dataclass, field

# rotate_half: re-exported for older imports
from ..core.arch import Arch, arch_of, check_context, rotate_half  # noqa: F401
from ..core.errors import UserInputError, check_choice, check_range, check_text
from ..core.lazy import torch
from ..core.models import Progress, TextModel, no_progress
from ..core.sessions import SESSION_MODEL_KEY
from ..core.settings import knob
from ..decoding import generation
from ..embeddings import attention
from ..tokens import plots as token_plots

MODELS = ("smollm2-135m-instruct", "minilm-l6")  # causal LM first: the default
MAX_TOKENS = 256  # a prompt is 1 to 256 tokens: bounds every view's tensors
MAX_CHARS = 4_000
# The largest layer and head counts among MODELS (SmolLM2: 30 layers; MiniLM: 12 heads). Sliders
# start at these limits; each model's own range is checked on every call (check_layer_head).
MAX_LAYERS, MAX_HEADS = 30, 12


@dataclass
class InsideSettings:
    """The knobs of the Inside-the-model tab (ranges written once; the sliders come from here)."""

    layer: int = knob(3, 1, MAX_LAYERS, "Which block to open (1 = first); the model's own range is checked",
                      step=1)
    head: int = knob(1, 1, MAX_HEADS, "Which attention head inside the block", step=1)
    lens_tokens: int = knob(8, 1, 32, "Logit lens: how many of the last positions to show (each costs "
                            "one unembedding per layer)", step=1, label="positions in the lens")
    new_tokens: int = knob(16, 1, 64, "Cost: how many tokens to generate for the tokens/s measurement",
                           step=1, label="tokens to time")


def models(engine=None) -> tuple[str, ...]:
    """MODELS, then (with an engine) the causal LMs and encoders added to the registry: the operator's
    (--model) and, online, the Hub rows (Registry.added)."""
    keys = list(MODELS)
    if engine is not None:
        for task in ("causal-lm", "encoder"):
            keys += [k for k in engine.registry.added(task) if k not in keys]
    return tuple(keys)


def check_model(model_key, engine=None) -> str:
    """One of models(engine), or SESSION_MODEL_KEY: the model the calling session pre-trained."""
    return check_choice("model", model_key, (*models(engine), SESSION_MODEL_KEY))


def load(engine, model_key: str, progress: Progress = no_progress) -> TextModel:
    """The model with attention weights available (a causal LM and a session's model with eager
    attention). A model whose architecture engine/core/arch.py cannot read is refused by name first."""
    key = check_model(model_key, engine)
    if key == SESSION_MODEL_KEY:
        return engine.load(SESSION_MODEL_KEY, variant="eager", progress=progress)
    if key in attention.ATTENTION_MODELS:
        return attention.load_attention_model(engine, key, progress)
    causal = engine.registry.get(key).task == "causal-lm"
    bundle = engine.load(key, variant="eager" if causal else "default", progress=progress)
    if arch_of(bundle.model).family.probed:  # (arch_of raises a UserInputError naming what a model lacks)
        check_probed(bundle)
    return bundle


PROBE_TEXT = "One two three four five"


def check_probed(bundle: TextModel) -> None:
    """A model type read as Llama only because it has the layout (no row in engine/core/arch.py) must
    give the model's own numbers before the views show anything: the logit lens after the last block
    equals its output, and attention recomputed from Q and K equals its attention weights. Checked
    once per loaded model; a model that differs (e.g. Granite's multipliers) is refused by name."""
    if "arch_checked" in bundle.extra:
        if bundle.extra["arch_checked"]:
            raise UserInputError(bundle.extra["arch_checked"])
        return
    tr = run_trace(bundle, PROBE_TEXT)
    arch = tr.arch
    params = next(arch.model.parameters())
    as_model = lambda t: t.to(params.device, params.dtype)  # noqa: E731
    problem = ""
    with torch.inference_mode():
        lens_last = arch.lm_head(as_model(tr.layer_out[-1])).float().cpu()
        if not torch.allclose(lens_last.log_softmax(-1), tr.logits.log_softmax(-1), atol=1e-3):
            problem = "its output is not final norm + unembedding of the last block's stream"
        for li in range(arch.n_layers):
            if problem:
                break
            weights = arch.attention_weights(li, as_model(tr.layer_in[li]))[-1].cpu()  # (heads, n, n)
            sums = tr.layer_in[li] + tr.attn_add[li] + tr.mlp_add[li]  # (n, d)
            if (weights - tr.attentions[li]).abs().max() > 1e-3:
                problem = (f"its attention in block {li + 1} is not softmax(Q Kᵀ x scale) as the Llama recipe "
                           "computes it")
            elif (sums - tr.layer_out[li]).abs().max() > 1e-3 * (1 + tr.layer_out[li].abs().max()):
                problem = f"block {li + 1} does not add what attention and the MLP return to the stream as they are"
    kind = getattr(bundle.model.config, "model_type", "?")
    bundle.extra["arch_checked"] = (f"model type {kind!r} has the Llama layout but {problem}, so these views would "
                                    "show numbers that are not the model's: add a row for it to engine/core/arch.py."
                                    if problem else "")
    if problem:
        raise UserInputError(bundle.extra["arch_checked"])


def model_dims(engine, model_key: str, progress: Progress = no_progress) -> tuple[int, int]:
    """(blocks, heads per block) of one of models(engine): the ranges of the layer and head sliders."""
    arch = arch_of(load(engine, model_key, progress).model)
    return arch.n_layers, arch.n_heads


# --- architecture: one table for the whole engine (engine/core/arch.py) ------------------------
# Llama, Mistral, Qwen2/3, Gemma 3, Phi-3 (fused QKV), GPT-2 (learned positions, Conv1D) and BERT;
# another decoder-only type with the Llama layout is probed, and one without is refused by name.

# --- the recorded forward -------------------------------------------------------------------

@dataclass
class Trace:
    """One prompt through one model; tensors are float32 on the CPU, batch dimension dropped."""

    model_key: str
    title: str
    arch: object
    text: str
    ids: list[int]
    pieces: list[str]  # each token as its text piece (spaces kept)
    special: list[bool]
    layer_in: list[torch.Tensor]  # per block: the residual stream entering it (n, d)
    attn_add: list[torch.Tensor]  # per block: what attention adds, after o_proj (n, d)
    mlp_add: list[torch.Tensor]  # per block: what the MLP adds (n, d)
    layer_out: list[torch.Tensor]  # per block: what leaves it (n, d)
    attentions: torch.Tensor  # (layers, heads, n, n), rows sum to 1
    final: torch.Tensor  # after the final norm (Llama) / last hidden state (BERT) (n, d)
    logits: torch.Tensor | None  # (n, vocab) for a causal LM
    shapes: dict = field(default_factory=dict)  # tensor name -> shape as the model returned it

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def embeddings(self) -> torch.Tensor:  # what enters block 1 (n, d)
        return self.layer_in[0]


def piece_texts(tokenizer, ids: list[int]) -> list[str]:
    """Token pieces as a reader can see them, spaces kept (' bank'): byte-level BPE pieces decoded,
    WordPiece continuations as is ('##ing'), a piece that is only part of a character as its bytes
    (<0xE2><0x80>) and an invisible character as its code point ([U+200B]), as the Tokens and
    Decoding tabs show them."""
    tm = _TokenizerOnly(tokenizer)
    out = []
    for tok, tid in zip(tokenizer.convert_ids_to_tokens(ids), ids):
        text = generation.partial_bytes(tm, tid)
        if not text:
            text = tok if tok.startswith("##") else (tokenizer.decode([tid]) or tok)
            text = "".join(f"[{code}]" if (code := token_plots.invisible_code(c)) else c for c in text)
        out.append(text)
    return out


@dataclass
class _TokenizerOnly:
    """What decoding's partial_bytes reads of a model bundle: only its tokenizer."""
    tokenizer: object


def encode(bundle: TextModel, text, max_tokens: int = MAX_TOKENS) -> torch.Tensor:
    """(1, n) ids of a prompt of 1 to max_tokens tokens, or a UserInputError naming the limit."""
    text = check_text("prompt", text, max_chars=MAX_CHARS)
    ids = bundle.tokenizer(text, return_tensors="pt")["input_ids"]
    n = int(ids.shape[1])
    if n > max_tokens:
        raise UserInputError(f"The prompt is {n} tokens long for {bundle.source.spec.title}: this tab takes "
                             f"1 to {max_tokens} tokens. Shorten the prompt.")
    check_context(bundle, n)
    return ids


def run_trace(bundle: TextModel, text, max_tokens: int = MAX_TOKENS, adds: bool = True) -> Trace:
    """The one forward pass every view of this tab reads. adds=False (the journey) skips the hooks
    that keep what attention and the MLP add inside each block: what leaves block i is then read
    from hidden_states[i + 1], and only the last block (whose hidden state the causal LM returns
    after the final norm) keeps a hook."""
    model, arch = bundle.model, arch_of(bundle.model)
    ids = encode(bundle, text, max_tokens).to(bundle.device)
    attn_add, mlp_add, layer_out = {}, {}, {}
    handles = []
    L = arch.n_layers

    def keep(store, i):
        def hook(_module, _args, out):
            store[i] = (out[0] if isinstance(out, tuple) else out).detach()
        return hook

    for i, layer in enumerate(arch.layers()):
        if adds:
            a, m = arch.hook_points(layer)
            handles += [a.register_forward_hook(keep(attn_add, i)), m.register_forward_hook(keep(mlp_add, i))]
        if adds or i == L - 1:
            handles.append(layer.register_forward_hook(keep(layer_out, i)))
    try:
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True,
                        output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    hs = out.hidden_states  # layers + 1 tensors of (1, n, d)
    as_cpu = lambda t: t[0].float().cpu()  # noqa: E731 - (1, ...) -> (...)
    for i in range(L - 1):
        layer_out.setdefault(i, hs[i + 1])
    layer_in = [as_cpu(hs[i]) for i in range(L)]  # hs[i] enters block i+1; hs[L] is after the final norm
    logits = getattr(out, "logits", None)
    final = as_cpu(hs[L]) if arch.causal else as_cpu(out.last_hidden_state)
    shapes = {"input_ids": tuple(ids.shape), "hidden_states": f"{len(hs)} x {tuple(hs[0].shape)}",
              "attentions": f"{len(out.attentions)} x {tuple(out.attentions[0].shape)}"}
    if logits is not None:
        shapes["logits"] = tuple(logits.shape)
    id_list = ids[0].tolist()
    special_ids = set(bundle.tokenizer.all_special_ids)
    return Trace(
        model_key=bundle.key, title=bundle.source.spec.title, arch=arch, text=text, ids=id_list,
        pieces=piece_texts(bundle.tokenizer, id_list), special=[i in special_ids for i in id_list],
        layer_in=layer_in, attn_add=[as_cpu(attn_add[i]) for i in sorted(attn_add)],
        mlp_add=[as_cpu(mlp_add[i]) for i in sorted(mlp_add)], layer_out=[as_cpu(layer_out[i]) for i in range(L)],
        attentions=torch.stack(out.attentions)[:, 0].float().cpu(), final=final,
        logits=None if logits is None else logits[0].float().cpu(), shapes=shapes)


def trace(engine, text, model_key: str = MODELS[0], progress: Progress = no_progress) -> Trace:
    text = check_text("prompt", text, max_chars=MAX_CHARS)  # before the model loads
    return run_trace(load(engine, model_key, progress), text)


def check_layer_head(arch, layer, head=None) -> tuple[int, int | None]:
    """1-based layer and head, checked against this model's config."""
    layer = check_range(f"layer (this model has {arch.n_layers} blocks)", layer, 1, arch.n_layers, integer=True)
    if head is not None:
        head = check_range(f"head (this model has {arch.n_heads} heads per block)", head, 1, arch.n_heads,
                           integer=True)
    return layer, head
