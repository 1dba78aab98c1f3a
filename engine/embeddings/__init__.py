"""Embeddings & attention lesson.

    vectors.py       sentence and word embeddings, contextual word senses, semantic search
    attention.py     attention maps of the encoder and the causal LM
    bertviz_page.py  bertviz's head/model views as a self-contained page
    plots.py         data -> plotly figures and HTML

Retrieval (RAG, wave 2) builds on vectors.py through this package.
"""
