"""Training code shared by the LoRA and Post-training lessons.

    runner.py the one training runner: the gate (one training at a time), the wall-time cap,
              torch's thread count; every lesson's training goes through it
    lora.py   LoRA settings, per-session adapters, the validation split, the learning-rate schedule,
              the training loop, adapter export/import
    merge.py  the adapter merged into a copy of the base, exported as a plain transformers folder
    preference.py  comparison data, reward model (Bradley–Terry) and DPO through trl
    plots.py  the loss curve, the preference curves, before/after

SFT and preference tuning (reward model, DPO through trl) build on lora.py here.
"""
