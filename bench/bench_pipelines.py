"""Pipelines tab: the task registry's preprocess -> forward -> postprocess (plus the code
snippet) vs the raw library doing the same work on the same loaded model."""
from __future__ import annotations

import torch

from bench.run import Row, best_of

FOOTBALL = "The striker scored twice in the second half and the home team won the cup final."
NER_TEXT = "Marie Curie moved from Warsaw to Paris, where she worked at the Sorbonne with Pierre Curie."


def run(ctx) -> list[Row]:
    from transformers import pipeline, set_seed

    from engine.pipelines import tasks
    engine = ctx.engine
    rows = []

    # zero-shot fallback vs the same embedding maths written out by hand
    mini = engine.load("minilm-l6")
    labels = ["sports", "politics", "cooking", "technology"]

    def raw_zero_shot():
        texts = [FOOTBALL] + [f"This example is about {x}." for x in labels]
        enc = mini.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = mini.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        return torch.softmax((emb[1:] @ emb[0]) * 20, 0)

    ours = lambda: tasks.run(engine, "zero-shot-classification", "minilm-l6", FOOTBALL,  # noqa: E731
                         candidate_labels=", ".join(labels))
    ours(), raw_zero_shot()
    rows.append(Row("zero-shot (MiniLM fallback) vs raw mean-pool + cosine", best_of(ours, 5),
                    best_of(raw_zero_shot, 5), target=1.3))

    # NER fallback vs spaCy called directly
    nlp = engine.load("spacy-en-core-web-sm").nlp
    ours = lambda: tasks.run(engine, "ner", "spacy-en-core-web-sm", NER_TEXT)  # noqa: E731
    ours()
    rows.append(Row("NER (spaCy fallback) vs nlp(text)", best_of(ours, 5), best_of(lambda: nlp(NER_TEXT), 5),
                    target=1.3))

    # text generation through pipeline() vs the raw pipeline on the same model, 8 greedy tokens
    lm = engine.load("smollm2-135m-instruct")
    raw_pipe = pipeline("text-generation", model=lm.model, tokenizer=lm.tokenizer)

    def raw_gen():
        set_seed(0)
        return raw_pipe("The best thing about", max_new_tokens=8, do_sample=False)

    ours = lambda: tasks.run(engine, "text-generation", "smollm2-135m-instruct", "The best thing about",  # noqa: E731
                         max_new_tokens=8, temperature=0.0, seed=0)
    ours()
    rows.append(Row("text-generation 8 tokens vs raw pipeline()", best_of(ours, 3), best_of(raw_gen, 3),
                    target=1.15))
    return rows
