"""MiniLM vectors of the bundled corpus, shipped in assets/rag/vectors/ for the default chunk
settings (scripts/build_rag_vectors.py makes them), so the first index of the bundled documents
and the chunk-size sweep read ~3,500 vectors instead of embedding them (minutes on 2 cores).

A file is used only when every check passes; otherwise the chunks are embedded as before:
- the manifest has an entry for these chunk settings, made from the same chunks (a digest of the
  chunks cut now: same corpus, tokenizer and chunking code);
- the file's SHA-256 is the manifest's; it is a plain float32 .npy (chunks, dim), read without
  pickles; every number in it is finite and every row has unit length;
- the encoder loaded now gives the same vectors for a sample of the chunks (within TOLERANCE),
  so a file never stands in for a different model.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from . import corpus

VECTORS_DIR = corpus.CORPUS_DIR / "vectors"
MANIFEST = "manifest.json"
# fixed-token chunkings shipped: (size, overlap), quality.SWEEP_SIZES at a quarter overlap; the
# tab's default (128, 32) is among them
SETTINGS = ((64, 16), (128, 32), (256, 64), (384, 96))
STRATEGY = "fixed tokens"
TOLERANCE = 1e-4  # per coordinate of a unit vector; batching alone moves them by ~1e-6
log = logging.getLogger(__name__)


def file_name(key: tuple) -> str:
    size, overlap, strategy = key
    return f"minilm-{size}-{overlap}-{strategy.replace(' ', '-')}.npy"


def chunks_digest(chunks) -> str:
    """SHA-256 of what was embedded: each chunk's document, span and text, in order."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(f"{c.doc_id}\0{c.start}\0{c.end}\0{len(c.text)}\0".encode())
        h.update(c.text.encode("utf-8"))
    return h.hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry(folder: Path, key: tuple) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return next((e for e in manifest.get("files", []) if tuple(e.get("settings", ())) == tuple(key)), None)


def read(key: tuple, chunks, folder: Path = VECTORS_DIR) -> tuple[np.ndarray | None, str]:
    """(vectors, "") when the shipped file for chunk settings `key` passes the file checks for
    these chunks, else (None, why not)."""
    entry = _entry(folder, key)
    if entry is None:
        return None, f"no shipped vectors for chunk settings {key}"
    if entry.get("chunks_sha256") != chunks_digest(chunks):
        return None, "the shipped vectors were made from other chunks (corpus, tokenizer or chunking changed)"
    path = folder / entry["file"]
    if not path.is_file() or file_digest(path) != entry.get("sha256"):
        return None, f"{path.name} is missing or fails its SHA-256 check"
    try:
        vectors = np.load(path, allow_pickle=False)
    except ValueError as exc:  # not an .npy array (or one that needs pickles)
        return None, f"{path.name} is not a plain .npy array ({exc})"
    if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[0] != len(chunks):
        return None, f"{path.name} holds {vectors.dtype} {vectors.shape}, not float32 ({len(chunks)}, dim)"
    if not np.isfinite(vectors).all():
        return None, f"{path.name} holds NaN or infinite numbers"
    norms = np.linalg.norm(vectors, axis=1)
    if np.abs(norms - 1).max() > 1e-3:
        return None, f"{path.name} holds rows that are not unit length"
    return vectors, ""


def sample_rows(n: int) -> list[int]:
    """Which chunks the encoder recomputes to check a file: the first, the middle, the last."""
    return sorted({0, n // 2, n - 1}) if n else []


def load(key: tuple, chunks, embed: Callable[[list[str]], np.ndarray],
         folder: Path = VECTORS_DIR) -> np.ndarray | None:
    """The shipped vectors of `chunks` for chunk settings `key`, checked as the module says;
    None (and a log line saying why) when they cannot be used. embed(texts) -> (n, dim) unit rows:
    the encoder loaded now."""
    vectors, why = read(key, chunks, folder)
    if vectors is not None:
        rows = sample_rows(len(chunks))
        fresh = embed([chunks[i].text for i in rows])  # (len(rows), dim)
        if fresh.shape != (len(rows), vectors.shape[1]) or np.abs(fresh - vectors[rows]).max() > TOLERANCE:
            vectors, why = None, "the encoder loaded now does not give the shipped vectors (another model?)"
    if vectors is None and _entry(folder, key) is not None:
        log.warning("bundled corpus, chunk settings %s: embedding the chunks: %s", key, why)
    return vectors


def write(folder: Path, key: tuple, chunks, vectors: np.ndarray, model: str) -> dict:
    """Save one chunking's vectors and return its manifest entry (scripts/build_rag_vectors.py)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape[0] != len(chunks) or not np.isfinite(vectors).all():
        raise ValueError(f"vectors {vectors.shape} do not fit {len(chunks)} chunks or are not finite")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(key)
    np.save(path, vectors, allow_pickle=False)
    return dict(settings=list(key), file=path.name, rows=int(vectors.shape[0]), dim=int(vectors.shape[1]),
                dtype="float32", model=model, chunks_sha256=chunks_digest(chunks), sha256=file_digest(path))


__all__ = ["SETTINGS", "STRATEGY", "VECTORS_DIR", "load", "read", "write", "chunks_digest", "sample_rows"]
