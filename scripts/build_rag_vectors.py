"""Rebuild assets/rag/vectors/: the embedded MiniLM's vectors of the bundled corpus's chunks for
the default chunk settings (engine.retrieval.shipped.SETTINGS, fixed tokens), one float32 .npy
per setting, and manifest.json with each file's SHA-256 and a digest of the chunks it was made
from. The Retrieval tab reads them instead of embedding ~3,500 chunks on first use, after
checking them (engine/retrieval/shipped.py); tests/test_retrieval.py recomputes a sample.

    python scripts/build_rag_vectors.py          # offline, on the CPU, as the app embeds them

Run it again whenever the corpus (scripts/build_rag_corpus.py), the chunking code or the
encoder changes: a stale file is not used (its chunk digest no longer matches), only slower.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from engine import Engine
    from engine.core.settings import make
    from engine.embeddings.vectors import ENCODER
    from engine.retrieval import chunking, corpus, search, shipped

    engine = Engine(device="cpu", offline=True)
    source = engine.registry.resolve(ENCODER)
    model = f"{ENCODER} ({source.path if source.is_hub else 'embedded: ' + source.spec.embedded.pip})"
    tok = search.tokenizer(engine)
    files = []
    for size, overlap in shipped.SETTINGS:
        settings = make(chunking.ChunkSettings, size=size, overlap=overlap, strategy=shipped.STRATEGY)
        chunks = chunking.chunk_documents(tok, corpus.bundled(), settings)
        t = time.perf_counter()
        vectors = search.embed(engine, [c.text for c in chunks])  # the app's own batching and pooling
        files.append(shipped.write(shipped.VECTORS_DIR, settings.key, chunks, vectors, model))
        print(f"{settings.key}: {len(chunks)} chunks in {time.perf_counter() - t:.0f} s", flush=True)
    manifest = dict(about="MiniLM vectors of assets/rag's chunks; made by scripts/build_rag_vectors.py",
                    files=files)
    (shipped.VECTORS_DIR / shipped.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(files)} files to {shipped.VECTORS_DIR}")


if __name__ == "__main__":
    main()
