"""Decoding lesson: the knobs as logits processors, the next-token view, step mode and generation.

    generation.py  DecodingSettings, the processors, next_token_view, StepSession, generate_stream
    branch.py      a generated token's top alternatives, and a branch continued from one of them
    beam.py        beam search with every step's hypotheses kept (BeamSettings, beam_search)
    conversation.py a chat re-sent whole each turn, oldest turns dropped to fit a context window
    kvcache.py     the KV cache's size: formula and the real tensors
    plots.py       data -> plotly figures and HTML
"""
