"""Diffusion: text-to-image and image-to-image with every knob, the denoising steps as a
gallery, sweeps, and PNGs that carry their parameters. No Gradio here.

Offline the model is the 16x16 digits model trained by scripts/train_digits_diffusion.py,
run through PixelDiffusionPipeline (a diffusers pipeline shaped like StableDiffusionPipeline);
online a Stable Diffusion checkpoint from the registry runs through StableDiffusionPipeline.
Every request builds a light pipeline object around the cached components with its own
scheduler, so one user's scheduler choice never reaches another user.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, PngImagePlugin

from ..core.device import DeviceInfo
from ..core.errors import UserInputError, check_choice, check_range, check_text
from ..core.images import check_pixels
from ..core.lazy import from_transformers, torch
from ..core.models import Progress, no_progress
from ..core.registry import Source
from ..core.settings import check_knob, knob, validate
from . import schedule
from .plots import grid_image

# Display name -> diffusers scheduler class name. All are built from the model's own config.
SCHEDULERS = {
    "DDIM": "DDIMScheduler",
    "Euler": "EulerDiscreteScheduler",
    "Euler ancestral": "EulerAncestralDiscreteScheduler",
    "DPM++ 2M": "DPMSolverMultistepScheduler",
    "PNDM": "PNDMScheduler",
}
SCHEDULER_NAMES = tuple(SCHEDULERS)
# With this many steps or fewer the timesteps are spaced "trailing" (the first step is t = 999, the
# pure noise a picture starts from, as diffusers recommends for few steps); with more, the model's
# own spacing ("leading" for the digits model and SD 1.5). Leading at 1 step runs t = 1 only and
# returns the noise. Measured on the digits model (50 samples of 'a handwritten N', DDIM, guidance
# 3): leading 14% recognised at 1 step, 70% at 2, 90% at 3, 96-98% at 5 to 25; trailing 94% at
# every count from 1 to 25, but at guidance 7.5 trailing stays at 76% where leading reaches 96-100%
# from 4 steps up.
FEW_STEPS = 2
# PNDM as Stable Diffusion runs it (PLMS, skip_prk_steps) spends one extra U-Net call: its warm-up
# makes the first step twice, once plainly and once with the two noise predictions averaged.
PNDM_NOTE = ("PNDM (PLMS) warms up by making its first step twice, so it calls the U-Net once more "
             "than the steps asked; at few steps it lags DDIM and DPM++ 2M (the digits model needed "
             "about 20 steps with PNDM to match them).")


@dataclass(frozen=True)
class DiffusionProfile:
    """Per-model defaults and limits (the registry row's diffusion metadata)."""

    guidance: float  # default classifier-free guidance scale
    steps: int
    size: int  # native width = height the model was trained at
    min_size: int
    max_size: int
    scheduler: str
    kind: str  # "pixel" (no VAE: the latents are the pixels) or "latent" (VAE, 8x smaller)
    display: int = 512  # images smaller than this are upscaled (nearest) for display
    pipeline: str = "pixel"  # "pixel" | "sd" | "auto"
    note: str = ""
    schedulers: tuple[str, ...] = SCHEDULER_NAMES  # the samplers offered for this model


PROFILES: dict[str, DiffusionProfile] = {
    "digits-16px": DiffusionProfile(
        guidance=3.0, steps=25, size=16, min_size=8, max_size=64, scheduler="DDIM", kind="pixel",
        display=256, pipeline="pixel",
        note="Trained at 16x16 pixels (scikit-learn's 8x8 digits, upscaled): 16 is its native size. "
             "Larger canvases show what a model does outside its training size. Measured share of "
             "'a handwritten N' samples a digits classifier recognises: DDIM 98% at guidance 3, 100% "
             "at 7.5; Euler / DPM++ 2M 89-90% at 1.5-3, 85% at 5, 80% at 7.5; all about 76-90% at 1 "
             "(no guidance). PNDM is not offered for this model: at 5 and 10 steps its images are about "
             "twice as far from DDIM's 50-step images as DDIM's own (RMS 0.32 vs 0.19, 0.16 vs 0.09), "
             "and at 2 steps only 28% of its digits are recognised (DDIM, with the 'trailing' timesteps "
             "the app uses at 1-2 steps: 94%).",
        schedulers=("DDIM", "Euler", "Euler ancestral", "DPM++ 2M")),
    "sd15": DiffusionProfile(guidance=7.5, steps=25, size=512, min_size=256, max_size=1024,
                             scheduler="PNDM", kind="latent", pipeline="sd", note=PNDM_NOTE),
    "sd-turbo": DiffusionProfile(guidance=0.0, steps=1, size=512, min_size=256, max_size=768,
                                 scheduler="Euler ancestral", kind="latent", pipeline="auto",
                                 note="Distilled for 1-4 steps without guidance (guidance 0)."),
}


def profile_for(key: str) -> DiffusionProfile:
    """The profile of a diffusion model; any other key is refused (not answered with SD 1.5's)."""
    return PROFILES[check_choice("diffusion model", key, tuple(PROFILES))]


@dataclass
class DiffusionSettings:
    guidance_scale: float = knob(7.5, 0.0, 20.0, "How hard to push towards the prompt and away from the "
                                 "negative prompt (classifier-free guidance); 0-1 = no guidance", step=0.5)
    steps: int = knob(25, 1, 100, "Denoising steps: more = slower, usually cleaner. 1 or 2 steps start at "
                      "t = 999, the pure noise ('trailing' spacing)", step=1)
    width: int = knob(512, 8, 1024, "Multiple of 8; each model has its own native size", step=8)
    height: int = knob(512, 8, 1024, "Multiple of 8; each model has its own native size", step=8)
    seed: int = knob(42, 0, 2**32 - 1, "Same seed + same settings = same image", step=1)
    scheduler: str = knob("DPM++ 2M", help="The sampler that turns noise predictions into steps",
                          choices=SCHEDULER_NAMES)
    num_images: int = knob(2, 1, 8, "Images per prompt (different noise each)", step=1)
    strength: float = knob(0.6, 0.0, 1.0, "img2img: how much noise is added to your image; "
                           "steps run = int(strength x steps)", step=0.05)
    gallery_every: int = knob(5, 1, 50, "Keep the image every N steps for the denoising gallery", step=1)
    guidance_rescale: float = knob(0.0, 0.0, 1.0, "Rescale guided noise to the text branch's spread "
                                   "(fixes over-bright images at high guidance; 0 = off)", step=0.05)


def defaults_for(key: str) -> DiffusionSettings:
    p = profile_for(key)
    return DiffusionSettings(guidance_scale=p.guidance, steps=p.steps, width=p.size, height=p.size,
                             scheduler=p.scheduler)


def check_for_model(settings: DiffusionSettings, profile: DiffusionProfile) -> DiffusionSettings:
    """The rules that depend on the model (its samplers and sizes), after validate() checked the knobs."""
    if settings.scheduler not in profile.schedulers:
        raise UserInputError(f"scheduler = {settings.scheduler!r} is not offered for this model: choose one "
                             f"of {', '.join(profile.schedulers)}.")
    for name in ("width", "height"):
        value = getattr(settings, name)
        check_range(name, value, profile.min_size, profile.max_size, integer=True)
        if value % 8:
            raise UserInputError(f"{name} = {value} is not a multiple of 8: use "
                                 f"{profile.min_size}, {profile.min_size + 8}, ... {profile.max_size}.")
    return settings


@dataclass(frozen=True)
class MemoryKnobs:
    """GPU memory savers; applied only on a CUDA device (on the CPU they do nothing)."""

    fp16: bool = True
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False


@dataclass
class DiffusionBundle:
    pipe: Any  # PixelDiffusionPipeline or StableDiffusionPipeline with the cached components
    profile: DiffusionProfile
    source: Source
    device: torch.device
    dtype: torch.dtype
    load_seconds: float = 0.0

    @property
    def key(self) -> str:
        return self.source.spec.key


# --- loading ----------------------------------------------------------------------------------
def load_diffusion(source: Source, device: DeviceInfo, variant: str = "default",
                   progress: Progress = no_progress) -> DiffusionBundle:
    """variant: "default" (fp16 on a GPU, fp32 on the CPU) or "fp32"."""
    start = time.perf_counter()
    profile = profile_for(source.spec.key)
    dtype = torch.float16 if device.kind in ("cuda", "mps") and variant != "fp32" else torch.float32
    progress(0.3, f"Loading {source.spec.title} ({str(dtype).removeprefix('torch.')}) on {device.kind}...")
    if profile.pipeline == "pixel":
        pipe = load_pixel_pipeline(source.path, dtype)
    else:
        from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline

        cls = StableDiffusionPipeline if profile.pipeline == "sd" else AutoPipelineForText2Image
        kwargs = {"revision": source.revision} if source.revision else {}
        if dtype == torch.float16:
            kwargs["variant"] = "fp16"
        pipe = cls.from_pretrained(source.path, dtype=dtype, **kwargs)
    pipe.to(device.torch_device)
    pipe.set_progress_bar_config(disable=True)
    return DiffusionBundle(pipe, profile, source, device.torch_device, dtype, time.perf_counter() - start)


def load_pixel_pipeline(folder: str, dtype: torch.dtype | None = None):
    """The digits model (or any folder of the same layout) as a PixelDiffusionPipeline, in
    `dtype` (float32 when None)."""
    from diffusers import DDIMScheduler, UNet2DConditionModel
    CLIPTextModel, CLIPTokenizer = from_transformers("CLIPTextModel", "CLIPTokenizer")

    from .pipeline import PixelDiffusionPipeline

    dtype = torch.float32 if dtype is None else dtype
    root = Path(folder)
    unet = UNet2DConditionModel.from_pretrained(root / "unet", dtype=dtype).eval()
    text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder", dtype=dtype).eval()
    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
    scheduler = DDIMScheduler.from_pretrained(root / "scheduler")
    return PixelDiffusionPipeline(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)


def make_scheduler(pipe, name: str, steps: int | None = None):
    """The scheduler `name` from the model's own config; for `steps` <= FEW_STEPS its timesteps
    are spaced "trailing" (see FEW_STEPS)."""
    return scheduler_from_config(pipe.scheduler.config, name, steps)


def scheduler_from_config(config, name: str, steps: int | None = None):
    """make_scheduler() from a scheduler config (a pipeline's, or one read by scheduler_config)."""
    import diffusers

    check_choice("scheduler", name, SCHEDULER_NAMES)
    cls = getattr(diffusers, SCHEDULERS[name])
    extra = {"skip_prk_steps": True} if name == "PNDM" else {}  # PLMS only, as Stable Diffusion runs it
    if steps is not None and steps <= FEW_STEPS:
        extra["timestep_spacing"] = "trailing"
    return cls.from_config(config, **extra)


def scheduler_config(engine, key: str) -> dict:
    """The scheduler config of diffusion model `key`, read from its scheduler/ folder (embedded) or
    the Hub: a small JSON file, without loading the model."""
    from diffusers import DDIMScheduler

    source = engine.registry.resolve(key)
    return DDIMScheduler.load_config(source.path, subfolder="scheduler", revision=source.revision)


def noise_schedule(engine, key: str, scheduler: str, steps) -> tuple[list[float], list[int]]:
    """The noise schedule of model `key` (ᾱ_t for every training timestep) and the timesteps a
    text-to-image run with this scheduler and step count visits, noisiest first. Reads only the
    scheduler's config: cheap before the model is loaded."""
    profile = profile_for(key)
    steps = check_knob(DiffusionSettings, "steps", steps)
    scheduler = check_knob(DiffusionSettings, "scheduler", scheduler)
    if scheduler not in profile.schedulers:
        raise UserInputError(f"scheduler = {scheduler!r} is not offered for this model: choose one "
                             f"of {', '.join(profile.schedulers)}.")
    sched = scheduler_from_config(scheduler_config(engine, key), scheduler, steps)
    sched.set_timesteps(steps)
    return schedule.alphas(sched), schedule.visited_timesteps(sched)


def request_pipeline(bundle: DiffusionBundle, scheduler: str, img2img: bool = False, steps: int | None = None):
    """A fresh pipeline object around the shared components, with this request's scheduler
    (spaced for `steps`: see make_scheduler)."""
    components = dict(bundle.pipe.components)
    components["scheduler"] = make_scheduler(bundle.pipe, scheduler, steps)
    if bundle.profile.pipeline == "pixel":
        pipe = type(bundle.pipe)(**components)
    elif img2img:
        from diffusers import AutoPipelineForImage2Image

        pipe = AutoPipelineForImage2Image.from_pipe(bundle.pipe, scheduler=components["scheduler"])
    else:
        pipe = type(bundle.pipe)(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def apply_memory_knobs(pipe, knobs: MemoryKnobs, device: torch.device) -> list[str]:
    """Turn on the memory savers asked for; only on a CUDA device. Returns what was applied."""
    if device.type != "cuda":
        return []
    applied = []
    if knobs.attention_slicing:
        pipe.enable_attention_slicing()
        applied.append("attention slicing")
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        if knobs.vae_slicing:
            vae.enable_slicing()
            applied.append("VAE slicing")
        if knobs.vae_tiling:
            vae.enable_tiling()
            applied.append("VAE tiling")
    if knobs.cpu_offload:
        pipe.enable_model_cpu_offload()
        applied.append("model CPU offload")
    return applied


def variant_for(knobs: MemoryKnobs) -> str:
    return "default" if knobs.fp16 else "fp32"


# --- results ----------------------------------------------------------------------------------
@dataclass
class Frame:
    step: int
    timestep: int
    image: Image.Image  # display size: the first image after this step
    noisy: Image.Image | None = None  # display size: x_t, what the U-Net saw at this step
    clean: Image.Image | None = None  # display size: x̂₀, the clean image it predicted from x_t
    x0: Any = None  # (1, C, h, w) tensor: x̂₀ in latent space (schedule.StepRecorder), as the scheduler gave it


@dataclass
class DiffusionResult:
    images: list[Image.Image]  # native size
    display: list[Image.Image]  # upscaled (nearest) for screens and slides
    frames: list[Frame]  # the first image, every few steps
    params: dict  # everything needed to make the image again
    steps_run: int  # denoising steps: the steps asked, or int(steps x strength) for img2img
    seconds: float
    shapes: list[tuple[str, str, str]] = field(default_factory=list)  # (stage, shape, what)
    applied: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)  # one per image: run it alone with this seed, same image
    unet_calls: int = 0  # U-Net calls made: steps_run, plus PNDM's warm-up call
    spacing: str = ""  # the scheduler's timestep_spacing: "trailing" at FEW_STEPS or fewer, else the model's
    timesteps: list[int] = field(default_factory=list)  # the timesteps the steps ran at, noisiest first
    alphas_cumprod: list[float] = field(default_factory=list)  # ᾱ_t of the run's scheduler, t = 0 .. 999
    x0_source: str = ""  # "scheduler" (its pred_original_sample) or "formula" (schedule.X0_FORMULA)

    @property
    def warmup_calls(self) -> int:
        return max(self.unet_calls - self.steps_run, 0)


def upscale(image: Image.Image, target: int) -> Image.Image:
    """Nearest-neighbour upscale by a whole factor so small images stay crisp on a slide."""
    factor = max(1, target // max(image.size))
    if factor == 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def parameters_text(params: dict) -> str:
    """The one-line parameter summary other tools also read from PNGs ('parameters' chunk)."""
    neg = params.get("negative_prompt") or ""
    extra = ", ".join(f"{k}: {params[k]}" for k in ("steps", "scheduler", "guidance_scale", "seed",
                                                     "width", "height", "model", "mode", "strength")
                      if k in params)
    return f"{params.get('prompt', '')}\nNegative prompt: {neg}\n{extra}"


def png_bytes(image: Image.Image, params: dict) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters_text(params))
    info.add_text("llm-playground", json.dumps(params, sort_keys=True))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_png_parameters(data: bytes | str | Path) -> dict:
    """The parameters a PNG made here carries (empty dict for other PNGs)."""
    img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    raw = img.info.get("llm-playground")
    return json.loads(raw) if raw else {}


def save_pngs(result: DiffusionResult, folder: str | Path) -> list[str]:
    """Write the display-size images as PNGs with their parameters into `folder` (the caller owns
    it and removes it); returns the paths."""
    out = Path(folder)
    paths = []
    for i, img in enumerate(result.display):
        params = dict(result.params, image_index=i, seed=result.seeds[i], batch_seed=result.params["seed"],
                      seed_of_image=result.seeds[i],
                      native_size=f"{result.images[i].width}x{result.images[i].height}")
        if img.size != result.images[i].size:
            params["display"] = f"upscaled nearest to {img.width}x{img.height}"
        path = out / f"{result.params['mode']}-{result.params['seed']}-{i}.png"
        path.write_bytes(png_bytes(img, params))
        paths.append(str(path))
    return paths


def save_gif(frames: list[Frame], path: str | Path, ms_per_frame: int = 250) -> str:
    """The denoising as an animated GIF at `path` (the caller owns it), last frame held longer."""
    if not frames:
        raise UserInputError("There are no denoising frames yet: generate an image first.")
    path = str(path)
    images = [f.image.convert("P", palette=Image.ADAPTIVE) for f in frames]
    durations = [ms_per_frame] * (len(images) - 1) + [1500]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path


# --- generation ---------------------------------------------------------------------------------
def _decode_previews(pipe, latents: list[torch.Tensor], target: int) -> list[Image.Image]:
    """The first image of each latents batch, decoded together (one VAE call) and upscaled."""
    batch = torch.cat([x[:1].to(pipe.unet.dtype) for x in latents])  # (n, C, h, w)
    with torch.no_grad():
        if getattr(pipe, "vae", None) is None:
            images = batch.clamp(-1, 1)
        else:
            images = pipe.vae.decode(batch / pipe.vae.config.scaling_factor).sample.clamp(-1, 1)
    arr = ((images.float().cpu().permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    return [upscale(Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a), target) for a in arr]


def pipeline_shapes(bundle: DiffusionBundle, prompt: str, settings: DiffusionSettings,
                    img2img: bool = False) -> list[tuple[str, str, str]]:
    """The tensor shape at each stage for these settings (the pipeline diagram)."""
    pipe = bundle.pipe
    n = settings.num_images
    cfg = settings.guidance_scale > 1.0
    rows = 2 * n if cfg else n
    ids = pipe.tokenizer(prompt or "", padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids  # (1, T)
    tokens, dim = ids.shape[1], pipe.text_encoder.config.hidden_size
    vae = getattr(pipe, "vae", None)
    scale = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
    channels = pipe.unet.config.in_channels
    h, w = settings.height // scale, settings.width // scale
    out_ch = vae.config.out_channels if vae is not None else channels
    steps = steps_to_run(settings, img2img)
    shapes = [
        ("prompt", f'"{(prompt or "")[:40]}"', "text"),
        ("token ids", f"({rows}, {tokens})", "prompt + negative prompt, padded" if cfg else "prompt, padded"),
        ("text embeddings", f"({rows}, {tokens}, {dim})", "CLIP text encoder output"),
        ("latents", f"({n}, {channels}, {h}, {w})",
         f"noise, denoised by the U-Net in {steps} steps (batch {rows} per step)"),
        ("image", f"({n}, {out_ch}, {settings.height}, {settings.width})",
         "VAE decoder output" if vae is not None else "the latents are the pixels (no VAE)"),
    ]
    return shapes


def generate(engine, key: str, prompt: str, negative_prompt: str = "", settings: DiffusionSettings | None = None,
             init_image: Image.Image | None = None, knobs: MemoryKnobs = MemoryKnobs(),
             progress: Progress = no_progress, keep_frames: bool = True) -> DiffusionResult:
    """Text-to-image, or image-to-image when init_image is given."""
    spec = engine.registry.get(key)
    if spec.task != "diffusion":
        raise UserInputError(f"model = {key!r} is not a diffusion model: choose one of "
                             f"{', '.join(engine.registry.keys('diffusion'))}.")
    profile = profile_for(key)
    settings = check_for_model(validate(settings or defaults_for(key)), profile)
    prompt = check_text("prompt", prompt, max_chars=2000, allow_empty=True)
    negative_prompt = check_text("negative prompt", negative_prompt, max_chars=2000, allow_empty=True)
    bundle: DiffusionBundle = engine.load(key, variant_for(knobs) if engine.device.kind != "cpu" else "default",
                                          progress=progress)
    return run_bundle(bundle, prompt, negative_prompt, settings, init_image, knobs, progress, keep_frames)


def image_to_image(engine, key: str, prompt: str, negative_prompt: str = "",
                   settings: DiffusionSettings | None = None, init_image: Image.Image | None = None,
                   knobs: MemoryKnobs = MemoryKnobs(), progress: Progress = no_progress,
                   keep_frames: bool = True) -> DiffusionResult:
    """Image-to-image: like generate() but the init image is required (None is an error, never
    a silent switch to text-to-image)."""
    if init_image is None:
        raise UserInputError("init image is missing: draw or upload a picture, or press 'Use this digit' "
                             "to start from a digit of the dataset.")
    return generate(engine, key, prompt, negative_prompt, settings, init_image=init_image, knobs=knobs,
                    progress=progress, keep_frames=keep_frames)


def steps_to_run(settings: DiffusionSettings, img2img: bool) -> int:
    """Denoising steps a run makes: all of them for text-to-image; for image-to-image diffusers'
    rule, min(int(steps x strength), steps), counted from the noisy end."""
    if not img2img:
        return settings.steps
    return min(int(settings.steps * settings.strength), settings.steps)


def image_seeds(seed: int, n: int) -> list[int]:
    """Image i of a batch starts from the noise of seed + i (wrapping inside the seed range), so
    each image can be made again alone: same settings, its own seed, one image."""
    return [(int(seed) + i) % 2**32 for i in range(n)]


def run_bundle(bundle: DiffusionBundle, prompt: str, negative_prompt: str, settings: DiffusionSettings,
               init_image=None, knobs: MemoryKnobs = MemoryKnobs(), progress: Progress = no_progress,
               keep_frames: bool = True) -> DiffusionResult:
    """generate() once the model is loaded (settings already checked)."""
    profile, key = bundle.profile, bundle.key
    img2img = init_image is not None
    if img2img:
        init_image = prepare_init_image(init_image, profile)
        if profile.kind == "latent":
            init_image = init_image.resize((settings.width, settings.height), Image.LANCZOS)
    pipe = request_pipeline(bundle, settings.scheduler, img2img, settings.steps)
    applied = apply_memory_knobs(pipe, knobs, bundle.device)
    total = steps_to_run(settings, img2img)
    frames: list[Frame] = []
    recorder = schedule.StepRecorder(pipe.scheduler, keep=keep_frames)  # each step's x_t and x̂₀
    on_step = _frame_keeper(frames, recorder, total, settings.gallery_every if keep_frames else 0,
                            profile.display, progress)
    seeds = image_seeds(settings.seed, settings.num_images)
    generator = [torch.Generator("cpu").manual_seed(s) for s in seeds]  # one per image
    kwargs = dict(prompt=prompt, negative_prompt=negative_prompt or None, num_inference_steps=settings.steps,
                  guidance_scale=settings.guidance_scale, num_images_per_prompt=settings.num_images,
                  generator=generator, callback_on_step_end=on_step,
                  callback_on_step_end_tensor_inputs=["latents"], output_type="pil")
    if settings.guidance_rescale:
        kwargs["guidance_rescale"] = settings.guidance_rescale
    if img2img:
        kwargs.update(image=init_image, strength=settings.strength)
        if profile.pipeline == "pixel":
            kwargs.update(height=settings.height, width=settings.width)
    else:
        kwargs.update(height=settings.height, width=settings.width)
    start = time.perf_counter()
    if img2img and total == 0 and profile.pipeline != "pixel":
        # int(strength x steps) = 0: nothing to denoise, the input comes back (as the pixel
        # pipeline does; diffusers' img2img pipelines cannot start from an empty schedule).
        images = [init_image.copy() for _ in seeds]
    else:
        images = pipe(**kwargs).images
    seconds = time.perf_counter() - start
    if img2img and keep_frames and not frames:  # strength 0: the input comes back untouched
        frames.append(Frame(0, 0, upscale(images[0], profile.display)))
    params = dict(model=key, mode="img2img" if img2img else "txt2img", prompt=prompt,
                  negative_prompt=negative_prompt, **asdict(settings))
    if not img2img:
        params.pop("strength")
    return DiffusionResult(images=images, display=[upscale(im, profile.display) for im in images],
                           frames=frames, params=params, steps_run=total, seconds=seconds,
                           shapes=pipeline_shapes(bundle, prompt, settings, img2img), applied=applied,
                           seeds=seeds, unet_calls=len(recorder.calls),
                           spacing=pipe.scheduler.config.timestep_spacing, timesteps=recorder.visited,
                           alphas_cumprod=schedule.alphas(pipe.scheduler), x0_source=recorder.source)


def _frame_keeper(frames: list[Frame], recorder: schedule.StepRecorder, total: int, every: int, display: int,
                  progress: Progress) -> Callable:
    """The step callback: reports progress, and every `every` steps (0: never) and at the last
    one appends a Frame with the image after the step, and x_t and x̂₀ of the step (recorder.last)."""
    def on_step(p, i, t, tensors):
        # PNDM makes its first step twice (the warm-up), so it calls back once more than the steps
        # asked: call i is step i + 1 - extra, and the first two calls are both step 1.
        extra = max(getattr(p, "num_timesteps", 0) - total, 0)
        done = min(max(i + 1 - extra, 1), total)
        note = f" (U-Net call {i + 1}/{total + extra}: {extra} warm-up)" if extra else ""
        progress(done / max(total, 1), f"Denoising step {done}/{total}{note}")
        if every and (done % every == 0 or done == total):
            view = recorder.last
            shown = _decode_previews(p, [tensors["latents"], *((view.x_t, view.x0) if view else ())], display)
            frame = Frame(done, int(t), shown[0], noisy=shown[1] if view else None, clean=shown[2] if view else None,
                          x0=view.x0 if view else None)
            if frames and frames[-1].step == done:  # the warm-up redid this step: keep the later one
                frames[-1] = frame
            else:
                frames.append(frame)
        return tensors

    return on_step


def prepare_init_image(image, profile: DiffusionProfile) -> Image.Image:
    """An uploaded or drawn picture as the model sees it. For the 1-channel digits model:
    grey, light backgrounds inverted (the training digits are white ink on black), boxed down
    to the native size and stretched to full contrast so thin pen strokes survive."""
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim >= 2:
            check_pixels("init image", arr.shape[1], arr.shape[0])
        if arr.dtype != np.uint8:
            arr = (arr * 255).clip(0, 255).astype(np.uint8) if arr.max() <= 1.0 else arr.astype(np.uint8)
        image = Image.fromarray(arr)
    if not isinstance(image, Image.Image):
        raise UserInputError("init image must be a picture (PNG, JPEG, WebP) or a drawing.")
    check_pixels("init image", *image.size)  # before any conversion (Gradio decoded it within PIL's bound)
    if image.mode in ("RGBA", "LA"):  # transparent sketch: paint it onto white first
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        canvas.alpha_composite(image.convert("RGBA"))
        image = canvas
    if profile.kind != "pixel":
        return image.convert("RGB")
    grey = image.convert("L")
    if np.asarray(grey).mean() > 127:
        grey = Image.eval(grey, lambda v: 255 - v)
    small = grey.resize((profile.size, profile.size), Image.BOX)
    arr = np.asarray(small, dtype=np.float32)
    if arr.max() > 0:
        arr = arr / arr.max() * 255
    return Image.fromarray(arr.round().astype(np.uint8))


def sample_digit(digit: int, index: int = 0) -> Image.Image:
    """A real digit from scikit-learn's data at 16x16 (white on black), for img2img."""
    from sklearn.datasets import load_digits

    digit = check_range("digit", digit, 0, 9, integer=True)
    d = load_digits()
    picks = np.flatnonzero(d.target == digit)
    img = Image.fromarray((d.images[picks[index % len(picks)]] / 16 * 255).astype(np.uint8))
    return img.resize((16, 16), Image.BILINEAR)


# --- sweep ------------------------------------------------------------------------------------
def sweep(engine, key: str, prompt: str, negative_prompt: str, settings: DiffusionSettings,
          guidances: list[float], columns: list, column_axis: str = "steps",
          knobs: MemoryKnobs = MemoryKnobs(), progress: Progress = no_progress) -> tuple[Image.Image, dict]:
    """A grid: one row per guidance scale, one column per steps value (or scheduler), same seed."""
    check_choice("column axis", column_axis, ("steps", "scheduler"))
    if not 1 <= len(guidances) <= 6 or not 1 <= len(columns) <= 6:
        raise UserInputError(f"A sweep takes 1 to 6 guidance values and 1 to 6 {column_axis} values, got "
                             f"{len(guidances)} and {len(columns)}.")
    # every cell's values checked as their knobs before the first cell runs ('2.9' steps is refused, not cut to 2)
    guidances = [check_knob(DiffusionSettings, "guidance_scale", g) for g in guidances]
    if column_axis == "steps":
        columns = [check_knob(DiffusionSettings, "steps", c) for c in columns]
    cells, total = [], len(guidances) * len(columns)
    for r, g in enumerate(guidances):
        row = []
        for c, col in enumerate(columns):
            one = replace(settings, guidance_scale=g, num_images=1,
                          **({"steps": col} if column_axis == "steps" else {"scheduler": col}))
            done = r * len(columns) + c
            progress(done / total, f"Cell {done + 1}/{total}: guidance {g}, {column_axis} {col}")
            res = generate(engine, key, prompt, negative_prompt, one, knobs=knobs, keep_frames=False)
            row.append(res.display[0])
        cells.append(row)
    col_labels = [f"{col} steps" if column_axis == "steps" else str(col) for col in columns]
    grid = grid_image(cells, [f"guidance {g:g}" for g in guidances], col_labels,
                      title=f'"{prompt}"' + (f"   negative: \"{negative_prompt}\"" if negative_prompt else ""))
    params = dict(model=key, mode="sweep", prompt=prompt, negative_prompt=negative_prompt,
                  guidances=list(map(float, guidances)), column_axis=column_axis, columns=list(columns),
                  **{k: v for k, v in asdict(settings).items() if k not in ("guidance_scale", "num_images")})
    return grid, params


# --- prompt builder ---------------------------------------------------------------------------
def compose_prompt(subject: str = "", style: str = "", details: str = "", environment: str = "",
                   composition: str = "", lighting: str = "", quality: str = "") -> str:
    """The builder's fields as one comma-separated prompt, subject first; empty fields skipped."""
    parts = [check_text(name, value, max_chars=300, allow_empty=True).strip()
             for name, value in (("subject", subject), ("style", style), ("details", details),
                                 ("environment", environment), ("composition", composition),
                                 ("lighting", lighting), ("quality", quality))]
    return ", ".join(p for p in parts if p)


__all__ = ["DiffusionSettings", "MemoryKnobs", "DiffusionResult", "generate", "image_to_image", "sweep",
           "compose_prompt", "steps_to_run", "image_seeds", "noise_schedule",
           "load_diffusion", "save_pngs", "save_gif", "read_png_parameters", 
           "defaults_for", "profile_for", "SCHEDULER_NAMES", "Callable"]
