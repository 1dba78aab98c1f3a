"""The Retrieval (RAG) engine: Qdrant against brute force, RRF against its formula, chunk
coverage and overlap, per-session collections, upload limits, the server setting."""
from __future__ import annotations

import numpy as np
import pytest

from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.retrieval import chunking, corpus, index, quality, rag, search, shipped


# --- the vector database against brute force ------------------------------------------------

def _random_store(n=400, dim=48, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n, dim)).astype(np.float32)  # not unit length: Qdrant normalises for cosine
    sparse = []
    for _ in range(n):
        idx = np.sort(rng.choice(200, size=rng.integers(3, 12), replace=False))
        sparse.append((idx, rng.random(len(idx)) + 0.01))
    store = index.VectorStore(index.make_client())
    store.create("t", dim)
    store.upsert("t", range(n), dense, sparse, [dict(i=i) for i in range(n)])
    return store, dense, sparse, rng


@pytest.fixture(scope="module")
def random_store():
    return _random_store()


def test_dense_top_k_equals_brute_force_cosine(random_store):
    store, dense, _, rng = random_store
    unit = dense / np.linalg.norm(dense, axis=1, keepdims=True)
    for _ in range(5):
        q = rng.normal(size=dense.shape[1]).astype(np.float32)
        cos = unit @ (q / np.linalg.norm(q))  # (n,)
        want = np.argsort(-cos)[:10]
        got = store.dense("t", q, 10)
        assert [p.id for p in got] == want.tolist()
        np.testing.assert_allclose([p.score for p in got], cos[want], atol=1e-5)


def test_score_threshold_drops_exactly_the_chunks_below_it(random_store):
    store, dense, _, rng = random_store
    unit = dense / np.linalg.norm(dense, axis=1, keepdims=True)
    q = rng.normal(size=dense.shape[1]).astype(np.float32)
    cos = unit @ (q / np.linalg.norm(q))
    thr = float(np.sort(cos)[-4]) - 1e-4  # four chunks pass
    assert [p.id for p in store.dense("t", q, 10, thr)] == np.argsort(-cos)[:4].tolist()


def test_sparse_scores_are_dot_products(random_store):
    store, _, sparse, _ = random_store
    qi, qv = np.array([3, 17, 42, 99]), np.array([0.5, 1.0, 0.25, 2.0])
    q = dict(zip(qi.tolist(), qv.tolist()))
    dots = np.array([sum(q.get(int(i), 0.0) * v for i, v in zip(si, sv)) for si, sv in sparse])
    got = store.sparse("t", qi, qv, 8)
    want = [i for i in np.argsort(-dots, kind="stable") if dots[i] > 0][:8]
    np.testing.assert_allclose([p.score for p in got], dots[want], atol=1e-5)


@pytest.mark.parametrize("rrf_k", [60, 2])
def test_hybrid_is_the_rrf_formula_over_the_two_lists(random_store, rrf_k):
    store, dense, _, rng = random_store
    q = rng.normal(size=dense.shape[1]).astype(np.float32)
    qi, qv = np.array([1, 5, 8, 13, 21, 34, 55, 89]), np.ones(8)
    cand = 30
    lists = [store.dense("t", q, cand), store.sparse("t", qi, qv, cand)]
    fused: dict[int, float] = {}
    for ranking in lists:
        for p, point in enumerate(ranking):  # 0-based position p scores 1 / (k + p)
            fused[point.id] = fused.get(point.id, 0.0) + 1.0 / (rrf_k + p)
    want = sorted(fused.items(), key=lambda kv: -kv[1])[:10]
    got = store.hybrid("t", q, qi, qv, 10, cand, rrf_k)
    np.testing.assert_allclose([p.score for p in got], [s for _, s in want], atol=1e-9)
    # same ids wherever the fused scores are not tied
    for (wid, ws), p in zip(want, got):
        if sum(abs(ws - s) < 1e-12 for s in fused.values()) == 1:
            assert p.id == wid


def test_server_setting_builds_a_client_for_the_url():
    from qdrant_client.qdrant_remote import QdrantRemote

    from engine.core.config import AppConfig

    url_env = "LLM_PLAYGROUND_QDRANT_URL"
    config = AppConfig.from_sources([], {url_env: "http://127.0.0.1:6399"})
    client = index.make_client(config.qdrant_url, api_key=config.qdrant_api_key)
    assert isinstance(client._client, QdrantRemote) and not index.is_local(client)
    assert "127.0.0.1" in client._client.rest_uri and "6399" in client._client.rest_uri
    with pytest.raises(UserInputError, match=url_env):
        AppConfig.from_sources([], {url_env: "ftp://nowhere"})
    config = AppConfig.from_sources([], {})
    assert index.is_local(index.make_client(config.qdrant_url, api_key=config.qdrant_api_key))


# --- chunking ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tok(minilm_tokenizer):
    """The tokenizer search.tokenizer(engine) hands out (MiniLM's), without the encoder's weights."""
    return minilm_tokenizer


@pytest.mark.parametrize("size, overlap", [(64, 16), (128, 0), (100, 37), (16, 15)])
def test_fixed_chunks_cover_the_document_and_overlap_exactly(tok, size, overlap):
    doc = corpus.bundled()[2]
    t = chunking.tokenize(tok, doc.text)
    settings = make(chunking.ChunkSettings, size=size, overlap=overlap, strategy="fixed tokens")
    chunks = chunking.chunk_document(t, doc.doc_id, settings)
    assert chunks[0].token_start == 0 and chunks[-1].token_end == len(t.offsets)
    for a, b in zip(chunks, chunks[1:]):
        assert a.n_tokens == size
        assert a.token_end - b.token_start == overlap  # consecutive chunks share exactly `overlap` tokens
    assert all(c.n_tokens <= size for c in chunks)
    covered = set()
    for c in chunks:
        covered.update(range(c.token_start, c.token_end))
        assert c.text == doc.text[c.start:c.end]
    assert covered == set(range(len(t.offsets)))


@pytest.mark.parametrize("strategy", ["sentences", "paragraphs"])
def test_unit_chunks_stay_within_size_and_cover_every_token(tok, strategy):
    doc = corpus.bundled()[7]
    t = chunking.tokenize(tok, doc.text)
    chunks = chunking.chunk_document(t, doc.doc_id, make(chunking.ChunkSettings, size=96, overlap=24, strategy=strategy))
    covered = set()
    for c in chunks:
        assert 0 < c.n_tokens <= 96
        covered.update(range(c.token_start, c.token_end))
    assert covered == set(range(len(t.offsets)))
    if strategy == "paragraphs":  # chunks end where a paragraph ends, unless a paragraph is too long
        ends = [c.end for c in chunks[:-1]]
        at_break = sum(doc.text[e:e + 2] == "\n\n" for e in ends)
        assert at_break >= 0.6 * len(ends)


def test_overlap_must_be_smaller_than_the_size():
    with pytest.raises(UserInputError, match="overlap = 64 must be smaller than the chunk size"):
        make(chunking.ChunkSettings, size=64, overlap=64)
    with pytest.raises(UserInputError, match="strategy"):
        make(chunking.ChunkSettings, size=64, overlap=8, strategy="words")


# --- uploads and sessions -------------------------------------------------------------------

def test_an_upload_past_the_limit_is_refused_by_name(tmp_path):
    big = tmp_path / "huge notes.txt"
    big.write_bytes(b"a" * (corpus.MAX_FILE_BYTES + 1))
    with pytest.raises(UserInputError, match=r"'huge notes.txt' is 2,000,001 bytes: the limit is 2,000,000"):
        corpus.read_uploads([str(big)])
    exe = tmp_path / "x.exe"
    exe.write_bytes(b"MZ")
    with pytest.raises(UserInputError, match=r"'x.exe' is a .exe"):
        corpus.read_uploads([str(exe)])
    many = []
    for i in range(corpus.MAX_FILES + 1):
        p = tmp_path / f"n{i}.md"
        p.write_text("hello")
        many.append(str(p))
    with pytest.raises(UserInputError, match=f"the limit is {corpus.MAX_FILES} files"):
        corpus.read_uploads(many)
    bad_pdf = tmp_path / "broken.pdf"
    bad_pdf.write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(UserInputError, match="'broken.pdf'"):
        corpus.read_uploads([str(bad_pdf)])
    chars = tmp_path / "long.txt"
    chars.write_text("word " * (corpus.MAX_TOTAL_CHARS // 5 + 1))
    with pytest.raises(UserInputError, match=f"'long.txt' has .* the limit is {corpus.MAX_TOTAL_CHARS:,}"):
        corpus.read_uploads([str(chars)])


def _pdf_bytes(text: str) -> bytes:
    """A one-page PDF with `text` in a standard font (written by hand: no PDF writer needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def test_pdf_text_comes_through_pypdf(tmp_path):
    p = tmp_path / "zebra.pdf"
    p.write_bytes(_pdf_bytes("Zebras have black and white stripes."))
    doc = corpus.read_uploads([str(p)])[0]
    assert "Zebras have black and white stripes" in doc.text and doc.title == "zebra.pdf"


@pytest.mark.slow  # embeds with the real MiniLM
def test_two_sessions_collections_do_not_mix(engine, tmp_path):
    lib = search.Library(engine)
    a, b = tmp_path / "a.txt", tmp_path / "b.md"
    a.write_text("Giraffes are the tallest animals. They eat leaves from acacia trees.\n\n" * 3)
    b.write_text("Submarines dive using ballast tanks filled with sea water.\n\n" * 3)
    settings = make(chunking.ChunkSettings, size=32, overlap=8)
    s1, s2 = lib.session(), lib.session()
    kb1, kb2 = s1.add([str(a)], settings), s2.add([str(b)], settings)
    assert kb1.name != kb2.name and lib.sessions == 2
    for kb, mine, other in ((kb1, "Giraffes", "Submarines"), (kb2, "Submarines", "Giraffes")):
        found = search.search(engine, kb, f"{other} and {mine}", search.SearchSettings(top_k=20))
        texts = [h["text"] for m in search.METHODS for h in found[m]]
        assert texts and all(mine in t and other not in t for t in texts)
    s1.close()
    assert kb1.name not in lib.store.names() and kb2.name in lib.store.names() and lib.sessions == 1
    search.close_session(s2)  # what gr.State's delete_callback calls when the browser session ends
    assert kb2.name not in lib.store.names() and lib.sessions == 0
    with pytest.raises(UserInputError, match="expired"):
        s1.index(settings)


@pytest.mark.slow  # embeds with the real MiniLM
def test_engine_search_equals_brute_force_over_the_stored_vectors(engine, tmp_path):
    lib = search.Library(engine)
    p = tmp_path / "notes.txt"
    p.write_text("\n\n".join(d.text[:3000] for d in corpus.bundled()[:4]))
    kb = lib.session().add([str(p)], make(chunking.ChunkSettings, size=48, overlap=8))
    found = search.search(engine, kb, "How do I start the Python interpreter?", search.SearchSettings(top_k=8))
    cos = kb.dense @ found["query_vector"]  # unit rows: cosine
    want = np.argsort(-cos)[:8]
    assert [h["id"] for h in found["dense"]] == want.tolist()
    np.testing.assert_allclose([h["score"] for h in found["dense"]], cos[want], atol=1e-4)  # payload rounds to 5
    pts = search.pca_map(kb, found["query_vector"], [])
    assert len(pts["x"]) == len(kb.chunks) and len(pts["query"]) == 2


@pytest.mark.slow  # embeds with the real MiniLM
def test_the_map_of_a_one_chunk_upload(engine, tmp_path):
    p = tmp_path / "one.txt"
    p.write_text("Owls sleep during the day.")
    kb = search.Library(engine).session().add([str(p)], make(chunking.ChunkSettings, size=64, overlap=8))
    assert len(kb.chunks) == 1
    pts = search.pca_map(kb, search.embed(engine, ["owls"])[0], [])
    assert len(pts["x"]) == len(pts["y"]) == 1 and len(pts["query"]) == 2 and len(pts["explained"]) == 2


def test_the_map_axes_show_each_component_s_share_of_the_total_variance():
    """Issue 32: the axes divided the variance over PC1 and PC2 only (always summing to 100 %)."""
    from types import SimpleNamespace

    from engine.retrieval import plots

    rng = np.random.default_rng(3)
    dense = (rng.normal(size=(250, 40)) * np.linspace(2, 1, 40)).astype(np.float32)  # (chunks, dim)
    kb = SimpleNamespace(dense=dense, chunks=[SimpleNamespace(doc_id="d", index=i) for i in range(250)])
    pts = search.pca_map(kb, dense[0], [])
    sv = np.linalg.svd(dense - dense.mean(axis=0), compute_uv=False)
    ratio = sv ** 2 / (sv ** 2).sum()  # every component's explained-variance ratio
    np.testing.assert_allclose(pts["explained"], ratio[:2], rtol=1e-4)
    assert sum(pts["explained"]) < 0.3
    fig = plots.map_figure(pts)
    assert f"{ratio[0]:.1%} of the total variance" in fig.layout.xaxis.title.text
    assert f"{ratio[1]:.1%}" in fig.layout.yaxis.title.text


# --- quality and RAG pieces -----------------------------------------------------------------

def test_bundled_questions_quote_their_documents():
    qs = quality.questions()
    assert len(qs) >= 30
    docs = {d.doc_id: d.text for d in corpus.bundled()}
    for q in qs:
        assert docs[q["doc"]][q["start"]:q["end"]] == q["passage"]


def test_groundedness_marks_words_found_in_chunks():
    g = rag.groundedness("Sockets return zero bytes when broken [1].", [dict(text="a socket send returns 0 bytes "
                                                                              "when the connection is broken")])
    kinds = {w: k for w, k in g["pieces"]}
    assert kinds["bytes"] == "grounded" and kinds["broken"] == "grounded" and kinds["Sockets"] == "new"
    assert g["cited"] == [1] and 0 < g["share"] < 1
    assert "".join(w for w, _ in g["pieces"]) == "Sockets return zero bytes when broken [1]."


def test_prompt_drops_the_chunks_past_the_budget(tiny_llama):
    """SmolLM2's tokenizer counts the tokens (a tiny model stands in: 512 positions >= the budget)."""
    hits = [dict(title=f"doc {i}", doc_id="d", chunk=i, tokens=60, text=("word " * 60).strip()) for i in range(6)]
    built = rag.build_prompt(tiny_llama, "What is a word?", hits, budget=400, max_new_tokens=64)
    assert built["included"] and built["dropped"]
    assert built["tokens"] + 64 <= 400
    assert [h["chunk"] for h in built["included"]] + [h["chunk"] for h in built["dropped"]] == list(range(6))
    assert all(f"[{s['n']}] (doc {s['chunk']})" in built["prompt"] for s in built["sources"])
    with pytest.raises(UserInputError, match="budget"):
        rag.build_prompt(tiny_llama, "What is a word?", hits, budget=100_000, max_new_tokens=64)


@pytest.mark.slow
def test_answers_with_and_without_retrieval_stream_side_by_side(engine, tmp_path):
    lib = search.Library(engine)
    p = tmp_path / "zebra.txt"
    p.write_text("The zebra named Quilla lives in the Lisbon zoo. Quilla was born in 2011.")
    kb = lib.session().add([str(p)], make(chunking.ChunkSettings, size=64, overlap=0))
    hits = search.search(engine, kb, "Where does Quilla the zebra live?")["hybrid"]
    steps = list(rag.answer_stream(engine, "Where does Quilla the zebra live?", hits,
                                   rag.AnswerSettings(max_new_tokens=24)))
    assert len(steps) > 2 and steps[-1]["done"] and not steps[0]["done"]
    final = steps[-1]
    assert "Lisbon" in final["rag"]
    assert final["prompt"]["included"] and final["rag"] != final["plain"]


# --- the bundled corpus's shipped vectors (issue 39: the first index took 246 s, the sweep 787 s) ----

def _shipped_chunks(tok, size, overlap):
    settings = make(chunking.ChunkSettings, size=size, overlap=overlap, strategy=shipped.STRATEGY)
    return settings, chunking.chunk_documents(tok, corpus.bundled(), settings)


@pytest.mark.parametrize("size, overlap", shipped.SETTINGS)
def test_shipped_vectors_pass_their_checks_for_the_chunks_cut_now(tok, size, overlap):
    """Each default chunking has its file; checksum, shape, finiteness and unit rows hold, and it
    was made from exactly the chunks the app cuts now (else: rerun scripts/build_rag_vectors.py)."""
    import json

    settings, chunks = _shipped_chunks(tok, size, overlap)
    manifest = json.loads((shipped.VECTORS_DIR / shipped.MANIFEST).read_text())
    entry = next(e for e in manifest["files"] if tuple(e["settings"]) == settings.key)
    assert shipped.file_digest(shipped.VECTORS_DIR / entry["file"]) == entry["sha256"]
    vectors, why = shipped.read(settings.key, chunks)
    assert why == "" and vectors.shape == (len(chunks), 384) == (entry["rows"], entry["dim"])


def _copy_vectors(tmp_path, key):
    import json
    import shutil

    folder = tmp_path / "vectors"
    shutil.copytree(shipped.VECTORS_DIR, folder)
    manifest = json.loads((folder / shipped.MANIFEST).read_text())
    entry = next(e for e in manifest["files"] if tuple(e["settings"]) == key)
    return folder, manifest, entry


def test_shipped_vectors_that_fail_a_check_are_not_used(tok, tmp_path):
    """A changed byte fails the SHA-256; NaN, a pickled array or other chunks are refused even
    with a matching checksum; each says why."""
    import json

    settings, chunks = _shipped_chunks(tok, 384, 96)
    folder, manifest, entry = _copy_vectors(tmp_path, settings.key)
    path = folder / entry["file"]
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x40
    path.write_bytes(bytes(data))
    assert shipped.read(settings.key, chunks, folder) == (None, f"{path.name} is missing or fails its SHA-256 check")

    def rewrite(array, **save):
        np.save(path, array, **save)
        entry["sha256"] = shipped.file_digest(path)
        (folder / shipped.MANIFEST).write_text(json.dumps(manifest))
        return shipped.read(settings.key, chunks, folder)

    good = np.load(shipped.VECTORS_DIR / entry["file"])
    bad = good.copy()
    bad[7, 3] = np.nan
    assert rewrite(bad)[1].endswith("holds NaN or infinite numbers")
    bad[7, 3] = np.inf
    assert rewrite(bad)[1].endswith("holds NaN or infinite numbers")
    assert "not a plain .npy array" in rewrite(np.array([{"x": 1}], dtype=object), allow_pickle=True)[1]
    assert rewrite(good * 2)[1].endswith("not unit length")
    assert rewrite(good)[1] == ""
    assert shipped.read(settings.key, chunks[:-1], folder)[1].startswith("the shipped vectors were made from other")


@pytest.mark.slow  # the real MiniLM
@pytest.mark.parametrize("size, overlap", shipped.SETTINGS)
def test_shipped_vectors_equal_what_minilm_computes_now(engine, tok, size, overlap):
    settings, chunks = _shipped_chunks(tok, size, overlap)
    vectors, _ = shipped.read(settings.key, chunks)
    rows = np.random.default_rng(size).choice(len(chunks), size=16, replace=False)
    fresh = search.embed(engine, [chunks[i].text for i in rows])  # (16, 384)
    np.testing.assert_allclose(fresh, vectors[rows], atol=shipped.TOLERANCE / 10, rtol=0)


@pytest.mark.slow  # the real MiniLM
def test_the_default_bundled_index_reads_the_shipped_vectors(engine, monkeypatch):
    """Only the sample that checks the file is embedded, not every chunk (907 at the default
    setting, minutes on 2 cores under load); the index is the same as one computed now."""
    embedded = []
    real = search.embed

    def counting(engine_, texts, *args, **kwargs):
        embedded.extend(texts)
        return real(engine_, texts, *args, **kwargs)

    monkeypatch.setattr(search, "embed", counting)
    kb = search.Library(engine).bundled(make(chunking.ChunkSettings))
    assert kb.shipped_vectors and len(embedded) == len(shipped.sample_rows(len(kb.chunks))) < len(kb.chunks)
    assert kb.info()["dense_vectors"] == "read from the shipped file (checked)"
    found = search.search(engine, kb, "How do I start the Python interpreter?", search.SearchSettings(top_k=5))
    cos = kb.dense @ found["query_vector"]
    assert [h["id"] for h in found["dense"]] == np.argsort(-cos)[:5].tolist()
