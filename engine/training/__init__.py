"""Training code shared by the LoRA and Post-training lessons.

    lora.py   LoRA settings, per-session adapters, the training loop, adapter export/import
    plots.py  the loss curve

SFT and preference tuning (reward model, DPO through trl) build on lora.py here.
"""
