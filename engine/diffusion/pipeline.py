"""A small text-to-image / image-to-image DiffusionPipeline that mirrors StableDiffusionPipeline
step by step, for models that denoise pixels directly (no VAE), like our digits model.

    prompt -> tokenizer -> token ids (B, T) -> text encoder -> embeddings (B, T, D)
    noise (B, C, H, W) -> [U-Net predicts the noise, guided by the text] x steps (scheduler) -> image

With a VAE it works in latent space like Stable Diffusion (latents = image / 8); without one the
"latents" are the pixels. Built only from diffusers and transformers components, so tests can
swap in tiny ones made from a config.
"""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np
import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.loaders import TextualInversionLoaderMixin
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image


class PixelDiffusionPipeline(DiffusionPipeline, TextualInversionLoaderMixin):
    """TextualInversionLoaderMixin: load_textual_inversion() loads a learned token into it (teach.py)."""

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _optional_components = ["vae"]
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(self, unet, text_encoder, tokenizer, scheduler, vae=None):
        super().__init__()
        self.register_modules(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer,
                              scheduler=scheduler, vae=vae)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1

    @property
    def num_timesteps(self) -> int:
        """U-Net calls the last run made (as in StableDiffusionPipeline); PNDM makes one more
        than the steps asked (its warm-up)."""
        return getattr(self, "_num_timesteps", 0)

    # --- 1. text -> embeddings ----------------------------------------------------------
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                              truncation=True, return_tensors="pt").input_ids  # (B, T)

    @torch.no_grad()
    def encode_prompt(self, prompt, device, num_images_per_prompt: int, do_cfg: bool, negative_prompt=None):
        """(prompt_embeds, negative_prompt_embeds), each (B * n, T, D); the negative prompt
        (or "" when none is given) is the unconditional branch of classifier-free guidance."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        ids = self.tokenize(prompts).to(device)  # (B, T)
        embeds = self.text_encoder(ids)[0]  # (B, T, D)
        embeds = embeds.repeat_interleave(num_images_per_prompt, dim=0)  # (B*n, T, D)
        negative = None
        if do_cfg:
            neg = negative_prompt if negative_prompt is not None else ""
            negs = [neg] * len(prompts) if isinstance(neg, str) else list(neg)
            negative = self.text_encoder(self.tokenize(negs).to(device))[0]  # (B, T, D)
            negative = negative.repeat_interleave(num_images_per_prompt, dim=0)
        return embeds, negative

    # --- 2. images <-> latents ------------------------------------------------------------
    def preprocess(self, image, height: int, width: int, device, dtype) -> torch.Tensor:
        """PIL / numpy (H, W[, C]) in 0..255 / tensor in [-1, 1] -> (1, C, H, W) in [-1, 1]."""
        if isinstance(image, torch.Tensor):
            return image.to(device, dtype)
        channels = self.vae.config.in_channels if self.vae is not None else self.unet.config.in_channels
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image.astype(np.uint8))
        image = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BICUBIC)
        arr = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
        arr = arr[None, None] if arr.ndim == 2 else arr.transpose(2, 0, 1)[None]  # (1, C, H, W)
        return torch.from_numpy(arr).to(device, dtype)

    def encode_image(self, pixels: torch.Tensor, generator=None) -> torch.Tensor:
        if self.vae is None:
            return pixels
        dist = self.vae.encode(pixels).latent_dist
        return dist.sample(generator) * self.vae.config.scaling_factor  # (B, 4, H/8, W/8)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """latents -> images (B, C, H, W) in [-1, 1]."""
        if self.vae is None:
            return latents.clamp(-1, 1)
        return self.vae.decode(latents / self.vae.config.scaling_factor).sample.clamp(-1, 1)

    @staticmethod
    def to_pil(images: torch.Tensor) -> list[Image.Image]:
        arr = ((images.float().cpu().permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255)
        arr = arr.astype(np.uint8)  # (B, H, W, C)
        return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]

    # --- 3. which timesteps run ---------------------------------------------------------------
    def get_timesteps(self, num_inference_steps: int, strength: float):
        """img2img starts part-way: int(steps * strength) steps run, from the noisier end
        (diffusers' StableDiffusionImg2ImgPipeline.get_timesteps, same rule)."""
        init = min(int(num_inference_steps * strength), num_inference_steps)
        start = max(num_inference_steps - init, 0)
        timesteps = self.scheduler.timesteps[start * self.scheduler.order:]
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(start * self.scheduler.order)
        return timesteps, num_inference_steps - start

    def check_inputs(self, height: int, width: int, strength: float, num_inference_steps: int):
        if height % 8 or width % 8:
            raise ValueError(f"height and width must be multiples of 8, got {height}x{width}.")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, got {strength}.")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}.")

    @torch.no_grad()
    def __call__(self, prompt="", negative_prompt=None, height: int | None = None, width: int | None = None,
                 num_inference_steps: int = 25, guidance_scale: float = 7.5, num_images_per_prompt: int = 1,
                 generator=None, image=None, strength: float = 1.0, output_type: str = "pil",
                 callback_on_step_end: Callable | None = None,
                 callback_on_step_end_tensor_inputs: list[str] = ("latents",), return_dict: bool = True,
                 guidance_rescale: float = 0.0):
        size = self.unet.config.sample_size * self.vae_scale_factor
        height, width = height or size, width or size
        strength = strength if image is not None else 1.0
        self.check_inputs(height, width, strength, num_inference_steps)
        device, dtype = self._execution_device, self.unet.dtype
        batch = 1 if isinstance(prompt, str) else len(prompt)
        do_cfg = guidance_scale > 1.0

        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt, device, num_images_per_prompt, do_cfg, negative_prompt)
        embeds = torch.cat([negative_prompt_embeds, prompt_embeds]) if do_cfg else prompt_embeds  # (2Bn, T, D)

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        shape = (batch * num_images_per_prompt, self.unet.config.in_channels,
                 height // self.vae_scale_factor, width // self.vae_scale_factor)  # (Bn, C, h, w)
        noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        if image is None:
            timesteps = self.scheduler.timesteps
            latents = noise * self.scheduler.init_noise_sigma
        else:
            timesteps, _ = self.get_timesteps(num_inference_steps, strength)
            init = self.encode_image(self.preprocess(image, height, width, device, dtype), generator)
            init = init.expand(shape[0], -1, -1, -1)  # (Bn, C, h, w)
            if len(timesteps) == 0:  # strength 0: nothing to denoise, the input comes back
                latents = init
            else:
                latents = self.scheduler.add_noise(init, noise, timesteps[:1].repeat(shape[0]))
        self._num_timesteps = len(timesteps)
        # Only some schedulers take a generator (the ancestral ones add fresh noise each step).
        accepts = "generator" in inspect.signature(self.scheduler.step).parameters
        step_kwargs = {"generator": generator} if accepts else {}

        for i, t in enumerate(self.progress_bar(timesteps)):
            model_in = torch.cat([latents] * 2) if do_cfg else latents  # (2Bn, C, h, w)
            model_in = self.scheduler.scale_model_input(model_in, t)
            noise_pred = self.unet(model_in, t, encoder_hidden_states=embeds).sample
            if do_cfg:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + guidance_scale * (cond - uncond)  # classifier-free guidance
                if guidance_rescale > 0:  # match the guided noise's spread to the text branch's
                    ratio = cond.std(dim=(1, 2, 3), keepdim=True) / noise_pred.std(dim=(1, 2, 3), keepdim=True)
                    noise_pred = guidance_rescale * noise_pred * ratio + (1 - guidance_rescale) * noise_pred
            latents = self.scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample
            if callback_on_step_end is not None:
                local = {"latents": latents, "prompt_embeds": prompt_embeds,
                         "negative_prompt_embeds": negative_prompt_embeds}
                out = callback_on_step_end(self, i, t, {k: local[k] for k in callback_on_step_end_tensor_inputs})
                latents = (out or {}).get("latents", latents)

        images = self.decode_latents(latents)  # (Bn, C, H, W) in [-1, 1]
        self.maybe_free_model_hooks()
        if output_type == "pt":
            result = images
        elif output_type == "np":
            result = ((images.float().cpu().permute(0, 2, 3, 1).numpy() + 1) / 2).clip(0, 1)
        else:
            result = self.to_pil(images)
        if not return_dict:
            return (result,)
        return ImagePipelineOutput(images=result)
