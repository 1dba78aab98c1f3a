"""Post-training (minimal shim on the preference branch; the full tab with SFT replaces it):
a gr.Tabs whose preference sub-tab is built by tabs/_posttraining_preference.py."""
from __future__ import annotations

import gradio as gr

from tabs._posttraining_preference import build_preference

TITLE = "Post-training"


def build(engine):
    with gr.Tabs():
        with gr.Tab("Preference tuning (reward model, DPO)"):
            return build_preference(engine)
