"""Beam search, written out so that every step's hypotheses can be shown.

Beam search keeps the num_beams best partial texts (by the sum of their tokens' log
probabilities) instead of one. Each step extends every kept text by every token, keeps the
best candidates, and sets aside those that end (EOS, or the last allowed token) as finished
hypotheses, scored by sum / length ** length_penalty. It stops when no running text can still
beat the finished ones, or (early_stopping "true") as soon as num_beams texts have finished.

The rules follow transformers' generate(num_beams=...) (transformers 5, GenerationMixin
._beam_search) step for step, so that the best beam here equals model.generate()'s output;
tests/test_decoding_beam.py checks that for several settings. One beam is greedy search, as
generate() runs it: the text ends at its first EOS.

Differences in how, not in what: the prompt is read once and the KV cache copied to the beams
at the first step (generate() reads it once per beam), and the finished hypotheses are a short
Python list instead of padded tensors.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..core.lazy import inference_mode, torch
from ..core.settings import knob, validate
from .generation import (_forward, apply_repetition_penalty, check_model, encode, eos_ids, new_cache,
                         token_label)

EARLY_STOPPING = ("false", "true", "never")


@dataclass
class BeamSettings:
    """The knobs of beam search, with the names and meanings of generate()'s arguments."""

    num_beams: int = knob(4, 1, 8, "How many partial texts are kept at each step (1 = greedy)", step=1)
    length_penalty: float = knob(1.0, -2.0, 2.0, "A finished text's score is sum of log p / length ** this: "
                                 "above 0 favours longer texts, below 0 shorter ones", step=0.1)
    early_stopping: str = knob("false", help="true: stop once num_beams texts have finished; false: once no "
                               "running text can still win; never: the same, judged at the longest length",
                               choices=EARLY_STOPPING)
    no_repeat_ngram_size: int = knob(0, 0, 6, "Forbid any run of this many tokens from appearing twice "
                                     "(0 = off)", step=1, label="no-repeat n-gram size")
    repetition_penalty: float = knob(1.0, 0.5, 2.0, "Applied to the log probabilities of tokens already in the "
                                     "text, as generate() does in beam search (1 = off)", step=0.05)
    max_new_tokens: int = knob(12, 1, 64, "How many tokens each text may add at most", step=1,
                               label="max new tokens (beams)")


def generate_kwargs(s: BeamSettings) -> dict:
    """The same settings as keyword arguments of transformers' model.generate()."""
    early = {"false": False, "true": True, "never": "never"}[s.early_stopping]
    out = dict(num_beams=s.num_beams, length_penalty=s.length_penalty, early_stopping=early, do_sample=False,
               repetition_penalty=s.repetition_penalty, max_new_tokens=s.max_new_tokens)
    if s.no_repeat_ngram_size:
        out["no_repeat_ngram_size"] = s.no_repeat_ngram_size
    return out


def ban_repeated_ngrams(scores: torch.Tensor, ids: torch.Tensor, n: int) -> torch.Tensor:
    """Scores (rows, vocab) with -inf for every token that would complete an n-gram already in
    that row's ids (rows, seq). With n = 1 every token already present is banned."""
    if n <= 0 or ids.shape[1] < n:
        return scores
    grams = ids.unfold(1, n, 1)  # (rows, windows, n): every n-gram of each row
    tail = ids[:, ids.shape[1] - (n - 1):]  # (rows, n - 1): what the next token would follow
    same_start = (grams[..., :n - 1] == tail[:, None, :]).all(-1)  # (rows, windows)
    banned = torch.zeros_like(scores, dtype=torch.bool)
    rows, windows = same_start.nonzero(as_tuple=True)
    banned[rows, grams[rows, windows, n - 1]] = True
    return scores.masked_fill(banned, float("-inf"))


@dataclass
class Candidate:
    """One continuation looked at in a step: a kept beam + one token."""

    parent: int  # row of the beam it extends, in the previous step's beams
    token: int
    label: str
    logprob: float  # this token's log probability (after the penalties)
    score: float  # the text's sum of log probabilities so far
    status: str  # "kept", "finished", "ended, not in the top num_beams", "dropped"
    final: float | None = None  # score / length ** length_penalty, when it finished


@dataclass
class Hypothesis:
    ids: list[int]
    text: str
    score: float  # sum of log probabilities
    final: float  # sum / length ** length_penalty (for a running beam: at its current length)
    finished: bool = False
    step: int = 0  # the step it finished at (or was last extended)
    parent: int = -1  # running beams: the row of the previous step's beam it extends


@dataclass
class BeamStep:
    step: int  # 1 = the first new token
    candidates: list[Candidate]
    beams: list[Hypothesis]  # the running beams after this step, best first
    finished: list[Hypothesis]  # the best finished hypotheses so far, best first


@dataclass
class BeamResult:
    prompt_text: str
    prompt_tokens: int
    settings: BeamSettings
    steps: list[BeamStep] = field(default_factory=list)
    finished: list[Hypothesis] = field(default_factory=list)
    stop_reason: str = ""
    seconds: float = 0.0
    forward_tokens: list[int] = field(default_factory=list)  # tokens read per forward (per row)
    done: bool = False

    @property
    def best(self) -> Hypothesis | None:
        return self.finished[0] if self.finished else None


def _text(tm, ids: list[int]) -> str:
    return tm.tokenizer.decode(ids)


@dataclass
class _Search:
    """What every step of one search reads: the settings, resolved once."""

    tm: Any
    s: BeamSettings
    prompt_len: int
    max_len: int
    eos: list[int]
    early: bool | str  # generate()'s early_stopping: False, True or "never"
    keep: int  # candidates looked at per step

    @property
    def nb(self) -> int:
        return self.s.num_beams

    @property
    def lp(self) -> float:
        return self.s.length_penalty


@dataclass
class _Expansion:
    """One step's candidates: the `keep` best (beam, token) pairs, best first."""

    top_scores: torch.Tensor  # (keep,) sums of log probabilities
    parents: torch.Tensor  # (keep,) row of the beam each extends
    tokens: torch.Tensor  # (keep,)
    cands: list[Candidate]
    ends: list[bool]  # the candidate ends its text (EOS, or the last allowed token)
    last: bool  # this step adds the last allowed token
    length: int  # new tokens in a text after this step


def _search(tm, s: BeamSettings, prompt_len: int) -> _Search:
    eos = eos_ids(tm)
    early: bool | str = {"false": False, "true": True, "never": "never"}[s.early_stopping]
    if s.num_beams == 1:
        early = True  # one beam is greedy search: it ends at its first EOS, as generate() does
    # Candidates looked at per step: enough that num_beams stay running even if the best ones all end.
    keep = max(2, 1 + len(eos)) * s.num_beams
    return _Search(tm, s, prompt_len, prompt_len + s.max_new_tokens, eos, early, keep)


def _expand(run: _Search, logits: torch.Tensor, seqs: torch.Tensor, scores: torch.Tensor) -> _Expansion:
    """Every running beam x every token, after the penalties; the `keep` best as candidates."""
    cur = seqs.shape[1]
    logp = logits.log_softmax(-1)  # (rows, vocab)
    logp = apply_repetition_penalty(logp, seqs, run.s.repetition_penalty)
    logp = ban_repeated_ngrams(logp, seqs, run.s.no_repeat_ngram_size)
    vocab = logp.shape[-1]
    total = (logp + scores[:, None]).reshape(-1)  # every beam x every token
    top_scores, top_idx = total.topk(min(run.keep, total.numel()))
    parents, tokens = top_idx // vocab, top_idx % vocab
    last = cur + 1 >= run.max_len
    token_list, parent_list = tokens.tolist(), parents.tolist()
    cands = [Candidate(p, t, token_label(run.tm, t), float(logp[p, t]), float(top_scores[i]), "dropped")
             for i, (p, t) in enumerate(zip(parent_list, token_list))]
    return _Expansion(top_scores, parents, tokens, cands, [last or t in run.eos for t in token_list], last,
                      cur + 1 - run.prompt_len)


def _hypothesis(run: _Search, x: _Expansion, seqs: torch.Tensor, i: int, step: int, final: float,
                finished: bool) -> Hypothesis:
    c = x.cands[i]
    row_ids = seqs[c.parent, run.prompt_len:].tolist() + [c.token]
    return Hypothesis(row_ids, _text(run.tm, row_ids), float(x.top_scores[i]), final, finished, step, c.parent)


def _add_finished(run: _Search, x: _Expansion, seqs: torch.Tensor, step: int, finished: list[Hypothesis],
                  improvable: bool) -> None:
    """Finished hypotheses: only candidates among the top num_beams may finish, and only while
    they can still matter (not after early stopping is full, not once nothing can improve).
    Keeps the num_beams best in `finished` and marks each candidate that ended."""
    if improvable and not (run.early is True and len(finished) >= run.nb):
        for i in range(min(run.nb, len(x.cands))):
            if not x.ends[i]:
                continue
            final = float(x.top_scores[i] / (x.length ** run.lp))
            x.cands[i].final = final
            finished.append(_hypothesis(run, x, seqs, i, step, final, True))
        finished.sort(key=lambda h: -h.final)
        del finished[run.nb:]
    for i, c in enumerate(x.cands):
        if c.final is not None:
            in_list = any(h.step == step and h.parent == c.parent and h.ids[-1] == c.token for h in finished)
            c.status = "finished" if in_list else "finished, not among the best"
        elif x.ends[i]:
            c.status = "ended, not in the top num_beams"


def _keep_running(run: _Search, x: _Expansion, seqs: torch.Tensor, step: int) -> tuple[list[int], list[Hypothesis]]:
    """The running beams for the next step: the best candidates that did not end."""
    alive = [i for i in range(len(x.cands)) if not x.ends[i]][:run.nb]
    for i in alive:
        x.cands[i].status = "kept"
    return alive, [_hypothesis(run, x, seqs, i, step, float(x.top_scores[i] / (x.length ** run.lp)), False)
                   for i in alive]


def _can_improve(run: _Search, x: _Expansion, alive: list[int], finished: list[Hypothesis]) -> bool:
    """False once num_beams texts have finished and the best running one cannot beat the worst of them."""
    if not alive or len(finished) < run.nb:
        return True
    best_len = run.max_len - run.prompt_len if run.early == "never" and run.lp > 0.0 else x.length
    return float(x.top_scores[alive[0]] / (best_len ** run.lp)) > finished[-1].final


def _stop_reason(run: _Search, last: bool, finished: list[Hypothesis], improvable: bool, alive: list[int]) -> str:
    if last:
        return "max_new_tokens"
    if run.early is True and len(finished) >= run.nb:
        return "the beam ended (EOS)" if run.nb == 1 else f"early_stopping: {run.nb} hypotheses have finished"
    if not improvable:
        return "no running beam can beat the finished ones"
    if not alive:
        return "every candidate ended"
    return ""


@inference_mode
def beam_search_stream(tm, prompt: str, settings: BeamSettings, mode: str = "raw",
                       progress: Callable[[float | None, str], None] | None = None) -> Iterator[BeamResult]:
    """Beam search over one prompt, yielding the result after every step (for streaming)."""
    check_model(tm)
    s = validate(settings, BeamSettings)
    text, ids = encode(tm, prompt, mode, reserve=s.max_new_tokens)
    run = _search(tm, s, ids.shape[1])
    result = BeamResult(text, run.prompt_len, s)
    start = time.perf_counter()
    cache = new_cache(tm)
    logits = _forward(tm, ids, cache)  # (1, vocab): the prompt is read once, for all beams
    result.forward_tokens.append(run.prompt_len)
    seqs = ids  # (rows, cur): the running beams with their prompt; one row until the first step
    scores = torch.zeros(1, device=ids.device)  # (rows,) sums of log probabilities
    finished: list[Hypothesis] = []
    improvable = True
    for step in range(1, s.max_new_tokens + 1):
        x = _expand(run, logits, seqs, scores)
        _add_finished(run, x, seqs, step, finished, improvable)
        alive, beams = _keep_running(run, x, seqs, step)
        result.steps.append(BeamStep(step, x.cands, beams, list(finished)))
        improvable = improvable and _can_improve(run, x, alive, finished)
        result.stop_reason = _stop_reason(run, x.last, finished, improvable, alive)
        result.seconds = time.perf_counter() - start
        if progress is not None:
            progress(step / s.max_new_tokens, f"beam search step {step} of {s.max_new_tokens}")
        if result.stop_reason:
            break
        yield result

        rows, new = x.parents[alive], x.tokens[alive]
        cache.reorder_cache(rows)  # each kept beam takes the keys and values of the beam it extends
        seqs = torch.cat([seqs[rows], new[:, None]], dim=1)  # (nb, cur + 1)
        scores = x.top_scores[alive]
        logits = _forward(tm, new[:, None], cache)
        result.forward_tokens.append(1)
    result.finished = finished
    result.seconds = time.perf_counter() - start
    result.done = True
    yield result


def beam_search(tm, prompt: str, settings: BeamSettings, mode: str = "raw") -> BeamResult:
    """beam_search_stream() run to the end."""
    result = None
    for result in beam_search_stream(tm, prompt, settings, mode):
        pass
    return result


def step_rows(result: BeamResult) -> list[list]:
    """A table of every step: the kept beams and finished hypotheses, with their scores."""
    rows = []
    for st in result.steps:
        for rank, h in enumerate(st.beams, 1):
            rows.append([st.step, f"beam {rank}", h.parent + 1, h.text, round(h.score, 4), round(h.final, 4),
                         "running"])
        for rank, h in enumerate(st.finished, 1):
            if h.step == st.step:
                rows.append([st.step, f"finished {rank}", h.parent + 1, h.text, round(h.score, 4),
                             round(h.final, 4), "finished here"])
    return rows


STEP_HEADERS = ["step", "hypothesis", "from beam", "text so far", "sum log p", "score (length-normalised)",
                "state"]

__all__ = ["BeamSettings", "generate_kwargs", "ban_repeated_ngrams",
           "beam_search", "beam_search_stream", "BeamResult", "BeamStep", "Candidate", "Hypothesis", "step_rows",
           "STEP_HEADERS", "EARLY_STOPPING"]
