"""Class mode's service: what a host and a student may do, checked on the server for every call
(UI and API alike), over the storage layer (store.py) and the activities (activities.py, checks.py).

Who may do what:
- anyone may create a room (bounded per session and per process) and gets its host key once;
- every host action (open a round, reveal, see answers before the reveal, downloads) needs the
  room's host key, compared with the stored hash;
- a student joins with the code and a nickname and gets a student token; an answer needs the
  room's code and that token, goes to the room's current open round only, and replaces the
  student's earlier answer to that round;
- before the reveal a student sees the question, their own answer and how many have answered.

Limits are per room and per session (a student token or a browser session), never per address:
a whole school class shares one address.
"""
from __future__ import annotations

import collections
import csv
import io
import random
import threading
import time
import unicodedata
from dataclasses import dataclass, field

from ..core.errors import UserInputError, check_choice, check_text
from ..core.settings import make
from . import activities as act
from . import checks
from .store import CODE_ALPHABET, CODE_LENGTH, Store

MAX_NICK_CHARS = 24
MAX_ANSWER_CHARS = 40
MAX_STUDENTS = 100  # per room
MAX_ROOMS = 20  # live rooms made by one app process
LIFETIME_S = 24 * 3600.0  # a room and its answers are deleted a day after it was made
ACTIONS_PER_WINDOW, WINDOW_S = 20, 10.0  # per student token or browser session
DIST_CACHE = 16  # distinct (model, prompt) distributions kept in this process
LIMITS_TEXT = (f"Nicknames: 1 to {MAX_NICK_CHARS} characters, unique in the room. Answers: 1 to {MAX_ANSWER_CHARS} "
               f"characters, one per student per round (a new one replaces it). Up to {MAX_STUDENTS} students a "
               f"room, {MAX_ROOMS} rooms on this server, {ACTIONS_PER_WINDOW} actions per {WINDOW_S:g} s per "
               f"student. A room and its answers are deleted {LIFETIME_S / 3600:g} hours after it was made.")
NICK_WORDS = ("Brave", "Calm", "Clever", "Eager", "Happy", "Lucky", "Quick", "Quiet", "Sunny", "Witty")
NICK_ANIMALS = ("Otter", "Falcon", "Panda", "Lynx", "Koala", "Heron", "Tiger", "Gecko", "Bison", "Robin")


class HostKeyError(UserInputError):
    """A host action without the room's host key."""


class NotInRoom(UserInputError):
    """A student call with no valid student token for that room."""


def check_code(code) -> str:
    code = check_text("room code", code, max_chars=16).strip().upper()
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        raise UserInputError(f"room code {code[:16]!r} is not a room code: {CODE_LENGTH} letters and digits, "
                             "as the projector shows it.")
    return code


def check_nickname(nickname) -> str:
    nick = unicodedata.normalize("NFC", check_text("nickname", nickname, max_chars=MAX_NICK_CHARS * 4)).strip()
    if not 1 <= len(nick) <= MAX_NICK_CHARS:
        raise UserInputError(f"nickname {nick[:40]!r} is {len(nick)} characters: give 1 to {MAX_NICK_CHARS}.")
    if any(unicodedata.category(ch)[0] == "C" for ch in nick):
        raise UserInputError(f"nickname {nick!r} holds a control or invisible character: use letters, digits, "
                             "spaces and punctuation.")
    return nick


def suggest_nickname(rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    return f"{rng.choice(NICK_WORDS)} {rng.choice(NICK_ANIMALS)} {rng.randint(10, 99)}"


class RateLimit:
    """At most `n` actions per `window` seconds per key (a student token or a session)."""

    def __init__(self, n: int = ACTIONS_PER_WINDOW, window: float = WINDOW_S):
        self.n, self.window = n, window
        self._seen: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def check(self, key: str, what: str = "actions") -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:  # forget idle keys
                self._seen = {k: q for k, q in self._seen.items() if q and now - q[-1] < self.window}
            q = self._seen.setdefault(key, collections.deque())
            while q and now - q[0] > self.window:
                q.popleft()
            if len(q) >= self.n:
                raise UserInputError(f"too many {what}: at most {self.n} every {self.window:g} s. Wait a moment.")
            q.append(now)


@dataclass
class Classroom:
    """One per app process (engine.classroom): the store, the distribution cache and the limits."""

    engine: object
    url: str
    _store: Store | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _dists: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    model_calls: int = 0  # forward passes (or server requests) made for rounds: the bench reads it
    limit: RateLimit = field(default_factory=RateLimit)

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = Store(self.url)
        return self._store

    # --- rooms and members ------------------------------------------------------------------
    def create_room(self, session: str = "") -> tuple[str, str]:
        self.limit.check(f"create:{session}", "rooms made")
        return self.store.create_room(LIFETIME_S, MAX_ROOMS)

    def _room(self, code) -> str:
        code = check_code(code)
        if self.store.room(code) is None:
            raise UserInputError(f"room {code} does not exist (or has expired): check the code on the projector.")
        return code

    def host(self, code, key) -> str:
        """The room's code when `key` is its host key; else HostKeyError (the same for every wrong key)."""
        code = self._room(code)
        if not self.store.is_host(code, key if isinstance(key, str) else ""):
            raise HostKeyError(f"this needs room {code}'s host key: open the room from its host link.")
        return code

    def join(self, code, nickname, session: str = "") -> tuple[str, str]:
        """(student token, nickname) for a new student in the room."""
        self.limit.check(f"join:{session}", "joins")
        code = self._room(code)
        member, token = self.store.join(code, check_nickname(nickname), MAX_STUDENTS)
        return token, member.nickname

    def student(self, code, token):
        code = self._room(code)
        member = self.store.member(code, token if isinstance(token, str) else "")
        if member is None:
            raise NotInRoom(f"you have not joined room {code} from this page: join with the code and a nickname.")
        return member

    # --- the model's distribution, once per (model, prompt) ---------------------------------
    def _tm(self, model_key: str):
        spec = self.engine.registry.get(model_key)
        if spec.task != "causal-lm":
            raise UserInputError(f"model {model_key!r} is not a causal language model: pick one from the list.")
        return self.engine.load(model_key)

    def distribution(self, model_key: str, prompt: str):
        """(model bundle, raw next-token probabilities): one model call per distinct (model, prompt)
        while it stays in this process's small cache; every student's score or draw reads it."""
        tm = self._tm(model_key)
        key = (model_key, prompt)
        with self._lock:
            if key in self._dists:
                self._dists.move_to_end(key)
                return tm, self._dists[key]
        probs = act.model_probs(tm, prompt)
        with self._lock:
            self.model_calls += 1
            self._dists[key] = probs
            while len(self._dists) > DIST_CACHE:
                self._dists.popitem(last=False)
        return tm, probs

    # --- host: open a round -----------------------------------------------------------------
    def open_predict(self, code, key, prompt, model_key):
        code = self.host(code, key)
        prompt = check_text("prompt", prompt, max_chars=act.MAX_PROMPT_CHARS)
        tm, probs = self.distribution(model_key, prompt)
        public = dict(prompt=prompt, model=model_key, model_title=self.engine.registry.get(model_key).title)
        secret = dict(top=act.top_rows(tm, probs))
        return self.store.open_round(code, "predict", public, secret, act.to_bytes(probs))

    def open_sample(self, code, key, prompt, model_key, temperature, top_k, top_p):
        code = self.host(code, key)
        s = make(act.SamplerSettings, temperature=temperature, top_k=top_k, top_p=top_p)
        prompt = check_text("prompt", prompt, max_chars=act.MAX_PROMPT_CHARS)
        tm, probs = self.distribution(model_key, prompt)
        knobbed = act.after_knobs(probs, s)
        public = dict(prompt=prompt, model=model_key, model_title=self.engine.registry.get(model_key).title,
                      knobs=dict(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p),
                      kept=int((knobbed > 0).sum()), model_rows=act.kept_rows(tm, knobbed))
        return self.store.open_round(code, "sample", public, {}, act.to_bytes(probs))

    def open_vote(self, code, key, prompt, first, second, seed: int | None = None):
        code = self.host(code, key)
        prompt, first, second = act.check_pair(prompt, first, second)
        swap = random.Random(seed).random() < 0.5  # A and B in random order; which is which stays hidden
        a, b = (second, first) if swap else (first, second)
        return self.store.open_round(code, "vote", dict(prompt=prompt, A=a, B=b), dict(a_is=2 if swap else 1))

    def open_check(self, code, key, check_key):
        code = self.host(code, key)
        check_choice("quick check", check_key, list(checks.CHECKS))
        out = checks.build(self._tm(checks.MODEL_KEY), check_key)
        with self._lock:
            self.model_calls += 1
        public = dict(question=out["question"], options=out["options"], check=check_key)
        return self.store.open_round(code, "check", public, dict(right=out["right"], why=out["why"]))

    def reveal(self, code, key) -> None:
        code = self.host(code, key)
        r = self.store.current_round(code)
        if r is None:
            raise UserInputError(f"room {code} has no round yet: open one first.")
        self.store.reveal(r.id)

    # --- students ---------------------------------------------------------------------------
    def _open_round(self, code, token):
        member = self.student(code, token)
        self.limit.check(f"answer:{token}", "answers")
        r = self.store.current_round(member.room)
        if r is None or r.revealed:
            raise UserInputError("no question is open right now: wait for the host to open the next round.")
        return member, r

    def answer(self, code, token, value) -> dict:
        """A student's answer to the open round (a guess, a vote A/B, or a quick check's option)."""
        member, r = self._open_round(code, token)
        value = check_text("answer", value, max_chars=MAX_ANSWER_CHARS * 4).strip()
        if not 1 <= len(value) <= MAX_ANSWER_CHARS:
            raise UserInputError(f"your answer is {len(value)} characters: give 1 to {MAX_ANSWER_CHARS}.")
        if any(unicodedata.category(ch)[0] == "C" for ch in value):  # PostgreSQL refuses NUL in text, too
            raise UserInputError(f"your answer {value!r} holds a control or invisible character: type a word.")
        score = rank = None
        if r.activity == "predict":
            tm = self._tm(r.public["model"])
            score, rank, _ = act.score_guess(tm, act.from_bytes(self.store.dist(r.id)), r.public["prompt"], value)
        elif r.activity == "vote":
            check_choice("vote", value, ["A", "B"])
        elif r.activity == "check":
            check_choice("answer", value, r.public["options"])
            score = 1.0 if value in r.secret["right"] else 0.0
        else:
            raise UserInputError("this round is a sampling round: press Sample instead.")
        self.store.answer(r.id, member.id, value, score, rank)
        return dict(round=r.number, value=value)

    def sample(self, code, token) -> dict:
        """The student's own draw from the round's distribution after the host's knobs."""
        member, r = self._open_round(code, token)
        if r.activity != "sample":
            raise UserInputError("this round is not a sampling round: answer the question instead.")
        tm = self._tm(r.public["model"])
        probs = act.from_bytes(self.store.dist(r.id))
        knobs = make(act.SamplerSettings, **r.public["knobs"])
        knobbed = act.after_knobs(probs, knobs)
        seed = act.round_seed(member.seed, r.number)
        server = act.use_server(tm)
        if server is not None and int((knobbed > 0).sum()) > server.top_n:  # past what the stored top N knows
            tid = act.served_draw(server, tm, r.public["prompt"], knobs, seed)
        else:
            tid = act.draw(knobbed, seed)
        label = act.generation.token_label(tm, tid)[:200]
        p, rank = float(knobbed[tid]), int((probs > probs[tid]).sum()) + 1
        if server is not None and rank > server.top_n:  # a token of the tail: its own probability and rank
            p, rank = act.served_token(server, tm, r.public["prompt"], tid)
        self.store.answer(r.id, member.id, label, p, rank)
        return dict(round=r.number, token=label, p=p, seed=seed)

    # --- what each side sees ----------------------------------------------------------------
    def _results(self, r, answers: list[dict]) -> dict:
        """The round's aggregate results (shown to the host live for sampling, to all after the reveal)."""
        values = [a["value"] for a in answers]
        if r.activity == "predict":
            guesses = collections.Counter(v.strip().lower() for v in values)
            return dict(class_bars=guesses.most_common(12), model_rows=r.secret["top"])
        if r.activity == "sample":
            return dict(class_bars=collections.Counter(values).most_common(12), model_rows=r.public["model_rows"])
        if r.activity == "vote":
            return dict(votes=act.vote_counts(values), kappa=self.kappa(r.room))
        counts = collections.Counter(values)
        return dict(options=[(o, counts[o]) for o in r.public["options"]], right=r.secret["right"], why=r.secret["why"])

    def kappa(self, code: str) -> tuple[float | None, int]:
        """Fleiss' kappa over the room's revealed vote rounds, and how many rounds it covers."""
        items = [act.vote_counts([a["value"] for a in self.store.answers_of(r.id)])
                 for r in self.store.rounds_of(code, "vote") if r.revealed]
        return act.fleiss_kappa(items), len(items)

    def host_view(self, code, key, leaderboard: bool = False) -> dict:
        code = self.host(code, key)
        names = self.store.nicknames(code)
        r = self.store.current_round(code)
        out = dict(code=code, students=list(names.values()), round=None)
        if r is None:
            return out
        answers = self.store.answers_of(r.id)
        out["round"] = dict(number=r.number, activity=r.activity, state=r.state, public=r.public,
                            answered=[a["nickname"] for a in answers], count=len(answers))
        if r.revealed or r.activity == "sample":
            out["results"] = self._results(r, answers)
        if r.revealed and r.activity in ("predict", "check"):
            out["scores"] = sorted(([a["nickname"], a["value"], a["score"], a["rank"]] for a in answers),
                                   key=lambda row: -(row[2] or 0.0))
        if leaderboard:
            out["leaderboard"] = self.leaderboard(code)
        return out

    def leaderboard(self, code: str) -> list[tuple[str, float]]:
        """Sum of each student's scores over the room's revealed predict and check rounds."""
        totals: dict[str, float] = collections.defaultdict(float)
        for r in self.store.rounds_of(code):
            if r.revealed and r.activity in ("predict", "check"):
                for a in self.store.answers_of(r.id):
                    totals[a["nickname"]] += a["score"] or 0.0
        return sorted(totals.items(), key=lambda kv: -kv[1])[:10]

    def student_view(self, code, token) -> dict:
        member = self.student(code, token)
        r = self.store.current_round(member.room)
        out = dict(code=member.room, nickname=member.nickname, round=None)
        if r is None:
            return out
        mine = self.store.answer_of(r.id, member.id)
        out["round"] = dict(number=r.number, activity=r.activity, state=r.state, public=r.public,
                            count=self.store.answer_count(r.id), mine=mine)
        if r.revealed or r.activity == "sample":
            out["results"] = self._results(r, self.store.answers_of(r.id))
        if not r.revealed and mine is not None and r.activity != "sample":
            mine.update(score=None, rank=None)  # a score says whether it was right: only after the reveal
        return out

    # --- downloads --------------------------------------------------------------------------
    def csv_text(self, code, key) -> str:
        """Every answer in the room: round, activity, nickname, answer, score, rank, seconds after the round opened."""
        code = self.host(code, key)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["round", "activity", "nickname", "answer", "score", "rank", "seconds"])
        for r in self.store.rounds_of(code):
            for a in self.store.answers_of(r.id):
                w.writerow([r.number, r.activity, _cell(a["nickname"]), _cell(a["value"]),
                            "" if a["score"] is None else f"{a['score']:.6g}", a["rank"] or "",
                            f"{a['at'] - r.opened:.1f}"])
        return buf.getvalue()

    def votes_jsonl(self, code, key) -> tuple[str, int]:
        """(the room's revealed votes as preference data, number of pairs)."""
        code = self.host(code, key)
        pairs = [(r.public["prompt"], r.public["A"], r.public["B"],
                  act.vote_counts([a["value"] for a in self.store.answers_of(r.id)]))
                 for r in self.store.rounds_of(code, "vote") if r.revealed]
        text = act.preference_jsonl(pairs)
        return text, text.count("\n")


_SHARED = threading.Lock()


def classroom_of(engine) -> Classroom:
    """The app's one Classroom (its store, limits and cache), made on first use and kept on the
    engine: the Class tab and Post-training's "votes of a class room" read the same rooms."""
    with _SHARED:
        room = getattr(engine, "_classroom", None)
        if room is None:
            room = Classroom(engine, engine.config.class_db_url)
            engine._classroom = room
    return room


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading =, +, -, @ would start a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
