"""The tabs in teaching order. Each module in ORDER has TITLE (the tab label) and build(engine)
that lays out the tab and registers its listeners."""
from __future__ import annotations

import importlib

ORDER = (
    "home",        # start here: what each topic teaches, device, cache, models
    "tokens",      # 1. text -> token pieces and ids
    "embeddings",  # 2. contextual embeddings and attention
    "inside",      # 2b. one prompt's whole journey through the model, the logit lens, anatomy
    "decoding",    # 3. next-token probabilities and sampling knobs
    "inference",   # 3b. KV cache, batching, utilization, quantization, speculative decoding, sparsity, measured
    "pipelines",   # 4. the classic tasks through pipeline()
    "retrieval",   # 4b. retrieval-augmented generation on a vector database
    "pretraining",  # 5a. train a model from nothing, watch samples become words, fit a scaling law
    "lora",        # 5. fine-tuning with LoRA
    "posttraining",  # 5b. base vs instruct, SFT with a visible loss mask, preference tuning (reward model, DPO)
    "diffusion",   # 6. text-to-image and image-to-image
    "evaluation",  # 7. perplexity and answer metrics
    "trust",       # 7b. calibration, grounding, snowballing, prompt sensitivity
    "classroom",   # class mode: a room, the class answers on phones, the projector shows the class beside the model
)


def available() -> list:
    """The tab modules, in teaching order."""
    return [importlib.import_module(f"{__name__}.{name}") for name in ORDER]


TOPICS = (
    ("Tokens", "Text is not what the model sees: the same sentence cut into pieces by a dozen real "
               "tokenizers, ids, padding and attention masks."),
    ("Embeddings & attention", "Inside the transformer: attention heatmaps per layer and head, bertviz, "
                               "the word 'bank' in two senses, a mini vector search."),
    ("Inside the model", "One prompt's whole journey: text, ids, embedding rows, each block, logits, the "
                         "next token; one block opened up, the logit lens, random vs trained, anatomy and cost."),
    ("Decoding", "How a model picks the next word: probabilities, temperature, top-k, top-p, greedy vs "
                 "sampling, one token at a time."),
    ("Inference", "Why serving is fast, measured on this machine: prefill vs decode and the KV cache, batching, "
                  "utilization, quantization, speculative decoding and sparsity."),
    ("Pipelines", "The classic tasks with their real knobs: generation, zero-shot, fill-mask, "
                  "summarization, NER, translation, and the code to run them."),
    ("Retrieval (RAG)", "A real vector database (Qdrant) answers from documents: chunking, dense, sparse and "
                        "hybrid search, the prompt with its sources, answers with and without retrieval, "
                        "hit rate and MRR as the chunk size moves."),
    ("Pre-training", "Train a small transformer from random weights on 2.6 MB of text: tokenizer, labels "
                     "shifted by one, samples going from noise to words, and a scaling law fitted to your own runs."),
    ("LoRA", "Fine-tuning can be cheap: train an adapter on quotes in the browser and compare base vs "
             "adapted output."),
    ("Post-training", "From a text completer to an assistant: a base and an instruct model side by side, the "
                      "chat template and its loss mask, SFT with LoRA on the base model, scored before and after; then"
                      " preference tuning: a reward model (Bradley–Terry) and DPO through trl, the margins moving live."),
    ("Diffusion", "Text-to-image step by step: prompt, negative prompt, guidance, steps, scheduler, "
                  "the denoising as a gallery of x_t beside the predicted clean image x̂₀, and the noise schedule "
                  "with the timesteps the scheduler visits."),
    ("Evaluation", "How we measure language models: perplexity, surprisal per token, bits per byte, "
                   "answer metrics."),
    ("Trust & prompting", "When to believe an answer: calibration (reliability diagram, ECE, Brier, answer only "
                          "above τ), grounding with and without retrieval and with a false passage, snowballing "
                          "after a forced wrong step, and what the prompt alone changes (few-shot k, wording, "
                          "format, chat template)."),
    ("Class", "A live lesson: the class joins a room by code or QR code and answers on their phones (predict the "
              "next token, be the sampler, vote on answers, quick checks); the projector shows the class beside the model."),
)
