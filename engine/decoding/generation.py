"""Decoding: how a causal LM turns next-token logits into text.

The knob math (repetition penalty, temperature, top-k, top-p, min-p, typical-p) is written here, once,
and used by the next-token view, the step path and generation alike, so the chart shows
exactly the distribution that sampling draws from. tests/test_decoding.py proves each knob
equals the matching transformers logits processor.

Three ways in:
- next_token_view(): one forward over the prompt, the distribution after each knob.
- StepSession: keeps the KV cache of one browser session; each step appends one token and
  runs one forward over that token only.
- generate_stream(): batched sampling of num_return_sequences continuations with a seeded
  generator, yielding after every token (for streaming), each token with its probability
  and rank, and the reason each sequence stopped.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Iterator

from ..core.arch import context_length
from ..core.chat import chat_ids
from ..core.errors import UserInputError, check_choice, check_text
from ..core.lazy import from_transformers, inference_mode, torch
from ..core.settings import knob, validate
from ..serving import use_server
from ..tokens import bytes_label, hf_token_bytes, invisible_code
from . import prefill, served

MODES = ("raw", "chat")  # raw completion, or the instruct model's chat template
MAX_PROMPT_CHARS = 8_000
MAX_STEP_TOKENS = 1_024  # a step session (prompt + steps) stops growing here: bounds its KV cache
MAX_STOP_STRINGS = 8


@dataclass
class DecodingSettings:
    """The knobs of the decoding tab. Ranges are written once here: the sliders are built
    from them and validate() checks values that arrive through the API."""

    temperature: float = knob(0.8, 0.0, 2.0, "Divide the logits by T: below 1 sharpens, above 1 "
                              "flattens; 0 = always the most likely token", step=0.05)
    top_k: int = knob(50, 0, 200, "Keep only the k most likely tokens (0 = off)", step=1)
    # 0.95, not 0.9: on the tab's first prompt ("The capital of France is") 0.9 keeps one token
    top_p: float = knob(0.95, 0.0, 1.0, "Keep the smallest set of likely tokens whose probabilities "
                        "add up to p (1 = off)", step=0.01)
    min_p: float = knob(0.0, 0.0, 1.0, "Drop tokens less likely than min_p × the top token's "
                        "probability (0 = off)", step=0.01)
    typical_p: float = knob(1.0, 0.0, 1.0, "Keep the tokens whose surprise (-log p) is closest to the average "
                            "surprise (the entropy), until they add up to typical_p (1 = off)", step=0.01)
    repetition_penalty: float = knob(1.0, 0.5, 2.0, "Above 1, tokens already in the text become less "
                                     "likely; below 1, more likely (1 = off)", step=0.05)
    do_sample: bool = knob(True, help="Sample from the distribution; off = greedy: always the most likely token")
    max_new_tokens: int = knob(40, 1, 256, "How many tokens to generate at most", step=1)
    num_return_sequences: int = knob(2, 1, 4, "How many continuations to sample side by side", step=1,
                                     label="sequences side by side")
    seed: int = knob(42, 0, 2**32 - 1, "Same seed, same samples", step=1)

    def __post_init__(self):
        if not isinstance(self.do_sample, bool):  # validate() checks ranges, not that a bool is one
            raise UserInputError(f"do_sample = {self.do_sample!r} must be true or false.")


# --- the knobs: (batch, vocab) logits in, (batch, vocab) logits out; -inf = cut ---------------

NEG_INF = float("-inf")


def apply_repetition_penalty(logits: torch.Tensor, previous_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """Tokens already in the text: positive logits are divided by the penalty, negative ones
    multiplied, so a penalty > 1 always makes them less likely. Applied once per distinct token."""
    if penalty == 1.0 or previous_ids.numel() == 0:
        return logits
    seen = logits.gather(-1, previous_ids)  # (batch, seq)
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(-1, previous_ids, seen)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / T). T = 0 is the limit: only the most likely token survives."""
    if temperature == 1.0:
        return logits
    if temperature == 0.0:
        best = logits.argmax(-1, keepdim=True)  # (batch, 1)
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, best, True)
        return logits.masked_fill(~keep, NEG_INF)
    return logits / temperature


def apply_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits (ties with the k-th are kept too); k = 0 is off."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth_value = logits.topk(k, dim=-1).values[..., -1:]  # (batch, 1)
    return logits.masked_fill(logits < kth_value, NEG_INF)


def apply_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus: walk the tokens from most to least likely and keep them while the mass of the
    tokens before them is below p, i.e. the smallest set whose mass reaches p. p = 1 is off."""
    if p >= 1.0:
        return logits
    probs = logits.softmax(-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)  # (batch, vocab)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the more likely tokens
    cut_sorted = mass_before >= p
    cut_sorted[..., 0] = False  # the most likely token always stays
    cut = torch.zeros_like(cut_sorted).scatter(-1, order, cut_sorted)
    return logits.masked_fill(cut, NEG_INF)


def apply_min_p(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Drop tokens whose probability is below min_p times the top token's; 0 is off."""
    if min_p <= 0.0:
        return logits
    probs = logits.softmax(-1)
    threshold = min_p * probs.max(-1, keepdim=True).values  # (batch, 1)
    return logits.masked_fill(probs < threshold, NEG_INF)


def apply_typical_p(logits: torch.Tensor, mass: float) -> torch.Tensor:
    """Locally typical sampling. A token's surprise is -log p; the distribution's entropy H is
    its average surprise. Tokens are ranked by how far their surprise lies from H (the most
    "typical" first, which is not always the most likely), and the shortest run of that ranking
    whose probabilities add up to `mass` is kept (tokens tied with the last one stay too, and
    the most typical token always does). 1 is off."""
    if mass >= 1.0:
        return logits
    logp = logits.log_softmax(-1)  # (batch, vocab); cut tokens at -inf
    probs = logp.exp()
    entropy = -(logp * probs).nansum(-1, keepdim=True)  # (batch, 1); 0 * -inf is nan, skipped
    distance = (-logp - entropy).abs()  # cut tokens: inf, so they sort last
    sorted_dist, order = distance.sort(dim=-1)  # most typical first
    # the mass up to each position, summed in typical order from the logits (the order of the sums
    # decides the last bit, and this one is transformers')
    running = logits.gather(-1, order).softmax(-1).cumsum(-1)
    last = (running < mass).sum(-1, keepdim=True).clamp(max=logits.shape[-1] - 1)  # (batch, 1)
    cut_sorted = sorted_dist > sorted_dist.gather(-1, last)
    cut_sorted[..., 0] = False  # the most typical token always stays
    cut = torch.zeros_like(cut_sorted).scatter(-1, order, cut_sorted)
    return logits.masked_fill(cut, NEG_INF)


# The order transformers' generate() uses: processors, then the sampling warpers (typical-p after
# min-p, as in transformers 5's _get_logits_processor).
STAGES = ("raw", "repetition penalty", "temperature", "top-k", "top-p", "min-p", "typical-p")


def stage_logits(logits: torch.Tensor, previous_ids: torch.Tensor, s: DecodingSettings) -> list[torch.Tensor]:
    """The logits after each knob in turn, in STAGES order (the first is the raw logits)."""
    out = [logits]
    out.append(apply_repetition_penalty(out[-1], previous_ids, s.repetition_penalty))
    out.append(apply_temperature(out[-1], s.temperature))
    out.append(apply_top_k(out[-1], s.top_k))
    out.append(apply_top_p(out[-1], s.top_p))
    out.append(apply_min_p(out[-1], s.min_p))
    out.append(apply_typical_p(out[-1], s.typical_p))
    return out


def final_logits(logits: torch.Tensor, previous_ids: torch.Tensor, s: DecodingSettings) -> torch.Tensor:
    """What the next token is drawn from: greedy uses only the repetition penalty."""
    if not sampling(s):
        return apply_repetition_penalty(logits, previous_ids, s.repetition_penalty)
    return stage_logits(logits, previous_ids, s)[-1]


def sampling(s: DecodingSettings) -> bool:
    """Temperature 0 means greedy even with do_sample on."""
    return bool(s.do_sample) and s.temperature > 0.0


def pick(scores: torch.Tensor, s: DecodingSettings, generator: torch.Generator | None):
    """(tokens (batch,), probs (batch, vocab) or None) from knob-processed scores."""
    if not sampling(s):
        return scores.argmax(-1), None
    probs = scores.softmax(-1)  # (batch, vocab)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1), probs


def chosen_stats(logits: torch.Tensor, scores: torch.Tensor, probs: torch.Tensor | None,
                 tokens: torch.Tensor) -> tuple[list[float], list[float], list[int]]:
    """For each row's chosen token: raw probability, probability after the knobs, raw rank.
    Only the chosen entries are read (a logsumexp per row), not a full softmax."""
    idx = tokens[:, None]  # (batch, 1)
    raw_logit = logits.gather(-1, idx)  # (batch, 1)
    p_raw = (raw_logit - logits.logsumexp(-1, keepdim=True)).exp()[:, 0]
    if probs is not None:
        p_fin = probs.gather(-1, idx)[:, 0]
    else:
        p_fin = (scores.gather(-1, idx) - scores.logsumexp(-1, keepdim=True)).exp()[:, 0]
    rank = (logits > raw_logit).sum(-1) + 1  # (batch,)
    return p_raw.tolist(), p_fin.tolist(), rank.tolist()


# --- model plumbing ------------------------------------------------------------------------

def max_context(tm) -> int:
    return context_length(tm.model.config) or 2048


def eos_ids(tm) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(tm.model.generation_config, "eos_token_id", None), tm.tokenizer.eos_token_id):
        if value is None:
            continue
        ids.update([value] if isinstance(value, int) else list(value))
    return ids


def format_prompt(tm, prompt: str, mode: str) -> str:
    """The text the model actually reads: the prompt as is, or wrapped in the chat template."""
    check_choice("mode", mode, MODES)
    if mode == "raw":
        return prompt
    if not getattr(tm.tokenizer, "chat_template", None):
        raise UserInputError(f"mode = 'chat' needs a chat template, and {tm.key} has none: use mode 'raw'.")
    return tm.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                            add_generation_prompt=True)


def chat_prompt_ids(tm, prompt: str) -> list[int]:
    """The ids of `prompt` as the user's message in the chat template (format_prompt's text)."""
    return chat_ids(tm.tokenizer, [{"role": "user", "content": prompt}])


def encode(tm, prompt: str, mode: str, *, reserve: int = 0) -> tuple[str, torch.Tensor]:
    """(formatted text, (1, seq) ids); checks that prompt + reserve fits the context window."""
    check_text("prompt", prompt, max_chars=MAX_PROMPT_CHARS)
    text = format_prompt(tm, prompt, mode)
    if mode == "raw":  # the text as typed: a special-token string in it is that token (the lesson's raw view)
        ids = tm.tokenizer(text, return_tensors="pt", add_special_tokens=True).input_ids
    else:  # the template's own special tokens only: '<|im_end|>' typed in the prompt stays text
        ids = torch.tensor([chat_prompt_ids(tm, prompt)])  # (1, seq)
    limit = max_context(tm)
    if ids.shape[1] + reserve > limit:
        raise UserInputError(
            f"prompt ({ids.shape[1]} tokens) + max_new_tokens ({reserve}) = {ids.shape[1] + reserve} tokens is "
            f"more than {tm.key}'s context window: valid totals are 1 to {limit}.")
    return text, ids.to(tm.device)


def new_cache(tm):
    """An empty KV cache for tm's model (transformers' Cache API). _forward fills it in place."""
    DynamicCache = from_transformers("DynamicCache")

    return DynamicCache(config=tm.model.config)


@inference_mode
def _forward(tm, ids: torch.Tensor, cache=None) -> torch.Tensor:
    """Logits of the last position (batch, vocab) in fp32. With a cache (new_cache()), the
    forward reads the keys and values of the earlier tokens from it and appends those of `ids`
    (transformers' `cache=` keyword: `past_key_values` is deprecated and goes in 5.40)."""
    out = tm.model(input_ids=ids, cache=cache, use_cache=cache is not None, logits_to_keep=1)
    return out.logits[:, -1, :].float()


def partial_bytes(tm, token_id: int) -> str:
    """'<0xE6><0xB1>' for a token that is only part of a character (alone it decodes to '\ufffd'),
    as the Tokens tab shows it; '' for a token of whole characters."""
    text = tm.tokenizer.decode([int(token_id)])
    if "\ufffd" not in text:
        return ""
    raw = hf_token_bytes(tm.tokenizer, token_id)
    if raw is None:
        return ""
    try:
        raw.decode("utf-8")
        return ""  # a real U+FFFD in the vocabulary
    except UnicodeDecodeError:
        return bytes_label(raw)


def token_label(tm, token_id: int) -> str:
    """A token as a short visible string: spaces as ␣, newlines as ↵, tabs as ⇥, partial
    characters as their bytes (<0xE6>), invisible characters as their code point [U+200B]."""
    text = partial_bytes(tm, token_id) or tm.tokenizer.decode([int(token_id)])
    text = text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
    text = "".join(f"[{code}]" if (code := invisible_code(c)) else c for c in text)
    return text or f"<{int(token_id)}>"


def check_model(tm):
    if not hasattr(tm, "model") or not hasattr(tm, "tokenizer"):
        raise UserInputError("the decoding tab needs a causal language model (registry task 'causal-lm').")
    return tm


# --- the next-token view --------------------------------------------------------------------

@dataclass
class StageView:
    name: str  # one of STAGES
    label: str  # e.g. "top-p 0.90"
    active: bool  # False when the knob is at its "off" value
    probs: torch.Tensor  # (vocab,) after this knob, renormalised
    kept: torch.Tensor  # (vocab,) bool, still in the running after this knob
    kept_count: int
    kept_mass: float  # mass the survivors had in the distribution before this knob


@dataclass
class NextTokenView:
    prompt_tokens: int
    context_max: int
    stages: list[StageView]
    greedy_id: int
    sampling: bool
    labels: dict[int, str] = field(default_factory=dict)  # token id -> visible text, for top tokens
    served_top: list[int] = field(default_factory=list)  # from a server: the top-N ids it returned
    # (only they are known one by one; the rest of the vocabulary is one mass, see served.py)

    def rest_mass(self, stage: int = 0) -> float:
        """From a server: the probability of every token outside its top N, after stage `stage`."""
        if not self.served_top:
            return 0.0
        probs = self.stages[stage].probs
        return max(0.0, 1.0 - float(probs[torch.tensor(self.served_top)].sum()))

    @property
    def final(self) -> StageView:
        return self.stages[-1]

    def top_ids(self, n: int) -> list[int]:
        if self.served_top:  # the tail is spread evenly: only the top N have an order
            n = min(n, len(self.served_top))
        return self.stages[0].probs.topk(n).indices.tolist()

    def rows(self, n: int = 15) -> list[dict]:
        """The n most likely raw tokens, with their probability after every knob."""
        out = []
        for rank, tid in enumerate(self.top_ids(n), 1):
            row = dict(rank=rank, token=self.labels.get(tid, str(tid)), id=tid)
            for st in self.stages:
                row[st.name] = round(float(st.probs[tid]), 6)
            row["kept"] = bool(self.final.kept[tid])
            out.append(row)
        return out


def _knob_label(name: str, s: DecodingSettings) -> tuple[str, bool]:
    if name == "raw":
        return "raw model probabilities", True
    if name == "repetition penalty":
        return f"repetition penalty {s.repetition_penalty:g}", s.repetition_penalty != 1.0
    if name == "temperature":
        return f"temperature {s.temperature:g}", s.temperature != 1.0
    if name == "top-k":
        return f"top-k {s.top_k}", 0 < s.top_k
    if name == "top-p":
        return f"top-p {s.top_p:g}", s.top_p < 1.0
    if name == "min-p":
        return f"min-p {s.min_p:g}", s.min_p > 0.0
    return f"typical-p {s.typical_p:g}", s.typical_p < 1.0


def view_from_logits(tm, logits: torch.Tensor, previous_ids: torch.Tensor, s: DecodingSettings,
                     label_top: int = 20, served_top: list[int] | None = None) -> NextTokenView:
    """The distribution after each knob for one position. logits (vocab,), previous_ids (seq,)."""
    staged = stage_logits(logits[None].float(), previous_ids[None], s)  # each (1, vocab)
    stages: list[StageView] = []
    for i, (name, lg) in enumerate(zip(STAGES, staged)):
        label, active = _knob_label(name, s)
        if i > 0 and lg is staged[i - 1]:  # knob off: same tensor, same distribution
            prev = stages[-1]
            stages.append(StageView(name, label, active, prev.probs, prev.kept, prev.kept_count, 1.0))
            continue
        probs = lg[0].softmax(-1)  # (vocab,)
        kept = torch.isfinite(lg[0])
        mass = 1.0 if i == 0 else float(stages[-1].probs.masked_fill(~kept, 0.0).sum())
        stages.append(StageView(name, label, active, probs, kept, int(kept.sum()), mass))
    greedy = int(apply_repetition_penalty(logits[None].float(), previous_ids[None], s.repetition_penalty).argmax())
    view = NextTokenView(prompt_tokens=int(previous_ids.numel()), context_max=max_context(tm), stages=stages,
                         greedy_id=greedy, sampling=sampling(s), served_top=list(served_top or []))
    ids = set(view.top_ids(label_top)) | {greedy}
    view.labels = {tid: token_label(tm, tid) for tid in ids}
    return view


@inference_mode
def next_token_view(tm, prompt: str, settings: DecodingSettings, mode: str = "raw") -> NextTokenView:
    """One forward over the prompt; the next-token distribution raw and after each knob."""
    check_model(tm)
    settings = validate(settings, DecodingSettings)
    _, ids = encode(tm, prompt, mode)
    r = use_server(tm)
    if r is not None:
        logits, top = served.next_logits(r, ids[0].tolist(), vocab_size(tm))
        return view_from_logits(tm, logits, ids[0], settings, served_top=top)
    logits = _forward(tm, ids)
    return view_from_logits(tm, logits[0], ids[0], settings)


def vocab_size(tm) -> int:
    return int(tm.model.get_output_embeddings().weight.shape[0])


# --- the step path: one token at a time, reusing the KV cache ---------------------------------

class TextEnded(UserInputError):
    """A step was asked of a text that has already stopped (the model wrote its end-of-sequence
    token); the message says why and how to start over."""


class StepSession:
    """One browser session's walk through a text, one token per step.

    Holds the KV cache, so step N runs one forward over one new token. Lives in the tab's
    gr.State (per browser session, with a time to live), never in the engine. Stops, as
    generate() does, when the model writes its end-of-sequence token (stop_reason "EOS").
    Steps from several threads on one session run one after the other (a lock per session)."""

    def __init__(self, tm, prompt: str, mode: str = "raw", seed: int = 42, shared_prefill: bool = False):
        check_model(tm)
        self.tm = tm
        self.key = tm.key
        self.prompt, self.mode = prompt, mode
        self.text, ids = encode(tm, prompt, mode)
        self.prompt_len = ids.shape[1]
        self.ids = ids[0]  # (seq,)
        self.served_top: list[int] = []  # the first view came from the server's top N (see served.py)
        r = use_server(tm)
        if r is not None:  # the view from the server; the KV cache is built in-process at the first step
            self.cache = None
            self.logits, self.served_top = served.next_logits(r, self.ids.tolist(), vocab_size(tm))
            self.forward_tokens = []
        else:
            self._prefill(ids, prefill.SHARED if shared_prefill else None)
        self.steps: list[dict] = []  # each: id, label, p_raw, p_final, rank, how
        self.stop_reason = ""  # "" while the text goes on; "EOS" once the model ended it
        self.seed = None
        self.generator = None
        self.eos = eos_ids(tm)
        self._lock = threading.Lock()

    def _prefill(self, ids: torch.Tensor, shared) -> None:
        """The forward over the prompt, or a copy of the one another session ran (prefill.py)."""
        key = tuple(ids[0].tolist())
        kept = shared.get(self.tm.model, key) if shared is not None else None
        if kept is not None:
            self.logits, self.cache = kept
            self.forward_tokens = [0]  # tokens each forward pass read: none, the prompt's was shared
            return
        self.cache = new_cache(self.tm)
        self.logits = _forward(self.tm, ids, self.cache)[0]  # (vocab,) for the next position
        self.forward_tokens = [ids.shape[1]]  # tokens each forward pass read (proves cache reuse)
        if shared is not None:
            shared.put(self.tm.model, key, self.logits, self.cache)

    def matches(self, tm, prompt: str, mode: str) -> bool:
        return tm.key == self.key and tm is self.tm and prompt == self.prompt and mode == self.mode

    @property
    def finished(self) -> bool:
        return bool(self.stop_reason)

    def view(self, settings: DecodingSettings) -> NextTokenView:
        settings = validate(settings, DecodingSettings)
        with self._lock:
            logits, ids, top = self.logits, self.ids, self.served_top
        return view_from_logits(self.tm, logits, ids, settings, served_top=top)

    def _generator(self, seed: int) -> torch.Generator:
        if self.generator is None or seed != self.seed:
            self.generator = torch.Generator(device=self.tm.device).manual_seed(int(seed))
            self.seed = seed
        return self.generator

    def stop_message(self) -> str:
        last = self.steps[-1]["text"] if self.steps else ""
        return (f"the text has ended: the model wrote its end-of-sequence token {last!r} (EOS), where "
                f"Generate stops too. Press 'Next token' to start over.")

    @inference_mode
    def step(self, settings: DecodingSettings) -> dict:
        """Append the greedy or sampled token, then one forward over that token alone.
        Raises TextEnded once the model has written its end-of-sequence token."""
        s = validate(settings, DecodingSettings)
        with self._lock:
            if self.finished:
                raise TextEnded(self.stop_message())
            limit = min(MAX_STEP_TOKENS, max_context(self.tm))
            if self.ids.numel() >= limit:
                raise UserInputError(f"this text has {self.ids.numel()} tokens: steps stop at "
                                     f"{limit}. Press 'Next token' to start over.")
            if self.cache is None:  # the step view needs the KV cache: the prompt once, in-process
                self.cache = new_cache(self.tm)
                self.logits = _forward(self.tm, self.ids[None], self.cache)[0]
                self.forward_tokens.append(self.ids.numel())
                self.served_top = []
            logits = self.logits[None]  # (1, vocab)
            scores = final_logits(logits, self.ids[None], s)
            tokens, probs = pick(scores, s, self._generator(s.seed))
            (p_raw,), (p_fin,), (rank,) = chosen_stats(logits, scores, probs, tokens)
            token = int(tokens[0])
            info = dict(id=token, label=token_label(self.tm, token), text=self.tm.tokenizer.decode([token]),
                        bytes=partial_bytes(self.tm, token), p_raw=p_raw, p_final=p_fin, rank=rank,
                        how="sampled" if sampling(s) else "greedy")
            new = tokens[:, None]  # (1, 1)
            # the forward runs even after EOS, so logits stay those of the position after ids
            self.logits = _forward(self.tm, new, self.cache)[0]
            self.forward_tokens.append(new.shape[1])
            self.ids = torch.cat([self.ids, new[0]])
            self.steps.append(info)
            if token in self.eos:
                self.stop_reason = "EOS"
            return info

    @property
    def generated_text(self) -> str:
        return self.tm.tokenizer.decode(self.ids[self.prompt_len:].tolist())


# --- generation -----------------------------------------------------------------------------

@dataclass
class TokenOut:
    id: int
    text: str  # the characters this token added (special tokens as written)
    p_raw: float  # model probability before any knob
    p_final: float  # probability in the distribution it was drawn from
    rank: int  # 1 = the model's most likely token
    special: bool = False
    bytes: str = ""  # '<0xE6><0xB1>' when the token is only part of a character, else ''


@dataclass
class SequenceOut:
    tokens: list[TokenOut] = field(default_factory=list)
    text: str = ""
    stop_reason: str = ""  # "", "EOS", "max_new_tokens", "stop string '…'"

    @property
    def finished(self) -> bool:
        return bool(self.stop_reason)


@dataclass
class GenerationResult:
    prompt_text: str  # what the model read (chat template applied)
    prompt_tokens: int
    context_max: int
    max_new_tokens: int
    sequences: list[SequenceOut]
    seconds: float = 0.0
    steps: int = 0  # forward passes after the prompt
    done: bool = False

    @property
    def tokens_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0


def parse_stop(stop) -> list[str]:
    """Stop strings from a list, or from text separated by '|' (\\n and \\t written as escapes)."""
    if stop is None or stop == "":
        return []
    if isinstance(stop, str):
        items = [part.replace("\\n", "\n").replace("\\t", "\t") for part in stop.split("|")]
    elif isinstance(stop, (list, tuple)):
        items = list(stop)
    else:
        raise UserInputError(f"stop = {stop!r} must be text like '\\n|.' or a list of strings.")
    items = [x for x in items if x != ""]
    if len(items) > MAX_STOP_STRINGS or any(not isinstance(x, str) or len(x) > 50 for x in items):
        raise UserInputError(f"stop = {stop!r}: give 0 to {MAX_STOP_STRINGS} stop strings of 1 to 50 characters.")
    for x in items:  # "\n" is a fair stop string: whitespace is allowed, broken text is not
        check_text("stop string", x, max_chars=50, allow_empty=True)
    return items


@inference_mode
def generate_stream(tm, prompt: str, settings: DecodingSettings, mode: str = "raw",
                    stop=None) -> Iterator[GenerationResult]:
    """Generate num_return_sequences continuations side by side, yielding after every token.

    Batched: all rows share one forward per step and one KV cache. Sampling uses a
    torch.Generator seeded with settings.seed, so the same seed gives the same samples. Greedy
    rows would all be identical, so greedy runs one row and repeats it."""
    check_model(tm)
    s = validate(settings, DecodingSettings)
    stops = parse_stop(stop)
    text, ids = encode(tm, prompt, mode, reserve=s.max_new_tokens)
    n = s.num_return_sequences
    rows = n if sampling(s) else 1
    r = use_server(tm)
    if r is not None:
        yield _served_result(tm, r, text, ids, s, rows, stops)
        return
    eos = eos_ids(tm)
    pad = next(iter(sorted(eos)), 0)
    special = set(getattr(tm.tokenizer, "all_special_ids", []) or [])
    generator = torch.Generator(device=tm.device).manual_seed(int(s.seed)) if sampling(s) else None
    result = GenerationResult(text, ids.shape[1], max_context(tm), s.max_new_tokens,
                              [SequenceOut() for _ in range(n)])
    all_ids = ids.expand(rows, -1)  # (rows, seq)
    new_ids: list[list[int]] = [[] for _ in range(rows)]
    start = time.perf_counter()
    cache = new_cache(tm)
    logits = _forward(tm, all_ids, cache)  # (rows, vocab)
    done = torch.zeros(rows, dtype=torch.bool, device=ids.device)
    for step in range(s.max_new_tokens):
        scores = final_logits(logits, all_ids, s)  # (rows, vocab)
        tokens, probs = pick(scores, s, generator)
        tokens = tokens.masked_fill(done, pad)  # (rows,)
        p_raw, p_fin, ranks = chosen_stats(logits, scores, probs, tokens)
        finished = done.tolist()
        for r, tid in enumerate(tokens.tolist()):
            if finished[r]:
                continue
            before = tm.tokenizer.decode(new_ids[r])
            new_ids[r].append(tid)
            after = tm.tokenizer.decode(new_ids[r])
            seq = result.sequences[r]
            seq.tokens.append(TokenOut(tid, after[len(before):] if after.startswith(before) else
                                       tm.tokenizer.decode([tid]), p_raw[r], p_fin[r], ranks[r],
                                       tid in special, partial_bytes(tm, tid)))
            seq.text = after
            if tid in eos:
                seq.stop_reason = "EOS"
            else:
                hit = next((x for x in stops if x in after), None)
                if hit is not None:
                    seq.stop_reason = f"stop string {hit!r}"
            if seq.stop_reason:
                done[r] = True
        all_ids = torch.cat([all_ids, tokens[:, None]], dim=1)  # (rows, seq + 1)
        result.steps = step + 1
        if bool(done.all()) or step + 1 == s.max_new_tokens:
            break
        result.seconds = time.perf_counter() - start
        _copy_rows(result, rows, n)
        yield result
        logits = _forward(tm, tokens[:, None], cache)
    for seq in result.sequences[:rows]:
        if not seq.stop_reason:
            seq.stop_reason = "max_new_tokens"
    result.seconds = time.perf_counter() - start
    result.done = True
    _copy_rows(result, rows, n)
    yield result


def _served_result(tm, r, text: str, ids: torch.Tensor, s: DecodingSettings, rows: int,
                   stops: list[str]) -> GenerationResult:
    """The whole generation from the server in one answer (not streamed), decoded with the
    app's own tokenizer as the in-process path decodes it. p_final is NaN: the server returns the
    raw model's logprobs, not the ones after the knobs; a rank of N + 1 means "not in the top N"."""
    seqs, seconds = served.generate(
        r, ids[0].tolist(), max_new_tokens=s.max_new_tokens, sampling=sampling(s), temperature=s.temperature,
        top_k=s.top_k, top_p=s.top_p, min_p=s.min_p, typical_p=s.typical_p,
        repetition_penalty=s.repetition_penalty, rows=rows,
        seed=s.seed, stops=stops)
    special = set(getattr(tm.tokenizer, "all_special_ids", []) or [])
    result = GenerationResult(text, ids.shape[1], max_context(tm), s.max_new_tokens,
                              [SequenceOut() for _ in range(s.num_return_sequences)], seconds=seconds, done=True)
    for out, seq in zip(seqs, result.sequences):
        done: list[int] = []
        before = ""
        for tid, p, rank in zip(out["ids"], out["p_raw"], out["rank"]):
            done.append(tid)
            after = tm.tokenizer.decode(done)
            piece = after[len(before):] if after.startswith(before) else tm.tokenizer.decode([tid])
            seq.tokens.append(TokenOut(tid, piece, p, float("nan"), rank, tid in special, partial_bytes(tm, tid)))
            before = after
        seq.text, seq.stop_reason = before, out["stop_reason"]
    result.steps = max((len(q.tokens) for q in result.sequences[:rows]), default=0)
    _copy_rows(result, rows, s.num_return_sequences)
    return result


def _copy_rows(result: GenerationResult, rows: int, n: int) -> None:
    """Greedy ran one row: show it in every column."""
    for i in range(rows, n):
        result.sequences[i] = replace(result.sequences[0], tokens=list(result.sequences[0].tokens))


def generate(tm, prompt: str, settings: DecodingSettings, mode: str = "raw", stop=None) -> GenerationResult:
    """generate_stream() run to the end."""
    result = None
    for result in generate_stream(tm, prompt, settings, mode, stop):
        pass
    return result


__all__ = ["DecodingSettings", "STAGES", "apply_repetition_penalty",
           "apply_temperature", "apply_top_k", "apply_top_p", "apply_min_p", "apply_typical_p",
           "stage_logits", "final_logits",
           "pick", "next_token_view", "view_from_logits", "NextTokenView", "StepSession", "TextEnded", "generate_stream",
           "generate", "GenerationResult", "SequenceOut", "TokenOut", "parse_stop", "MODES"]
