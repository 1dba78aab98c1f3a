"""Evaluation lesson.

    metrics.py       perplexity, surprisal, cross-entropy
    answers.py       answer metrics: exact match, token F1, embedding similarity, judge
    quantization.py  int8 variants and what they cost in perplexity
    int8.py          the weight-only int8 linear layer (quantization.py swaps it in)
    suite.py         multiple-choice task suite by log-likelihood (acc, acc_norm, bootstrap interval)
    robustness.py    stress test: rule-based perturbations, robustness score, failure clusters
    consistency.py   one prompt sampled N times at several temperatures
    ranks.py         GLTR-style token ranks (top-10/100/1000/beyond)
    plots.py         data -> plotly figures and HTML
"""
