"""Teach the digits model a new symbol: DreamBooth (with prior preservation), LoRA on the U-Net's
attention (peft), and textual inversion, on 3-10 small pictures bound to a made-up word.

    images (N, 1, 16, 16) + "a <word>"      -> instance batch
    "a handwritten 0..9" made by the model  -> class batch (prior preservation)
    loss = MSE(noise, U-Net(noisy instance)) + weight x MSE(noise, U-Net(noisy class))

Every session trains its own copies: DreamBooth deep-copies the U-Net (and the text encoder when
asked); LoRA and textual inversion train new tensors over frozen views of the shared weights
(training.lora.shared_copy); textual inversion also copies the tokenizer and the text encoder,
adds one token, and puts every other embedding row back after each step. The shared pipeline
is only read. One training at a time on the machine, under the same gate, time cap and thread
count as every training (training.runner). Images are made with generation.run_bundle, so the
gallery, schedulers and PNG metadata are the base model's.
"""
from __future__ import annotations

import copy
import json
import math
import re
import threading
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from ..core.errors import UserInputError, check_choice, check_range, check_text
from ..core.images import check_pixels, open_image
from ..core.lazy import F, no_grad, torch
from ..core.models import Progress, no_progress
from ..core.settings import knob, validate
from ..training import lora, runner
from . import generation
KEY = "digits-16px"
ASSETS = Path(__file__).resolve().parents[2] / "assets" / "diffusion"
SYMBOLS = ASSETS / "symbols"
SYMBOL_SETS = ("star", "cross", "letter-a", "triangle")
MIN_IMAGES, MAX_IMAGES = 3, 10
MAX_PIXELS = 4096 * 4096  # an uploaded or drawn picture, before it is boxed down to 16x16
WORD_RE = re.compile(r"[a-z]{2,16}")
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # the U-Net's attention projections
METHODS = {
    "dreambooth": "DreamBooth: fine-tunes every U-Net weight (and the text encoder if ticked)",
    "lora": "LoRA: low-rank matrices on the U-Net's attention (peft); the U-Net stays frozen",
    "textual_inversion": "Textual inversion: one new token's embedding row; everything else frozen",
}
DEFAULT_LR = {"dreambooth": 5e-4, "lora": 3e-3, "textual_inversion": 2e-2}


@dataclass
class TeachSettings:
    method: str = knob("dreambooth", help="What is trained", choices=tuple(METHODS))
    steps: int = knob(150, 1, 1000, "Optimizer steps", step=1)
    learning_rate: float = knob(5e-4, 1e-6, 0.1, "AdamW learning rate (DreamBooth 5e-4, LoRA 3e-3, "
                                "textual inversion 2e-2 work here)")
    batch_size: int = knob(4, 1, 16, "Your images per step (drawn with replacement)", step=1)
    seed: int = knob(0, 0, 2**31 - 1, "Noise, timesteps and class images", step=1)
    prior_preservation: bool = knob(True, help="Also train on the model's own class images so it keeps "
                                    "the class (DreamBooth and LoRA)")
    class_prompt: str = knob("a handwritten {digit}", help="Prompt of the class images; {digit} cycles 0..9")
    num_class_images: int = knob(20, 1, 100, "Class images the model makes for prior preservation", step=1)
    prior_weight: float = knob(1.0, 0.0, 5.0, "Weight of the class term in the loss", step=0.1)
    train_text_encoder: bool = knob(False, help="DreamBooth only: also fine-tune the text encoder")
    lora_rank: int = knob(4, 1, 32, "LoRA rank r (alpha = r)", step=1)
    time_budget: float = runner.budget_knob()

    def __post_init__(self):
        check_text("class prompt", self.class_prompt, max_chars=200)  # text, which validate() does not check


# --- the word and the images ---------------------------------------------------------------------
def check_word(word) -> str:
    word = check_text("word", word, max_chars=40).strip().lower()
    if not WORD_RE.fullmatch(word):
        raise UserInputError(f"word = {word[:40]!r} must be 2 to 16 letters a-z (a made-up word like "
                             f"'zorb'), no spaces, digits or signs.")
    return word


def word_split(tokenizer, word: str) -> dict:
    """How the text encoder's tokenizer cuts the word, and whether it is a word the model knows
    (one whole token of its vocabulary)."""
    word = check_word(word)
    ids = tokenizer(word, add_special_tokens=False).input_ids
    pieces = tokenizer.convert_ids_to_tokens(ids)
    known = len(ids) == 1 and pieces[0].endswith("</w>") and len(pieces[0]) > 5
    return dict(word=word, ids=ids, pieces=pieces, known=known)


def load_symbol_set(name: str) -> list[Image.Image]:
    check_choice("symbol set", name, SYMBOL_SETS)
    return [Image.open(p).convert("L") for p in sorted((SYMBOLS / name).glob("*.png"))]


def prepare_images(images: list, check_count: bool = True) -> torch.Tensor:
    """3-10 pictures (PIL, numpy, or file paths) as the model sees them: (N, 1, 16, 16) in [-1, 1].
    check_count=False: any 1 to 10 (while the user is still adding pictures)."""
    images = [im for im in (images or []) if im is not None]
    if not (MIN_IMAGES if check_count else 1) <= len(images) <= MAX_IMAGES:
        raise UserInputError(f"images = {len(images)}: give {MIN_IMAGES} to {MAX_IMAGES} pictures of the symbol "
                             f"(draw, upload or load an example set).")
    profile = generation.profile_for(KEY)
    out = []
    for i, im in enumerate(images):
        if isinstance(im, (str, Path)):  # its header's size is checked before any pixel is decoded
            im = open_image(im, f"image {i + 1}", MAX_PIXELS)
        if isinstance(im, np.ndarray) and im.size > MAX_PIXELS:
            raise UserInputError(f"image {i + 1} is too large: at most {MAX_PIXELS:,} pixels.")
        if isinstance(im, Image.Image):
            check_pixels(f"image {i + 1}", *im.size, max_pixels=MAX_PIXELS)
        small = generation.prepare_init_image(im, profile)  # grey, white on black, 16x16, full contrast
        arr = np.asarray(small, dtype=np.float32)
        if arr.max() <= 0:
            raise UserInputError(f"image {i + 1} is empty (no ink): draw the symbol first.")
        out.append(torch.from_numpy(arr / 127.5 - 1.0)[None])
    return torch.stack(out)  # (N, 1, 16, 16)


def to_pil(x: torch.Tensor) -> list[Image.Image]:
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()[:, 0]
    return [Image.fromarray(a) for a in arr]


# --- the loss --------------------------------------------------------------------------------------
def prior_loss(pred: torch.Tensor, target: torch.Tensor, n_instance: int, weight: float):
    """(total, instance term, class term): the batch holds the instance images first, then the
    class images; each term is a mean squared error over its own rows."""
    inst = F.mse_loss(pred[:n_instance].float(), target[:n_instance].float())
    if pred.shape[0] == n_instance:
        return inst, inst, torch.zeros((), device=pred.device)
    cls = F.mse_loss(pred[n_instance:].float(), target[n_instance:].float())
    return inst + weight * cls, inst, cls


def noisy_batch(scheduler, clean: torch.Tensor, generator: torch.Generator):
    """DDPM forward process at random timesteps: (noisy x_t, noise, t)."""
    noise = torch.randn(clean.shape, generator=generator)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (clean.shape[0],), generator=generator)
    return scheduler.add_noise(clean, noise, t), noise, t


# --- the session ---------------------------------------------------------------------------------
@dataclass
class TeachSession:
    """One browser session's taught model (kept in gr.State). Never shared between sessions."""

    unet: Any = None
    text_encoder: Any = None
    tokenizer: Any = None
    word: str = ""
    settings: TeachSettings | None = None
    instance: torch.Tensor | None = None  # (N, 1, 16, 16)
    class_images: torch.Tensor | None = None
    losses: list = field(default_factory=list)
    steps_done: int = 0
    forgetting: list = field(default_factory=list)  # rows of the forgetting table
    training: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def __deepcopy__(self, memo):  # gr.State may copy its initial value; a new session is empty
        return TeachSession()

    @property
    def ready(self) -> bool:
        return self.unet is not None and self.steps_done > 0


def session_models(pipe, settings: TeachSettings, word: str):
    """(unet, text_encoder, tokenizer, trainable parameters) for one session: new tensors for what
    is trained, frozen views of the shared ones for the rest. The shared pipe is not touched."""
    method = settings.method
    if method == "dreambooth":
        unet = copy.deepcopy(pipe.unet).train().requires_grad_(True)
        te = (copy.deepcopy(pipe.text_encoder).train().requires_grad_(True) if settings.train_text_encoder
              else lora.shared_copy(pipe.text_encoder))
        params = list(unet.parameters()) + (list(te.parameters()) if settings.train_text_encoder else [])
        return unet, te, pipe.tokenizer, params
    if method == "lora":
        from peft import LoraConfig

        unet = lora.shared_copy(pipe.unet)
        unet.add_adapter(LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_rank,
                                    init_lora_weights="gaussian", target_modules=list(LORA_TARGETS)))
        params = [p for p in unet.parameters() if p.requires_grad]
        return unet, lora.shared_copy(pipe.text_encoder), pipe.tokenizer, params
    check_choice("method", method, tuple(METHODS))
    tokenizer = copy.deepcopy(pipe.tokenizer)
    if tokenizer.add_tokens([word]) != 1 or word_split(pipe.tokenizer, word)["known"]:
        raise UserInputError(f"word = {word!r} is already a token of the model: textual inversion needs a new "
                             f"word. Pick a made-up one.")
    te = copy.deepcopy(pipe.text_encoder)
    te.resize_token_embeddings(len(tokenizer))
    te.requires_grad_(False)
    emb = te.get_input_embeddings().weight
    with torch.no_grad():  # start from the word "digit": the model's nearest idea of "a symbol"
        start_id = pipe.tokenizer("digit", add_special_tokens=False).input_ids[0]
        emb[len(tokenizer) - 1] = emb[start_id]
    emb.requires_grad_(True)
    return lora.shared_copy(pipe.unet), te, tokenizer, [emb]


def class_prompts(settings: TeachSettings) -> list[str]:
    return [settings.class_prompt.replace("{digit}", str(i % 10)) for i in range(settings.num_class_images)]


@no_grad
def sample_batch(bundle: generation.DiffusionBundle, prompts: list[str], seed: int, steps: int = 20) -> torch.Tensor:
    """One image per prompt in one batch (DDIM, guidance 3, the request pipeline of
    generation.py), (M, 1, 16, 16) in [-1, 1]."""
    pipe = generation.request_pipeline(bundle, "DDIM")
    gens = [torch.Generator("cpu").manual_seed(s) for s in generation.image_seeds(seed, len(prompts))]
    return pipe(prompt=prompts, num_inference_steps=steps, guidance_scale=3.0, generator=gens,
                output_type="pt").images.float()


def make_class_images(bundle: generation.DiffusionBundle, settings: TeachSettings) -> torch.Tensor:
    """The model's own images of the class, (M, 1, 16, 16) in [-1, 1]."""
    return sample_batch(bundle, class_prompts(settings), settings.seed)


def train_steps(unet, text_encoder, tokenizer, scheduler, params, instance: torch.Tensor, word: str,
                settings: TeachSettings, class_images: torch.Tensor | None = None,
                stop: threading.Event | None = None, max_seconds: float | None = None,
                restore: tuple[torch.Tensor, int] | None = None,
                deadline: runner.Deadline | None = None) -> Iterator[runner.TrainUpdate]:
    """AdamW on `params`, one update per step, yielding after each. The instance rows use
    "a <word>", the class rows their class prompts. `restore` = (original embedding matrix,
    new token id): every other row is put back after each step (textual inversion). Stop or
    the time budget end the loop between steps and keep what was learned. `deadline` (default:
    `max_seconds` as the cap) fits the run to its budget after the first steps are timed (see
    training.runner); the learning rate is constant, so there is no schedule to refit."""
    gen = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    prior = class_images is not None and settings.prior_preservation and settings.method != "textual_inversion"
    bs = settings.batch_size
    inst_ids = tokenizer([f"a {word}"] * bs, padding="max_length", max_length=tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids  # (B, T)
    if prior:
        prompts = class_prompts(settings)
        cls_ids_all = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                                truncation=True, return_tensors="pt").input_ids  # (M, T)
    frozen_text = not any(p.requires_grad for p in text_encoder.parameters())
    cache: dict = {}
    if frozen_text:  # a frozen text encoder gives the same vectors every step: encode once
        with torch.no_grad():
            cache["inst"] = text_encoder(inst_ids)[0]
            if prior:
                cache["cls"] = text_encoder(cls_ids_all)[0]
    losses: list[float] = []
    deadline = deadline or runner.Deadline(max_seconds, settings.steps, minutes=settings.time_budget)
    unet.train()
    text_encoder.train()
    try:
        for step in range(1, settings.steps + 1):
            ended = deadline.stop_update(step, losses, stop)
            if ended is not None:
                yield ended
                return
            pick = torch.randint(0, len(instance), (bs,), generator=gen)
            clean, ids, emb = instance[pick], inst_ids, cache.get("inst")
            if prior:
                cpick = torch.randint(0, len(class_images), (bs,), generator=gen)
                clean, ids = torch.cat([clean, class_images[cpick]]), torch.cat([ids, cls_ids_all[cpick]])
                emb = torch.cat([emb, cache["cls"][cpick]]) if frozen_text else None
            noisy, noise, t = noisy_batch(scheduler, clean, gen)
            if emb is None:
                emb = text_encoder(ids)[0]  # (B[+B], T, D)
            pred = unet(noisy, t, encoder_hidden_states=emb).sample
            loss, _, _ = prior_loss(pred, noise, bs, settings.prior_weight)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if restore is not None:
                original, new_id = restore
                with torch.no_grad():
                    weight = text_encoder.get_input_embeddings().weight
                    weight[:new_id] = original[:new_id]
            losses.append(float(loss.detach()))
            update = deadline.step_update(step, losses)
            yield update
            if update.done:
                return
    finally:
        unet.eval()
        text_encoder.eval()


def train(engine, session: TeachSession, images: list, word: str, settings: TeachSettings,
          progress: Progress = no_progress) -> Iterator[runner.TrainUpdate]:
    """Teach `session` the symbol in `images` as `word`, streaming updates. While another
    training holds the machine, yields one 'busy' update and returns."""
    settings = validate(settings)
    word = check_word(word)
    instance = prepare_images(images)
    session.stop.clear()
    try:
        run = runner.start(runner.cap_seconds(engine), on_cpu=engine.device.kind == "cpu")
    except runner.TrainingBusy as busy:
        yield runner.TrainUpdate(0, settings.steps, math.nan, [], 0.0, str(busy), done=True, busy=True)
        return
    final = None
    with run:
        try:
            session.training = True
            bundle = engine.load(KEY, progress=progress)
            pipe = bundle.pipe
            unet, te, tok, params = session_models(pipe, settings, word)
            restore = None
            if settings.method == "textual_inversion":
                restore = (te.get_input_embeddings().weight.detach().clone(), len(tok) - 1)
            run.fit_threads()
            cls = None
            if settings.prior_preservation and settings.method != "textual_inversion":
                progress(0.05, f"Making {settings.num_class_images} class images with the model itself...")
                cls = make_class_images(bundle, settings)
            session.unet, session.text_encoder, session.tokenizer = unet, te, tok
            session.word, session.settings, session.instance, session.class_images = word, settings, instance, cls
            session.losses, session.steps_done = [], 0
            scheduler = generation.make_scheduler(pipe, "DDIM")
            deadline = run.deadline(settings.steps, settings.time_budget)
            for update in train_steps(unet, te, tok, scheduler, params, instance, word, settings, cls,
                                      session.stop, restore=restore, deadline=deadline):
                session.losses, session.steps_done = list(update.losses), update.step
                run.progress(update.step, update.max_steps)
                if update.done:
                    final = update
                    break
                if update.step % 10 == 1:  # the load changes while a run goes on (2 threads on a busy
                    run.fit_threads()      # 2-core machine wait on each other: steps 3-5x slower)
                yield update
            if final is not None and final.refused:  # the timed steps are not a run: nothing is kept
                session.unet, session.losses, session.steps_done = None, [], 0
        finally:
            session.training = False
    if final is not None:
        yield final  # the gate is free


# --- using what was taught ---------------------------------------------------------------------
def session_bundle(engine, session: TeachSession | None) -> generation.DiffusionBundle:
    """The shared bundle, or (with a trained session) a bundle whose pipe holds the session's
    components around the shared scheduler config."""
    bundle = engine.load(KEY)
    if session is None:
        return bundle
    if not session.ready:
        raise UserInputError("nothing is taught in this session yet: train first (step 3).")
    pipe = type(bundle.pipe)(unet=session.unet, text_encoder=session.text_encoder, tokenizer=session.tokenizer,
                             scheduler=bundle.pipe.scheduler)
    pipe.set_progress_bar_config(disable=True)
    return generation.DiffusionBundle(pipe, bundle.profile, bundle.source, bundle.device, bundle.dtype)


def render(engine, session: TeachSession, prompt: str, settings: generation.DiffusionSettings,
           progress: Progress = no_progress) -> generation.DiffusionResult:
    prompt = check_text("prompt", prompt, max_chars=200)
    settings = generation.check_for_model(validate(settings), generation.profile_for(KEY))
    result = generation.run_bundle(session_bundle(engine, session), prompt, "", settings, progress=progress)
    result.params.update(taught_word=session.word, method=session.settings.method)
    return result


@no_grad
def digit_share(engine, session: TeachSession | None, per_digit: int = 5, seed: int = 0) -> float:
    """Share of "a handwritten 0..9" samples (DDIM, 20 steps, guidance 3) that an SVC fitted on
    scikit-learn's digits recognises as the digit asked for."""
    check_range("samples per digit", per_digit, 1, 20, integer=True)
    bundle = session_bundle(engine, session)
    labels = np.repeat(np.arange(10), per_digit)
    x = sample_batch(bundle, [f"a handwritten {d}" for d in labels], seed)
    hits = int((_digit_classifier().predict(_digit_features(x)) == labels).sum())
    return hits / (10 * per_digit)


_CLASSIFIERS: dict = {}


def _digit_classifier():
    if "svc" not in _CLASSIFIERS:
        from sklearn.datasets import load_digits
        from sklearn.svm import SVC

        d = load_digits()
        _CLASSIFIERS["svc"] = SVC(gamma=0.001, C=10).fit(d.data, d.target)
    return _CLASSIFIERS["svc"]


def _digit_features(x: torch.Tensor) -> np.ndarray:
    """(N, 1, 16, 16) in [-1, 1] -> (N, 64) on load_digits' 0..16 scale (pooled back to 8x8)."""
    return F.avg_pool2d((x.float().clamp(-1, 1) + 1) / 2 * 16, 2).reshape(len(x), -1).numpy()


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion hits/n (95% for z = 1.96): unlike p ± z·se it
    stays inside [0, 1] and is not zero-width at 0 or n hits."""
    p, z2 = hits / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def share_text(share: float, n: int) -> str:
    """'84% (71–92%)': a share of n samples and its Wilson 95% interval."""
    lo, hi = wilson_interval(round(share * n), n)
    return f"{share:.0%} ({100 * lo:.0f}–{100 * hi:.0f}%)"


def forgetting_row(engine, session: TeachSession, per_digit: int = 5) -> dict:
    """One row of the forgetting table: digits recognised before (shared model) and after, each
    with its 95% interval (50 samples leave about ±10 points)."""
    s = session.settings
    n = 10 * per_digit
    before = digit_share(engine, None, per_digit)
    after = digit_share(engine, session, per_digit)
    prior = s.prior_preservation and s.method != "textual_inversion"
    row = {"method": s.method, "prior preservation": (f"on (weight {s.prior_weight:g}, {s.num_class_images} "
                                                      f"images)" if prior else "off"),
           "steps": session.steps_done, "digits recognised before": share_text(before, n),
           "digits recognised after": share_text(after, n), "change (points)": round(100 * (after - before)),
           "samples": n}
    session.forgetting.append(row)
    return row


# --- did it learn the symbol? --------------------------------------------------------------------
def _digit_templates() -> torch.Tensor:
    """Mean image of each digit at 16x16 in [-1, 1] (as the model was trained), (10, 1, 16, 16)."""
    if "templates" not in _CLASSIFIERS:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
        x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False) * 2 - 1
        _CLASSIFIERS["templates"] = torch.stack([x[d.target == k].mean(0) for k in range(10)])
    return _CLASSIFIERS["templates"]


def symbol_share(instance: torch.Tensor, samples: torch.Tensor) -> float:
    """A template classifier: each sample goes to the nearest of 11 templates (the mean of the
    user's images, the mean of each digit) by the correlation of the pixels; the share that goes
    to the symbol's template."""
    templates = torch.cat([instance.mean(0, keepdim=True), _digit_templates()])  # (11, 1, 16, 16)

    def unit(x):
        x = x.reshape(len(x), -1).float()
        x = x - x.mean(1, keepdim=True)
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)

    best = (unit(samples) @ unit(templates).T).argmax(1)
    return float((best == 0).float().mean())


def symbol_check(engine, session: TeachSession, n: int = 16, seed: int = 0) -> float:
    """symbol_share of n samples of "a <word>" from the session's model."""
    x = sample_batch(session_bundle(engine, session), [f"a {session.word}"] * n, seed)
    return symbol_share(session.instance, x)


# --- export ----------------------------------------------------------------------------------------
def export(session: TeachSession, folder: str | Path) -> Path:
    """The trained weights in the libraries' own formats, zipped: DreamBooth -> unet/ (and
    text_encoder/) save_pretrained folders; LoRA -> pytorch_lora_weights.safetensors (diffusers'
    save_lora_adapter, peft keys); textual inversion -> learned_embeds.safetensors ({word: row},
    for load_textual_inversion). The folder is the caller's (it removes it)."""
    if not session.ready:
        raise UserInputError("nothing is taught in this session yet: train first, then download.")
    out = Path(folder) / "taught"
    out.mkdir(parents=True)
    s = session.settings
    if s.method == "dreambooth":
        session.unet.save_pretrained(out / "unet")
        if s.train_text_encoder:
            session.text_encoder.save_pretrained(out / "text_encoder")
        how = "UNet2DConditionModel.from_pretrained('unet') (and CLIPTextModel.from_pretrained('text_encoder'))"
    elif s.method == "lora":
        session.unet.save_lora_adapter(out, weight_name="pytorch_lora_weights.safetensors")
        how = "unet.load_lora_adapter(folder, weight_name='pytorch_lora_weights.safetensors', prefix=None)"
    else:
        from safetensors.torch import save_file

        row = session.text_encoder.get_input_embeddings().weight[-1].detach().clone()
        save_file({session.word: row}, str(out / "learned_embeds.safetensors"))
        how = "pipe.load_textual_inversion(folder, weight_name='learned_embeds.safetensors')"
    (out / "teach.json").write_text(json.dumps({"word": session.word, "prompt": f"a {session.word}",
                                                "base_model": KEY, "steps": session.steps_done, "load": how,
                                                "settings": asdict(s)}, indent=2))
    path = Path(folder) / f"taught-{session.word}-{s.method}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(out.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(out))
    return path
