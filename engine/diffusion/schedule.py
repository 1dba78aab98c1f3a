"""The denoising loop seen from the scheduler, as Diffusion Explainer shows it: which training
timesteps a run visits on the noise schedule, and the clean image x̂₀ the model predicts at each
step. No Gradio here.

A training image x₀ is noised as x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, with ᾱ_t (alphas_cumprod) falling
from about 1 at t = 0 to about 0 at t = 999. At each step the U-Net predicts ε̂ from x_t; the
scheduler turns that into x̂₀, the clean image the model believes in right now, and moves x_t
part of the way towards it. DDIM, Euler and Euler ancestral return x̂₀ themselves
(`pred_original_sample`); DPM++ 2M and PNDM do not, so for them x̂₀ is computed here by the
formula below from the same x_t and ε̂.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from ..core.lazy import torch

X0_FORMULA = "x̂₀ = (x_t − √(1−ᾱ_t)·ε̂) / √ᾱ_t"


def predicted_original(scheduler, x_t: torch.Tensor, model_output: torch.Tensor, timestep) -> torch.Tensor:
    """x̂₀ from the U-Net's input x_t (on the variance-preserving scale the U-Net sees, i.e. after
    scale_model_input) and its output at `timestep`, by the scheduler's prediction type:
    epsilon: (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t; v_prediction: √ᾱ_t·x_t − √(1−ᾱ_t)·v̂; sample: the output."""
    alpha = scheduler.alphas_cumprod[int(timestep)].to(x_t.device, torch.float32)  # ᾱ_t
    x, out = x_t.float(), model_output.float()
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        x0 = (x - (1 - alpha).sqrt() * out) / alpha.sqrt()
    elif kind == "v_prediction":
        x0 = alpha.sqrt() * x - (1 - alpha).sqrt() * out
    elif kind == "sample":
        x0 = out
    else:
        raise ValueError(f"prediction_type = {kind!r}: expected epsilon, v_prediction or sample")
    return x0.to(x_t.dtype)


@dataclass
class StepView:
    """One U-Net call as the scheduler saw it, for the first image of the batch."""

    timestep: int
    x_t: torch.Tensor  # (1, C, h, w) the U-Net's input, variance-preserving scale
    x0: torch.Tensor  # (1, C, h, w) the predicted clean latents x̂₀


class StepRecorder:
    """Records every step of one request's scheduler (a fresh one per request: request_pipeline),
    by wrapping its step(): the timestep of each U-Net call, and with `keep` the last call's x_t
    and x̂₀ (the scheduler's own pred_original_sample where it returns one, else the formula).
    The wrapper keeps step()'s signature, which pipelines inspect for `generator` and `eta`."""

    def __init__(self, scheduler, keep: bool = True):
        self.scheduler = scheduler
        self.keep = keep
        self.calls: list[int] = []  # the timestep of each U-Net call, in order
        self.last: StepView | None = None
        self.sources: set[str] = set()  # "scheduler" and / or "formula"
        inner = scheduler.step

        @functools.wraps(inner)
        def step(model_output, timestep, sample, *args, return_dict: bool = True, **kwargs):
            x_t = scheduler.scale_model_input(sample[:1], timestep) if keep else None  # before step moves on
            out = inner(model_output, timestep, sample, *args, return_dict=True, **kwargs)
            self._record(int(timestep), x_t, model_output[:1], out)
            return out if return_dict else out.to_tuple()

        scheduler.step = step

    def _record(self, timestep: int, x_t, model_output, out) -> None:
        self.calls.append(timestep)
        if not self.keep:
            return
        own = getattr(out, "pred_original_sample", None)
        if own is not None:
            self.sources.add("scheduler")
            x0 = own[:1]
        else:
            self.sources.add("formula")
            x0 = predicted_original(self.scheduler, x_t, model_output, timestep)
        self.last = StepView(timestep, x_t.detach().clone(), x0.detach().clone())

    @property
    def visited(self) -> list[int]:
        """The timesteps the run visited, noisiest first, each once (PNDM's warm-up calls one twice)."""
        return list(dict.fromkeys(self.calls))

    @property
    def source(self) -> str:
        """Where x̂₀ came from: "scheduler", "formula", or "" when nothing was kept."""
        return "formula" if "formula" in self.sources else "scheduler" if self.sources else ""


def visited_timesteps(scheduler) -> list[int]:
    """The timesteps a txt2img run with this scheduler (set_timesteps already called) visits,
    noisiest first, each once."""
    return list(dict.fromkeys(int(t) for t in scheduler.timesteps))


def alphas(scheduler) -> list[float]:
    """ᾱ_t for every training timestep t = 0 .. num_train_timesteps − 1."""
    return [float(a) for a in scheduler.alphas_cumprod]
