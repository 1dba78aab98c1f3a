"""Indexing and retrieval: chunk -> embed (MiniLM, through engine.embeddings) -> upsert into
Qdrant; then dense (cosine), sparse (TF-IDF from scikit-learn) and hybrid (reciprocal-rank
fusion computed by Qdrant) search, side by side.

A Library is made once per process (the tab's build() makes one): it owns the Qdrant client,
the bundled corpus's indexes (one per chunk setting, built on first use and shared read-only
by every session, a few kept), and hands out Sessions. A Session is one browser session's own
collection of uploaded documents; close() drops it (the tab calls it when the session ends).
"""
from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import UserInputError, check_range, check_text
from ..core.models import Progress, no_progress
from ..core.settings import knob
from ..embeddings import vectors
from . import chunking, corpus, shipped
from .index import VectorStore

METHODS = ("dense", "sparse", "hybrid")
EMBED_BATCH = 32
MAX_QUERY_CHARS = 500
BUNDLED_SETTINGS_KEPT = 4  # indexes of the bundled corpus kept per process (one per chunk setting)
# The per-process pool of upload collections. Sessions not opened from the app's page (scripts,
# gradio_client: every /call/ request is a session of its own) may hold only MAX_API_SESSIONS of
# its slots, and theirs expire sooner, so that a script cannot crowd out a class. A session that
# holds no document (after Clear, or when its first upload failed) leaves its slot soon.
MAX_SESSIONS = 200  # live upload collections per process
MAX_API_SESSIONS = 50  # of those, sessions not opened from the app's page
API_IDLE_S = 600.0  # such a session's uploads are dropped after 10 minutes unused (the page's after an hour)
EMPTY_IDLE_S = 60.0  # a session without documents leaves the pool after a minute unused


@dataclass
class SearchSettings:
    top_k: int = knob(5, 1, 20, "How many chunks each method returns", step=1, label="top-k")
    threshold: float = knob(0.0, 0.0, 1.0, "Dense results (and hybrid's dense candidates) below this "
                            "cosine similarity are dropped (0 = off)", step=0.05, label="score threshold (cosine)")
    rrf_k: int = knob(60, 1, 100, "Reciprocal-rank fusion: a chunk at 0-based position p in a list "
                      "scores 1 / (k + p); a larger k flattens the rank differences", step=1, label="RRF constant k")
    candidates: int = knob(20, 5, 100, "How many chunks dense and sparse each hand to the fusion",
                           step=5, label="hybrid candidates per list")


def embed(engine, texts: list[str], progress: Progress = no_progress, what: str = "chunks") -> np.ndarray:
    """Unit-length MiniLM sentence embeddings (n, 384), in batches with progress."""
    bundle = vectors.encoder(engine, progress)
    out = []
    for start in range(0, len(texts), EMBED_BATCH):
        progress(start / max(len(texts), 1), f"Embedding {what}: {start}/{len(texts)}")
        out.append(vectors.sentence_embeddings(bundle, texts[start:start + EMBED_BATCH], batch_size=EMBED_BATCH))
    return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


def tokenizer(engine, progress: Progress = no_progress):
    return vectors.encoder(engine, progress).tokenizer


def fit_sparse(texts: list[str]):
    """A TF-IDF vectorizer fitted on the chunks, and each chunk's (indices, values)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    try:
        matrix = vec.fit_transform(texts).tocsr()  # (chunks, vocab), rows L2-normalised
    except ValueError:  # no word that is not a stop word
        vec = TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
        matrix = vec.fit_transform(texts).tocsr()
    rows = [(matrix.indices[matrix.indptr[i]:matrix.indptr[i + 1]], matrix.data[matrix.indptr[i]:matrix.indptr[i + 1]])
            for i in range(matrix.shape[0])]
    return vec, rows


def sparse_query(vectorizer, query: str):
    row = vectorizer.transform([query]).tocsr()
    return row.indices, row.data


@dataclass
class KnowledgeBase:
    """One Qdrant collection and what was put in it."""

    name: str
    store: VectorStore
    docs: tuple
    settings: chunking.ChunkSettings
    chunks: list
    dense: np.ndarray  # (chunks, dim), unit rows, as upserted
    vectorizer: object
    seconds: float = 0.0
    shared: bool = False
    shipped_vectors: bool = False  # the dense vectors were read from assets/rag/vectors (checked), not computed now

    def hit(self, rank: int, point) -> dict:
        p = point.payload
        return dict(rank=rank, id=int(point.id), score=round(float(point.score), 5), doc_id=p["doc_id"],
                    title=p["title"], chunk=p["chunk"], tokens=p["tokens"], text=p["text"])

    def info(self) -> dict:
        out = self.store.info(self.name)
        out.update(documents=len(self.docs), chunk_settings=dict(size=self.settings.size, overlap=self.settings.overlap,
                                                                 strategy=self.settings.strategy),
                   indexed_in_s=round(self.seconds, 2),
                   dense_vectors="read from the shipped file (checked)" if self.shipped_vectors else "computed now",
                   over_256_tokens=sum(c.n_tokens > EMBED_LIMIT for c in self.chunks))
        return out


EMBED_LIMIT = vectors.MAX_PASSAGE_TOKENS - 2  # MiniLM reads 256 tokens, [CLS] and [SEP] included
# Chunks one index may hold: each is embedded by MiniLM (5-20 chunks/s on a class server's 2 cores).
# A session's own files are its own work; the bundled documents are indexed once per chunking and
# shared by the class (the default chunking gives ~900 chunks, the sweep's smallest size ~1,900).
MAX_UPLOAD_CHUNKS = 300
MAX_BUNDLED_CHUNKS = 2_000


def check_chunk_count(n: int, settings: chunking.ChunkSettings, shared: bool) -> None:
    """Refuse an index of more chunks than its limit, before any is embedded."""
    limit = MAX_BUNDLED_CHUNKS if shared else MAX_UPLOAD_CHUNKS
    if n > limit:
        what = "The bundled documents give" if shared else "Your files give"
        raise UserInputError(f"{what} {n:,} chunks at chunk size {settings.size} with overlap {settings.overlap}: "
                             f"{'an index of them' if shared else 'your files'} may have at most {limit:,} chunks. "
                             f"Choose a larger chunk size or less overlap{'' if shared else ', or upload less text'}.")


def build(engine, store: VectorStore, name: str, docs, settings: chunking.ChunkSettings,
          progress: Progress = no_progress, shared: bool = False) -> KnowledgeBase:
    """Chunk, embed and upsert `docs` into a fresh collection `name`. The bundled corpus
    (shared) reads its vectors from the shipped file where one fits (engine.retrieval.shipped)."""
    t0 = time.perf_counter()
    tok = tokenizer(engine, progress)
    progress(0.0, "Chunking...")
    chunks = chunking.chunk_documents(tok, docs, settings)
    if not chunks:
        raise UserInputError("These documents give no chunks: upload a file with some text.")
    check_chunk_count(len(chunks), settings, shared)
    titles = {d.doc_id: d.title for d in docs}
    dense = shipped.load(settings.key, chunks, lambda texts: embed(engine, texts)) if shared else None
    from_file = dense is not None
    if dense is None:
        dense = embed(engine, [c.text for c in chunks], progress)
    vectorizer, sparse_rows = fit_sparse([c.text for c in chunks])
    progress(0.95, f"Upserting {len(chunks)} points into Qdrant...")
    store.create(name, int(dense.shape[1]))
    payloads = [dict(doc_id=c.doc_id, title=titles[c.doc_id], chunk=c.index, start=c.start, end=c.end,
                     tokens=c.n_tokens, text=c.text) for c in chunks]
    store.upsert(name, range(len(chunks)), dense, sparse_rows, payloads)
    progress(1.0, f"Indexed {len(chunks)} chunks")
    return KnowledgeBase(name, store, tuple(docs), settings, chunks, dense, vectorizer,
                         time.perf_counter() - t0, shared, from_file)


def check_query(query: str) -> str:
    return check_text("query", query, max_chars=MAX_QUERY_CHARS).strip()


def run_search(kb: KnowledgeBase, query_vec: np.ndarray, query: str, s: SearchSettings) -> dict:
    """The three rankings for one query (its embedding given), each a list of hits."""
    threshold = s.threshold if s.threshold > 0 else None
    dense = kb.store.dense(kb.name, query_vec, s.top_k, threshold)
    si, sv = sparse_query(kb.vectorizer, query)
    sparse = kb.store.sparse(kb.name, si, sv, s.top_k) if len(si) else []
    # no query word in the vocabulary: the fusion has the dense list alone
    hybrid = kb.store.hybrid(kb.name, query_vec, si, sv, s.top_k, max(s.candidates, s.top_k), s.rrf_k, threshold)
    return dict(query=query, settings=dict(top_k=s.top_k, threshold=s.threshold, rrf_k=s.rrf_k,
                                           candidates=s.candidates),
                dense=[kb.hit(r + 1, p) for r, p in enumerate(dense)],
                sparse=[kb.hit(r + 1, p) for r, p in enumerate(sparse)],
                hybrid=[kb.hit(r + 1, p) for r, p in enumerate(hybrid)],
                sparse_terms=[kb.vectorizer.get_feature_names_out()[i] for i in si][:20])


def search(engine, kb: KnowledgeBase, query: str, settings: SearchSettings | None = None,
           progress: Progress = no_progress) -> dict:
    query = check_query(query)
    s = settings or SearchSettings()
    qvec = embed(engine, [query], progress, what="the query")[0]  # (dim,)
    out = run_search(kb, qvec, query, s)
    out["query_vector"] = qvec
    return out


def pca_map(kb: KnowledgeBase, query_vec: np.ndarray, retrieved: list[int]) -> dict:
    """2D PCA of the chunk embeddings with the query projected on the same axes."""
    x = kb.dense  # (chunks, dim)
    mean = x.mean(axis=0, keepdims=True)
    _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = np.zeros((2, x.shape[1]), dtype=x.dtype)  # one chunk has no second axis: PC2 stays 0
    axes[:min(2, len(vt))] = vt[:2]
    total = max(float((sv ** 2).sum()), 1e-12)  # the variance of every component, not of the first two
    sv = np.concatenate([sv[:2], np.zeros(max(0, 2 - len(sv)))])
    xy = (x - mean) @ axes.T  # (chunks, 2)
    q = (query_vec[None, :] - mean) @ axes.T  # (1, 2)
    return dict(x=xy[:, 0].tolist(), y=xy[:, 1].tolist(), doc=[c.doc_id for c in kb.chunks],
                label=[f"{c.doc_id} #{c.index}" for c in kb.chunks], query=q[0].tolist(), retrieved=list(retrieved),
                explained=(sv ** 2 / total).tolist())


@dataclass
class Session:
    """One browser session's uploads: its own collection, dropped by close()."""

    library: "Library"
    name: str
    docs: list = field(default_factory=list)
    kb: KnowledgeBase | None = None
    closed: bool = False
    from_page: bool = True  # opened from the app's page (else: a script or API client)
    last_used: float = 0.0  # library.clock() at the last call that used it
    busy: int = 0  # calls using it now (never expired while > 0)

    @contextlib.contextmanager
    def _in_use(self):
        with self.library._lock:  # two calls of one session may overlap
            self.busy += 1
            self.last_used = self.library.clock()
        try:
            yield
        finally:
            with self.library._lock:
                self.busy -= 1
                self.last_used = self.library.clock()

    def add(self, paths, settings: chunking.ChunkSettings, progress: Progress = no_progress) -> KnowledgeBase:
        with self._in_use():
            chars = sum(len(d.text) for d in self.docs)
            new = corpus.read_uploads(paths, already=len(self.docs), chars_before=chars)
            self.docs.extend(new)
            try:
                return self.index(settings, progress)
            except UserInputError:  # e.g. too many chunks: the session keeps only what it had
                del self.docs[len(self.docs) - len(new):]
                raise

    def index(self, settings: chunking.ChunkSettings, progress: Progress = no_progress) -> KnowledgeBase:
        if self.closed:
            raise UserInputError("This session's uploads were cleared when it expired: upload your files again.")
        if not self.docs:
            raise UserInputError("No uploaded documents yet: upload 1 to "
                                 f"{corpus.MAX_FILES} files ({', '.join(corpus.EXTENSIONS)}).")
        with self._in_use():
            if self.kb is None or self.kb.settings.key != settings.key or len(self.kb.docs) != len(self.docs):
                self.kb = build(self.library.engine, self.library.store, self.name, self.docs, settings, progress)
            return self.kb

    def clear(self) -> None:
        with self._in_use():
            self.library.store.drop(self.name)
            self.docs.clear()
            self.kb = None

    def idle_limit(self) -> float:
        """Seconds unused after which the pool drops this session."""
        return EMPTY_IDLE_S if not self.docs else (float("inf") if self.from_page else API_IDLE_S)

    def close(self) -> None:
        """Drop the collection (called when the browser session ends or its state expires)."""
        if not self.closed:
            self.closed = True
            self.library.store.drop(self.name)
            self.library.forget(self)
            self.kb = None
            self.docs = []

    def __deepcopy__(self, memo):  # Gradio may copy state values; a session is a handle, not data
        return self


class Library:
    """Per process: the Qdrant client, the shared bundled indexes, the live sessions."""

    def __init__(self, engine, store: VectorStore | None = None, keep: int = BUNDLED_SETTINGS_KEPT,
                 clock=time.monotonic):
        self.engine = engine
        self.clock = clock  # seconds; the tests pass their own
        if store is None:  # the operator's Qdrant server (engine.config), else Qdrant inside this process
            store = VectorStore(url=engine.config.qdrant_url, api_key=engine.config.qdrant_api_key)
        self.store = store
        self.keep = keep
        self._bundled: OrderedDict[tuple, KnowledgeBase] = OrderedDict()
        self._locks: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self.prefix = f"llmpg-{uuid.uuid4().hex[:8]}"  # several app processes may share one server

    def bundled(self, settings: chunking.ChunkSettings, progress: Progress = no_progress) -> KnowledgeBase:
        """The bundled corpus indexed with these chunk settings: built once, then shared."""
        key = settings.key
        with self._lock:
            kb = self._bundled.get(key)
            if kb is not None:
                self._bundled.move_to_end(key)
                return kb
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one build per setting, however many sessions ask at once
            with self._lock:
                kb = self._bundled.get(key)
            if kb is None:
                name = f"{self.prefix}-docs-{settings.size}-{settings.overlap}-{settings.strategy.split()[0]}"
                kb = build(self.engine, self.store, name, corpus.bundled(), settings, progress, shared=True)
                with self._lock:
                    self._bundled[key] = kb
                    while len(self._bundled) > self.keep:
                        _, old = self._bundled.popitem(last=False)
                        self.store.drop(old.name)
            return kb

    def session(self, from_page: bool = True) -> Session:
        """A new upload session. from_page: opened from the app's page; scripts and API clients
        (from_page=False) share MAX_API_SESSIONS of the pool. Idle sessions past their limit
        (Session.idle_limit) are dropped first."""
        self.expire()
        with self._lock:
            api = sum(not s.from_page for s in self._sessions.values())
            if not from_page and api >= MAX_API_SESSIONS:
                raise UserInputError(f"{MAX_API_SESSIONS} sessions not opened from the app's page hold uploads on "
                                     f"this server now (their limit): try again in {API_IDLE_S / 60:.0f} minutes, "
                                     "or use the bundled documents.")
            if len(self._sessions) >= MAX_SESSIONS:
                raise UserInputError(f"{MAX_SESSIONS} sessions hold uploads on this server now: try again later "
                                     "or use the bundled documents.")
            s = Session(self, f"{self.prefix}-session-{uuid.uuid4().hex}", from_page=from_page,
                        last_used=self.clock())
            self._sessions[s.name] = s
            return s

    def upload(self, session: Session | None, paths, settings: chunking.ChunkSettings,
               progress: Progress = no_progress, from_page: bool = True) -> tuple[Session, KnowledgeBase]:
        """Add uploads to `session`, or to a new one when it is None or expired. A new session
        whose first upload fails is closed at once: it holds no slot of the pool."""
        new = session is None or session.closed
        if new:
            session = self.session(from_page)
        try:
            return session, session.add(paths, settings, progress)
        except BaseException:
            if new:
                session.close()
            raise

    def expire(self) -> int:
        """Close the sessions unused for longer than their idle limit; returns how many."""
        now = self.clock()
        with self._lock:
            old = [s for s in self._sessions.values() if not s.busy and now - s.last_used > s.idle_limit()]
        for s in old:
            s.close()
        return len(old)

    def forget(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.name, None)

    @property
    def sessions(self) -> int:
        with self._lock:
            return len(self._sessions)


def close_session(value) -> None:
    """For gr.State(delete_callback=...): drop a Session's collection; ignore anything else."""
    if isinstance(value, Session):
        value.close()


__all__ = ["Library", "Session", "KnowledgeBase", "SearchSettings", "build", "search",
           "run_search", "embed", "pca_map", "close_session", "METHODS", "check_range"]
