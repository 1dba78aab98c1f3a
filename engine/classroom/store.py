"""The one storage layer of class mode: rooms, their students, rounds and answers, as rows in a
database reached through SQLAlchemy Core. The default is a SQLite file in the app's data folder;
the operator's `--class-db postgresql://...` points the same code at PostgreSQL, so several app
processes (replicas) serve one room. No SQL text is written here: every statement is built by
SQLAlchemy, and every value a user sends is a bound parameter.

    rooms    code (join code, primary key), sha-256 of the host key, origin (the process that made it),
             made/expires (epoch seconds), rounds made
    members  one row per student: room, nickname (unique in the room), sha-256 of the student token, seed
    rounds   room, number, activity, state (open / revealed), public and secret JSON, cached model
             distribution (float32 bytes: one model call per round, read by every process)
    answers  round, member, value, score, rank (one per student per round: a resubmission replaces it)
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass

from ..core.errors import UserInputError

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a projector
CODE_LENGTH = 6


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def engine_url(url: str) -> str:
    """A URL as SQLAlchemy takes it: postgresql:// goes through psycopg 3 (the driver in
    requirements.txt), sqlite:/// as it is. Anything else is refused with the forms that work."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite:///", "postgresql+psycopg://")):
        return url
    raise UserInputError(f"class database URL {url.split('://', 1)[0]}://... is not supported: give "
                         "sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DATABASE.")


def _tables():
    import sqlalchemy as sa

    md = sa.MetaData()
    rooms = sa.Table("class_rooms", md,
                     sa.Column("code", sa.String(CODE_LENGTH), primary_key=True),
                     sa.Column("host_hash", sa.String(64), nullable=False),
                     sa.Column("origin", sa.String(32), nullable=False, index=True),
                     sa.Column("made", sa.Float, nullable=False),
                     sa.Column("expires", sa.Float, nullable=False, index=True),
                     sa.Column("rounds", sa.Integer, nullable=False, default=0))
    members = sa.Table("class_members", md,
                       sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                       sa.Column("room", sa.String(CODE_LENGTH), nullable=False, index=True),
                       sa.Column("nickname", sa.String(64), nullable=False),
                       sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
                       sa.Column("seed", sa.BigInteger, nullable=False),
                       sa.Column("joined", sa.Float, nullable=False),
                       sa.UniqueConstraint("room", "nickname", name="uq_class_member_nick"))
    rounds = sa.Table("class_rounds", md,
                      sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                      sa.Column("room", sa.String(CODE_LENGTH), nullable=False, index=True),
                      sa.Column("number", sa.Integer, nullable=False),
                      sa.Column("activity", sa.String(16), nullable=False),
                      sa.Column("state", sa.String(10), nullable=False),
                      sa.Column("public", sa.Text, nullable=False),
                      sa.Column("secret", sa.Text, nullable=False),
                      sa.Column("dist", sa.LargeBinary, nullable=True),
                      sa.Column("opened", sa.Float, nullable=False),
                      sa.UniqueConstraint("room", "number", name="uq_class_round_number"))
    answers = sa.Table("class_answers", md,
                       sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                       sa.Column("round_id", sa.Integer, nullable=False, index=True),
                       sa.Column("member_id", sa.Integer, nullable=False),
                       sa.Column("value", sa.String(256), nullable=False),
                       sa.Column("score", sa.Float, nullable=True),
                       sa.Column("rank", sa.Integer, nullable=True),
                       sa.Column("at", sa.Float, nullable=False),
                       sa.UniqueConstraint("round_id", "member_id", name="uq_class_answer_once"))
    return md, rooms, members, rounds, answers


@dataclass(frozen=True)
class Round:
    id: int
    room: str
    number: int
    activity: str
    state: str
    public: dict
    secret: dict
    opened: float

    @property
    def revealed(self) -> bool:
        return self.state == "revealed"


@dataclass(frozen=True)
class Member:
    id: int
    room: str
    nickname: str
    seed: int


class Store:
    """Rooms, members, rounds and answers in one database (thread-safe: SQLAlchemy's pool)."""

    def __init__(self, url: str):
        import sqlalchemy as sa

        self.url = engine_url(url)
        kw = {}
        if self.url.startswith("sqlite"):  # many threads, one file; wait out a writer
            kw = dict(connect_args={"check_same_thread": False, "timeout": 30})
        else:
            kw = dict(pool_size=8, max_overflow=8, pool_pre_ping=True)
        self.db = sa.create_engine(self.url, **kw)
        if self.url.startswith("sqlite"):
            sa.event.listen(self.db, "connect", _sqlite_pragmas)
        self.md, self.rooms, self.members, self.rounds, self.answers = _tables()
        self.origin = secrets.token_hex(8)  # this process: "rooms per process" counts its own
        self._dist_cache: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self.md.create_all(self.db)

    def close(self) -> None:
        self.db.dispose()

    # --- rooms ------------------------------------------------------------------------------
    def create_room(self, lifetime_s: float, max_rooms: int, now: float | None = None) -> tuple[str, str]:
        """A new room: (join code, host key). The host key is returned once and kept only as a hash."""
        import sqlalchemy as sa

        now = time.time() if now is None else now
        self.purge(now)
        with self.db.begin() as c:
            live = c.execute(sa.select(sa.func.count()).select_from(self.rooms)
                             .where(self.rooms.c.origin == self.origin)).scalar_one()
        if live >= max_rooms:
            raise UserInputError(f"this server already holds {live} rooms, the limit of {max_rooms}: wait until one "
                                 "expires, or ask the operator.")
        key = secrets.token_urlsafe(24)
        for _ in range(20):
            code = new_code()
            try:
                with self.db.begin() as c:
                    c.execute(self.rooms.insert().values(code=code, host_hash=digest(key), origin=self.origin,
                                                         made=now, expires=now + lifetime_s, rounds=0))
                return code, key
            except sa.exc.IntegrityError:
                continue  # that code is taken: draw another
        raise RuntimeError("no free room code after 20 draws")

    def room(self, code: str, now: float | None = None):
        """The room's row (a mapping) or None when there is none or it has expired."""
        import sqlalchemy as sa

        now = time.time() if now is None else now
        with self.db.connect() as c:
            row = c.execute(sa.select(self.rooms).where(self.rooms.c.code == code)).mappings().first()
        return row if row is not None and row["expires"] > now else None

    def is_host(self, code: str, key: str) -> bool:
        row = self.room(code)
        return row is not None and isinstance(key, str) and hmac.compare_digest(row["host_hash"], digest(key))

    def purge(self, now: float | None = None) -> int:
        """Delete every expired room with its members, rounds and answers; the number of rooms deleted."""
        import sqlalchemy as sa

        now = time.time() if now is None else now
        with self.db.begin() as c:
            codes = [r[0] for r in c.execute(sa.select(self.rooms.c.code).where(self.rooms.c.expires <= now))]
            if not codes:
                return 0
            round_ids = sa.select(self.rounds.c.id).where(self.rounds.c.room.in_(codes)).scalar_subquery()
            c.execute(self.answers.delete().where(self.answers.c.round_id.in_(round_ids)))
            c.execute(self.rounds.delete().where(self.rounds.c.room.in_(codes)))
            c.execute(self.members.delete().where(self.members.c.room.in_(codes)))
            c.execute(self.rooms.delete().where(self.rooms.c.code.in_(codes)))
        return len(codes)

    def counts(self) -> dict:
        """Rows in each table (tests: an expired room is gone with everything it held)."""
        import sqlalchemy as sa

        with self.db.connect() as c:
            return {t.name: c.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for t in (self.rooms, self.members, self.rounds, self.answers)}

    # --- members ----------------------------------------------------------------------------
    def join(self, code: str, nickname: str, max_members: int) -> tuple[Member, str]:
        """A new student in the room: (member, student token). The nickname must be free in the room."""
        import sqlalchemy as sa

        token = secrets.token_urlsafe(18)
        seed = secrets.randbelow(2**31)
        with self.db.begin() as c:
            n = c.execute(sa.select(sa.func.count()).select_from(self.members)
                          .where(self.members.c.room == code)).scalar_one()
            if n >= max_members:
                raise UserInputError(f"room {code} is full: {n} students have joined, the limit is {max_members}.")
        try:
            with self.db.begin() as c:
                mid = c.execute(self.members.insert().values(room=code, nickname=nickname, token_hash=digest(token),
                                                             seed=seed, joined=time.time())).inserted_primary_key[0]
        except sa.exc.IntegrityError:
            raise UserInputError(f"the nickname {nickname!r} is taken in room {code}: choose another.") from None
        return Member(int(mid), code, nickname, seed), token

    def member(self, code: str, token: str) -> Member | None:
        import sqlalchemy as sa

        if not isinstance(token, str) or not token:
            return None
        with self.db.connect() as c:
            row = c.execute(sa.select(self.members).where(self.members.c.token_hash == digest(token),
                                                          self.members.c.room == code)).mappings().first()
        return None if row is None else Member(row["id"], row["room"], row["nickname"], row["seed"])

    def nicknames(self, code: str) -> dict[int, str]:
        import sqlalchemy as sa

        with self.db.connect() as c:
            rows = c.execute(sa.select(self.members.c.id, self.members.c.nickname)
                             .where(self.members.c.room == code).order_by(self.members.c.id))
            return {r[0]: r[1] for r in rows}

    # --- rounds -----------------------------------------------------------------------------
    def open_round(self, code: str, activity: str, public: dict, secret: dict, dist: bytes | None = None) -> Round:
        """The room's next round, open for answers (the earlier one is closed by being earlier)."""
        import sqlalchemy as sa

        with self.db.begin() as c:
            number = c.execute(sa.select(self.rooms.c.rounds).where(self.rooms.c.code == code)
                               .with_for_update()).scalar_one() + 1
            c.execute(self.rooms.update().where(self.rooms.c.code == code).values(rounds=number))
            rid = c.execute(self.rounds.insert().values(
                room=code, number=number, activity=activity, state="open", public=json.dumps(public),
                secret=json.dumps(secret), dist=dist, opened=time.time())).inserted_primary_key[0]
        return Round(int(rid), code, number, activity, "open", public, secret, time.time())

    def current_round(self, code: str) -> Round | None:
        import sqlalchemy as sa

        r = self.rounds.c
        with self.db.connect() as c:
            row = c.execute(sa.select(r.id, r.room, r.number, r.activity, r.state, r.public, r.secret, r.opened)
                            .where(r.room == code).order_by(r.number.desc()).limit(1)).mappings().first()
        if row is None:
            return None
        return Round(row["id"], row["room"], row["number"], row["activity"], row["state"], json.loads(row["public"]),
                     json.loads(row["secret"]), row["opened"])

    def rounds_of(self, code: str, activity: str | None = None) -> list[Round]:
        import sqlalchemy as sa

        r = self.rounds.c
        q = sa.select(r.id, r.room, r.number, r.activity, r.state, r.public, r.secret, r.opened).where(r.room == code)
        if activity:
            q = q.where(r.activity == activity)
        with self.db.connect() as c:
            rows = c.execute(q.order_by(r.number)).mappings().all()
        return [Round(x["id"], x["room"], x["number"], x["activity"], x["state"], json.loads(x["public"]),
                      json.loads(x["secret"]), x["opened"]) for x in rows]

    def dist(self, round_id: int) -> bytes | None:
        """The round's cached model distribution; read from the database once per process."""
        import sqlalchemy as sa

        with self._lock:
            if round_id in self._dist_cache:
                return self._dist_cache[round_id]
        with self.db.connect() as c:
            blob = c.execute(sa.select(self.rounds.c.dist).where(self.rounds.c.id == round_id)).scalar_one_or_none()
        with self._lock:
            if len(self._dist_cache) >= 64:
                self._dist_cache.pop(next(iter(self._dist_cache)))
            self._dist_cache[round_id] = blob
        return blob

    def reveal(self, round_id: int) -> None:
        with self.db.begin() as c:
            c.execute(self.rounds.update().where(self.rounds.c.id == round_id).values(state="revealed"))

    # --- answers ----------------------------------------------------------------------------
    def answer(self, round_id: int, member_id: int, value: str, score: float | None = None,
               rank: int | None = None) -> bool:
        """Store a student's answer to a round; a second one replaces the first. True if it was new."""
        import sqlalchemy as sa

        a = self.answers.c
        values = dict(value=value, score=score, rank=rank, at=time.time())
        where = (a.round_id == round_id) & (a.member_id == member_id)
        for _ in range(3):
            with self.db.begin() as c:
                if c.execute(self.answers.update().where(where).values(**values)).rowcount:
                    return False
            try:
                with self.db.begin() as c:
                    c.execute(self.answers.insert().values(round_id=round_id, member_id=member_id, **values))
                return True
            except sa.exc.IntegrityError:
                continue  # the same student's other request inserted first: update it
        raise RuntimeError("answer could not be stored")

    def answers_of(self, round_id: int) -> list[dict]:
        """[{member_id, nickname, value, score, rank, at}] in the order they came."""
        import sqlalchemy as sa

        a, m = self.answers.c, self.members.c
        q = (sa.select(a.member_id, m.nickname, a.value, a.score, a.rank, a.at)
             .join_from(self.answers, self.members, a.member_id == m.id)
             .where(a.round_id == round_id).order_by(a.at, a.id))
        with self.db.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def answer_of(self, round_id: int, member_id: int) -> dict | None:
        import sqlalchemy as sa

        a = self.answers.c
        with self.db.connect() as c:
            row = c.execute(sa.select(a.value, a.score, a.rank).where(a.round_id == round_id,
                                                                       a.member_id == member_id)).mappings().first()
        return None if row is None else dict(row)

    def answer_count(self, round_id: int) -> int:
        import sqlalchemy as sa

        with self.db.connect() as c:
            return c.execute(sa.select(sa.func.count()).select_from(self.answers)
                             .where(self.answers.c.round_id == round_id)).scalar_one()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    """WAL: readers (every student's refresh) never wait for the writer; a writer waits its turn."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
