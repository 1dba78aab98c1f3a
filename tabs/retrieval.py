"""Retrieval (RAG): documents -> chunks -> MiniLM vectors in Qdrant -> dense / sparse / hybrid
search -> a prompt within a token budget -> SmolLM2's answer with and without the chunks.

The bundled Python documentation is indexed once per process per chunk setting and shared;
a user's uploads go into that browser session's own Qdrant collection, dropped when the
session ends (gr.State's delete_callback) or after STATE_TTL_S without use, or sooner by the
pool's own limits (engine/retrieval/search.py: sessions without documents, and sessions of
scripts rather than the app's page)."""
from __future__ import annotations

from dataclasses import replace

import gradio as gr

from engine.retrieval import chunking, corpus, plots, quality, rag, rerank, search
from engine.core.errors import UserInputError, check_choice
from engine.core.markdown import md_text
from engine.core.settings import knob_default, make
from tabs._ui import (HEAVY, Plot, Share, controls_for, data_table, examples, model_picker, notice, progress_callback,
                      seed_box, first_view, user_errors)

TITLE = "Retrieval (RAG)"
STATE_TTL_S = 3600  # an idle session's uploads are dropped after an hour
SOURCES = [("Python docs (bundled, 22 pages)", "bundled"), ("My uploads", "uploads")]
CHUNK_KNOBS = ["size", "overlap", "strategy"]
SEARCH_KNOBS = ["top_k", "threshold", "rrf_k", "candidates"]
ANSWER_KNOBS = ["budget", "max_new_tokens", "temperature"]
HIT_HEADERS = ["#", "score", "chunk: document #n, text"]
RERANK_HEADERS = ["#", "was #", "cross-encoder score", "first-stage score", "chunk: document #n, text"]
SWEEP_HEADERS = ["size", "overlap", "chunks", "method", "hit rate@k", "MRR", "recall@k", "nDCG@k",
                 "prompt tokens (top k)"]
CHUNK_HEADERS = ["chunk", "start", "end", "tokens", "text"]
EXAMPLE_QUERIES = (
    ("Keyword-only parameters", "How do I make function parameters keyword-only?"),
    ("A broken socket", "How can a program tell that a socket connection was broken?"),
    ("Why 0.1 is inexact", "Why is 0.1 not stored exactly as a float?"),
    ("sort() vs sorted()", "What is the difference between list.sort() and sorted()?"),
    ("Not in the docs", "Who won the football world cup in 2010?"),
)


def _hit_rows(hits: list[dict]) -> list[list]:
    return [[h["rank"], round(h["score"], 4), f"{h['title']} #{h['chunk']}: " + h["text"][:180].replace("\n", " ")]
            for h in hits]


def _chunk_rows(chunks) -> list[list]:
    return [[c.index, c.start, c.end, c.n_tokens, c.text[:160].replace("\n", " ")] for c in chunks]


def _doc_choices(docs) -> list[tuple[str, str]]:
    return [(d.title, d.doc_id) for d in docs]


def build(engine) -> Share:
    library = search.Library(engine)
    about = corpus.bundled_about()
    gr.Markdown("## Retrieval-augmented generation (RAG), every step visible\n"
                "A vector database turns documents into vectors, finds the chunks most similar to a question, "
                "and the chunks go into the prompt, so the model answers from them instead of inventing. Here the "
                f"database is **Qdrant** ({library.store.mode}), the vectors come from **MiniLM** and the answers "
                "from **SmolLM2** (or the answer model picked in step 3), all on this machine.")
    ui = {"session": gr.State(None, time_to_live=STATE_TTL_S, delete_callback=search.close_session),
          "last": gr.State(None)}  # last: the last search (query + hits), for the map
    with gr.Row(elem_id="rag-row"):
        with gr.Column(scale=1, min_width=300):
            ui.update(_documents_column(about))
        with gr.Column(scale=3):
            with gr.Tabs(overflow_behavior="wrap"):
                with gr.Tab("1 · Chunks"):
                    ui.update(_chunks_panel())
                with gr.Tab("2 · Search"):
                    ui.update(_search_panel())
                    ui.update(_rerank_panel(engine))
                with gr.Tab("3 · Answer"):
                    ui.update(_answer_panel(engine))
                with gr.Tab("4 · Quality"):
                    ui.update(_quality_panel())

    show_chunks, chunk_outputs = _wire_documents(engine, library, ui)
    first_view(ui["chunks_btn"], ui["chunk_view"])  # the first document's chunks, drawn when the tab opens
    _wire_search(engine, library, ui)
    _wire_rerank(engine, library, ui)
    _wire_quality(engine, library, ui)
    with ui["example_box"]:
        examples([[q] for _, q in EXAMPLE_QUERIES], [ui["query"]], labels=[label for label, _ in EXAMPLE_QUERIES],
                 label="Example questions: click one, then Search")
    # A shared link (?tab=retrieval&query=...&size=256&strategy=sentences) fills the question and
    # the knobs and shows the chunk view at once; Search then runs on the same settings.
    chunk_knobs, search_knobs = ui["chunk_knobs"], ui["search_knobs"]
    return Share(params={"query": ui["query"], "doc": ui["doc"], **{n: chunk_knobs[n] for n in CHUNK_KNOBS},
                         **{n: search_knobs[n] for n in SEARCH_KNOBS}, "rerank_from": ui["rerank_from"],
                         "pool": ui["pool"], "answer_model": ui["answer_model"]},
                 run=show_chunks, run_inputs=[ui["source"], ui["doc"], *_chunk_inputs(ui), ui["session"]],
                 run_outputs=chunk_outputs)


# --- layout: each function creates its components in the current context and returns them ----

def _documents_column(about: dict) -> dict:
    """The left column: which documents, the user's files, the chunk knobs and the index."""
    ui = {}
    ui["source"] = gr.Radio(SOURCES, value="bundled", label="Documents", elem_id="rag-source",
                            info=f"Bundled: {about['documents']} pages of the Python 3.11 docs ({about['license']}).")
    ui["files"] = gr.File(file_count="multiple", file_types=list(corpus.EXTENSIONS), label="Your files",
                          height=150, elem_id="rag-files")
    gr.Markdown(f"<small>{', '.join(corpus.EXTENSIONS)}; up to {corpus.MAX_FILES} files of "
                f"{corpus.MAX_FILE_BYTES // 1_000_000} MB, {corpus.MAX_TOTAL_CHARS:,} characters of text in all; "
                f"a PDF up to {corpus.MAX_PDF_PAGES} pages and {corpus.MAX_PDF_OPERATORS:,} drawing and text "
                f"operators. Your files are indexed as at most {search.MAX_UPLOAD_CHUNKS:,} chunks (the bundled "
                f"documents as at most {search.MAX_BUNDLED_CHUNKS:,}). They stay in this session's own "
                "collection.</small>", elem_id="rag-upload-limits")
    with gr.Row():
        ui["upload_btn"] = gr.Button("Index my files", size="sm", elem_id="rag-upload")
        ui["clear_btn"] = gr.Button("Clear my files", size="sm", elem_id="rag-clear")
    ui["chunk_knobs"] = controls_for(chunking.ChunkSettings, CHUNK_KNOBS,
                                     **{k: {"elem_id": f"rag-{k}"} for k in CHUNK_KNOBS})
    ui["index_btn"] = gr.Button("Build the index", variant="primary", elem_id="rag-index")
    ui["index_md"] = gr.Markdown(elem_id="rag-index-status")
    with gr.Accordion("The collection in Qdrant", open=False):
        ui["collection"] = gr.JSON(label="points, vectors, one point's payload", elem_id="rag-collection")
    return ui


def _chunks_panel() -> dict:
    ui = {}
    ui["doc"] = gr.Dropdown(_doc_choices(corpus.bundled()), value=corpus.bundled()[0].doc_id,
                            label="Document", elem_id="rag-doc", allow_custom_value=True)
    with gr.Row():
        ui["chunk_md"] = gr.Markdown("Pick a document or move a chunk knob to see the chunks.")
        ui["chunks_btn"] = gr.Button("Show the chunks", size="sm", scale=0, min_width=160,
                                     elem_id="rag-show-chunks")
    ui["chunk_view"] = gr.HTML(elem_id="rag-chunks")
    notice("Move the chunk size and overlap: the striped text is in two chunks at once. Sentences "
           "and paragraphs end chunks at natural breaks, so their sizes vary.")
    with gr.Accordion("Every chunk of this document (table)", open=False):
        ui["chunk_table"] = data_table("rag-chunks", headers=CHUNK_HEADERS, elem_id="rag-chunk-table")
    return ui


def _search_panel() -> dict:
    ui = {}
    with gr.Row():
        ui["query"] = gr.Textbox(EXAMPLE_QUERIES[0][1], label="Question", scale=4, elem_id="rag-query")
        ui["search_btn"] = gr.Button("Search", variant="primary", scale=1, elem_id="rag-search")
    with gr.Row():
        ui["search_knobs"] = controls_for(search.SearchSettings, SEARCH_KNOBS,
                                          **{k: {"elem_id": f"rag-{k}"} for k in SEARCH_KNOBS})
    ui["example_box"] = gr.Column()
    ui["search_md"] = gr.Markdown(elem_id="rag-search-summary")
    with gr.Column(elem_id="rag-results"):  # one above the other: side by side a table showed 1.5 rows at 1280 px
        ui["tables"] = {m: data_table(f"rag-{m}", headers=HIT_HEADERS, label=label, wrap=True,
                                      elem_id=f"rag-{m}", column_widths=["8%", "14%", "78%"], max_height=380)
                        for m, label in (("dense", "Dense: cosine of MiniLM vectors"),
                                         ("sparse", "Sparse: TF-IDF (scikit-learn)"),
                                         ("hybrid", "Hybrid: reciprocal-rank fusion"))}
    ui["rag_map"] = Plot(filename="rag-embedding-map", label="Chunk embeddings (PCA)", show_label=False,
                         elem_id="rag-map")
    notice("Dense finds paraphrases, sparse finds exact words; hybrid ranks a chunk high when "
           "both lists do. On the map the red star is the question; rings mark what each method found.")
    return ui


def _rerank_panel(engine) -> dict:
    """A cross-encoder reorders a first stage's chunks: online only (no package ships one)."""
    ui = {}
    why = rerank.unavailable(engine)
    with gr.Accordion("Rerank with a cross-encoder", open=True, elem_id="rag-rerank-box"):
        gr.Markdown("A cross-encoder reads the question and one chunk **together** and gives the pair one "
                    "score: a forward pass per chunk, so it only reorders a pool that a first stage found. "
                    + (f"\n\n⚠ {md_text(why)}" if why else f"Model: `{engine.registry.get(rerank.RERANKER).hub_id}` "
                       "from the Hugging Face Hub."), elem_id="rag-rerank-note")
        with gr.Row():
            ui["rerank_from"] = gr.Radio(list(search.METHODS), value="hybrid", label="first stage", scale=2,
                                         elem_id="rag-rerank-from")
            ui["pool"] = controls_for(rerank.RerankSettings, ["pool"], pool={"elem_id": "rag-pool", "scale": 2})["pool"]
            ui["rerank_btn"] = gr.Button("Rerank (keeps the top-k)", variant="primary", interactive=not why, scale=1,
                                         elem_id="rag-rerank")
        ui["rerank_md"] = gr.Markdown(elem_id="rag-rerank-summary")
        ui["rerank_table"] = data_table("rag-rerank", headers=RERANK_HEADERS, wrap=True, elem_id="rag-rerank-table",
                                        column_widths=["6%", "8%", "12%", "12%", "62%"], max_height=420,
                                        visible=not why)
    return ui


def _answer_panel(engine) -> dict:
    ui = {}
    ui["answer_model"] = model_picker(engine, "causal-lm", label="Answer model", keys=rag.models(engine),
                                      elem_id="rag-answer-model")
    with gr.Row():
        ui["answer_knobs"] = controls_for(rag.AnswerSettings, ANSWER_KNOBS,
                                          **{k: {"elem_id": f"rag-{k}"} for k in ANSWER_KNOBS})
        ui["answer_knobs"]["seed"] = seed_box(knob_default(rag.AnswerSettings, "seed"), elem_id="rag-seed")
    with gr.Row():
        ui["method"] = gr.Radio(list(search.METHODS), value="hybrid", label="chunks from", elem_id="rag-method")
        ui["answer_btn"] = gr.Button("Answer with and without retrieval", variant="primary", elem_id="rag-answer")
    with gr.Row(elem_id="rag-answers"):
        ui["with_rag"] = gr.HTML(elem_id="rag-with")
        ui["without_rag"] = gr.HTML(elem_id="rag-without")
    ui["answer_md"] = gr.Markdown(elem_id="rag-answer-stats")
    notice("Same model, same seed: only the prompt differs. Green words also occur in the retrieved "
           "chunks, orange ones do not; a grounded answer is mostly green.")
    with gr.Accordion("The prompt the model reads (with the chunks)", open=True):
        ui["prompt_view"] = gr.HTML(elem_id="rag-prompt-view")
    return ui


def _quality_panel() -> dict:
    ui = {}
    gr.Markdown(f"{len(quality.questions())} questions about the bundled pages, each with the "
                "passage that answers it. A chunk is relevant when it holds at least half of that "
                "passage. **Hit rate@k**: share of questions with a relevant chunk in the top k. "
                "**MRR**: mean of 1/rank of the first relevant chunk. **Recall@k**: share of the relevant "
                "chunks that are in the top k. **nDCG@k**: the relevant chunks' 1/log2(rank + 1), summed, "
                "over that sum for the best possible order. **Prompt tokens**: what the top k chunks add to "
                "the answer's prompt, in SmolLM2's tokenizer: bigger chunks find more, and cost more.")
    with gr.Row():
        ui["k"] = gr.Slider(1, 20, value=5, step=1, label="k", elem_id="rag-k")
        ui["quality_btn"] = gr.Button("Measure at the current chunk setting", variant="primary",
                                      elem_id="rag-quality")
    ui["quality_plot"] = Plot(filename="rag-quality", label="Hit rate, MRR, recall and nDCG", show_label=False,
                              elem_id="rag-quality-plot")
    with gr.Accordion("Rank of the first relevant chunk, per question", open=False):
        ui["quality_table"] = data_table("rag-quality", headers=["question", "document", "relevant chunks",
                                                                 "dense", "sparse", "hybrid"],
                                         elem_id="rag-quality-table")
    with gr.Row():
        ui["sizes"] = gr.Textbox(", ".join(map(str, quality.SWEEP_SIZES)), label="chunk sizes to sweep",
                                 info="overlap = 25% of each size; each new size indexes the corpus once")
        ui["sweep_btn"] = gr.Button("Sweep chunk sizes", elem_id="rag-sweep")
    ui["sweep_plot"] = Plot(filename="rag-chunk-size-sweep", label="Sweep", show_label=False,
                            elem_id="rag-sweep-plot")
    ui["sweep_table"] = data_table("rag-sweep", headers=SWEEP_HEADERS, elem_id="rag-sweep-table")
    return ui


# --- listeners ---------------------------------------------------------------------------------

def _chunk_inputs(ui: dict) -> list:
    return [ui["chunk_knobs"][n] for n in CHUNK_KNOBS]


def _search_inputs(ui: dict) -> list:
    return [ui["search_knobs"][n] for n in SEARCH_KNOBS]


def _kb(library, source, size, overlap, strategy, sess, progress):
    """The knowledge base to search: the shared bundled index, or this session's uploads."""
    settings = make(chunking.ChunkSettings, size=size, overlap=overlap, strategy=strategy)
    report = progress_callback(progress)
    if source == "bundled":
        return library.bundled(settings, report), sess
    check_choice("source", source, [v for _, v in SOURCES])
    if sess is None or sess.closed:
        raise UserInputError("No uploaded documents yet: upload files and click 'Index my files'.")
    return sess.index(settings, report), sess


def _docs(source, sess):
    if source == "uploads" and sess is not None and sess.docs:
        return sess.docs
    return corpus.bundled()


def _index_outputs(kb, source):
    over = sum(c.n_tokens > search.EMBED_LIMIT for c in kb.chunks)
    note = (f" · ⚠ {over} chunks are longer than MiniLM's 256 tokens: it reads only their first "
            f"{search.EMBED_LIMIT}." if over else "")
    how = ", MiniLM's vectors read from the shipped file" if kb.shipped_vectors else ""
    return (f"**{len(kb.chunks)} chunks** from {len(kb.docs)} documents in `{kb.name}` "
            f"(indexed in {kb.seconds:.1f} s{how}){note}", kb.info())


def _chunks_summary(d, chunks) -> str:
    over = sum(c.n_tokens > search.EMBED_LIMIT for c in chunks)
    return (f"**{len(chunks)} chunks** of {md_text(d.title)} ({len(d.text):,} characters) · sizes "
            f"{min(c.n_tokens for c in chunks)}–{max(c.n_tokens for c in chunks)} tokens"
            + (f" · ⚠ {over} over MiniLM's 256-token limit (cut when embedded)" if over else ""))


def from_page(request) -> bool:
    """Whether a call comes from the app's page: Gradio's front end marks its calls with the header
    x-gradio-user: app (gradio_client sends 'api', a plain HTTP script nothing). A header can be
    forged: this keeps scripts from crowding students out of the upload pool, it authenticates no one.
    (Never the client's address: a whole class often shares one school address.)"""
    headers = getattr(request, "headers", None)
    return headers is not None and headers.get("x-gradio-user") == "app"


def _wire_documents(engine, library, ui: dict):
    """The chunk view, the index, the user's uploads and the document list. Returns the chunk
    view's listener and outputs, which a shared link runs."""
    source, doc, session = ui["source"], ui["doc"], ui["session"]
    chunk_inputs = _chunk_inputs(ui)

    def show_chunks(source, doc_id, size, overlap, strategy, sess, progress=gr.Progress()):
        settings = make(chunking.ChunkSettings, size=size, overlap=overlap, strategy=strategy)
        d = corpus.document(_docs(source, sess), doc_id)
        chunks = chunking.chunk_document(chunking.tokenize(search.tokenizer(engine, progress_callback(progress)), d.text),
                                         d.doc_id, settings)
        return _chunks_summary(d, chunks), plots.chunk_spans_html(d.text, chunks), _chunk_rows(chunks)

    def build_index(source, size, overlap, strategy, sess, progress=gr.Progress()):
        kb, sess = _kb(library, source, size, overlap, strategy, sess, progress)
        return (*_index_outputs(kb, source), sess)

    def upload(paths, size, overlap, strategy, sess, request: gr.Request, progress=gr.Progress()):
        settings = make(chunking.ChunkSettings, size=size, overlap=overlap, strategy=strategy)
        sess, kb = library.upload(sess, paths, settings, progress_callback(progress), from_page=from_page(request))
        docs = _doc_choices(sess.docs)
        return (*_index_outputs(kb, "uploads"), sess, gr.update(value="uploads"),
                gr.update(choices=docs, value=docs[-1][1]))

    def clear(sess):
        if sess is not None:
            sess.clear()
        docs = _doc_choices(corpus.bundled())
        return ("Your uploads are cleared.", None, sess, gr.update(value="bundled"),
                gr.update(choices=docs, value=docs[0][1]))

    def source_changed(source, sess):
        docs = _doc_choices(_docs(source, sess))
        return gr.update(choices=docs, value=docs[0][1])

    show_chunks, build_index, upload, clear = map(user_errors, (show_chunks, build_index, upload, clear))
    source_changed = user_errors(source_changed)
    chunk_outputs = [ui["chunk_md"], ui["chunk_view"], ui["chunk_table"]]
    gr.on([ui["chunks_btn"].click, doc.change, *[ui["chunk_knobs"][n].change for n in CHUNK_KNOBS]], show_chunks,
          inputs=[source, doc, *chunk_inputs, session], outputs=chunk_outputs, api_name="rag_chunks",
          show_progress="minimal")
    ui["index_btn"].click(build_index, inputs=[source, *chunk_inputs, session],
                          outputs=[ui["index_md"], ui["collection"], session], api_name="rag_index", **HEAVY)
    ui["upload_btn"].click(upload, inputs=[ui["files"], *chunk_inputs, session],
                           outputs=[ui["index_md"], ui["collection"], session, source, doc], api_name="rag_upload",
                           show_progress_on=[ui["index_md"]], **HEAVY)  # a refused file: no "Error" over the radio
    ui["clear_btn"].click(clear, inputs=[session], outputs=[ui["index_md"], ui["collection"], session, source, doc],
                          api_name="rag_clear")
    source.change(source_changed, inputs=[source, session], outputs=[doc], api_name=False)
    return show_chunks, chunk_outputs


def _search_text(kb, found, s) -> str:
    terms = ", ".join(f"`{t}`" for t in found["sparse_terms"]) or "none (sparse finds nothing)"
    return (f"{len(kb.chunks)} chunks searched · query words the TF-IDF vocabulary knows: {terms}"
            + (f" · dense threshold {s.threshold}: {len(found['dense'])} chunks pass" if s.threshold else ""))


def _answer_views(step, method):
    """One streamed answer step: the prompt, both answers and the groundedness line."""
    chunks = step["prompt"]["included"]
    g_rag, g_plain = rag.groundedness(step["rag"], chunks), rag.groundedness(step["plain"], chunks)
    stats = (f"{step['seconds']:.1f} s · with retrieval {g_rag['share']:.0%} of content words found in the "
             f"chunks, without {g_plain['share']:.0%}")
    return (plots.prompt_html(step["prompt"]),
            plots.answer_html(f"With retrieval ({len(chunks)} {method} chunks)", g_rag, step["done"], "rag-with-box"),
            plots.answer_html("Without retrieval (the question alone)", g_plain, step["done"], "rag-without-box"),
            stats)


def _wire_search(engine, library, ui: dict) -> None:
    """Search (button and Enter) and the answers with and without the chunks."""
    def run_search(source, query, size, overlap, strategy, top_k, threshold, rrf_k, candidates, sess,
                   progress=gr.Progress()):
        s = make(search.SearchSettings, top_k=top_k, threshold=threshold, rrf_k=rrf_k, candidates=candidates)
        query = search.check_query(query)  # before indexing: a bad input costs nothing
        kb, sess = _kb(library, source, size, overlap, strategy, sess, progress)
        found = search.search(engine, kb, query, s, progress_callback(progress))
        points = search.pca_map(kb, found["query_vector"], [])
        fig = plots.map_figure(points, {m: found[m] for m in search.METHODS})
        keep = dict(query=found["query"], hits={m: found[m] for m in search.METHODS})
        return (_search_text(kb, found, s), *[_hit_rows(found[m]) for m in search.METHODS], fig, keep, sess,
                kb.info())

    def answer(source, query, size, overlap, strategy, top_k, threshold, rrf_k, candidates, method, budget,
               max_new_tokens, temperature, seed, sess, model=rag.LM, progress=gr.Progress()):
        check_choice("method", method, search.METHODS)
        check_choice("answer model", model, rag.models(engine))  # before any search
        s = make(search.SearchSettings, top_k=top_k, threshold=threshold, rrf_k=rrf_k, candidates=candidates)
        a = make(rag.AnswerSettings, budget=budget, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        query = search.check_query(query)
        kb, sess = _kb(library, source, size, overlap, strategy, sess, progress)
        found = search.search(engine, kb, query, s, progress_callback(progress))
        hits = found[method]
        for step in rag.answer_stream(engine, found["query"], hits, a, progress_callback(progress), model=model):
            yield (*_answer_views(step, method), sess)

    run_search, answer = map(user_errors, (run_search, answer))
    source, query, session = ui["source"], ui["query"], ui["session"]
    chunk_inputs, search_inputs = _chunk_inputs(ui), _search_inputs(ui)
    answer_inputs = [*[ui["answer_knobs"][n] for n in ANSWER_KNOBS], ui["answer_knobs"]["seed"]]
    search_args = dict(inputs=[source, query, *chunk_inputs, *search_inputs, session],
                       outputs=[ui["search_md"], *ui["tables"].values(), ui["rag_map"], ui["last"], session,
                                ui["collection"]])
    ui["search_btn"].click(run_search, api_name="rag_search", **search_args, **HEAVY)
    query.submit(run_search, api_name="rag_search_submit", **search_args, **HEAVY)
    ui["answer_btn"].click(answer, inputs=[source, query, *chunk_inputs, *search_inputs, ui["method"], *answer_inputs,
                                           session, ui["answer_model"]],
                           outputs=[ui["prompt_view"], ui["with_rag"], ui["without_rag"], ui["answer_md"], session],
                           api_name="rag_answer", **HEAVY)


def _rerank_text(result: dict, method: str, top_k: int) -> str:
    moved = sum(h["rank"] != h["first_rank"] for h in result["hits"])
    return (f"Reranked by **{md_text(result['model'])}** ({'Hub' if result['where'] == 'hub' else 'local copy'}): "
            f"the top {result['pool']} {method} chunks read with the question in {result['seconds']:.1f} s; the best "
            f"{min(top_k, result['pool'])} are kept, {moved} of them at a new place (column 'was #': the first stage's "
            "place).")


def _wire_rerank(engine, library, ui: dict) -> None:
    """The first stage's pool reordered by the cross-encoder, or why it cannot run here."""
    def run_rerank(source, query, size, overlap, strategy, top_k, threshold, rrf_k, candidates, method, pool, sess,
                   progress=gr.Progress()):
        check_choice("source", source, [v for _, v in SOURCES])
        check_choice("first stage", method, search.METHODS)
        s = make(search.SearchSettings, top_k=top_k, threshold=threshold, rrf_k=rrf_k, candidates=candidates)
        r = make(rerank.RerankSettings, pool=pool)
        query = search.check_query(query)  # before any model or index: a bad input costs nothing
        why = rerank.unavailable(engine)
        if why:
            return why, [], sess
        kb, sess = _kb(library, source, size, overlap, strategy, sess, progress)
        found = search.search(engine, kb, query, replace(s, top_k=max(r.pool, s.top_k)), progress_callback(progress))
        if not found[method]:
            return f"The {method} search found no chunk for this question: nothing to rerank.", [], sess
        result = rerank.rerank(engine, found["query"], found[method], s.top_k, progress_callback(progress))
        return _rerank_text(result, method, s.top_k), plots.rerank_rows(result["hits"]), sess

    inputs = [ui["source"], ui["query"], *_chunk_inputs(ui), *_search_inputs(ui), ui["rerank_from"], ui["pool"],
              ui["session"]]
    ui["rerank_btn"].click(user_errors(run_rerank), inputs=inputs,
                           outputs=[ui["rerank_md"], ui["rerank_table"], ui["session"]], api_name="rag_rerank", **HEAVY)


def _wire_quality(engine, library, ui: dict) -> None:
    """Hit rate, MRR, recall and nDCG (and the prompt tokens) at the current chunk setting, and the
    chunk-size sweep."""
    def measure(size, overlap, strategy, k, progress=gr.Progress()):
        settings = make(chunking.ChunkSettings, size=size, overlap=overlap, strategy=strategy)
        kb = library.bundled(settings, progress_callback(progress))
        result = quality.evaluate(engine, kb, k, progress=progress_callback(progress))
        rows = [[r["question"], r["doc"], r["relevant"], *[r[m] or "-" for m in search.METHODS]] for r in result["rows"]]
        return plots.quality_figure(result), rows

    def sweep(sizes, strategy, k, progress=gr.Progress()):
        result = quality.sweep(library, sizes, 0.25, strategy, k, progress_callback(progress))
        rows = [[p["size"], p["overlap"], p["chunks"], m, *[p[f"{m}_{n}"] for n in quality.METRICS],
                 p[f"{m}_prompt_tokens"]] for p in result["points"] for m in search.METHODS]
        return plots.sweep_figure(result), rows

    measure, sweep = map(user_errors, (measure, sweep))
    ui["quality_btn"].click(measure, inputs=[*_chunk_inputs(ui), ui["k"]],
                            outputs=[ui["quality_plot"], ui["quality_table"]], api_name="rag_quality", **HEAVY)
    ui["sweep_btn"].click(sweep, inputs=[ui["sizes"], ui["chunk_knobs"]["strategy"], ui["k"]],
                          outputs=[ui["sweep_plot"], ui["sweep_table"]], api_name="rag_sweep", **HEAVY)
