"""Retrieval (RAG) lesson: a real vector database, every step of retrieval-augmented generation visible.

    corpus.py    the bundled Python documentation pages and a user's .txt/.md/.pdf uploads (bounded)
    chunking.py  chunks in MiniLM tokens: fixed tokens with overlap, sentences, paragraphs
    index.py     Qdrant through qdrant-client: embedded in the process, or a server by URL
    search.py    indexing, dense / sparse (TF-IDF) / hybrid (RRF) search, the Library and Sessions
    shipped.py   the bundled corpus's MiniLM vectors for the default chunkings (assets/rag/vectors), checked
    rag.py       the prompt within a token budget, answers with and without retrieval, groundedness
    rerank.py    a cross-encoder reorders a first stage's chunks (a Hub model: online only)
    quality.py   hit rate@k, MRR, recall@k and nDCG@k on bundled questions, the prompt tokens of the
                 top k chunks, and a sweep over chunk sizes
    plots.py     data -> plotly figures and HTML

Embeddings come from engine.embeddings (vectors.sentence_embeddings, MiniLM); generation from
engine.decoding (generation.generate_stream, SmolLM2).
"""
