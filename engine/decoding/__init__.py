"""Decoding lesson: the knobs as logits processors, the next-token view, step mode and generation.

    generation.py  DecodingSettings, the processors, next_token_view, StepSession, generate_stream
    plots.py       data -> plotly figures and HTML
"""
