"""Pre-training: a language model trained from nothing on raw text, in the browser.

    data.py     the bundled corpus (assets/pretraining) or an upload, the train/validation split,
                the window of input ids and labels (the same ids shifted by one), token counts
    vocab.py    the three tokenizers: characters, a BPE trained here with `tokenizers`, GPT-2's
    model.py    PretrainSettings, the transformers config (Llama- or GPT-2-style), parameters and
                FLOPs per token, the model folder (safetensors + config + tokenizer) and its zip
    train.py    the training loop through engine/training/runner.py (gate, cap, Deadline, threads):
                train and validation loss against tokens, samples every N steps; per-session state
    scaling.py  the sweep of model sizes on one token budget, the power-law fit, the compute-optimal size
    plots.py    loss curves, the scaling-law plots
"""
