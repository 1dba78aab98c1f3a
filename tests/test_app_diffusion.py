"""The Diffusion tab through its API (gradio_client), as any API user would call it."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.diffusion.generation import read_png_parameters, sample_digit

MEMORY = dict(fp16=True, attention_slicing=False, vae_slicing=False, vae_tiling=False, cpu_offload=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def knobs(guidance=3.0, steps=6, scheduler="Euler", n=2, w=16, h=16, every=2, rescale=0.0):
    """The sampling settings as keyword arguments, named as the API names them."""
    return dict(guidance_scale=guidance, steps=steps, scheduler=scheduler, num_images=n, width=w, height=h,
                gallery_every=every, guidance_rescale=rescale)


def txt2img(client, prompt, negative, seed, **settings):
    return client.predict(model="digits-16px", prompt=prompt, negative_prompt=negative, **knobs(**settings), seed=seed,
                          **MEMORY, api_name="/txt2img")


def img2img(client, sketch, prompt, strength, seed, **settings):
    return client.predict(model="digits-16px", init_image=sketch, prompt=prompt, negative_prompt="", strength=strength,
                          **knobs(**settings), seed=seed, **MEMORY, api_name="/img2img")


def test_txt2img_pngs_carry_their_parameters(client):
    images, info, frames, files, gif, diagram, schedule = txt2img(client, "a handwritten 4", "thin", 123)
    assert len(images) == 2 and len(files) == 2 and len(frames) == 3  # steps 2, 4, 6
    params = read_png_parameters(files[0])
    assert params["prompt"] == "a handwritten 4" and params["negative_prompt"] == "thin"
    assert params["seed"] == 123 and params["scheduler"] == "Euler" and params["steps"] == 6
    assert Image.open(files[0]).size == (256, 256)  # 16x16 upscaled nearest x16
    assert Image.open(gif).format == "GIF" and "(4, 12, 64)" in diagram  # 2 images x CFG
    again = txt2img(client, "a handwritten 4", "thin", 123)
    assert np.array_equal(np.asarray(Image.open(files[0])), np.asarray(Image.open(again[3][0])))


def test_img2img_runs_strength_times_steps(client, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "three.png"
    sample_digit(3).resize((160, 160), Image.NEAREST).save(path)
    sketch = {"background": handle_file(str(path)), "layers": [], "composite": handle_file(str(path))}
    images, info, frames, files, diagram, schedule = img2img(client, sketch, "a handwritten 8", 0.5, 5, steps=10, n=1)
    assert "**5** denoising steps run" in info
    assert read_png_parameters(files[0])["strength"] == 0.5


def test_bad_size_is_a_readable_error(client):
    with pytest.raises(Exception, match="width = 12"):
        txt2img(client, "a 1", "", 1, w=12)


# --- issue 25 ---------------------------------------------------------------------------------------
def test_each_image_is_captioned_with_its_seed_and_that_seed_remakes_it(client):
    images, info, *_, files, gif, diagram, schedule = txt2img(client, "a handwritten 2", "", 200, n=3,
                                                    scheduler="Euler ancestral")
    captions = [im["caption"] for im in images]
    assert captions == ["seed 200 #0", "seed 201 #1", "seed 202 #2"] and "seeds 200 to 202" in info
    assert [read_png_parameters(f)["seed"] for f in files] == [200, 201, 202]
    seed = int(captions[2].split()[1])
    alone = txt2img(client, "a handwritten 2", "", seed, n=1, scheduler="Euler ancestral")
    assert alone[0][0]["caption"] == "seed 202 #0"
    assert np.array_equal(np.asarray(Image.open(files[2])), np.asarray(Image.open(alone[3][0])))
    assert not np.array_equal(np.asarray(Image.open(files[1])), np.asarray(Image.open(alone[3][0])))


@pytest.mark.parametrize("sketch", [None, {"background": None, "layers": [], "composite": None}])
def test_img2img_without_an_image_is_an_error_not_txt2img(client, sketch):
    with pytest.raises(Exception, match="init image is missing"):
        img2img(client, sketch, "a handwritten 8", 0.5, 5, n=1)


def test_use_this_digit_also_shows_the_init_image_as_the_model_sees_it(client):
    from engine.diffusion.generation import prepare_init_image, profile_for

    canvas, preview = client.predict(model="digits-16px", digit="3", api_name="/sample_digit")
    assert canvas["composite"] and preview
    seen = prepare_init_image(sample_digit(3), profile_for("digits-16px")).resize((160, 160), Image.NEAREST)
    assert np.array_equal(np.asarray(Image.open(preview).convert("L")), np.asarray(seen))


def test_img2img_at_strength_0_3_runs_3_of_10_steps(client, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "five.png"
    sample_digit(5).resize((160, 160), Image.NEAREST).save(path)
    sketch = {"background": handle_file(str(path)), "layers": [], "composite": handle_file(str(path))}
    images, info, frames, files, diagram, schedule = img2img(client, sketch, "a handwritten 6", 0.3, 5, steps=10, n=1,
                                                       every=1)
    assert "**3** denoising steps run" in info and "U-Net calls" not in info
    assert [f["caption"].split(" · ")[0] for f in frames] == ["step 1/3", "step 2/3", "step 3/3"]


def test_every_api_parameter_has_a_name(client):
    """Gradio names API parameters after the listener's parameters; *args gave param_3, param_4..."""
    import re

    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    unnamed = {name: [p["parameter_name"] for p in info["parameters"] if re.fullmatch(r"param_\d+", p["parameter_name"])]
               for name, info in api.items()}
    assert {name: names for name, names in unnamed.items() if names} == {}
    settings = ["guidance_scale", "steps", "scheduler", "num_images", "width", "height", "gallery_every",
                "guidance_rescale", "seed", "fp16", "attention_slicing", "vae_slicing", "vae_tiling", "cpu_offload"]
    names = {name: [p["parameter_name"] for p in api[name]["parameters"]]
             for name in ("/txt2img", "/img2img", "/diffusion_sweep")}
    assert names["/txt2img"] == ["model", "prompt", "negative_prompt", *settings]
    assert names["/img2img"] == ["model", "init_image", "prompt", "negative_prompt", "strength", *settings]
    assert names["/diffusion_sweep"][:6] == ["model", "prompt", "negative_prompt", "guidance_values",
                                             "column_axis", "column_values"]


def _gallery_tensor(gallery):
    from engine.diffusion import teach as T

    paths = [item["image"] if isinstance(item, dict) else item[0] for item in gallery]
    paths = [p["path"] if isinstance(p, dict) else p for p in paths]
    return T.prepare_images([Image.open(p).convert("L").resize((16, 16), Image.NEAREST) for p in paths],
                            check_count=False)


def test_teach_a_symbol_through_the_api_and_sessions_stay_apart(app_url):
    """One API session loads the star set, trains DreamBooth (default steps, no prior preservation)
    and then draws "a zorb" as the star: the template classifier puts most samples on the star.
    A second session, never trained, has nothing taught: its generate and forgetting buttons are
    refused with the step to do first. The weights download as a zip."""
    import zipfile

    from gradio_client import Client

    from engine.diffusion import teach as T

    star = T.prepare_images(T.load_symbol_set("star"))
    taught, other = Client(app_url, verbose=False), Client(app_url, verbose=False)
    shown = taught.predict("star", api_name="/teach_example_set")
    assert len(shown) == len(T.load_symbol_set("star"))
    status, _, _ = taught.predict(w="zorb", method="dreambooth", steps=150, learning_rate=0.0005, batch_size=4, seed=0,
                                  prior_preservation=False, class_prompt="a handwritten {digit}", num_class_images=20,
                                  prior_weight=1.0, train_text_encoder=False, lora_rank=4, api_name="/teach_train")
    assert "150 / 150" in status
    images, _ = taught.predict("a zorb", 1, api_name="/teach_generate")
    assert T.symbol_share(star, _gallery_tensor(images)) > 0.5
    for call in (lambda: other.predict("a zorb", 1, api_name="/teach_generate"),
                 lambda: other.predict(api_name="/teach_forgetting")):
        with pytest.raises(Exception, match="train first"):
            call()
    with zipfile.ZipFile(taught.predict(api_name="/teach_download")) as z:
        names = z.namelist()
    assert "teach.json" in names and any(n.startswith("unet/") for n in names)


def test_memory_knobs_follow_the_device_known_at_page_load(engine):
    """Built switched off (the device is picked on first use), set for the device at page load:
    usable on a CUDA GPU, off elsewhere with the fold saying so."""
    from types import SimpleNamespace

    from tabs.diffusion import MEMORY, memory_knob_updates

    fold, *boxes = memory_knob_updates(engine)  # the tests' engine: a CPU
    assert fold["label"] == "GPU memory knobs (GPU only: off on this CPU)"
    assert len(boxes) == len(MEMORY) and not any(b["interactive"] for b in boxes)
    fold, *boxes = memory_knob_updates(SimpleNamespace(device=SimpleNamespace(kind="cuda")))
    assert fold["label"] == "GPU memory knobs" and all(b["interactive"] for b in boxes)
