"""Pipelines lesson: the classic tasks, each preprocess -> forward -> postprocess.

    base.py       Prepared, what preprocess hands on
    tasks.py      the task registry (TASKS), the Hub paths and run()
    fallbacks.py  the offline methods (MiniLM zero-shot, LM fill-mask, prompted summaries, spaCy NER)
    plots.py      data -> plotly figures and HTML
"""
