"""Training code shared by the LoRA and Post-training lessons.

    lora.py   LoRA settings, per-session adapters, the training loop, adapter export/import
    preference.py  comparison data, reward model (Bradley–Terry) and DPO through trl
    plots.py  the loss curve, the preference curves, before/after

SFT and preference tuning (reward model, DPO through trl) build on lora.py here.
"""
