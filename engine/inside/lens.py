"""Reading the residual stream: the logit lens, static vs contextual vectors, and the same
architecture before training.

- Logit lens: apply the final norm and the unembedding (lm_head) to the stream after every
  block, as if the model stopped there. After the last block this *is* the model's output.
- Static vs contextual: a word's input embedding row depends on its id only, so "bank" starts
  as the same vector in "river bank" and "bank account"; each block mixes context in.
- Before training: the same config with random weights (seeded) predicts almost uniformly,
  entropy near ln(vocab). Built once per process into the model cache, read-only after that.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import numpy as np

from ..core.errors import UserInputError, check_range, check_text
from ..core.lazy import from_transformers, torch
from ..core.models import Progress, TextModel, no_progress
from ..core.sessions import SESSION_MODEL_KEY
from .trace import MAX_CHARS, MODELS, Trace, check_model, encode, load, run_trace

CAUSAL = MODELS[0]
RANDOM_SEED = 0
RANDOM_VARIANT = f"random-init-seed{RANDOM_SEED}"


# --- logit lens ------------------------------------------------------------------------------

@dataclass
class Lens:
    pieces: list[str]  # every prompt token
    positions: list[int]  # the positions shown (the last few)
    layers: list[int]  # 1..L
    top_ids: np.ndarray  # (layers, positions)
    top_pieces: list[list[str]]  # [layer][position]
    top_probs: np.ndarray  # (layers, positions)
    target_id: int  # the token followed across layers (the model's final pick at the last position)
    target: str
    target_probs: np.ndarray  # (layers,) its probability at the last position after each block
    target_ranks: np.ndarray  # (layers,) its rank (1 = top) at the last position
    last_probs: np.ndarray  # (vocab,) the lens after the last block at the last position

    @property
    def first_top_layer(self) -> int | None:
        """The first block after which the target is the top guess at the last position."""
        hits = np.nonzero(self.target_ranks == 1)[0]
        return int(self.layers[hits[0]]) if len(hits) else None


def logit_lens(tr: Trace, tokenizer, positions: int = 8) -> Lens:
    arch = tr.arch
    if tr.logits is None:
        arch.lm_head(None)  # an encoder has no unembedding: raises a UserInputError naming the fix
    positions = check_range("positions in the lens", positions, 1, 32, integer=True)
    shown = list(range(max(0, tr.n - positions), tr.n))
    params = next(arch.model.parameters())
    stream = torch.stack([out[shown] for out in tr.layer_out])  # (layers, positions, d)
    with torch.inference_mode():
        probs = arch.lm_head(stream.to(params.device, params.dtype)).float().softmax(-1).cpu()  # (L, P, vocab)
    top_p, top_i = probs.max(-1)  # (L, P)
    target_id = int(tr.logits[-1].argmax())
    target_probs = probs[:, -1, target_id]  # (L,)
    ranks = (probs[:, -1] > target_probs[:, None]).sum(-1) + 1  # (L,)
    decode = lambda i: tokenizer.decode([int(i)])  # noqa: E731
    return Lens(pieces=tr.pieces, positions=shown, layers=list(range(1, arch.n_layers + 1)),
                top_ids=top_i.numpy(), top_pieces=[[decode(i) for i in row] for row in top_i],
                top_probs=top_p.numpy(), target_id=target_id, target=decode(target_id),
                target_probs=target_probs.numpy(), target_ranks=ranks.numpy(), last_probs=probs[-1, -1].numpy())


def check_causal(model_key, view: str = "the logit lens", engine=None) -> str:
    key = check_model(model_key, engine)
    if key not in (CAUSAL, SESSION_MODEL_KEY) and not (engine and engine.registry.get(key).task == "causal-lm"):
        raise UserInputError(f"model = {model_key!r}: {view} needs a next-token head: choose {CAUSAL!r} "
                             "(MiniLM is an encoder without one).")
    return model_key


def lens(engine, text, positions: int = 8, model_key: str = CAUSAL,
         progress: Progress = no_progress) -> tuple[Lens, Trace]:
    positions = check_range("positions in the lens", positions, 1, 32, integer=True)
    text = check_text("prompt", text, max_chars=MAX_CHARS)  # before the model loads
    bundle = load(engine, check_causal(model_key, engine=engine), progress)
    tr = run_trace(bundle, text)
    return logit_lens(tr, bundle.tokenizer, positions), tr


# --- static vs contextual ----------------------------------------------------------------------

BANK = ("We sat on the river bank and watched the water.", "I opened a bank account to save money.", "bank")


@dataclass
class Drift:
    word: str
    sentences: tuple[str, str]
    pieces: tuple[list[str], list[str]]  # the word's pieces in each sentence
    row_cosine: float  # the two input embedding rows (same ids -> 1.0)
    cosines: list[float]  # per layer 0..L: cosine of the word's stream vectors (0 = block 1's input)
    same_ids: bool


def _word_positions(bundle: TextModel, sentence: str, word: str) -> tuple[list[int], list[int]]:
    """The ids of a sentence and the positions of the first whole-word match of `word`."""
    enc = bundle.tokenizer(sentence, return_offsets_mapping=True)
    lower, target = sentence.lower(), word.lower()
    start = -1
    pos = lower.find(target)
    while pos >= 0:
        before = lower[pos - 1] if pos > 0 else " "
        after = lower[pos + len(target)] if pos + len(target) < len(lower) else " "
        if not before.isalnum() and not after.isalnum():
            start = pos
            break
        pos = lower.find(target, pos + 1)
    if start < 0:
        raise UserInputError(f"The word {word!r} is not in the sentence {sentence[:60]!r}: put it in both sentences.")
    end = start + len(target)
    positions = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a < end and b > start]
    if not positions:
        raise UserInputError(f"The word {word!r} has no token of its own in {sentence[:60]!r}: the tokenizer drops "
                             "those characters. Type a visible word of both sentences.")
    return enc["input_ids"], positions


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def static_vs_contextual(engine, first, second, word, model_key: str = CAUSAL,
                         progress: Progress = no_progress) -> Drift:
    first, second = check_text("first sentence", first, max_chars=500), check_text("second sentence", second, max_chars=500)
    word = check_text("word", word, max_chars=40).strip()
    if not any(unicodedata.category(ch)[0] in "LNPS" for ch in word):  # zero-width, control, spaces only
        raise UserInputError(f"word = {word!r} has no visible character (a zero-width or control character has no "
                             "meaning to compare): type a word that is in both sentences, e.g. 'bank'.")
    bundle = load(engine, model_key, progress)
    traces, found = [], []
    for sentence in (first, second):
        ids, positions = _word_positions(bundle, sentence, word)
        tr = run_trace(bundle, sentence, max_tokens=64)
        traces.append(tr)
        found.append((ids, positions))
    arch = traces[0].arch
    word_ids = [[found[s][0][p] for p in found[s][1]] for s in range(2)]
    rows = []
    with torch.inference_mode():
        for ids in word_ids:
            table_rows = arch.embed_rows(torch.tensor(ids, device=bundle.device)).float().cpu()  # (pieces, d)
            rows.append(table_rows.mean(0))
    cosines = []
    for layer in range(arch.n_layers + 1):
        vecs = []
        for tr, (_, positions) in zip(traces, found):
            stream = tr.layer_in[0] if layer == 0 else tr.layer_out[layer - 1]  # (n, d)
            vecs.append(stream[positions].mean(0))
        cosines.append(_cos(*vecs))
    return Drift(word=word, sentences=(first, second),
                 pieces=tuple([tr.pieces[p] for p in pos] for tr, (_, pos) in zip(traces, found)),
                 row_cosine=_cos(*rows), cosines=cosines, same_ids=word_ids[0] == word_ids[1])


# --- before training -----------------------------------------------------------------------------

def random_model(engine, progress: Progress = no_progress) -> TextModel:
    """SmolLM2's architecture from its config with seeded random weights. One per process, in
    the engine's model cache (bounded, LRU): every user reads the same copy, nobody writes it."""
    trained = load(engine, CAUSAL, progress)
    spec = engine.registry.get(CAUSAL)
    key = (spec.key, engine.device.kind, engine.device.dtype_name, RANDOM_VARIANT)

    def build():
        AutoModelForCausalLM = from_transformers("AutoModelForCausalLM")

        progress(0.5, "Building SmolLM2's architecture with random weights (once)...")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = AutoModelForCausalLM.from_config(trained.model.config, dtype=trained.dtype,
                                                     attn_implementation="eager")
        model.to(trained.device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return TextModel(model, trained.tokenizer, trained.source, trained.device, trained.dtype,
                         extra={"random_seed": RANDOM_SEED})

    return engine.cache.get_or_load(key, build)


@dataclass
class Prediction:
    label: str
    top: list[tuple[str, float]]
    entropy: float  # nats
    continuation: str  # 8 greedy tokens


def entropy(probs: torch.Tensor) -> float:
    p = probs.double()
    return float(-(p * torch.log(p.clamp_min(1e-300))).sum())


def _predict(bundle: TextModel, text, label: str, new_tokens: int = 8) -> Prediction:
    ids = encode(bundle, text).to(bundle.device)
    with torch.inference_mode():
        logits = bundle.model(input_ids=ids).logits[0, -1].float()  # (vocab,)
        out = bundle.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                    do_sample=False, pad_token_id=bundle.tokenizer.eos_token_id)
    probs = logits.softmax(-1).cpu()
    p, i = probs.topk(10)
    tok = bundle.tokenizer
    return Prediction(label=label, top=[(tok.decode([int(t)]), float(q)) for q, t in zip(p, i)],
                      entropy=entropy(probs), continuation=tok.decode(out[0, ids.shape[1]:]))


def before_training(engine, text, progress: Progress = no_progress) -> tuple[Prediction, Prediction, int]:
    """(trained, random) next-token predictions on the same prompt, and the vocabulary size."""
    trained = load(engine, CAUSAL, progress)
    untrained = random_model(engine, progress)
    return (_predict(trained, text, "trained SmolLM2"), _predict(untrained, text, "same architecture, random weights"),
            int(trained.model.config.vocab_size))


def max_entropy(vocab: int) -> float:
    return math.log(vocab)
