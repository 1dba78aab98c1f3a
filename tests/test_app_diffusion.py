"""The Diffusion tab through its API (gradio_client), as any API user would call it."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.diffusion.generation import read_png_parameters, sample_digit

MEMORY = [True, False, False, False, False]  # fp16, attention slicing, VAE slicing, VAE tiling, CPU offload


pytestmark = pytest.mark.usefixtures("one_thread")


def knobs(guidance=3.0, steps=6, scheduler="Euler", n=2, w=16, h=16, every=2, rescale=0.0):
    return [guidance, steps, scheduler, n, w, h, every, rescale]


def test_txt2img_pngs_carry_their_parameters(client):
    images, info, frames, files, gif, diagram = client.predict(
        "digits-16px", "a handwritten 4", "thin", *knobs(), 123, *MEMORY, api_name="/txt2img")
    assert len(images) == 2 and len(files) == 2 and len(frames) == 3  # steps 2, 4, 6
    params = read_png_parameters(files[0])
    assert params["prompt"] == "a handwritten 4" and params["negative_prompt"] == "thin"
    assert params["seed"] == 123 and params["scheduler"] == "Euler" and params["steps"] == 6
    assert Image.open(files[0]).size == (256, 256)  # 16x16 upscaled nearest x16
    assert Image.open(gif).format == "GIF" and "(4, 12, 64)" in diagram  # 2 images x CFG
    again = client.predict("digits-16px", "a handwritten 4", "thin", *knobs(), 123, *MEMORY, api_name="/txt2img")
    assert np.array_equal(np.asarray(Image.open(files[0])), np.asarray(Image.open(again[3][0])))


def test_img2img_runs_strength_times_steps(client, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "three.png"
    sample_digit(3).resize((160, 160), Image.NEAREST).save(path)
    sketch = {"background": handle_file(str(path)), "layers": [], "composite": handle_file(str(path))}
    images, info, frames, files, diagram = client.predict(
        "digits-16px", sketch, "a handwritten 8", "", 0.5, *knobs(steps=10, n=1), 5, *MEMORY, api_name="/img2img")
    assert "**5** denoising steps run" in info
    assert read_png_parameters(files[0])["strength"] == 0.5


def test_bad_size_is_a_readable_error(client):
    with pytest.raises(Exception, match="width = 12"):
        client.predict("digits-16px", "a 1", "", *knobs(w=12), 1, *MEMORY, api_name="/txt2img")
