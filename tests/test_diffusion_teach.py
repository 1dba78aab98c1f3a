"""Teach it a new symbol: textual inversion moves one embedding row only, the prior-preservation
loss is the instance term plus the weighted class term, the shared pipeline never changes, two
sessions keep their own weights, the exports load back with the libraries' own loaders."""
from __future__ import annotations

import copy
import zipfile

import pytest
import torch
import torch.nn.functional as F

from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.diffusion import generation as G
from engine.diffusion import plots as DP
from engine.diffusion import teach as T

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    """A tiny pixel pipeline from configs (the maths, not the weights, is the point), with the
    digits model's real tokenizer."""
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from engine.diffusion.pipeline import PixelDiffusionPipeline

    tok = CLIPTokenizer.from_pretrained(str(T.ASSETS / "digits" / "tokenizer"))
    torch.manual_seed(0)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=12,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.eos_token_id)).eval()
    unet = UNet2DConditionModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=4, norm_num_groups=4).eval()
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False)
    return PixelDiffusionPipeline(unet=unet, text_encoder=te, tokenizer=tok, scheduler=sched)


def snapshot(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_textual_inversion_changes_only_the_new_row(tiny):
    s = T.TeachSettings(method="textual_inversion", steps=3, learning_rate=0.05, batch_size=2)
    before_unet, before_te = snapshot(tiny.unet), snapshot(tiny.text_encoder)
    unet, te, tok, params = T.session_models(tiny, s, "zorb")
    assert len(tok) == len(tiny.tokenizer) + 1 and tok("zorb", add_special_tokens=False).input_ids == [len(tok) - 1]
    start = te.get_input_embeddings().weight.detach().clone()
    images = T.prepare_images(T.load_symbol_set("star")[:3])
    list(T.train_steps(unet, te, tok, tiny.scheduler, params, images, "zorb", s,
                       restore=(start, len(tok) - 1)))
    after = te.state_dict()
    for k, v in before_te.items():
        if k.endswith("token_embedding.weight"):
            new = after[k]
            assert torch.equal(new[:-1], v)  # every old row bitwise equal
            assert not torch.equal(new[-1], start[-1])  # the new row moved
        else:
            assert torch.equal(after[k], v), k
    for k, v in unet.state_dict().items():
        assert torch.equal(v, before_unet[k]), k
    # the shared components were not touched either
    assert len(tiny.tokenizer) == len(tok) - 1
    assert all(torch.equal(tiny.text_encoder.state_dict()[k], v) for k, v in before_te.items())


def test_a_teaching_run_is_fitted_to_the_students_budget_after_its_first_steps(tiny, monkeypatch):
    from engine.training import runner as R

    clock = {"t": 0.0}
    real = T.noisy_batch

    def timed(*args):  # each step takes 4 s of the fake clock
        clock["t"] += 4.0
        return real(*args)

    monkeypatch.setattr(R, "now", lambda: clock["t"])
    monkeypatch.setattr(T, "noisy_batch", timed)
    s = T.TeachSettings(method="lora", steps=150, prior_preservation=False, batch_size=2, time_budget=1)
    unet, te, tok, params = T.session_models(tiny, s, "zorb")
    images = T.prepare_images(T.load_symbol_set("star")[:3])
    seen = list(T.train_steps(unet, te, tok, tiny.scheduler, params, images, "zorb", s, max_seconds=300))
    # a 1-min budget under a 5-min cap; after 2 steps (8 s): floor((57 - 8) / 4) = 12 more, 14 of 150... fewer
    # than half of 150: refused after the timed steps
    assert [u.step for u in seen] == [1, 2] and seen[-1].refused and seen[-1].max_steps == 14
    clock["t"] = 0.0
    s = T.TeachSettings(method="lora", steps=20, prior_preservation=False, batch_size=2, time_budget=1)
    seen = list(T.train_steps(unet, te, tok, tiny.scheduler, params, images, "zorb", s, max_seconds=300))
    assert [u.step for u in seen] == list(range(1, 15)) and seen[-1].done and not seen[-1].stopped
    assert seen[-1].pace.note == "fitted to your 1 min time budget: 14 of 20 steps, measured 4.0 s/step"
    assert DP.teach_status_markdown(seen[-1], T.TeachSession(word="zorb")).startswith("**Done**: step 14 / 14")


def test_prior_preservation_loss_is_instance_plus_weighted_class(tiny):
    torch.manual_seed(1)
    x = torch.randn(6, 1, 16, 16)
    noise = torch.randn_like(x)
    t = torch.tensor([10, 200, 500, 999, 1, 700])
    ids = tiny.tokenizer(["a zorb"] * 3 + ["a handwritten 3"] * 3, padding="max_length", max_length=12,
                         return_tensors="pt").input_ids
    noisy = tiny.scheduler.add_noise(x, noise, t)
    with torch.no_grad():
        pred = tiny.unet(noisy, t, encoder_hidden_states=tiny.text_encoder(ids)[0]).sample
    total, inst, cls = T.prior_loss(pred, noise, 3, 0.7)
    by_hand_inst = ((pred[:3] - noise[:3]) ** 2).sum() / (3 * 256)
    by_hand_cls = ((pred[3:] - noise[3:]) ** 2).sum() / (3 * 256)
    assert torch.allclose(inst, by_hand_inst) and torch.allclose(cls, by_hand_cls)
    assert torch.allclose(total, by_hand_inst + 0.7 * by_hand_cls)
    assert torch.allclose(T.prior_loss(pred[:3], noise[:3], 3, 0.7)[0], F.mse_loss(pred[:3], noise[:3]))
    # add_noise is the forward process sqrt(a) x + sqrt(1 - a) noise
    a = tiny.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    assert torch.allclose(noisy, a.sqrt() * x + (1 - a).sqrt() * noise, atol=1e-6)


def test_bad_inputs_are_named():
    with pytest.raises(UserInputError, match="images = 2"):
        T.prepare_images(T.load_symbol_set("cross")[:2])
    with pytest.raises(UserInputError, match="word = 'a b'"):
        T.check_word("a b")
    with pytest.raises(UserInputError, match="symbol set"):
        T.load_symbol_set("../etc")
    with pytest.raises(UserInputError, match="steps = 0"):
        make(T.TeachSettings, steps=0)


def test_the_split_warns_on_a_known_word(engine):
    tok = engine.load(T.KEY).pipe.tokenizer
    assert T.word_split(tok, "digit")["known"] and "existing word" in DP.split_markdown(T.word_split(tok, "digit"))
    made_up = T.word_split(tok, "zorb")
    assert not made_up["known"] and len(made_up["pieces"]) >= 2
    assert "".join(made_up["pieces"]) == "zorb</w>"


def test_the_template_classifier_tells_the_symbol_from_digits():
    star = T.prepare_images(T.load_symbol_set("star"))
    assert T.symbol_share(star, star) == 1.0
    assert T.symbol_share(star, T._digit_templates()) == 0.0


@pytest.fixture(scope="module")
def two_sessions(engine):
    shared = engine.load(T.KEY).pipe
    before = {**{"u." + k: v.clone() for k, v in shared.unet.state_dict().items()},
              **{"t." + k: v.clone() for k, v in shared.text_encoder.state_dict().items()}}
    a, b = T.TeachSession(), T.TeachSession()
    db = T.TeachSettings(method="dreambooth", steps=2, num_class_images=4, batch_size=2)
    lo = T.TeachSettings(method="lora", steps=2, learning_rate=3e-3, prior_preservation=False, batch_size=2)
    list(T.train(engine, a, T.load_symbol_set("star"), "zorb", db))
    list(T.train(engine, b, T.load_symbol_set("cross"), "quix", lo))
    return shared, before, a, b


def test_the_shared_pipeline_is_unchanged_and_sessions_do_not_mix(two_sessions, engine):
    shared, before, a, b = two_sessions
    after = {**{"u." + k: v for k, v in shared.unet.state_dict().items()},
             **{"t." + k: v for k, v in shared.text_encoder.state_dict().items()}}
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert not any("lora" in k for k in after)
    assert a.steps_done == 2 and b.steps_done == 2 and a.word == "zorb" and b.word == "quix"
    assert a.class_images.shape == (4, 1, 16, 16) and b.class_images is None
    changed = [k for k, v in a.unet.state_dict().items() if not torch.equal(v, shared.unet.state_dict()[k])]
    assert changed  # DreamBooth moved its own copy
    assert any("lora" in k for k in b.unet.state_dict()) and not any("lora" in k for k in a.unet.state_dict())
    assert copy.deepcopy(a).unet is None  # a new gr.State session starts empty
    s = G.DiffusionSettings(guidance_scale=3.0, steps=4, width=16, height=16, scheduler="DDIM", num_images=1)
    ra, rb = T.render(engine, a, "a zorb", s), T.render(engine, b, "a zorb", s)
    base = G.run_bundle(engine.load(T.KEY), "a zorb", "", s, keep_frames=False)
    assert ra.images[0].tobytes() != rb.images[0].tobytes() != base.images[0].tobytes()
    with pytest.raises(UserInputError, match="nothing is taught"):
        T.render(engine, T.TeachSession(), "a zorb", s)


def test_exports_load_back_with_the_libraries_loaders(two_sessions, engine, tmp_path):
    from diffusers import UNet2DConditionModel

    shared, _, a, b = two_sessions
    with zipfile.ZipFile(T.export(a, tmp_path / "a")) as zf:
        zf.extractall(tmp_path / "a-out")
    loaded = UNet2DConditionModel.from_pretrained(tmp_path / "a-out" / "unet")
    assert all(torch.equal(v, a.unet.state_dict()[k]) for k, v in loaded.state_dict().items())
    with zipfile.ZipFile(T.export(b, tmp_path / "b")) as zf:
        zf.extractall(tmp_path / "b-out")
    fresh = copy.deepcopy(shared.unet)
    fresh.load_lora_adapter(str(tmp_path / "b-out"), weight_name="pytorch_lora_weights.safetensors",
                            prefix=None, adapter_name="default")
    theirs = {k: v for k, v in b.unet.state_dict().items() if "lora" in k}
    mine = {k: v for k, v in fresh.state_dict().items() if "lora" in k}
    assert theirs.keys() == mine.keys() and all(torch.equal(mine[k], theirs[k]) for k in theirs)


def test_textual_inversion_export_loads_with_load_textual_inversion(engine, tmp_path):
    shared = engine.load(T.KEY).pipe
    s = T.TeachSession()
    list(T.train(engine, s, T.load_symbol_set("triangle"), "trigo",
                 T.TeachSettings(method="textual_inversion", steps=2, learning_rate=0.02, batch_size=2)))
    with zipfile.ZipFile(T.export(s, tmp_path)) as zf:
        zf.extractall(tmp_path / "out")
    pipe = type(shared)(unet=shared.unet, text_encoder=copy.deepcopy(shared.text_encoder),
                        tokenizer=copy.deepcopy(shared.tokenizer), scheduler=shared.scheduler)
    pipe.load_textual_inversion(str(tmp_path / "out"), weight_name="learned_embeds.safetensors")
    new_id = pipe.tokenizer.convert_tokens_to_ids("trigo")
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[new_id],
                       s.text_encoder.get_input_embeddings().weight[-1])
    assert len(shared.tokenizer) == len(pipe.tokenizer) - 1  # the shared tokenizer has no new token


def test_a_teaching_run_refits_its_threads_as_the_load_changes(engine, monkeypatch):
    """Under 8 other sessions a teaching run fitted 2 threads at a load of 2.7, the load rose, and its
    steps went from 0.2 to 0.6+ s: the threads are fitted again every 10 steps, as LoRA's every 5."""
    from engine.training import runner as R

    calls = []
    monkeypatch.setattr(R, "fit_threads", lambda default: calls.append(default) or 1)
    s = T.TeachSettings(method="textual_inversion", steps=12, batch_size=1, prior_preservation=False)
    updates = list(T.train(engine, T.TeachSession(), T.load_symbol_set("star"), "zorb", s))
    assert updates[-1].done and updates[-1].step == 12
    assert len(calls) == 3  # before step 1, after steps 1 and 11
