"""Retrieval (RAG): on the first 3 bundled pages, chunked at 128 tokens with 32 of overlap,
- query latency through the engine (VectorStore.dense / .hybrid, hits formatted) vs the raw
  qdrant-client query_points on the same collection and vectors (target <= 1.2);
- indexing (chunk, embed, TF-IDF, upsert) vs raw: the same chunk texts through the model with
  mean pooling, TF-IDF and client.upsert (target <= 1.2; chunks/s in the note);
- the end-to-end answer (query embedding, three searches, prompt, two streamed answers of 48
  tokens) vs transformers' generate() on the same two prompts, as a note."""
from __future__ import annotations

import time

import numpy as np
import torch

from bench.run import Row, interleaved

DOCS = 3
QUESTION = "How do I make function parameters keyword-only?"


def run(ctx) -> list[Row]:
    from qdrant_client import models

    from engine.core.settings import make
    from engine.retrieval import chunking, corpus, index, rag, search

    engine = ctx.engine
    docs = corpus.bundled()[:DOCS]
    settings = make(chunking.ChunkSettings, size=128, overlap=32, strategy="fixed tokens")
    store = index.VectorStore()
    client = store.client
    bundle = engine.load("minilm-l6")
    search.embed(engine, ["warm up"])
    rows = []

    # --- indexing -------------------------------------------------------------------------
    texts = [c.text for c in chunking.chunk_documents(bundle.tokenizer, docs, settings)]

    def ours_index():
        return search.build(engine, store, "bench-ours", docs, settings)

    def raw_index():
        embs = []
        for start in range(0, len(texts), 32):
            enc = bundle.tokenizer(texts[start:start + 32], padding=True, truncation=True, max_length=256,
                                   return_tensors="pt")
            with torch.inference_mode():
                hidden = bundle.model(**enc).last_hidden_state  # (batch, tokens, 384)
            mask = enc["attention_mask"].unsqueeze(-1).float()
            embs.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy())
        dense = np.concatenate(embs)
        _, sparse = search.fit_sparse(texts)
        if client.collection_exists("bench-raw"):
            client.delete_collection("bench-raw")
        client.create_collection("bench-raw", vectors_config={"dense": models.VectorParams(
            size=384, distance=models.Distance.COSINE)}, sparse_vectors_config={"sparse": models.SparseVectorParams()})
        points = [models.PointStruct(id=i, payload={"text": t}, vector={
            "dense": d.tolist(), "sparse": models.SparseVector(indices=si.tolist(), values=sv.tolist())})
            for i, (t, d, (si, sv)) in enumerate(zip(texts, dense, sparse))]
        for start in range(0, len(points), 256):
            client.upsert("bench-raw", points[start:start + 256], wait=True)

    t_ours, t_raw = interleaved(ours_index, raw_index, repeat=2)
    rows.append(Row(f"index {DOCS} pages ({len(texts)} chunks) vs raw embed + upsert", t_ours, t_raw, target=1.2,
                    note=f"{len(texts) / t_ours:.0f} chunks/s ours, {len(texts) / t_raw:.0f} raw; embedded Qdrant"))

    # --- queries --------------------------------------------------------------------------
    kb = search.build(engine, store, "bench-q", docs, settings)
    qvec = search.embed(engine, [QUESTION])[0]
    si, sv = search.sparse_query(kb.vectorizer, QUESTION)
    qlist = qvec.tolist()

    def ours_dense():
        return [kb.hit(r + 1, p) for r, p in enumerate(store.dense(kb.name, qvec, 5))]

    def raw_dense():
        return client.query_points(kb.name, query=qlist, using="dense", limit=5, with_payload=True).points

    assert [h["id"] for h in ours_dense()] == [p.id for p in raw_dense()]
    n = 50
    t_ours, t_raw = interleaved(lambda: [ours_dense() for _ in range(n)], lambda: [raw_dense() for _ in range(n)], 3)
    rows.append(Row(f"dense query, top 5 of {len(kb.chunks)} chunks vs raw query_points", t_ours / n, t_raw / n,
                    target=1.2, note="same collection and vector"))

    sparse_q = models.SparseVector(indices=si.tolist(), values=sv.tolist())

    def ours_hybrid():
        return [kb.hit(r + 1, p) for r, p in enumerate(store.hybrid(kb.name, qvec, si, sv, 5, 20, 60))]

    def raw_hybrid():
        return client.query_points(kb.name, prefetch=[
            models.Prefetch(query=qlist, using="dense", limit=20),
            models.Prefetch(query=sparse_q, using="sparse", limit=20)],
            query=models.RrfQuery(rrf=models.Rrf(k=60)), limit=5, with_payload=True).points

    assert [h["id"] for h in ours_hybrid()] == [p.id for p in raw_hybrid()]
    t_ours, t_raw = interleaved(lambda: [ours_hybrid() for _ in range(n)], lambda: [raw_hybrid() for _ in range(n)], 3)
    rows.append(Row("hybrid (RRF) query, top 5 vs raw query_points with prefetch", t_ours / n, t_raw / n, target=1.2,
                    note="Qdrant fuses the dense and sparse lists"))

    # --- end to end -----------------------------------------------------------------------
    tm = engine.load(rag.LM)
    a = rag.AnswerSettings(max_new_tokens=48)
    t0 = time.perf_counter()
    found = search.search(engine, kb, QUESTION)
    out = rag.answer(engine, found["query"], found["hybrid"], a)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    for prompt in (out["prompt"]["prompt"], QUESTION):
        text = tm.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                add_generation_prompt=True)
        ids = tm.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.inference_mode():
            tm.model.generate(ids, max_new_tokens=48, do_sample=False, min_new_tokens=48)
    t_raw = time.perf_counter() - t0
    rows.append(Row("end-to-end answer (search + prompt + 2 answers of <=48 tokens) vs raw generate() x2", t_ours,
                    t_raw, note=f"prompt {out['prompt']['tokens']} tokens; ours stops at EOS, raw runs 48"))
    for name in ("bench-ours", "bench-raw", "bench-q"):
        store.drop(name)
    return rows
