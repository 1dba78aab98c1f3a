"""Diffusion lesson: text-to-image and image-to-image through diffusers pipelines.

    pipeline.py    PixelDiffusionPipeline, the diffusers pipeline of the embedded digits model
    generation.py  knobs, loading, per-request pipelines and schedulers, runs, sweeps, PNG metadata
    schedule.py    the noise schedule a run visits, and x̂₀ (the predicted clean image) per step
    plots.py       labelled image grids, the pipeline diagram, the noise schedule, x_t beside x̂₀

DreamBooth and textual inversion (wave 2) build on generation.py and pipeline.py.
"""
