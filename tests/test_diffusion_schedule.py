"""Issue 33, Diffusion as in Diffusion Explainer: the predicted clean image x̂₀ beside x_t at each
step of the denoising gallery, and the noise schedule with the timesteps a run visits. Runs the
embedded digits model (16x16 pixels, no VAE) for 3 steps."""
from __future__ import annotations

import functools

import diffusers
import numpy as np
import pytest
import torch

from engine.core.errors import UserInputError
from engine.core.registry import ASSETS
from engine.diffusion import generation as G
from engine.diffusion import schedule

DIGITS = "digits-16px"
SCHEDULER_DIR = ASSETS / "diffusion/digits/scheduler"

pytestmark = pytest.mark.usefixtures("one_thread")


def _settings(scheduler: str, steps: int = 3, **kw) -> G.DiffusionSettings:
    return G.DiffusionSettings(**{**dict(guidance_scale=3.0, steps=steps, width=16, height=16, seed=11,
                                         scheduler=scheduler, num_images=2, gallery_every=1), **kw})


def _record_class_step(monkeypatch, cls, grab):
    """Patch the diffusers class's own step() to keep grab(scheduler, output) of every call: what
    the scheduler itself produced, seen from outside the app's code."""
    seen = []
    original = cls.step

    @functools.wraps(original)
    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        seen.append(grab(self, out).detach().clone())
        return out

    monkeypatch.setattr(cls, "step", step)
    return seen


def _pixels(x0: torch.Tensor) -> np.ndarray:
    """x̂₀ latents as the gallery shows them (no VAE: the latents are the pixels), before the upscale."""
    return ((x0[0, 0].clamp(-1, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["DDIM", "Euler", "Euler ancestral"])
def test_x0_at_each_step_is_the_schedulers_own_pred_original_sample(engine, monkeypatch, name):
    cls = getattr(diffusers, G.SCHEDULERS[name])
    own = _record_class_step(monkeypatch, cls, lambda sched, out: out.pred_original_sample[:1])
    result = G.generate(engine, DIGITS, "a handwritten 7", "", _settings(name))
    assert result.x0_source == "scheduler" and len(own) == len(result.frames) == 3
    for frame, x0 in zip(result.frames, own):
        assert torch.equal(frame.x0, x0)
        shown = np.asarray(frame.clean)[::16, ::16]  # display: 16x nearest upscale of the 16x16 pixels
        assert np.array_equal(shown, _pixels(x0))
        assert frame.noisy.size == frame.clean.size == frame.image.size == (256, 256)
    assert "pred_original_sample" in __import__("tabs.diffusion").diffusion._summary(result)


def test_dpm_solver_x0_is_the_formula_and_equals_its_own_data_prediction(engine, monkeypatch):
    """DPM++ 2M returns no pred_original_sample: x̂₀ is computed by the formula. The solver
    (algorithm dpmsolver++) keeps its own x₀ prediction in model_outputs: the two agree."""
    cls = diffusers.DPMSolverMultistepScheduler
    own = _record_class_step(monkeypatch, cls, lambda sched, out: sched.model_outputs[-1][:1])
    result = G.generate(engine, DIGITS, "a handwritten 7", "", _settings("DPM++ 2M"))
    assert result.x0_source == "formula" and len(own) == len(result.frames) == 3
    for frame, x0 in zip(result.frames, own):
        assert torch.allclose(frame.x0, x0, atol=1e-5), (frame.x0 - x0).abs().max()
    summary = __import__("tabs.diffusion").diffusion._summary(result)
    assert "does not return x̂₀" in summary and schedule.X0_FORMULA in summary


@pytest.mark.parametrize("name, prediction", [("DDIM", "epsilon"), ("DDIM", "v_prediction"), ("Euler", "epsilon"),
                                              ("Euler ancestral", "v_prediction")])
def test_the_formula_equals_pred_original_sample(name, prediction):
    """x̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t (or its v form) on the U-Net's input equals what the
    schedulers that return x̂₀ give, at every timestep of a 4-step run."""
    config = {**diffusers.DDIMScheduler.load_config(SCHEDULER_DIR), "prediction_type": prediction}
    sched = G.scheduler_from_config(config, name, 4)
    sched.set_timesteps(4)
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 1, 8, 8, generator=gen) * float(sched.init_noise_sigma)
    for t in sched.timesteps:
        x_t = sched.scale_model_input(sample, t)  # what the U-Net sees
        output = torch.randn(sample.shape, generator=gen)
        out = sched.step(output, t, sample, generator=gen) if "ancestral" in name else sched.step(output, t, sample)
        assert torch.allclose(schedule.predicted_original(sched, x_t, output, t), out.pred_original_sample, atol=1e-5)
        sample = out.prev_sample


def _trace(fig, name: str):
    return next(tr for tr in fig.data if tr.name == name)


def _reference(name: str, steps: int):
    """The scheduler built by diffusers alone from the model's config; the app spaces 1 or 2 steps
    'trailing' (generation.FEW_STEPS)."""
    cls = getattr(diffusers, G.SCHEDULERS[name])
    extra = {"timestep_spacing": "trailing"} if steps <= G.FEW_STEPS else {}
    sched = cls.from_config(diffusers.DDIMScheduler.load_config(SCHEDULER_DIR), **extra)
    sched.set_timesteps(steps)
    return sched


def _check_figure(fig, sched, visited: list[int]):
    alphas = sched.alphas_cumprod.numpy()
    curve = _trace(fig, "ᾱ_t")
    assert list(curve.x) == list(range(1000)) and np.allclose(curve.y, alphas, rtol=0, atol=1e-7)
    assert np.allclose(_trace(fig, "signal √ᾱ_t").y, np.sqrt(alphas), atol=1e-7)
    assert np.allclose(_trace(fig, "noise √(1−ᾱ_t)").y, np.sqrt(1 - alphas), atol=1e-7)
    signal, noise = [tr for tr in fig.data if tr.legendgroup == "visited"]
    assert list(signal.x) == list(noise.x) == visited
    assert np.allclose(signal.y, np.sqrt(alphas[visited]), atol=1e-7)
    assert np.allclose(noise.y, np.sqrt(1 - alphas[visited]), atol=1e-7)


@pytest.mark.parametrize("name, steps", [("DDIM", 4), ("DPM++ 2M", 3), ("Euler", 1)])
def test_the_schedule_plot_shows_the_schedulers_timesteps_and_alphas(engine, name, steps):
    from tabs import diffusion as tab

    alphas, visited = G.noise_schedule(engine, DIGITS, name, steps)
    ref = _reference(name, steps)
    assert visited == [int(t) for t in ref.timesteps] and len(visited) == steps
    _check_figure(tab._schedule_figure(alphas, visited, name, steps), ref, visited)


def test_a_runs_schedule_plot_marks_the_steps_it_ran(engine):
    """After a run the plot marks the timesteps its U-Net calls used: all of them for text to
    image, the last int(strength x steps) for image to image."""
    from tabs import diffusion as tab

    txt = G.generate(engine, DIGITS, "a handwritten 2", "", _settings("DDIM", steps=4, num_images=1))
    ref = _reference("DDIM", 4)
    assert txt.timesteps == [int(t) for t in ref.timesteps]
    _check_figure(tab._result_schedule(txt), ref, txt.timesteps)
    i2i = G.image_to_image(engine, DIGITS, "a handwritten 2", "", _settings("DDIM", steps=4, strength=0.5),
                           init_image=G.sample_digit(3))
    assert i2i.timesteps == [int(t) for t in ref.timesteps][-2:] and len(i2i.frames) == 2
    fig = tab._result_schedule(i2i)
    _check_figure(fig, ref, i2i.timesteps)
    assert "2 steps of 4 (strength skips the noisiest)" in fig.layout.title.text


def test_the_gallery_shows_x_t_beside_x0_with_the_timestep(engine):
    from PIL import Image

    from tabs import diffusion as tab

    result = G.generate(engine, DIGITS, "a handwritten 5", "", _settings("Euler", steps=2, num_images=1))
    shown = tab._write_frames(result)
    assert [caption for _, caption in shown] == [f"step {i + 1}/2 · t = {t}" for i, t in enumerate(result.timesteps)]
    pair = np.asarray(Image.open(shown[0][0]).convert("L"))
    head = pair.shape[0] - 256
    assert pair.shape[1] == 256 + 8 + 256
    assert np.array_equal(pair[head:, :256], np.asarray(result.frames[0].noisy))
    assert np.array_equal(pair[head:, 264:], np.asarray(result.frames[0].clean))


@pytest.mark.parametrize("scheduler, steps, message", [("PNDM", 4, "scheduler = 'PNDM' is not offered"),
                                                       ("DDIM", 0, "steps"), ("DDIM", 2.5, "steps"),
                                                       ("nope", 4, "scheduler")])
def test_the_schedule_refuses_bad_knobs_by_name(engine, scheduler, steps, message):
    with pytest.raises(UserInputError, match=message):
        G.noise_schedule(engine, DIGITS, scheduler, steps)
