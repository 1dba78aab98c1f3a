"""A chat is stateless: each turn sends the whole conversation again.

The model keeps nothing between turns. To answer turn N, the app applies the chat template to
the system prompt, every earlier turn and the new message, and the model reads all of it from
the start. When that no longer fits the context window, the oldest whole turns are left out,
and whatever was said only in them is gone for the model.

    fit_history()  which turns are sent for a new message in a window of W tokens
    chat_turn()    fit, then a greedy reply (stops at EOS), with what was sent
    FORGETTING     a scripted conversation whose fact the model repeats while the turn that
                   gave it is in the window, and cannot give once it is dropped

The history (a list of {"user", "assistant"} dicts) lives in the tab's per-session gr.State.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..core.chat import chat_ids
from ..core.errors import UserInputError, check_text
from ..core.lazy import inference_mode, torch
from ..core.settings import knob, validate
from .generation import DecodingSettings, _forward, check_model, eos_ids, final_logits, max_context, new_cache, pick

MAX_TURNS = 12  # turns kept in a session's history; older ones are forgotten by the app itself
MAX_MESSAGE_CHARS = 600
MAX_SYSTEM_CHARS = 1_000


@dataclass
class ChatSettings:
    context_window: int = knob(256, 64, 1024, "The most tokens the model may see: the sent prompt plus "
                               "the room kept for its answer. Older turns are dropped to fit", step=8,
                               label="context window (tokens)")
    max_new_tokens: int = knob(40, 8, 128, "Room kept for the answer, and the most tokens it may have", step=1,
                               label="answer length (tokens)")
    temperature: float = knob(0.0, 0.0, 2.0, "0 = greedy: always the most likely token; above 0 the answer is "
                              "sampled from the logits divided by T", step=0.05, label="temperature (0 = greedy)")
    top_p: float = knob(1.0, 0.05, 1.0, "When sampling: keep the smallest set of likely tokens whose probabilities "
                        "add up to p (1 = off)", step=0.05, label="top-p")
    seed: int = knob(42, 0, 2**32 - 1, "When sampling: same seed, same answer", step=1)

    def sampling(self) -> DecodingSettings:
        """The DecodingSettings the reply is drawn with: these knobs, every other one off."""
        return DecodingSettings(temperature=self.temperature, top_k=0, top_p=self.top_p, do_sample=self.temperature > 0,
                                seed=self.seed)


def check_history(history) -> list[dict]:
    """The session's history as clean turns; anything else is refused."""
    if history is None:
        return []
    if not isinstance(history, list) or len(history) > MAX_TURNS:
        raise UserInputError(f"the conversation must be a list of 0 to {MAX_TURNS} turns.")
    out = []
    for i, turn in enumerate(history):
        if not isinstance(turn, dict) or set(turn) != {"user", "assistant"}:
            raise UserInputError(f"turn {i + 1} must have exactly a 'user' and an 'assistant' message.")
        out.append({k: check_text(f"turn {i + 1} {k} message", turn[k], max_chars=MAX_MESSAGE_CHARS,
                                  allow_empty=(k == "assistant")) for k in ("user", "assistant")})
    return out


def check_system(system) -> str | None:
    """The system prompt: text up to MAX_SYSTEM_CHARS; '' or None = the template's own default."""
    if system is None or (isinstance(system, str) and not system.strip()):
        return None
    return check_text("system prompt", system, max_chars=MAX_SYSTEM_CHARS)


def messages(turns: list[dict], user: str | None = None, system: str | None = None) -> list[dict]:
    """Chat messages in the order the template reads them (without `system`, the template adds
    its own default system prompt, if it has one)."""
    out = [{"role": "system", "content": system}] if system else []
    for t in turns:
        out += [{"role": "user", "content": t["user"]}, {"role": "assistant", "content": t["assistant"]}]
    if user is not None:
        out.append({"role": "user", "content": user})
    return out


def render(tm, turns: list[dict], user: str, system: str | None = None) -> str:
    """The text sent for `user` after `turns`: the chat template with the assistant's cue."""
    if not getattr(tm.tokenizer, "chat_template", None):
        raise UserInputError(f"the conversation needs a chat template, and {tm.key} has none.")
    return tm.tokenizer.apply_chat_template(messages(turns, user, system), tokenize=False, add_generation_prompt=True)


def render_ids(tm, turns: list[dict], user: str, system: str | None = None) -> list[int]:
    """The ids of render()'s text as the model gets them: the template's special tokens are tokens,
    and a '<|im_end|>' typed in any message stays plain text (no forged turn)."""
    render(tm, turns, user, system)  # the same refusal when there is no template
    return chat_ids(tm.tokenizer, messages(turns, user, system))


def count(tm, text: str) -> int:
    return len(tm.tokenizer(text, add_special_tokens=False).input_ids)


@dataclass
class SentPrompt:
    text: str  # exactly what the model reads
    tokens: int
    window: int
    reserve: int  # tokens kept free for the answer
    kept_from: int  # index of the first history turn sent; turns before it are dropped
    history: list[dict]  # the whole history (dropped turns included)
    turn_tokens: list[int]  # tokens each history turn adds to the prompt (dropped ones too)
    base_tokens: int  # the system prompt + the new message + the assistant cue
    model_max: int
    ids: list[int] = field(default_factory=list)  # exactly what the model reads (text's tokens)
    system: str | None = None  # the system prompt sent; None = the template's own default

    @property
    def dropped(self) -> list[dict]:
        return self.history[:self.kept_from]

    @property
    def kept(self) -> list[dict]:
        return self.history[self.kept_from:]


def fit_history(tm, history, user: str, settings: ChatSettings, system: str | None = None) -> SentPrompt:
    """Drop the fewest oldest whole turns so that the prompt + the answer's room fit the window
    (the system prompt is always sent)."""
    check_model(tm)
    s = validate(settings)
    turns = check_history(history)
    system = check_system(system)  # before the message: a bad system prompt is named even with no message
    user = check_text("message", user, max_chars=MAX_MESSAGE_CHARS)
    window = min(s.context_window, max_context(tm))
    budget = window - s.max_new_tokens
    # tokens[i] = the prompt when turns[i:] are kept (tokenised whole: no guess about how the
    # template joins the pieces)
    sizes = [len(render_ids(tm, turns[i:], user, system)) for i in range(len(turns) + 1)]
    start = next((i for i, n in enumerate(sizes) if n <= budget), None)
    if start is None:
        raise UserInputError(
            f"context window = {s.context_window}: the message alone needs {sizes[-1]} prompt tokens + "
            f"{s.max_new_tokens} for the answer = {sizes[-1] + s.max_new_tokens} tokens. Valid: a window of "
            f"{sizes[-1] + s.max_new_tokens} to {ChatSettings.__dataclass_fields__['context_window'].metadata['knob'].maximum:g}, "
            f"a shorter message or a shorter answer.")
    text = render(tm, turns[start:], user, system)
    per_turn = [sizes[i] - sizes[i + 1] for i in range(len(turns))]
    return SentPrompt(text, sizes[start], window, s.max_new_tokens, start, turns, per_turn, sizes[-1],
                      max_context(tm), render_ids(tm, turns[start:], user, system), system)


@dataclass
class ChatTurn:
    sent: SentPrompt
    reply: str
    reply_tokens: int
    stop_reason: str  # "EOS" or "max_new_tokens"
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)  # the history after this turn (bounded)


@inference_mode
def greedy_reply(tm, text: str | list[int], max_new_tokens: int) -> tuple[list[int], str]:
    """Greedy tokens after `text` (which already holds the template; or its ids), up to EOS (included)."""
    if isinstance(text, str):
        ids = tm.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids.to(tm.device)
    else:
        ids = torch.tensor([text], device=tm.device)  # (1, seq)
    eos = eos_ids(tm)
    cache = new_cache(tm)
    logits = _forward(tm, ids, cache)
    out: list[int] = []
    for _ in range(max_new_tokens):
        token = int(logits[0].argmax())
        out.append(token)
        if token in eos:
            return out, "EOS"
        logits = _forward(tm, torch.tensor([[token]], device=tm.device), cache)
    return out, "max_new_tokens"


@inference_mode
def sampled_reply(tm, ids: list[int], max_new_tokens: int, settings: DecodingSettings) -> tuple[list[int], str]:
    """Tokens after `ids` drawn with `settings` (seeded: the same seed gives the same reply), up to EOS."""
    generator = torch.Generator(device=tm.device).manual_seed(int(settings.seed))
    eos, cache = eos_ids(tm), new_cache(tm)
    seen = torch.tensor([ids], device=tm.device)  # (1, seq)
    logits = _forward(tm, seen, cache)
    out: list[int] = []
    for _ in range(max_new_tokens):
        token, _ = pick(final_logits(logits, seen, settings), settings, generator)  # (1,)
        out.append(int(token[0]))
        if out[-1] in eos:
            return out, "EOS"
        seen = torch.cat([seen, token[:, None]], dim=1)
        logits = _forward(tm, token[:, None], cache)
    return out, "max_new_tokens"


def chat_turn(tm, history, user: str, settings: ChatSettings, system: str | None = None) -> ChatTurn:
    """One turn: fit the history to the window, send it, and append the reply to the history.
    Temperature 0 (the default) answers greedily; above 0 the reply is sampled with the seed."""
    start = time.perf_counter()
    sent = fit_history(tm, history, user, settings, system)
    s = validate(settings)
    if s.temperature > 0:
        ids, reason = sampled_reply(tm, sent.ids, sent.reserve, s.sampling())
    else:
        ids, reason = greedy_reply(tm, sent.ids, sent.reserve)
    reply = tm.tokenizer.decode(ids, skip_special_tokens=True).strip()
    turns = sent.history + [{"user": user, "assistant": reply[:MAX_MESSAGE_CHARS]}]
    return ChatTurn(sent, reply, len(ids), reason, time.perf_counter() - start, turns[-MAX_TURNS:])


# A scripted conversation: a fact, an unrelated turn, then the question. At 256 tokens every turn
# is sent and the model answers with the code; at 128 the fact's turn no longer fits and is
# dropped, and the model cannot give the code. tests/test_decoding_chat.py replays it.
FACT = "4417"
FORGETTING = ("The secret code is 4417.", "Name three fruits.", "What is the secret code?")
FORGETTING_WINDOWS = (256, 128)  # remembers, forgets
FORGETTING_ANSWER = 32


def play(tm, script, settings: ChatSettings) -> list[ChatTurn]:
    """Each message of a script in turn, each reply added to the history before the next."""
    history: list[dict] = []
    out = []
    for message in script:
        turn = chat_turn(tm, history, message, settings)
        history = turn.history
        out.append(turn)
    return out


__all__ = ["ChatSettings", "check_history", "messages", "render", "render_ids", "fit_history", "SentPrompt",
           "chat_turn", "ChatTurn", "greedy_reply", "sampled_reply", "check_system", "MAX_SYSTEM_CHARS", "play", "FORGETTING", "FORGETTING_WINDOWS", "FACT", "MAX_TURNS",
           "MAX_MESSAGE_CHARS"]
