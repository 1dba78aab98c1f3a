"""Evaluation lesson.

    metrics.py       perplexity, surprisal, cross-entropy
    answers.py       answer metrics: exact match, token F1, embedding similarity, judge
    quantization.py  int8 variants and what they cost in perplexity
    plots.py         data -> plotly figures and HTML

Task suites, robustness and consistency (wave 2) land here too.
"""
