"""Trust & prompting lesson: when to believe an answer, and what the prompt alone changes.

    questions.py    the bundled factual questions (assets/trust) with gold answers and aliases
    generation.py   short greedy answers in batches, with the probabilities of their tokens
    calibration.py  three confidences, reliability bins, ECE, Brier, the accuracy-coverage curve
    grounding.py    the same questions with retrieved passages, and with a misleading passage
    snowball.py     a forced first step and the model's chance of correcting itself, step by step
    prompting.py    accuracy on one suite task as the prompt changes (few-shot k, order, wording, ...)
    plots.py        data -> plotly figures and HTML

Correctness uses the Evaluation lesson's answer metrics (engine.evaluation.answers.normalize);
the prompting runs score the Evaluation task suite (engine.evaluation.suite); grounding
embeds passages with the Retrieval lesson's MiniLM search (engine.retrieval.search).
"""
