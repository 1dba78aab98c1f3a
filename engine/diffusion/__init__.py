"""Diffusion lesson: text-to-image and image-to-image through diffusers pipelines.

    pipeline.py    PixelDiffusionPipeline, the diffusers pipeline of the embedded digits model
    generation.py  knobs, loading, per-request pipelines and schedulers, runs, sweeps, PNG metadata
    plots.py       labelled image grids and the pipeline diagram

DreamBooth and textual inversion (wave 2) build on generation.py and pipeline.py.
"""
