"""The vector database: Qdrant through the official qdrant-client.

By default Qdrant runs inside this process (qdrant-client's local mode, QdrantClient(":memory:"),
or path=... to keep it on disk): nothing to start. An operator points the same code at a Qdrant
server or cluster with LLM_PLAYGROUND_QDRANT_URL (and LLM_PLAYGROUND_QDRANT_API_KEY if it needs
one), read into engine.config (AppConfig.qdrant_url/qdrant_api_key); every call below is the
same in both modes.

Each collection holds one point per chunk with two named vectors: "dense" (the MiniLM sentence
embedding, cosine distance) and "sparse" (the chunk's TF-IDF weights, dot product), and the
chunk as payload.
"""
from __future__ import annotations

import threading
from contextlib import nullcontext

DENSE, SPARSE = "dense", "sparse"
UPSERT_BATCH = 256


def make_client(url: str | None = None, path: str | None = None, api_key: str | None = None):
    """A QdrantClient: for `url` (the operator's AppConfig.qdrant_url, already checked) a server
    client; otherwise the embedded engine, on disk under `path` or in memory."""
    from qdrant_client import QdrantClient

    if url:
        return QdrantClient(url=url, api_key=api_key or None, timeout=30)
    if path:
        return QdrantClient(path=str(path))
    return QdrantClient(":memory:")


def is_local(client) -> bool:
    from qdrant_client.local.qdrant_local import QdrantLocal

    return isinstance(getattr(client, "_client", None), QdrantLocal)


class VectorStore:
    """One client for the process, and the lock its embedded mode needs (local mode keeps plain
    Python dicts; a server serialises on its own).

    Without a client, it is made on first use from url/api_key (a server) or in memory: importing
    qdrant-client takes seconds, and the app's start must not wait for a tab nobody opened yet."""

    def __init__(self, client=None, url: str | None = None, api_key: str | None = None):
        self._client = client
        self._url, self._api_key = url, api_key
        self._lock = threading.RLock()

    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = make_client(self._url, api_key=self._api_key)
        return self._client

    @property
    def local(self) -> bool:
        if self._client is None:  # not made yet: a URL means a server, else the embedded engine
            return not self._url
        return is_local(self._client)

    def guard(self):
        return self._lock if self.local else nullcontext()

    @property
    def mode(self) -> str:
        return "embedded (in this process)" if self.local else "server"

    def create(self, name: str, dim: int) -> None:
        from qdrant_client import models

        with self.guard():
            if self.client.collection_exists(name):
                self.client.delete_collection(name)
            self.client.create_collection(
                name, vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams()})

    def upsert(self, name: str, ids, dense, sparse_rows, payloads) -> None:
        """dense: (n, dim) array; sparse_rows: [(indices, values)] per point."""
        from qdrant_client import models

        points = [models.PointStruct(id=int(i), payload=p,
                                     vector={DENSE: d.tolist(),
                                             SPARSE: models.SparseVector(indices=list(map(int, si)),
                                                                         values=list(map(float, sv)))})
                  for i, d, (si, sv), p in zip(ids, dense, sparse_rows, payloads)]
        with self.guard():
            for start in range(0, len(points), UPSERT_BATCH):
                self.client.upsert(name, points[start:start + UPSERT_BATCH], wait=True)

    def drop(self, name: str) -> None:
        with self.guard():
            if self.client.collection_exists(name):
                self.client.delete_collection(name)

    def names(self) -> list[str]:
        with self.guard():
            return sorted(c.name for c in self.client.get_collections().collections)

    def dense(self, name: str, vector, limit: int, threshold: float | None = None):
        with self.guard():
            return self.client.query_points(name, query=list(map(float, vector)), using=DENSE, limit=limit,
                                            score_threshold=threshold, with_payload=True).points

    def sparse(self, name: str, indices, values, limit: int):
        from qdrant_client import models

        q = models.SparseVector(indices=list(map(int, indices)), values=list(map(float, values)))
        with self.guard():
            return self.client.query_points(name, query=q, using=SPARSE, limit=limit, with_payload=True).points

    def hybrid(self, name: str, vector, indices, values, limit: int, candidates: int, rrf_k: int,
               threshold: float | None = None):
        """Reciprocal-rank fusion of a dense and a sparse prefetch, computed by Qdrant."""
        from qdrant_client import models

        prefetch = [models.Prefetch(query=list(map(float, vector)), using=DENSE, limit=candidates,
                                    score_threshold=threshold)]
        if len(indices):  # a query with no known word has no sparse list to fuse
            q = models.SparseVector(indices=list(map(int, indices)), values=list(map(float, values)))
            prefetch.append(models.Prefetch(query=q, using=SPARSE, limit=candidates))
        with self.guard():
            return self.client.query_points(name, prefetch=prefetch, query=models.RrfQuery(rrf=models.Rrf(k=rrf_k)),
                                            limit=limit, with_payload=True).points

    def info(self, name: str) -> dict:
        """What the collection holds: points, vectors (size, distance), and one point's payload."""
        with self.guard():
            info = self.client.get_collection(name)
            count = self.client.count(name, exact=True).count
            sample = self.client.retrieve(name, ids=[0], with_payload=True, with_vectors=True)
        params = info.config.params
        vectors = params.vectors or {}
        dense = vectors.get(DENSE) if isinstance(vectors, dict) else vectors
        out = dict(collection=name, mode=self.mode, points=count,
                   dense=dict(name=DENSE, size=dense.size if dense else None,
                              distance=str(dense.distance.value) if dense else None),
                   sparse=dict(name=SPARSE, distance="Dot"))
        if sample:
            p = sample[0]
            vec = p.vector or {}
            payload = dict(p.payload or {})
            if len(payload.get("text", "")) > 160:
                payload["text"] = payload["text"][:160] + "…"
            sp = vec.get(SPARSE)
            out["sample_point"] = dict(id=p.id, payload=payload,
                                       dense_first_8=[round(x, 4) for x in (vec.get(DENSE) or [])[:8]],
                                       sparse_nonzero=len(sp.indices) if sp is not None else 0)
        return out
