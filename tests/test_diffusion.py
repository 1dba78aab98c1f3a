"""Diffusion engine: the pipeline on tiny components built from configs, and the real digits model."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from engine.diffusion import generation as D
from engine.diffusion import plots as DP
from engine.core.errors import UserInputError

DIGITS = "digits-16px"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random tiny pipeline built from configs, saved and loaded through the real loader."""
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from engine.core.registry import ASSETS

    torch.manual_seed(0)
    tok = CLIPTokenizer.from_pretrained(ASSETS / "diffusion/digits/tokenizer")
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2,
                                        max_position_embeddings=tok.model_max_length,
                                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    unet = UNet2DConditionModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                                block_out_channels=(8, 16), norm_num_groups=4, cross_attention_dim=16,
                                attention_head_dim=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    folder = tmp_path_factory.mktemp("tiny")
    unet.save_pretrained(folder / "unet")
    text.save_pretrained(folder / "text_encoder")
    tok.save_pretrained(folder / "tokenizer")
    DDIMScheduler(beta_schedule="squaredcos_cap_v2").save_pretrained(folder / "scheduler")
    return D.load_pixel_pipeline(str(folder))


def _run(pipe, seed=0, **kw):
    args = dict(prompt="a handwritten 3", num_inference_steps=2, guidance_scale=5.0, output_type="np",
                generator=torch.Generator().manual_seed(seed))
    args.update(kw)
    return pipe(**args).images


def test_tiny_pipeline_runs_two_steps_with_callback(tiny):
    seen = []
    out = _run(tiny, num_images_per_prompt=2, height=16, width=8,
               callback_on_step_end=lambda p, i, t, kw: seen.append((i, tuple(kw["latents"].shape))) or kw)
    assert out.shape == (2, 16, 8, 1)
    assert seen == [(0, (2, 1, 16, 8)), (1, (2, 1, 16, 8))]
    assert np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


def test_same_seed_same_image_other_seed_other_image(tiny):
    a, b, c = _run(tiny, seed=1), _run(tiny, seed=1), _run(tiny, seed=2)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_negative_prompt_changes_the_result(tiny):
    plain, neg = _run(tiny), _run(tiny, negative_prompt="bold")
    assert np.abs(plain - neg).max() > 1e-4


@pytest.mark.parametrize("name", D.SCHEDULER_NAMES)
def test_every_scheduler_runs(tiny, name):
    from engine.diffusion.generation import make_scheduler

    pipe = type(tiny)(**{**tiny.components, "scheduler": make_scheduler(tiny, name)})
    out = _run(pipe)
    assert out.shape == (1, 8, 8, 1) and np.isfinite(out).all()


def test_strength_zero_returns_the_input(tiny):
    init = Image.fromarray((np.arange(64).reshape(8, 8) * 4).astype(np.uint8))
    out = _run(tiny, image=init, strength=0.0, height=8, width=8)
    assert np.abs(out[0, ..., 0] * 255 - np.asarray(init)).max() <= 1.0


def test_img2img_runs_strength_times_steps(tiny):
    pipe = type(tiny)(**tiny.components)
    steps = []
    _run(pipe, image=Image.new("L", (8, 8), 128), strength=0.5, num_inference_steps=10, height=8, width=8,
         callback_on_step_end=lambda p, i, t, kw: steps.append(int(t)) or kw)
    assert len(steps) == 5
    assert steps == sorted(steps, reverse=True)


def test_engine_equals_raw_pipeline_call(engine):
    s = D.DiffusionSettings(guidance_scale=3.0, steps=4, width=16, height=16, seed=7, scheduler="Euler",
                            num_images=2)
    ours = D.generate(engine, DIGITS, "a handwritten 5", "bold", s)
    bundle = engine.load(DIGITS)
    raw = D.request_pipeline(bundle, "Euler")(
        prompt="a handwritten 5", negative_prompt="bold", num_inference_steps=4, guidance_scale=3.0,
        num_images_per_prompt=2, height=16, width=16,
        generator=[torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)]).images  # seed + i
    assert [np.asarray(a).tolist() for a in ours.images] == [np.asarray(b).tolist() for b in raw]
    assert ours.steps_run == 4 and len(ours.frames) == 1  # every 5 steps, plus the last
    assert ours.display[0].size == (256, 256)  # nearest upscale x16 for slides


@pytest.mark.slow  # the real digits model draws 60 images x 25 steps (~80 s on 2 busy cores)
def test_digits_samples_are_recognised(engine):
    """'a handwritten N' for all ten digits: a classifier fitted on the digits data agrees >= 80%."""
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    data = load_digits()
    clf = SVC(gamma=0.001, C=10).fit(data.data, data.target)
    per = 6
    bundle = engine.load(DIGITS)
    pipe = D.request_pipeline(bundle, D.profile_for(DIGITS).scheduler)
    prompts = [f"a handwritten {d}" for d in range(10)]
    images = pipe(prompt=prompts, num_images_per_prompt=per, guidance_scale=D.profile_for(DIGITS).guidance,
                  num_inference_steps=25, generator=torch.Generator().manual_seed(0), output_type="pt").images
    x = torch.nn.functional.avg_pool2d((images.float() + 1) / 2 * 16, 2).reshape(len(images), -1).numpy()
    pred = clf.predict(x)
    labels = np.repeat(np.arange(10), per)
    accuracy = (pred == labels).mean()
    assert accuracy >= 0.8, f"only {accuracy:.0%} recognised: {pred.tolist()}"
    assert len(set(pred.tolist())) == 10  # every digit appears


def test_digits_img2img_strength_zero_gives_the_init_back(engine):
    init = D.sample_digit(3)
    s = D.DiffusionSettings(steps=10, width=16, height=16, strength=0.0, num_images=1)
    res = D.generate(engine, DIGITS, "a handwritten 8", "", s, init_image=init)
    assert res.steps_run == 0
    seen = D.prepare_init_image(init, D.profile_for(DIGITS))  # contrast stretched, as the model gets it
    assert np.abs(np.asarray(res.images[0], dtype=int) - np.asarray(seen, dtype=int)).max() <= 1


def test_png_carries_its_parameters(engine, tmp_path):
    s = D.DiffusionSettings(steps=2, width=16, height=16, seed=3, num_images=1)
    res = D.generate(engine, DIGITS, "seven", "thin", s)
    path = D.save_pngs(res, str(tmp_path))[0]
    params = D.read_png_parameters(path)
    assert params["prompt"] == "seven" and params["negative_prompt"] == "thin" and params["seed"] == 3
    assert params["native_size"] == "16x16" and "Negative prompt: thin" in Image.open(path).info["parameters"]
    gif = D.save_gif(res.frames, str(tmp_path / "a.gif"))
    assert Image.open(gif).format == "GIF"


def test_sweep_grid_has_one_cell_per_pair(engine):
    s = D.DiffusionSettings(width=16, height=16, seed=1)
    grid, params = D.sweep(engine, DIGITS, "a handwritten 2", "", s, [1.0, 4.0], [1, 2, 3])
    assert params["guidances"] == [1.0, 4.0] and params["columns"] == [1, 2, 3]
    assert grid.width > 3 * 160 and grid.height > 2 * 160


@pytest.mark.parametrize("change, word", [({"width": 20}, "multiple of 8"), ({"width": 128}, "8 to 64"),
                                          ({"scheduler": "LMS"}, "DDIM"), ({"steps": 0}, "1 to 100")])
def test_bad_settings_name_the_value_and_range(engine, change, word):
    s = D.DiffusionSettings(width=16, height=16)
    for k, v in change.items():
        setattr(s, k, v)
    with pytest.raises(UserInputError, match=word):
        D.generate(engine, DIGITS, "a 1", "", s)


def test_pipeline_shapes_and_prompt_builder(engine):
    bundle = engine.load(DIGITS)
    s = D.DiffusionSettings(width=16, height=24, num_images=3, guidance_scale=3.0)
    shapes = {name: shape for name, shape, _ in D.pipeline_shapes(bundle, "a 7", s)}
    assert shapes["token ids"] == "(6, 12)" and shapes["text embeddings"] == "(6, 12, 64)"
    assert shapes["latents"] == "(3, 1, 24, 16)" and shapes["image"] == "(3, 1, 24, 16)"
    assert "token ids" in DP.pipeline_diagram_html(D.pipeline_shapes(bundle, "a 7", s))
    assert D.compose_prompt("a fox", "watercolor", "", "in snow") == "a fox, watercolor, in snow"


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    """A tiny random Stable Diffusion (StableDiffusionPipeline + VAE) built from configs and loaded
    through load_diffusion, as a Hub folder would be."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from engine.core.device import pick_device
    from engine.core.registry import ASSETS, Registry, Source

    torch.manual_seed(0)
    tok = CLIPTokenizer.from_pretrained(ASSETS / "diffusion/digits/tokenizer")
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=12,
                                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), norm_num_groups=4, cross_attention_dim=16,
                                attention_head_dim=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    vae = AutoencoderKL(block_out_channels=(8, 8, 8, 8), norm_num_groups=4, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    folder = tmp_path_factory.mktemp("tiny-sd")
    StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                            scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(folder)
    spec = Registry().get("sd15")
    return D.load_diffusion(Source(spec, "embedded", str(folder)), pick_device("cpu"))


def test_stable_diffusion_path_on_tiny_components(tiny_sd):
    """The online path (StableDiffusionPipeline + VAE, img2img via from_pipe)."""
    bundle = tiny_sd
    assert type(bundle.pipe).__name__ == "StableDiffusionPipeline"
    s = D.DiffusionSettings(steps=2, width=64, height=64, num_images=1, guidance_scale=5.0, scheduler="Euler",
                            gallery_every=1, strength=0.5)
    a = D.run_bundle(bundle, "a fox", "", s)
    b = D.run_bundle(bundle, "a fox", "", s)
    assert a.images[0].size == (64, 64) and len(a.frames) == 2
    assert np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))
    shapes = {name: shape for name, shape, _ in a.shapes}
    assert shapes["latents"] == "(1, 4, 8, 8)" and shapes["image"] == "(1, 3, 64, 64)"
    i2i = D.run_bundle(bundle, "a fox", "", replace(s, steps=4), init_image=a.images[0])
    assert i2i.steps_run == 2 and i2i.images[0].size == (64, 64)


# --- issue 25: step counts, per-image seeds, img2img without an image -----------------------------
def _steps_seen(run):
    """Run `run(progress)` and return (result, the (step, total) pairs its progress messages named)."""
    import re

    messages = []
    result = run(lambda fraction, message: messages.append(message))
    found = (re.search(r"Denoising step (\d+)/(\d+)", msg) for msg in messages)
    pairs = [(int(m[1]), int(m[2])) for m in found if m]
    return result, pairs


def _check_step_count(result, pairs, asked):
    assert result.steps_run == asked
    assert pairs and {total for _, total in pairs} == {asked}  # "step k/asked", never "k/asked+1"
    assert max(done for done, _ in pairs) == asked == pairs[-1][0]
    assert [f.step for f in result.frames] == list(range(1, asked + 1))  # gallery every step, no repeats


@pytest.mark.parametrize("name", D.profile_for(DIGITS).schedulers)
def test_digits_every_offered_scheduler_reports_the_steps_asked(engine, name):
    s = D.DiffusionSettings(steps=3, width=16, height=16, num_images=1, scheduler=name, gallery_every=1,
                            guidance_scale=3.0)
    result, pairs = _steps_seen(lambda progress: D.generate(engine, DIGITS, "a 1", "", s, progress=progress))
    _check_step_count(result, pairs, 3)
    assert result.unet_calls == 3


@pytest.mark.parametrize("name", D.profile_for("sd15").schedulers)
def test_stable_diffusion_every_offered_scheduler_reports_the_steps_asked(tiny_sd, name):
    """PNDM is offered for Stable Diffusion: its warm-up is one more U-Net call, not one more step."""
    s = D.DiffusionSettings(steps=3, width=64, height=64, num_images=1, scheduler=name, gallery_every=1,
                            guidance_scale=5.0, strength=0.7)
    result, pairs = _steps_seen(lambda progress: D.run_bundle(tiny_sd, "a fox", "", s, progress=progress))
    _check_step_count(result, pairs, 3)
    assert result.unet_calls == 3 + (name == "PNDM")
    i2i, pairs = _steps_seen(lambda progress: D.run_bundle(tiny_sd, "a fox", "", s, init_image=result.images[0],
                                                           progress=progress))
    _check_step_count(i2i, pairs, 2)  # int(0.7 x 3)


def test_stable_diffusion_img2img_with_no_step_to_run_gives_the_input_back(tiny_sd):
    """int(0.05 x 10) = 0 steps: diffusers' img2img cannot start from an empty schedule (it used to
    end in a generic RuntimeError); like the pixel pipeline, the input comes back."""
    init = Image.fromarray((np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3))
    s = D.DiffusionSettings(steps=10, strength=0.05, width=64, height=64, num_images=2, scheduler="DDIM")
    res = D.run_bundle(tiny_sd, "a fox", "", s, init_image=init)
    assert res.steps_run == res.unet_calls == 0 and len(res.images) == 2
    assert all(np.array_equal(np.asarray(im), np.asarray(init)) for im in res.images)


def test_pndm_is_offered_only_where_it_works(engine):
    assert "PNDM" not in D.profile_for(DIGITS).schedulers and "PNDM" in D.profile_for("sd15").schedulers
    s = D.DiffusionSettings(steps=3, width=16, height=16, num_images=1, scheduler="PNDM")
    with pytest.raises(UserInputError, match="scheduler = 'PNDM' is not offered.*DDIM, Euler"):
        D.generate(engine, DIGITS, "a 1", "", s)


@pytest.mark.parametrize("strength", [0.3, 0.35, 0.25, 0.7, 0.55, 0.05, 1.0])
@pytest.mark.parametrize("steps", [10, 7])
def test_img2img_steps_follow_diffusers_rule(tiny, engine, strength, steps):
    """At strengths where int(), round() and ceil() disagree (0.3 x 10 = 3.0000000000000004,
    0.35 x 10 = 3.5, 0.25 x 10 = 2.5): steps_run, the U-Net calls and the tensor diagram all equal
    what diffusers' own StableDiffusionImg2ImgPipeline.get_timesteps gives."""
    from diffusers import StableDiffusionImg2ImgPipeline

    def diffusers_rule(pipe):
        pipe.scheduler.set_timesteps(steps)
        timesteps, n = StableDiffusionImg2ImgPipeline.get_timesteps(pipe, steps, strength, "cpu")
        assert n == len(timesteps)
        return [int(t) for t in timesteps]

    seen = []
    _run(tiny, image=Image.new("L", (8, 8), 128), strength=strength, num_inference_steps=steps, height=8,
         width=8, callback_on_step_end=lambda p, i, t, kw: seen.append(int(t)) or kw)
    assert seen == diffusers_rule(type(tiny)(**tiny.components))
    expected = len(diffusers_rule(D.request_pipeline(engine.load(DIGITS), "DDIM", img2img=True)))
    s = D.DiffusionSettings(steps=steps, strength=strength, width=16, height=16, num_images=1, scheduler="DDIM",
                            gallery_every=1)
    res = D.generate(engine, DIGITS, "a handwritten 8", "", s, init_image=D.sample_digit(3))
    assert res.steps_run == res.unet_calls == len(res.frames or []) - (expected == 0) == expected
    assert f"in {expected} steps" in dict((n, w) for n, _, w in res.shapes)["latents"]


def test_img2img_without_an_image_is_an_error(engine):
    s = D.DiffusionSettings(steps=2, width=16, height=16, num_images=1)
    with pytest.raises(UserInputError, match="init image is missing"):
        D.image_to_image(engine, DIGITS, "a 1", "", s, init_image=None)


@pytest.mark.parametrize("name, img2img", [("DDIM", False), ("Euler ancestral", False), ("DPM++ 2M", True)])
def test_each_image_of_a_batch_comes_back_alone_from_its_own_seed(engine, name, img2img):
    """Image i of a batch made with seed s is the image seed s + i makes on its own; Euler ancestral
    also draws fresh noise at every step, from the same per-image generator."""
    s = D.DiffusionSettings(steps=4, width=16, height=16, num_images=3, scheduler=name, seed=2**32 - 2,
                            guidance_scale=3.0, strength=0.8)
    init = D.sample_digit(5) if img2img else None
    batch = D.generate(engine, DIGITS, "a handwritten 6", "", s, init_image=init)
    assert batch.seeds == [2**32 - 2, 2**32 - 1, 0]  # wraps inside the seed range
    pixels = [np.asarray(im).tolist() for im in batch.images]
    assert len({str(p) for p in pixels}) == 3  # different noise each
    for i, seed in enumerate(batch.seeds):
        alone = D.generate(engine, DIGITS, "a handwritten 6", "", replace(s, seed=seed, num_images=1),
                           init_image=init)
        assert alone.seeds == [seed] and np.asarray(alone.images[0]).tolist() == pixels[i]


def test_each_png_carries_its_own_seed(engine, tmp_path):
    s = D.DiffusionSettings(steps=2, width=16, height=16, seed=10, num_images=2)
    res = D.generate(engine, DIGITS, "seven", "", s)
    params = [D.read_png_parameters(p) for p in D.save_pngs(res, str(tmp_path))]
    assert [p["seed"] for p in params] == [p["seed_of_image"] for p in params] == [10, 11]
    assert [p["batch_seed"] for p in params] == [10, 10]


def test_profile_of_a_key_that_is_not_a_diffusion_model_is_refused_not_sd15():
    """No silent default: a text model's key used to get Stable Diffusion 1.5's profile."""
    for key in ("minilm-l6", "no-such-model", ""):
        with pytest.raises(UserInputError, match="choose one of 'digits-16px', 'sd15', 'sd-turbo'"):
            D.profile_for(key)
        with pytest.raises(UserInputError):
            D.defaults_for(key)
    assert D.profile_for("sd15").size == 512


@pytest.mark.parametrize("name", D.SCHEDULER_NAMES)
def test_few_steps_start_at_the_last_timestep_and_more_keep_the_model_spacing(engine, name):
    """Issue 32: with "leading" spacing 1 step ran at t = 1 only and returned the noise."""
    pipe = engine.load(DIGITS).pipe
    for steps, first in ((1, 999), (2, 999)):
        sched = D.make_scheduler(pipe, name, steps)
        sched.set_timesteps(steps)
        assert sched.config.timestep_spacing == "trailing" and round(float(sched.timesteps[0])) == first
    sched = D.make_scheduler(pipe, name, D.FEW_STEPS + 1)
    assert sched.config.timestep_spacing == pipe.scheduler.config.timestep_spacing == "leading"


def test_one_ddim_step_draws_digits_not_noise(engine):
    """One step from t = 999 gives digits the classifier recognises (the scan for FEW_STEPS
    measured 94% of 50; with leading spacing, t = 1, it was 14%: the noise)."""
    from engine.diffusion import teach

    s = D.DiffusionSettings(guidance_scale=3.0, steps=1, width=16, height=16, scheduler="DDIM", num_images=2, seed=0)
    labels, found = [], []
    for d in range(10):
        result = D.generate(engine, DIGITS, f"a handwritten {d}", "", s)
        assert result.timesteps == [999] and result.spacing == "trailing"
        x = torch.tensor(np.stack([np.asarray(im, dtype=np.float32) for im in result.images]))  # (2, 16, 16) 0..255
        found += teach._digit_classifier().predict(teach._digit_features(x[:, None] / 127.5 - 1)).tolist()
        labels += [d, d]
    assert np.mean(np.array(found) == np.array(labels)) >= 0.8, found
    noise = D.make_scheduler(engine.load(DIGITS).pipe, "DDIM")  # the model's own spacing at 1 step: t = 1
    noise.set_timesteps(1)
    assert noise.timesteps.tolist() == [1]
