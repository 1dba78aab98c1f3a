"""Attention weights out of a real transformer, as plain numpy arrays.

Both models the app ships run with eager attention, so `model(..., output_attentions=True)`
returns one (batch, heads, q, k) tensor per layer: the softmax weights each query token gives to
each key token. The encoder (MiniLM) lets every token see every other token; the causal LM
(SmolLM2) masks the future, so its maps are lower triangular.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.arch import check_context
from ..core.errors import UserInputError, check_choice, check_range, check_text
from ..core.lazy import torch
from ..core.models import Progress, TextModel, no_progress

# Registry key -> the load variant that returns attention weights (encoders always load eager).
ATTENTION_MODELS = {"minilm-l6": "default", "smollm2-135m-instruct": "eager"}
MAX_TOKENS = 128
# The largest layer and head counts among ATTENTION_MODELS (SmolLM2: 30 layers, MiniLM: 12 heads).
# The UI's sliders start at these limits so the API, which checks them, reaches every layer;
# each model's own limits are checked on every call (check_layer_head).
MAX_LAYERS, MAX_HEADS = 30, 12
MAX_CHARS = 2_000


@dataclass
class AttentionMaps:
    """Every attention weight of one forward pass over one text."""

    model_key: str
    title: str
    causal: bool
    tokens: list[str]  # one readable label per position
    weights: np.ndarray  # (layers, heads, tokens, tokens), rows sum to 1

    @property
    def n_layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_tokens(self) -> int:
        return int(self.weights.shape[2])


def token_labels(tokenizer, ids: list[int]) -> list[str]:
    """Readable labels: WordPiece pieces as they are ('##ing'), byte-level BPE pieces decoded
    (' bank' shown as 'bank'); newlines and blanks made visible."""
    labels = []
    for tok, tid in zip(tokenizer.convert_ids_to_tokens(ids), ids):
        if tok.startswith(("Ġ", "Ċ", "▁")) or tok in ("Ċ", "ĉ"):
            tok = tokenizer.decode([tid])
        tok = tok.replace("\n", "\\n").replace("\t", "\\t").strip() or "␣"
        labels.append(tok)
    return labels


def encode(bundle: TextModel, text: str, max_tokens: int = MAX_TOKENS) -> dict:
    """Tokenize `text` for `bundle`; refuse texts longer than max_tokens with a clear message."""
    text = check_text("text", text, max_chars=MAX_CHARS)
    enc = bundle.tokenizer(text, return_tensors="pt")
    n = int(enc["input_ids"].shape[1])
    if n > max_tokens:
        raise UserInputError(f"The text is {n} tokens long for {bundle.source.spec.title}: "
                             f"attention views take 1 to {max_tokens} tokens. Shorten the text.")
    check_context(bundle, n, "The text")
    return {k: v.to(bundle.device) for k, v in enc.items()}


def forward_attentions(bundle: TextModel, inputs: dict) -> torch.Tensor:
    """One forward pass; all layers stacked. The only model work an attention view needs."""
    with torch.inference_mode():
        out = bundle.model(**inputs, output_attentions=True)
    return torch.stack(out.attentions)[:, 0]  # (layers, heads, q, k)


def attention_models(engine=None) -> dict[str, str]:
    """ATTENTION_MODELS, then (with an engine) the encoders and causal LMs added to the registry (the
    operator's --model rows; online, the Hub rows), each with the variant that returns weights."""
    out = dict(ATTENTION_MODELS)
    if engine is not None:
        for task, variant in (("encoder", "default"), ("causal-lm", "eager")):
            out.update({k: variant for k in engine.registry.added(task) if k not in out})
    return out


def load_attention_model(engine, model_key: str, progress: Progress = no_progress) -> TextModel:
    models = attention_models(engine)
    check_choice("model", model_key, list(models))
    return engine.load(model_key, variant=models[model_key], progress=progress)


def attention_maps(engine, text: str, model_key: str = "minilm-l6", max_tokens: int = MAX_TOKENS,
                   progress: Progress = no_progress) -> AttentionMaps:
    bundle = load_attention_model(engine, model_key, progress)
    inputs = encode(bundle, text, max_tokens)
    weights = forward_attentions(bundle, inputs).float().cpu().numpy()  # (layers, heads, q, k)
    spec = engine.registry.get(model_key)
    ids = inputs["input_ids"][0].tolist()
    return AttentionMaps(model_key, spec.title, spec.task == "causal-lm", token_labels(bundle.tokenizer, ids),
                         weights)


def model_dims(engine, model_key: str, progress: Progress = no_progress) -> tuple[int, int]:
    """(layers, heads) of an attention model, read from its config."""
    from ..core.arch import arch_of

    arch = arch_of(load_attention_model(engine, model_key, progress).model)
    return arch.n_layers, arch.n_heads


# --- choosing what to look at (layer and head are 1-based, as the sliders show them) ----------

def check_layer_head(maps: AttentionMaps, layer, head=None) -> tuple[int, int | None]:
    layer = check_range("layer", layer, 1, maps.n_layers, integer=True)
    if head is not None:
        head = check_range("head", head, 1, maps.n_heads, integer=True)
    return layer, head


def matrix(maps: AttentionMaps, layer, head=None) -> np.ndarray:
    """The (q, k) map of one head, or the mean over heads when head is None."""
    layer, head = check_layer_head(maps, layer, head)
    per_layer = maps.weights[layer - 1]  # (heads, q, k)
    return per_layer.mean(axis=0) if head is None else per_layer[head - 1]  # (q, k)


def check_token(maps: AttentionMaps, index) -> int:
    return check_range("token", index, 0, maps.n_tokens - 1, integer=True)


def attends_to(maps: AttentionMaps, layer, head, token) -> list[tuple[int, str, float]]:
    """Where query `token` puts its attention: (position, label, weight), largest first."""
    row = matrix(maps, layer, head)[check_token(maps, token)]  # (k,)
    order = np.argsort(-row, kind="stable")
    return [(int(i), maps.tokens[i], float(row[i])) for i in order]


def summary(maps: AttentionMaps, layer, head=None, token=None, decimals: int = 4) -> dict:
    """JSON-friendly numbers for the API: tokens, the full shape, the chosen map and its row sums."""
    m = matrix(maps, layer, head)
    out = dict(model=maps.model_key, causal=maps.causal, tokens=maps.tokens,
               shape=dict(layers=maps.n_layers, heads=maps.n_heads, query_tokens=maps.n_tokens,
                          key_tokens=maps.n_tokens),
               layer=int(layer), head=("mean" if head is None else int(head)),
               matrix=np.round(m.astype(np.float64), decimals).tolist(),
               row_sums=np.round(m.sum(axis=1).astype(np.float64), 6).tolist())
    if token is not None:
        out["token"] = check_token(maps, token)
        out["attends_to"] = [dict(position=i, token=t, weight=round(w, decimals))
                             for i, t, w in attends_to(maps, layer, head, token)[:10]]
    return out


def default_token(maps: AttentionMaps) -> int:
    """A query token worth looking at first: 'it' when present (what does 'it' refer to?),
    else the middle of the text."""
    for i, t in enumerate(maps.tokens):
        if t.lower() == "it":
            return i
    return maps.n_tokens // 2
