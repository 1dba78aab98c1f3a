"""Speculative decoding: a small draft model proposes k tokens, the target model checks them all in
one forward and keeps the longest prefix it agrees with, plus one token of its own. With greedy
decoding the output is the target's own greedy output, token for token; only the number of target
forwards changes. transformers' assisted generation does the work (universal assisted decoding,
which translates through text, when the two models do not share a tokenizer); forward hooks on
private twins of the two models (the cached models get no hook) count and time each forward, and
every round's proposals are read from the target's inputs.

The expected number of tokens per target forward, when each draft token is accepted with
probability a independently, is (1 - a^(k+1)) / (1 - a) (Leviathan et al., 2023); simulate()
draws the same process at random, and a test checks that the two agree."""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

from ..core.errors import ModelUnavailableError, UserInputError
from ..core.lazy import torch
from .kv import prompt_ids
from .measure import Clock, describe_device, timer_for

PAIRS = {"gemma3-270m-base": "smollm2-135m-instruct"}  # target -> draft (offline: the embedded models)


def expected_tokens(alpha: float, k: int) -> float:
    """Expected tokens per target forward with k drafted tokens, each accepted with probability alpha."""
    if not 0 <= alpha <= 1:
        raise UserInputError(f"acceptance = {alpha} is not valid: it is a probability, from 0 to 1.")
    return float(k + 1) if alpha == 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def simulate(alpha: float, k: int, steps: int = 20000, seed: int = 0) -> float:
    """Mean tokens per target forward over `steps` random rounds: the drafted tokens are accepted one
    by one with probability alpha until the first rejection (or all k); the target adds one."""
    rng = random.Random(seed)
    total = 0
    for _ in range(steps):
        n = 0
        while n < k and rng.random() < alpha:
            n += 1
        total += n + 1
    return total / steps


@dataclass
class Round:
    proposed: int  # draft tokens the target checked
    accepted: int  # how many of them it kept


@dataclass
class Speculation:
    k: int
    new_tokens: int
    plain_s: float
    assisted_s: float
    plain_ids: list[int]
    assisted_ids: list[int]
    rounds: list[Round]
    draft_forward_s: float  # mean time of one draft forward
    target_forward_s: float  # mean time of one target forward during the assisted run
    universal: bool  # different tokenizers: universal assisted decoding
    target: str
    draft: str
    device: str
    text: str = ""
    draft_forwards: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.plain_ids == self.assisted_ids

    @property
    def proposed(self) -> int:
        return sum(r.proposed for r in self.rounds)

    @property
    def accepted(self) -> int:
        return sum(r.accepted for r in self.rounds)

    @property
    def acceptance(self) -> float:
        """Share of the draft's tokens the target kept."""
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def per_token_acceptance(self) -> float:
        """The a of the formula: accepted / (accepted + rejections), a rejection ending each round
        that did not keep all its proposals."""
        rejected = sum(1 for r in self.rounds if r.accepted < r.proposed)
        return self.accepted / (self.accepted + rejected) if self.accepted + rejected else 0.0

    @property
    def mean_proposed(self) -> float:
        """Draft tokens (in the target's tokens) the target checked per round."""
        return self.proposed / len(self.rounds) if self.rounds else 0.0

    @property
    def tokens_per_forward(self) -> float:
        return len(self.assisted_ids) / len(self.rounds) if self.rounds else 0.0

    @property
    def speedup(self) -> float:
        return self.plain_s / self.assisted_s


def twin(model):
    """A second module tree over the very same tensors (hooks and generation settings of its own)."""
    memo = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return copy.deepcopy(model, memo)


def rounds_from(inputs: list[list[int]], prompt: list[int], new_ids: list[int]) -> list[Round]:
    """Each target forward's proposals (its input after the prompt in the first round, after the one
    token it already had in later rounds) checked against the output the run produced."""
    seq, cur, rounds = list(prompt) + list(new_ids), len(prompt), []
    for i, inp in enumerate(inputs):
        if cur >= len(seq):
            break
        m = len(inp) - len(prompt) if i == 0 else len(inp) - 1
        cand = inp[len(inp) - m:] if m > 0 else []
        n = 0
        while n < m and cur + n < len(seq) and seq[cur + n] == cand[n]:
            n += 1
        rounds.append(Round(m, n))
        cur += n + 1
    return rounds


def _hooks(model, timer, log: list, times: list):
    def before(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        log.append(ids[0].tolist() if ids is not None else [])
        times.append(-timer.now())

    def after(module, args, output):
        times[-1] += timer.now()

    return [model.register_forward_pre_hook(before, with_kwargs=True), model.register_forward_hook(after)]


def same_tokenizer(a, b) -> bool:
    return a.get_vocab() == b.get_vocab()


def _draft_twin(draft_model, k: int):
    d = twin(draft_model)
    d.generation_config = copy.deepcopy(draft_model.generation_config)
    d.generation_config.num_assistant_tokens = k
    d.generation_config.num_assistant_tokens_schedule = "constant"  # always k, so the formula applies
    d.generation_config.assistant_confidence_threshold = 0.0  # never stop a draft early
    return d


def speculate(target, draft, text: str, new_tokens: int, k: int, clock: Clock | None = None,
              progress=None) -> Speculation:
    """Plain greedy on the target, then the same with the draft proposing k tokens per round; both
    timed, every forward of the assisted run counted and timed."""
    report = progress or (lambda f, m: None)
    ids = prompt_ids(target, text)  # (1, prompt_len)
    timer = timer_for(target, clock)
    pad = target.tokenizer.pad_token_id if target.tokenizer.pad_token_id is not None else target.tokenizer.eos_token_id
    common = dict(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=pad)
    universal = not same_tokenizer(target.tokenizer, draft.tokenizer)
    extra = dict(tokenizer=target.tokenizer, assistant_tokenizer=draft.tokenizer) if universal else {}
    t_model, d_model = twin(target.model), _draft_twin(draft.model, k)
    with torch.inference_mode():
        report(0.05, "warm-up")
        t_model.generate(**common, max_new_tokens=2)
        t_model.generate(**common, max_new_tokens=2, assistant_model=d_model, **extra)
        report(0.15, "plain greedy on the target")
        out, plain_s = timer.run(t_model.generate, **common, max_new_tokens=new_tokens)
        plain = out[0, ids.shape[1]:].tolist()
        report(0.5, f"assisted: the draft proposes {k} tokens a round")
        t_log, t_times, d_log, d_times = [], [], [], []
        handles = _hooks(t_model, timer, t_log, t_times) + _hooks(d_model, timer, d_log, d_times)
        try:
            out, assisted_s = timer.run(t_model.generate, **common, max_new_tokens=new_tokens,
                                        assistant_model=d_model, **extra)
        except RuntimeError as exc:
            if not universal:
                raise
            raise ModelUnavailableError(
                "transformers' universal assisted decoding failed on this prompt (it translates the draft's "
                "tokens through text, and an empty translation breaks it): try another prompt, such as the "
                f"counting example. ({type(exc).__name__})") from exc
        finally:
            for h in handles:
                h.remove()
    report(1.0, "done")
    assisted = out[0, ids.shape[1]:].tolist()
    notes = ["The two models have different tokenizers, so this is universal assisted decoding: the draft's k "
             "tokens go through text into the target's tokens, which can be fewer or more than k."] if universal else []
    return Speculation(k=k, new_tokens=new_tokens, plain_s=plain_s, assisted_s=assisted_s, plain_ids=plain,
                       assisted_ids=assisted, rounds=rounds_from(t_log, ids[0].tolist(), assisted),
                       draft_forward_s=sum(d_times) / max(len(d_times), 1),
                       target_forward_s=sum(t_times) / max(len(t_times), 1), universal=universal,
                       target=target.source.spec.title, draft=draft.source.spec.title,
                       device=describe_device(target.device, target.dtype),
                       text=target.tokenizer.decode(assisted, skip_special_tokens=True),
                       draft_forwards=len(d_log), notes=notes)
