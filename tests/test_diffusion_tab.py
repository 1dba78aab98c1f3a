"""The Diffusion tab's own handlers (issue 32): the img2img preview follows an upload, and the
forgetting check shows each share with its 95% interval."""
from __future__ import annotations

import math

import gradio as gr
import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.diffusion import generation, teach
from tabs import diffusion as tab

DIGITS = "digits-16px"


@pytest.fixture(scope="module")
def demo(engine):
    with gr.Blocks() as blocks:
        tab.build(engine)
    return blocks


def _seven() -> Image.Image:
    img = Image.new("RGB", (200, 200), "white")
    ImageDraw.Draw(img).line([(40, 40), (160, 40), (80, 170)], fill="black", width=18)
    return img


def test_an_upload_reaches_the_init_preview(demo):
    """At 1280 px the editor's change came with an empty value while the upload loaded, and the
    preview listened to change alone: the picture never showed. Now the upload event carries it,
    an empty value leaves the preview alone, and only clear empties it."""
    editor = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "diffusion-init")
    preview = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "diffusion-init-preview")
    by_event = {}
    for dep in demo.fns.values():
        for block, event in dep.targets:
            if block == editor._id and preview in dep.outputs:
                by_event[event] = dep
    assert {"upload", "change", "clear"} <= set(by_event)
    uploaded = editor.preprocess(editor.postprocess({"background": _seven(), "layers": [], "composite": _seven()}))
    shown = by_event["upload"].fn(DIGITS, uploaded)
    want = generation.prepare_init_image(uploaded["composite"], generation.profile_for(DIGITS)).resize((160, 160), 0)
    assert np.array_equal(np.asarray(shown), np.asarray(want)) and shown.mode == "L" and np.asarray(shown).max() == 255
    empty = {"background": None, "layers": [], "composite": None}  # what the editor sends mid-upload
    assert isinstance(by_event["change"].fn(DIGITS, empty), type(gr.skip()))
    assert by_event["clear"].fn() is None


def _wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    z = 1.96
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_the_forgetting_share_comes_with_its_wilson_interval():
    # 42 of 50 worked by hand: z² = 3.8416, centre = 0.878416 / 1.076832 = 0.81574,
    # half = 1.96 · √(0.84·0.16/50 + 3.8416/10000) / 1.076832 = 0.10089 -> 0.7149 .. 0.9166
    lo, hi = teach.wilson_interval(42, 50)
    assert lo == pytest.approx(0.7149, abs=1e-4) and hi == pytest.approx(0.9166, abs=1e-4)
    assert teach.share_text(0.84, 50) == "84% (71–92%)"
    assert teach.wilson_interval(50, 50) == (pytest.approx(0.9287, abs=1e-4), 1.0)
    assert teach.wilson_interval(0, 50) == (0.0, pytest.approx(0.0713, abs=1e-4))
    for k in range(0, 51, 7):
        assert teach.wilson_interval(k, 50) == pytest.approx(_wilson_by_hand(k, 50), abs=1e-12)
    widths = [np.subtract(*teach.wilson_interval(k, 50)[::-1]) for k in range(51)]
    assert round(100 * min(widths)) == 7 and round(100 * max(widths)) == 27  # what the tab says


def test_the_summary_says_where_the_steps_ran_and_which_spacing():
    from types import SimpleNamespace

    one = SimpleNamespace(timesteps=[999], spacing="trailing", params=dict(steps=1, mode="txt2img"))
    assert tab._timesteps_text(one) == (" at t = 999 ('trailing' timestep spacing: with 2 steps or fewer the "
                                        "schedule starts at t = 999, the pure noise)")
    many = SimpleNamespace(timesteps=[961, 921, 1], spacing="leading", params=dict(steps=25, mode="txt2img"))
    assert tab._timesteps_text(many) == " at t = 961 → 1 ('leading' timestep spacing)"
    i2i = SimpleNamespace(timesteps=[499], spacing="trailing", params=dict(steps=2, mode="img2img"))
    assert tab._timesteps_text(i2i).endswith("the pure noise; strength skips its noisiest part)")


# --- issue 33: the noise schedule follows the knobs, and a deep link draws it -------------------------
def test_the_schedule_follows_steps_scheduler_and_model_and_a_link_draws_it(engine):
    with gr.Blocks() as blocks:
        share = tab.build(engine)
    plot = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "diffusion-schedule")
    steps, scheduler = share.params["steps"], share.params["scheduler"]
    api = next(dep for dep in blocks.fns.values() if dep.api_name == "noise_schedule")
    assert {(blocks.blocks[i], event) for i, event in api.targets} == {(steps, "release"), (scheduler, "input")}
    assert api.outputs == [plot] and share.run_outputs == [plot]
    after_model = [dep for dep in blocks.fns.values() if plot in dep.outputs and dep.trigger_after is not None]
    assert len(after_model) == 1  # the model's new defaults, then its schedule
    fig = share.run(DIGITS, "Euler", 10)
    markers = [tr for tr in fig.data if tr.legendgroup == "visited"]
    assert list(markers[0].x) == generation.noise_schedule(engine, DIGITS, "Euler", 10)[1] and len(markers[0].x) == 10
    assert fig.layout.title.text == "Noise schedule · Euler, 10 steps: t = 901 → 1"
    with pytest.raises(gr.Error, match="scheduler = 'PNDM' is not offered"):
        share.run(DIGITS, "PNDM", 10)
