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
from typing import Callable, Iterator

import torch

from ..core.errors import UserInputError
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


def make_beam_settings(**values) -> BeamSettings:
    """BeamSettings from loose keyword values (API, UI), validated; unknown names are an error."""
    names = set(BeamSettings.__dataclass_fields__)
    unknown = set(values) - names
    if unknown:
        raise UserInputError(f"unknown beam settings {sorted(unknown)}: valid names are {sorted(names)}.")
    return check_beam_settings(BeamSettings(**values))


def check_beam_settings(s: BeamSettings) -> BeamSettings:
    if not isinstance(s, BeamSettings):
        raise UserInputError(f"settings must be BeamSettings, got {type(s).__name__}.")
    return validate(s)


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


@torch.inference_mode()
def beam_search_stream(tm, prompt: str, settings: BeamSettings, mode: str = "raw",
                       progress: Callable[[float | None, str], None] | None = None) -> Iterator[BeamResult]:
    """Beam search over one prompt, yielding the result after every step (for streaming)."""
    check_model(tm)
    s = check_beam_settings(settings)
    text, ids = encode(tm, prompt, mode, reserve=s.max_new_tokens)
    prompt_len = ids.shape[1]
    max_len = prompt_len + s.max_new_tokens
    eos = eos_ids(tm)
    nb = s.num_beams
    early: bool | str = {"false": False, "true": True, "never": "never"}[s.early_stopping]
    if nb == 1:
        early = True  # one beam is greedy search: it ends at its first EOS, as generate() does
    lp = s.length_penalty
    # Candidates looked at per step: enough that num_beams stay running even if the best ones all end.
    keep = max(2, 1 + len(eos)) * nb
    result = BeamResult(text, prompt_len, s)
    start = time.perf_counter()
    cache = new_cache(tm)
    logits = _forward(tm, ids, cache)  # (1, vocab): the prompt is read once, for all beams
    result.forward_tokens.append(prompt_len)
    seqs = ids  # (rows, cur): the running beams with their prompt; one row until the first step
    scores = torch.zeros(1, device=ids.device)  # (rows,) sums of log probabilities
    finished: list[Hypothesis] = []
    improvable = True
    for step in range(1, s.max_new_tokens + 1):
        cur = seqs.shape[1]
        logp = logits.log_softmax(-1)  # (rows, vocab)
        logp = apply_repetition_penalty(logp, seqs, s.repetition_penalty)
        logp = ban_repeated_ngrams(logp, seqs, s.no_repeat_ngram_size)
        vocab = logp.shape[-1]
        total = (logp + scores[:, None]).reshape(-1)  # every beam x every token
        top_scores, top_idx = total.topk(min(keep, total.numel()))
        parents, tokens = top_idx // vocab, top_idx % vocab
        last = cur + 1 >= max_len
        token_list, parent_list = tokens.tolist(), parents.tolist()
        ends = [last or t in eos for t in token_list]
        length = cur + 1 - prompt_len
        cands = [Candidate(parent_list[i], token_list[i], token_label(tm, token_list[i]),
                           float(logp[parent_list[i], token_list[i]]), float(top_scores[i]), "dropped")
                 for i in range(len(token_list))]

        # finished hypotheses: only candidates among the top num_beams may finish, and only while
        # they can still matter (not after early stopping is full, not once nothing can improve)
        if improvable and not (early is True and len(finished) >= nb):
            for i in range(min(nb, len(cands))):
                if not ends[i]:
                    continue
                final = float(top_scores[i] / (length ** lp))
                cands[i].final = final
                row_ids = seqs[parent_list[i], prompt_len:].tolist() + [token_list[i]]
                finished.append(Hypothesis(row_ids, _text(tm, row_ids), float(top_scores[i]), final, True, step,
                                           parent_list[i]))
            finished.sort(key=lambda h: -h.final)
            del finished[nb:]
        for i, c in enumerate(cands):
            if c.final is not None:
                in_list = any(h.step == step and h.parent == c.parent and h.ids[-1] == c.token for h in finished)
                c.status = "finished" if in_list else "finished, not among the best"
            elif ends[i]:
                c.status = "ended, not in the top num_beams"

        # the running beams for the next step: the best candidates that did not end
        alive = [i for i in range(len(cands)) if not ends[i]][:nb]
        for i in alive:
            cands[i].status = "kept"
        beams = []
        for r, i in enumerate(alive):
            row_ids = seqs[parent_list[i], prompt_len:].tolist() + [token_list[i]]
            beams.append(Hypothesis(row_ids, _text(tm, row_ids), float(top_scores[i]),
                                    float(top_scores[i] / (length ** lp)), False, step, parent_list[i]))
        result.steps.append(BeamStep(step, cands, beams, list(finished)))

        # stop?
        if alive and len(finished) >= nb:
            if early == "never" and lp > 0.0:
                best_len = max_len - prompt_len
            else:
                best_len = length
            best_possible = float(top_scores[alive[0]] / (best_len ** lp))
            if best_possible <= finished[-1].final:
                improvable = False
        if last:
            result.stop_reason = "max_new_tokens"
        elif early is True and len(finished) >= nb:
            result.stop_reason = ("the beam ended (EOS)" if nb == 1 else
                                  f"early_stopping: {nb} hypotheses have finished")
        elif not improvable:
            result.stop_reason = "no running beam can beat the finished ones"
        elif not alive:
            result.stop_reason = "every candidate ended"
        result.seconds = time.perf_counter() - start
        if progress is not None:
            progress(step / s.max_new_tokens, f"beam search step {step} of {s.max_new_tokens}")
        if result.stop_reason:
            break
        yield result

        rows = parents[alive]
        new = tokens[alive]
        cache.reorder_cache(rows)  # each kept beam takes the keys and values of the beam it extends
        seqs = torch.cat([seqs[rows], new[:, None]], dim=1)
        scores = top_scores[alive]
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

__all__ = ["BeamSettings", "make_beam_settings", "check_beam_settings", "generate_kwargs", "ban_repeated_ngrams",
           "beam_search", "beam_search_stream", "BeamResult", "BeamStep", "Candidate", "Hypothesis", "step_rows",
           "STEP_HEADERS", "EARLY_STOPPING"]
