"""How language models are measured, with the arithmetic kept visible.

Perplexity: every token of a text is scored by the causal LM (its log-probability given all
tokens before it, inside a context window that slides with a stride for long texts, as in the
transformers perplexity guide: each window scores only the tokens it adds). From the per-token
negative log-likelihoods (NLL, in nats) come

    mean NLL = sum(NLL) / N            perplexity = exp(mean NLL)
    bits per byte = sum(NLL) / ln 2 / UTF-8 bytes       bits per character = ... / characters

Also here: next-token entropy, the cross-entropy toy (logits -> softmax -> loss) and the text
generators for "natural vs shuffled vs random". Answer metrics live in engine/evaluation/answers.py.
"""
from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field

from ..core.errors import UserInputError, check_range, check_text
from ..core.lazy import no_grad, torch
from ..core.settings import knob, make, validate
from . import served as served_scores

LN2 = math.log(2.0)
MAX_TEXT_CHARS = 20_000
MAX_TOKENS = 6_000
HEAD_CHUNK = 256  # rows of the LM head computed at once: (256, vocab) floats stay ~50 MB


@dataclass
class PerplexitySettings:
    window: int = knob(1024, 16, 2048, "Context window in tokens: each token sees at most this many "
                       "tokens before it (SmolLM2 was trained with 8,192).", step=16)
    stride: int = knob(512, 8, 2048, "New tokens scored per window when the text is longer than the "
                       "window (must be smaller than the window).", step=8)

    def __post_init__(self):
        validate(self)  # the ranges first: a value out of range is named as such
        if self.stride >= self.window:
            raise UserInputError(f"stride = {self.stride} must be smaller than window = {self.window}: "
                                 f"valid 8 to {self.window - 1}.")


@dataclass
class TokenScore:
    index: int  # position in the scored text (0 = first text token)
    token_id: int
    piece: str  # the characters of the text this token covers (pieces join back to the text)
    token: str  # the tokenizer's own spelling, e.g. 'Ġworld'
    logprob: float  # ln p(token | context), nats
    rank: int  # 1 = the model's top guess
    entropy_bits: float  # entropy of the whole next-token distribution at this position
    top_id: int
    top_token: str
    top_prob: float
    context: int  # how many tokens the model saw before this one

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)

    @property
    def surprisal_bits(self) -> float:
        return -self.logprob / LN2


@dataclass
class PerplexityReport:
    text: str
    tokens: list[TokenScore]
    window: int
    stride: int
    windows: list[tuple[int, int, int]]  # (begin, end, first scored) over the ids incl. the begin token
    begin_token: str  # token put before the text so its first token is scored too ("" = none)
    unscored: str = ""  # text not scored (the first token when the tokenizer has no begin token)
    model_key: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def total_nll(self) -> float:  # nats
        return -sum(t.logprob for t in self.tokens)

    @property
    def mean_nll(self) -> float:
        return self.total_nll / max(self.n_tokens, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nll)

    @property
    def total_bits(self) -> float:
        return self.total_nll / LN2

    @property
    def scored_text(self) -> str:
        return self.text[len(self.unscored):]

    @property
    def n_bytes(self) -> int:
        return len(self.scored_text.encode("utf-8"))

    @property
    def n_chars(self) -> int:
        return len(self.scored_text)

    @property
    def bits_per_token(self) -> float:
        return self.total_bits / max(self.n_tokens, 1)

    @property
    def bits_per_byte(self) -> float:
        return self.total_bits / max(self.n_bytes, 1)

    @property
    def bits_per_char(self) -> float:
        return self.total_bits / max(self.n_chars, 1)

    def summary(self) -> dict:
        """Plain numbers for the API (JSON)."""
        return dict(
            model=self.model_key, tokens_scored=self.n_tokens, total_nll_nats=self.total_nll,
            mean_nll_nats=self.mean_nll, perplexity=self.perplexity, total_bits=self.total_bits,
            bits_per_token=self.bits_per_token, utf8_bytes=self.n_bytes, characters=self.n_chars,
            bits_per_byte=self.bits_per_byte, bits_per_char=self.bits_per_char,
            window=self.window, stride=self.stride, passes=len(self.windows),
            begin_token=self.begin_token,
            mean_entropy_bits=sum(t.entropy_bits for t in self.tokens) / max(self.n_tokens, 1),
        )


# ---- windows -----------------------------------------------------------------------------------
def plan_windows(n_ids: int, window: int, stride: int, first: int = 1) -> list[tuple[int, int, int]]:
    """(begin, end, score_from) for each forward pass over ids[begin:end]. The first window
    scores everything it holds; each later one moves `stride` tokens on and scores only those
    new tokens, seeing window - stride tokens of context before the first of them. Every
    position in [first, n_ids) is scored exactly once."""
    if stride >= window:
        raise UserInputError(f"stride = {stride} must be smaller than window = {window}: each window "
                             f"needs at least one token of context (valid: 1 to {window - 1}).")
    plan, scored_to = [], first
    end = min(window, n_ids)
    while scored_to < n_ids:
        begin = max(0, end - window)
        plan.append((begin, end, scored_to))
        scored_to = end
        end = min(end + stride, n_ids)
    return plan


@no_grad
def score_window(model, ids: torch.Tensor, score_from: int) -> dict[str, torch.Tensor]:
    """Score ids[score_from:] of one window (ids: (L,) on the model's device, score_from >= 1).
    The decoder runs once; the LM head runs in chunks so the (L, vocab) logits never exist at
    once. Returns per scored token: logprob (nats), rank, entropy (nats), top id and prob."""
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    hidden = decoder(input_ids=ids[None]).last_hidden_state[0]  # (L, d)
    states = hidden[score_from - 1:-1]  # (T, d): state at i-1 predicts token i
    targets = ids[score_from:]  # (T,)
    out = {k: [] for k in ("logprob", "rank", "entropy", "top_id", "top_prob")}
    for lo in range(0, targets.numel(), HEAD_CHUNK):
        tgt = targets[lo:lo + HEAD_CHUNK, None]  # (c, 1)
        logits = head(states[lo:lo + HEAD_CHUNK]).float()  # (c, V)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        lse = torch.logsumexp(logits, dim=-1)  # (c,): ln sum_v e^z_v
        tgt_logit = logits.gather(1, tgt)[:, 0]  # (c,)
        out["logprob"].append(tgt_logit - lse)  # ln softmax(z)[target]
        out["rank"].append((logits > tgt_logit[:, None]).sum(1) + 1)
        probs = torch.softmax(logits, dim=-1)  # (c, V)
        out["entropy"].append(lse - torch.linalg.vecdot(probs, logits))  # H = -sum p ln p = lse - sum p z
        top = logits.max(1)
        out["top_id"].append(top.indices)
        out["top_prob"].append(torch.exp(top.values - lse))
    return {k: torch.cat(v).cpu() for k, v in out.items()}


def begin_token_id(tokenizer) -> int | None:
    """The token that starts a document, put before the text so its first token is scored:
    <|endoftext|> for SmolLM2/GPT-2 style vocabularies, else BOS, else EOS."""
    tid = tokenizer.convert_tokens_to_ids("<|endoftext|>") if "<|endoftext|>" in tokenizer.get_vocab() else None
    for cand in (tid, tokenizer.bos_token_id, tokenizer.eos_token_id):
        if cand is not None:
            return int(cand)
    return None


def text_pieces(text: str, offsets: list[tuple[int, int]]) -> list[str]:
    """Cut text into one piece per token from the offset mapping, so that the pieces join back
    to the text exactly (tokens inside one multi-byte character get an empty piece)."""
    pieces, cursor = [], 0
    for _, end in offsets:
        end = max(end, cursor)
        pieces.append(text[cursor:end])
        cursor = end
    if pieces:
        pieces[-1] += text[cursor:]
    return pieces


def check_window(settings: PerplexitySettings, model=None) -> PerplexitySettings:
    """The rule that depends on the model: the window fits in its context (when it has a limit)."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if limit and settings.window > limit:
        raise UserInputError(f"window = {settings.window} is longer than the model's context: valid 16 to {limit}.")
    return settings


def perplexity(model, tokenizer, text: str, window: int = 1024, stride: int = 512,
               model_key: str = "", progress=None, served=None) -> PerplexityReport:
    """Score every token of `text` (see the module docstring). progress(fraction, message).
    served: a serving Route (engine.serving.client.use_server(tm)): the windows are scored from
    the server's prompt logprobs instead of a forward here (see served.py)."""
    text = check_text("text", text, max_chars=MAX_TEXT_CHARS)
    settings = check_window(make(PerplexitySettings, window=window, stride=stride), model)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    if len(ids) > MAX_TOKENS:
        raise UserInputError(f"text is {len(ids):,} tokens long: the limit is {MAX_TOKENS:,} tokens "
                             f"(about {MAX_TEXT_CHARS:,} characters).")
    pieces = text_pieces(text, offsets)
    begin = begin_token_id(tokenizer)
    unscored = ""
    if begin is not None:
        all_ids = [begin] + ids
    else:  # nothing to put before the text: its first token cannot be predicted
        all_ids, unscored = ids, pieces[0]
    if len(all_ids) < 2:
        raise UserInputError("text is too short: it needs at least 2 tokens to score one of them.")
    device = next(model.parameters()).device
    id_tensor = torch.tensor(all_ids, device=device)  # (n,)
    plan = plan_windows(len(all_ids), settings.window, settings.stride, first=1)
    shift = 1 if begin is not None else 0  # all_ids position -> text token index
    tokens: list[TokenScore] = []
    names = tokenizer.convert_ids_to_tokens(all_ids)
    for n, (lo, hi, first) in enumerate(plan):
        if progress:
            progress(n / len(plan), f"Scoring tokens {first}–{hi - 1} (pass {n + 1} of {len(plan)})")
        if served is not None:
            res = served_scores.score_window(served, all_ids[lo:hi], first - lo)
        else:
            res = score_window(model, id_tensor[lo:hi], first - lo)
        top_names = tokenizer.convert_ids_to_tokens(res["top_id"].tolist())
        for j, pos in enumerate(range(first, hi)):
            k = pos - shift
            tokens.append(TokenScore(
                index=k, token_id=all_ids[pos], piece=pieces[k], token=names[pos],
                logprob=float(res["logprob"][j]), rank=int(res["rank"][j]),
                entropy_bits=float(res["entropy"][j]) / LN2, top_id=int(res["top_id"][j]),
                top_token=top_names[j], top_prob=float(res["top_prob"][j]), context=pos - lo,
            ))
    if progress:
        progress(1.0, f"Scored {len(tokens)} tokens in {len(plan)} pass(es)")
    return PerplexityReport(text=text, tokens=tokens, window=settings.window, stride=settings.stride,
                            windows=plan, begin_token=names[0] if begin is not None else "",
                            unscored=unscored, model_key=model_key)


# ---- natural vs shuffled vs random ----------------------------------------------------------
def shuffle_words(text: str, seed: int = 0) -> str:
    """The same words in a random order (same vocabulary, no grammar)."""
    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)


def random_characters(text: str, seed: int = 0) -> str:
    """As many random lowercase letters and spaces as the text has characters (no words at all)."""
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + " " * 5  # about one space in six, like English
    return "".join(rng.choice(alphabet) for _ in range(len(text))).strip() or "x"


def compare_texts(model, tokenizer, texts: list[tuple[str, str]], window: int = 1024, stride: int = 512,
                  model_key: str = "", progress=None) -> list[dict]:
    """[(label, text)] -> one row per text: tokens, perplexity, bits per token/byte/char."""
    if not 1 <= len(texts) <= 6:
        raise UserInputError(f"compare_texts takes 1 to 6 texts, got {len(texts)}.")
    rows = []
    for i, (label, text) in enumerate(texts):
        if progress:
            progress(i / len(texts), f"Scoring '{label}'")
        rep = perplexity(model, tokenizer, check_text(f"text '{label}'", text, max_chars=MAX_TEXT_CHARS),
                         window, stride, model_key)
        rows.append(dict(label=label, **{k: v for k, v in rep.summary().items()
                                         if k in ("tokens_scored", "perplexity", "mean_nll_nats",
                                                  "bits_per_token", "bits_per_byte", "bits_per_char",
                                                  "utf8_bytes", "mean_entropy_bits")}))
    return rows


# ---- entropy and the cross-entropy toy --------------------------------------------------------
def entropy_bits(probs) -> float:
    """H(p) = -sum p log2 p (0 log 0 = 0)."""
    return -sum(p * math.log2(p) for p in probs if p > 0)


def parse_logits(spec: str) -> tuple[list[str], list[float]]:
    """'cat 2.0, dog 1.0, car -0.5' (or 'cat: 2') -> labels and logits."""
    spec = check_text("logits", spec, max_chars=2000)
    labels, values = [], []
    for part in (p.strip() for p in spec.replace("\n", ",").split(",")):
        if not part:
            continue
        name, _, num = part.replace(":", " ").replace("=", " ").rpartition(" ")
        name = name.strip() or f"class {len(labels) + 1}"
        try:
            value = float(num)
        except ValueError:
            raise UserInputError(f"logits: {part!r} is not 'label number' (e.g. 'cat 2.0').") from None
        check_range(f"logit of {name!r}", value, -50, 50)
        if name in labels:
            raise UserInputError(f"logits: the label {name!r} appears twice; labels must differ.")
        labels.append(name)
        values.append(value)
    if not 2 <= len(labels) <= 20:
        raise UserInputError(f"logits: give 2 to 20 'label number' pairs, got {len(labels)}.")
    return labels, values


def cross_entropy_toy(labels: list[str], logits: list[float], target: str, temperature: float = 1.0) -> dict:
    """softmax(z / T) and the loss -ln p[target] = -z_t/T + ln sum_j exp(z_j/T), step by step."""
    if target not in labels:
        raise UserInputError(f"target = {target!r} is not one of the labels: choose one of {', '.join(labels)}.")
    temperature = check_range("temperature", temperature, 0.05, 10.0)
    scaled = [z / temperature for z in logits]
    m = max(scaled)  # subtract the max before exp: same result, no overflow
    exps = [math.exp(z - m) for z in scaled]
    total = sum(exps)
    probs = [e / total for e in exps]
    logsumexp = m + math.log(total)
    t = labels.index(target)
    loss = logsumexp - scaled[t]
    return dict(labels=labels, logits=logits, scaled=scaled, exps=exps, sum_exp=total, shift=m, probs=probs,
                target=target, target_index=t, temperature=temperature, logsumexp=logsumexp,
                loss_nats=loss, loss_bits=loss / LN2, prob_target=probs[t],
                entropy_bits=entropy_bits(probs), uniform_loss_nats=math.log(len(labels)))
