"""The model trained from nothing: its knobs, its transformers config (Llama- or GPT-2-style, so
every other lesson can open it), its size and cost, and the folder it downloads as."""
from __future__ import annotations

import math
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserInputError
from ..core.lazy import from_transformers, torch
from ..core.settings import knob, validate
from ..training import runner
from .vocab import KINDS, MAX_BPE, MIN_BPE

ARCHS = ("llama", "gpt2")
MAX_CONTEXT = 256
MLP_RATIO = 4  # the MLP's hidden width is 4 x the model width (GPT-2's ratio; used for Llama here too)


@dataclass
class PretrainSettings:
    """The knobs of one pre-training run; ranges written once here (UI sliders and API checks)."""

    tokenizer: str = knob("char", help="How text becomes ids: one per character, a BPE trained here on the "
                          "corpus, or GPT-2's existing BPE", choices=KINDS)
    bpe_vocab: int = knob(512, MIN_BPE, MAX_BPE, "Vocabulary size of the BPE trained here (256 bytes + merges)",
                          step=1, label="BPE vocabulary size")
    arch: str = knob("llama", help="Llama-style (RMSNorm, rotary positions, SwiGLU) or GPT-2-style (LayerNorm, "
                     "learned positions, GELU)", choices=ARCHS, label="architecture")
    layers: int = knob(3, 1, 8, "Transformer blocks", step=1)
    width: int = knob(128, 16, 512, "Model width d (the embedding size)", step=16)
    heads: int = knob(4, 1, 16, "Attention heads per block (must divide the width)", step=1)
    context: int = knob(64, 8, MAX_CONTEXT, "Tokens the model sees at once (the window)", step=8,
                        label="context length")
    learning_rate: float = knob(0.003, 0.00001, 0.03, "Peak AdamW step size", step=0.0001, label="learning rate")
    warmup_steps: int = knob(30, 0, 1000, "Steps over which the rate rises to its peak; then it falls on a "
                             "cosine to near 0 at the last step", step=1, label="warm-up steps")
    batch_size: int = knob(32, 1, 128, "Windows per step", step=1, label="batch size")
    max_steps: int = knob(300, 1, 5000, "Optimizer steps (ignored when a token budget is set)", step=1,
                          label="steps")
    token_budget: int = knob(0, 0, 20_000_000, "Training tokens in all (0 = use the steps): steps = budget / "
                             "(batch x context)", step=1000, label="token budget")
    sample_every: int = knob(50, 1, 1000, "Steps between two samples from the prompt", step=1,
                             label="sample every (steps)")
    eval_every: int = knob(25, 1, 1000, "Steps between two validation losses", step=1,
                           label="evaluate every (steps)")
    val_share: float = knob(0.1, 0.01, 0.5, "Share of the text held out (its end) for the validation loss",
                            step=0.01, label="validation share")
    seed: int = knob(0, 0, 2**31 - 1, "Weights, batches and samples", step=1)
    time_budget: float = runner.budget_knob()

    def __post_init__(self):
        validate(self)  # the ranges first: a bad value is named as such
        if self.width % self.heads:
            raise UserInputError(f"heads = {self.heads} does not divide width = {self.width}: pick heads among "
                                 f"{', '.join(str(h) for h in range(1, 17) if self.width % h == 0)}.")
        if self.arch == "llama" and (self.width // self.heads) % 2:
            raise UserInputError(f"width / heads = {self.width // self.heads} is odd: rotary positions need an even "
                                 "head size; change the heads or the width.")

    @property
    def steps(self) -> int:
        """Steps of the run: the token budget's when one is set."""
        if self.token_budget:
            return max(1, math.ceil(self.token_budget / (self.batch_size * self.context)))
        return self.max_steps

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.context


def config(s: PretrainSettings, vocab_size: int):
    """The transformers config of a fresh model: tied input/output embeddings, no dropout."""
    GPT2Config, LlamaConfig = from_transformers("GPT2Config", "LlamaConfig")

    if s.arch == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_positions=s.context, n_embd=s.width, n_layer=s.layers,
                          n_head=s.heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
                          bos_token_id=None, eos_token_id=None)
    return LlamaConfig(vocab_size=vocab_size, hidden_size=s.width, intermediate_size=MLP_RATIO * s.width,
                       num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.heads,
                       max_position_embeddings=s.context, tie_word_embeddings=True, rms_norm_eps=1e-5,
                       bos_token_id=None, eos_token_id=None, pad_token_id=None)


def build(s: PretrainSettings, vocab_size: int):
    """A fresh model with random weights (seeded)."""
    AutoModelForCausalLM = from_transformers("AutoModelForCausalLM")

    torch.manual_seed(s.seed)
    model = AutoModelForCausalLM.from_config(config(s, vocab_size))
    return model.float()


def size(s: PretrainSettings, vocab_size: int) -> dict:
    """Parameters and training FLOPs per token, counted from the shapes (no model is built).
    non_embedding: every weight but the token (and GPT-2's position) embedding, as Kaplan et al. count N.
    flops_per_token: ~6 x N (forward 2N, backward 4N) + the attention scores, 6·layers·context·width,
    + the output layer (tied to the embedding, so not in N), 6·vocab·width."""
    d, L, T, V = s.width, s.layers, s.context, vocab_size
    f = MLP_RATIO * d
    if s.arch == "gpt2":
        per_layer = (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 4 * d
        non_emb, emb = L * per_layer + 2 * d, V * d + T * d
    else:
        per_layer = 4 * d * d + 3 * d * f + 2 * d
        non_emb, emb = L * per_layer + d, V * d
    flops = 6 * non_emb + 6 * L * T * d + 6 * V * d
    return dict(total=non_emb + emb, non_embedding=non_emb, embedding=emb, flops_per_token=flops)


def save_folder(model, tok, out_dir: Path) -> Path:
    """The model as a plain transformers folder: config.json, model.safetensors and the tokenizer
    (tokenizer.json through PreTrainedTokenizerFast), which AutoModelForCausalLM and AutoTokenizer load."""
    PreTrainedTokenizerFast = from_transformers("PreTrainedTokenizerFast")

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(out_dir)
    return out_dir


def zip_folder(folder: Path, zip_path: Path) -> Path:
    """The folder zipped as <folder name>/... (stored: safetensors weights barely compress); the folder is removed."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"{folder.name}/{f.name}")
    shutil.rmtree(folder, ignore_errors=True)
    return zip_path
