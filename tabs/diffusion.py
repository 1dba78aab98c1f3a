"""Diffusion: text-to-image and image-to-image with every knob, the denoising steps as a gallery,
a guidance x steps sweep, and the pipeline with the tensor shape at each stage."""
from __future__ import annotations

import gradio as gr

from engine.core.errors import ModelUnavailableError, UserInputError, check_text
from engine.diffusion import generation, plots, schedule, teach
from engine.core.settings import knob_info, make
from engine.training import runner
from tabs._ui import (HEAVY, Plot, Share, budget_control, controls_for, data_table, examples, model_picker, notice,
                      progress_callback, scratch_dir, seed_box, user_errors)

TITLE = "Diffusion"

BUILDER_FIELDS = (
    ("subject", "Subject", "a handwritten 7 / a red fox"),
    ("style", "Style", "pencil sketch, watercolor, photo"),
    ("details", "Details", "bold strokes, fluffy tail"),
    ("environment", "Environment", "in a snowy forest"),
    ("composition", "Composition", "centered, close-up"),
    ("lighting", "Lighting", "soft morning light"),
    ("quality", "Quality modifiers", "highly detailed, sharp focus"),
)
KNOBS = ["guidance_scale", "steps", "scheduler", "num_images", "width", "height", "gallery_every",
         "guidance_rescale"]
MEMORY = ["fp16", "attention_slicing", "vae_slicing", "vae_tiling", "cpu_offload"]  # MemoryKnobs fields


def _profile_md(engine, key: str) -> str:
    if not key:
        return "No diffusion model is usable here."
    spec, p = engine.registry.get(key), generation.profile_for(key)
    src = "the Hugging Face Hub" if engine.online and spec.hub_id else "assets/ (offline)"
    lines = [f"**{spec.title}** from {src} · native size **{p.size}x{p.size}** · default guidance "
             f"**{p.guidance:g}**, **{p.steps}** steps, **{p.scheduler}** · "
             f"{'latent space (VAE, 8x smaller)' if p.kind == 'latent' else 'pixel space (no VAE)'}"]
    if p.note:
        lines.append(p.note)
    return "  \n".join(lines)


def _scheduler_info(profile) -> str:
    return f"schedulers: {', '.join(profile.schedulers)}"


def _captioned(result, pngs: list[str]) -> list[tuple[str, str]]:
    """Each image with its own seed: that seed and one image give the same picture again."""
    return [(path, f"seed {result.seeds[i]} #{i}") for i, path in enumerate(pngs)]


def _write_frames(result, pairs: bool = True) -> list[tuple[str, str]]:
    """The denoising gallery: per kept step, x_t (what the U-Net saw) beside x̂₀ (the clean image
    it predicted from it); with pairs=False (the small gallery of "Teach it a new symbol"), or for a
    frame without them (strength 0: nothing ran), the image after the step alone."""
    folder = scratch_dir("frames")
    out = []
    for f in result.frames:
        path = folder / f"step-{f.step:03d}.png"
        if pairs and f.noisy is not None and f.clean is not None:
            plots.step_pair_image(f.noisy, f.clean).save(path)
            out.append((str(path), f"step {f.step}/{result.steps_run} · t = {f.timestep}"))
        else:
            f.image.save(path)
            out.append((str(path), f"step {f.step}/{result.steps_run}"))
    return out


def _x0_note(result) -> str:
    """Where the gallery's x̂₀ comes from, for the summary."""
    if result.x0_source == "scheduler":
        return f" x̂₀ is {result.params['scheduler']}'s own prediction (pred_original_sample)."
    if result.x0_source == "formula":
        return (f" {result.params['scheduler']} does not return x̂₀: the gallery computes "
                f"{schedule.X0_FORMULA} from the U-Net's noise prediction ε̂.")
    return ""


def _schedule_figure(alphas_cumprod, visited, scheduler: str, steps_asked: int, mode: str = "txt2img"):
    """The noise schedule with the steps a run visits; the title says which run."""
    if not visited:
        caption = f"Noise schedule · {scheduler}: no step runs (strength x steps < 1)"
    else:
        skipped = f" of {steps_asked} (strength skips the noisiest)" if mode == "img2img" and len(visited) < steps_asked \
            else ""
        caption = (f"Noise schedule · {scheduler}, {len(visited)} step{'s' if len(visited) != 1 else ''}{skipped}: "
                   f"t = {visited[0]} → {visited[-1]}")
    return plots.noise_schedule_figure(alphas_cumprod, visited, caption)


def _result_schedule(result):
    p = result.params
    return _schedule_figure(result.alphas_cumprod, result.timesteps, p["scheduler"], p["steps"], p["mode"])


def _summary(result) -> str:
    p = result.params
    applied = ", ".join(result.applied) if result.applied else "none (CPU)" if not result.applied else ""
    seeds = result.seeds
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]} to {seeds[-1]} (one per image)"
    warmup = (f" ({result.unet_calls} U-Net calls: {p['scheduler']} warms up by making its first step twice)"
              if result.warmup_calls else "")
    return (f"{len(result.images)} image(s) in **{result.seconds:.2f} s** · **{result.steps_run}** denoising "
            f"steps run{warmup} · {seed_text} · {p['scheduler']}{_timesteps_text(result)} · guidance "
            f"{p['guidance_scale']:g} · memory savers: {applied}. Each PNG carries its parameters in its metadata."
            f"{_x0_note(result)}")


def _timesteps_text(result) -> str:
    """Where the steps ran on the 0-999 noise scale, and the spacing that put them there."""
    ts = result.timesteps
    if not ts:
        return ""
    where = f"t = {ts[0]}" if len(ts) == 1 else f"t = {ts[0]} → {ts[-1]}"
    why = ""
    if result.spacing == "trailing" and result.params.get("steps", 99) <= generation.FEW_STEPS:
        why = (f": with {generation.FEW_STEPS} steps or fewer the schedule starts at t = 999, the pure noise"
               + ("; strength skips its noisiest part" if result.params.get("mode") == "img2img" else ""))
    return f" at {where} ('{result.spacing}' timestep spacing{why})"


# (prompt, negative prompt, guidance) per kind of model: the offline digits model knows digits
# written as numbers or words, and "bold" / "thin" ink; Stable Diffusion takes any scene.
EXAMPLES = {
    "pixel": (("a handwritten 7", "", 3.0), ("a bold 3", "", 3.0), ("the number eight", "", 3.0),
              ("a thin 2", "a bold 2", 5.0), ("a handwritten 4", "", 1.0), ("a handwritten 4", "", 7.5)),
    "latent": (("a watercolor painting of a lighthouse at dawn", "blurry, low quality", 7.5),
               ("a photo of a red fox in the snow, sharp focus", "cartoon, drawing", 7.5),
               ("an isometric illustration of a tiny library", "text, watermark", 7.5),
               ("a bowl of ramen, studio lighting", "", 2.0)),
}


def build(engine) -> None:
    gr.Markdown("## Diffusion: from noise to an image, one denoising step at a time\n"
                "A text encoder turns the prompt into vectors; a U-Net predicts the noise in the image; "
                "the scheduler removes a bit of it per step; guidance pushes towards the prompt and away "
                "from the negative prompt.")
    with gr.Row():
        model = model_picker(engine, "diffusion", label="Model", scale=2)
        ui = {"model": model, "profile_md": gr.Markdown(_profile_md(engine, model.value))}
    start = generation.defaults_for(model.value) if model.value else generation.DiffusionSettings()
    profile = generation.profile_for(model.value or "sd15")
    ui.update(_prompt_rows())
    first_schedule = lambda: _initial_schedule(engine, model.value, start)  # noqa: E731 - drawn at page load
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            ui.update(_knob_column(engine, ui, start, profile))
        with gr.Column(scale=2):
            with gr.Tabs(overflow_behavior="wrap"):
                with gr.Tab("Text to image"):
                    ui.update(_txt2img_panel(first_schedule))
                with gr.Tab("Image to image"):
                    ui.update(_img2img_panel(first_schedule))
                with gr.Tab("Sweep"):
                    ui.update(_sweep_panel(profile))
                with gr.Tab("Teach it a new symbol", elem_id="diffusion-teach-tab"):
                    _build_teach(engine)
                with gr.Tab("How it works"):
                    ui["diagram"] = _how_it_works(profile)

    # The knobs, seed and memory savers reach the listeners as keyword arguments named after the
    # settings fields, so the API (view_api) names every parameter instead of param_3, param_4...
    knob_kwargs = {**{k: ui["ctl"][k] for k in KNOBS}, "seed": ui["seed"], **ui["memory"]}
    _wire_model(engine, ui)
    _wire_memory(engine, ui)
    _wire_generate(engine, ui, knob_kwargs)
    _wire_init_image(ui)
    _wire_sweep(engine, ui, knob_kwargs)
    return _wire_schedule(engine, ui)


# --- layout: each function creates its components in the current context and returns them ----

def _prompt_rows() -> dict:
    """The prompt builder, the prompt and negative prompt, and a slot for the examples."""
    ui = {}
    with gr.Accordion("Prompt builder", open=False):
        with gr.Row():
            ui["fields"] = [gr.Textbox(label=label, placeholder=hint, max_lines=1) for _, label, hint in BUILDER_FIELDS]
        ui["compose"] = gr.Button("Compose into the prompt below", size="sm")
    with gr.Row():
        ui["prompt"] = gr.Textbox(label="Prompt", value="a handwritten 7", lines=2, scale=3)
        ui["negative"] = gr.Textbox(label="Negative prompt", value="", lines=2, scale=2,
                                    placeholder="what to steer away from, e.g. bold")
    ui["example_box"] = gr.Column()  # filled by _knob_column, once the guidance and seed controls exist
    return ui


def _knob_column(engine, ui: dict, start, profile) -> dict:
    """The knobs (their start values from the picked model), the seed, the examples into ui's
    example box, and the GPU memory knobs."""
    plain = [k for k in KNOBS if k not in ("width", "height")]
    ctl = controls_for(generation.DiffusionSettings, plain, **{
        "guidance_scale": {"value": start.guidance_scale},
        "steps": {"value": start.steps},
        "scheduler": {"value": start.scheduler, "choices": profile.schedulers},
    })
    for name in ("width", "height"):  # bounds depend on the model: set here, updated on change
        ctl[name] = gr.Slider(profile.min_size, profile.max_size, value=getattr(start, name), step=8,
                              label=name, info=knob_info(generation.DiffusionSettings, name).help)
    seed = seed_box(42)
    with ui["example_box"]:
        examples([[p, n, g, 42] for p, n, g in EXAMPLES[profile.kind]],
                 [ui["prompt"], ui["negative"], ctl["guidance_scale"], seed], columns=[0, 1, 2],
                 label="Examples (click one, then Generate)")
    return {"ctl": ctl, "seed": seed, **_memory_knobs()}


def _memory_knobs() -> dict:
    """The memory savers (by MemoryKnobs field, in "memory") and their fold: they only act on a CUDA
    GPU. They start switched off: the page load (_wire_memory) sets them for the device, which is
    picked on first use, not at the app's start."""
    with gr.Accordion("GPU memory knobs", open=False) as fold:
        boxes = [gr.Checkbox(True, label="fp16 weights", interactive=False),
                 gr.Checkbox(False, label="attention slicing", interactive=False),
                 gr.Checkbox(False, label="VAE slicing", interactive=False),
                 gr.Checkbox(False, label="VAE tiling", interactive=False),
                 gr.Checkbox(False, label="model CPU offload", interactive=False)]
        gr.Markdown("Applied only on a CUDA GPU. fp16 halves the weights' memory; slicing runs "
                    "attention / VAE decoding in pieces; tiling decodes large images tile by tile; "
                    "CPU offload keeps each model on the CPU until it is needed.")
    return {"memory_fold": fold, "memory": dict(zip(MEMORY, boxes))}


def memory_knob_updates(engine) -> list:
    """The fold and the memory knobs for the engine's device: usable on a CUDA GPU; elsewhere
    off, and the fold's title says so."""
    on_gpu = engine.device.kind == "cuda"
    label = "GPU memory knobs" + ("" if on_gpu else " (GPU only: off on this CPU)")
    return [gr.update(label=label), *[gr.update(interactive=on_gpu) for _ in MEMORY]]


def _txt2img_panel(first_schedule) -> dict:
    ui = {}
    ui["go"] = gr.Button("Generate", variant="primary", elem_id="diffusion-generate")
    ui["images"] = gr.Gallery(label="Images (PNG with parameters)", columns=4, height="auto",
                              object_fit="contain", elem_id="diffusion-images")
    ui["info"] = gr.Markdown()
    # cells are square, a third of the column wide: 24vw holds one row of them at laptop and projector width
    ui["frames"] = gr.Gallery(label="Denoising gallery: x_t (what the U-Net saw) beside x̂₀ (its guess of the "
                              "clean image), every few steps", columns=3, height="24vw", object_fit="contain",
                              elem_id="diffusion-frames")
    notice("Early steps are almost pure noise, yet x̂₀ already guesses the shape; the shape settles in "
           "the middle steps and the last steps only sharpen it. Same seed, same image.")
    ui["schedule"] = _schedule_plot(first_schedule, "diffusion-schedule")
    with gr.Row():
        ui["files"] = gr.File(label="Download PNGs", file_count="multiple")
        ui["gif"] = gr.File(label="Denoising as animated GIF")
    return ui


def _img2img_panel(first_schedule) -> dict:
    ui = {}
    with gr.Row():
        ui["init"] = gr.Sketchpad(label="Init image: draw or upload", type="pil",
                                  canvas_size=(320, 320), sources=["upload"], height=360, elem_id="diffusion-init")
        with gr.Column():
            ui["strength"] = controls_for(generation.DiffusionSettings, ["strength"])["strength"]
            ui["steps_run"] = gr.Markdown()
            ui["digit"] = gr.Dropdown([str(i) for i in range(10)], value="3",
                                      label="or start from a real digit of the dataset")
            ui["use_digit"] = gr.Button("Use this digit", size="sm")
            ui["init_preview"] = gr.Image(label="Init image as the model sees it", type="pil",
                                          height=160, interactive=False, image_mode="L",
                                          format="png", elem_id="diffusion-init-preview")  # exact pixels
    ui["go_i2i"] = gr.Button("Generate from the image", variant="primary")
    ui["images_i2i"] = gr.Gallery(label="Results", columns=4, height="auto", object_fit="contain")
    ui["info_i2i"] = gr.Markdown()
    ui["frames_i2i"] = gr.Gallery(label="Denoising gallery: x_t beside x̂₀", columns=3, height="24vw",
                                  object_fit="contain")
    ui["files_i2i"] = gr.File(label="Download PNGs", file_count="multiple")
    notice("Strength 0 returns your image; strength 1 ignores it. Only int(strength x steps) "
           "steps run, starting from your image with that much noise added.")
    ui["schedule_i2i"] = _schedule_plot(first_schedule, "diffusion-schedule-i2i")
    return ui


def _schedule_plot(first_schedule, elem_id: str):
    """The noise schedule with the steps the chosen scheduler and step count visit."""
    plot = Plot(filename=elem_id.replace("diffusion-schedule", "noise-schedule"), initial=first_schedule, label="Noise schedule", show_label=False,
                elem_id=elem_id)
    notice("x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε: the blue curve is how much of the clean image x_t holds, the red one "
           "how much noise. The markers are the timesteps this scheduler and step count visit, one per step.")
    return plot


def _initial_schedule(engine, key: str, start):
    """The first schedule shown: the picked model's, with its default scheduler and steps."""
    if not key:
        return plots.noise_schedule_figure([], [], "Noise schedule: no diffusion model is usable here")
    try:
        alphas, visited = generation.noise_schedule(engine, key, start.scheduler, start.steps)
    except (UserInputError, ModelUnavailableError, OSError):  # unreadable config: an empty chart, not a failed page
        return plots.noise_schedule_figure([], [], "Noise schedule: change the steps or scheduler to draw it")
    return _schedule_figure(alphas, visited, start.scheduler, start.steps)


def _sweep_panel(profile) -> dict:
    ui = {}
    with gr.Row():
        ui["guid_list"] = gr.Textbox("1, 3, 7.5", label="Guidance values (rows)")
        ui["axis"] = gr.Radio(["steps", "scheduler"], value="steps", label="Columns vary")
        ui["col_list"] = gr.Textbox("5, 10, 25", label="Steps values or scheduler names (columns)",
                                    info=_scheduler_info(profile))
    ui["go_sweep"] = gr.Button("Run the sweep", variant="primary", elem_id="diffusion-sweep")
    ui["grid"] = gr.Image(label="Sweep grid (same seed in every cell)", type="filepath", show_label=False,
                          elem_id="diffusion-grid", height=560)
    notice("Read across for steps, down for guidance. Too little guidance ignores the prompt; "
           "too much over-cooks it.")
    return ui


def _how_it_works(profile) -> gr.HTML:
    """The pipeline diagram (redrawn with the tensor shapes after each run) and how guidance works."""
    diagram = gr.HTML(plots.pipeline_diagram_html([], profile.kind))
    gr.Markdown("Shapes are (batch, ...). With guidance > 1 every U-Net call runs the prompt "
                "and the negative prompt together (batch x 2) and mixes the two predictions: "
                "`noise = uncond + guidance x (cond - uncond)`. Stable Diffusion works on 4 x 64 x 64 "
                "latents for a 512 x 512 image; the digits model works on the 1 x 16 x 16 pixels.")
    return diagram


# --- listeners ---------------------------------------------------------------------------------

def _settings_from(values: dict, strength_value=None) -> generation.DiffusionSettings:
    """The knobs as they arrive (slider floats, or anything through the API), checked by make():
    finite, in range and whole where a knob must be, before any conversion."""
    kw = {k: values[k] for k in KNOBS}
    if strength_value is not None:
        kw["strength"] = strength_value
    seed = values["seed"]
    return make(generation.DiffusionSettings, seed=0 if seed is None else seed, **kw)


def _memory_from(values: dict) -> generation.MemoryKnobs:
    return generation.MemoryKnobs(**{k: bool(values[k]) for k in MEMORY})


def _result_kind(key):
    return generation.profile_for(key).kind


def _wire_model(engine, ui: dict) -> None:
    """A new model sets its own default knobs and sizes; the prompt builder composes a prompt."""
    ctl = ui["ctl"]

    def on_model(model):
        p, s = generation.profile_for(model), generation.defaults_for(model)
        size = dict(minimum=p.min_size, maximum=p.max_size)
        return (_profile_md(engine, model), gr.update(value=s.guidance_scale), gr.update(value=s.steps),
                gr.update(value=s.scheduler, choices=list(p.schedulers)), gr.update(value=s.width, **size),
                gr.update(value=s.height, **size), gr.update(info=_scheduler_info(p)))

    outputs = [ui["profile_md"], ctl["guidance_scale"], ctl["steps"], ctl["scheduler"], ctl["width"], ctl["height"],
               ui["col_list"]]
    ui["model_changed"] = ui["model"].change(user_errors(on_model), [ui["model"]], outputs,
                                             api_name="diffusion_defaults")
    ui["compose"].click(user_errors(generation.compose_prompt), ui["fields"], [ui["prompt"]], api_name="compose_prompt")


def _wire_memory(engine, ui: dict) -> None:
    """At each page load: the memory knobs set for the device (see memory_knob_updates)."""
    from gradio.context import Context

    Context.root_block.load(user_errors(lambda: memory_knob_updates(engine)),
                            outputs=[ui["memory_fold"], *ui["memory"].values()], api_name=False, queue=False,
                            show_progress="hidden")


def _wire_generate(engine, ui: dict, knob_kwargs: dict) -> None:
    """Text to image and image to image."""
    def txt2img(model, prompt, negative_prompt, progress=gr.Progress(), **values):
        result = generation.generate(engine, model, prompt, negative_prompt, _settings_from(values),
                                     knobs=_memory_from(values), progress=progress_callback(progress))
        pngs = generation.save_pngs(result, scratch_dir("diffusion"))
        gif_path = (generation.save_gif(result.frames, scratch_dir("denoising") / "denoising.gif") if result.frames
                    else None)
        return (_captioned(result, pngs), _summary(result), _write_frames(result), pngs, gif_path,
                plots.pipeline_diagram_html(result.shapes, _result_kind(model)), _result_schedule(result))

    ui["go"].click(user_errors(txt2img), [ui["model"], ui["prompt"], ui["negative"]], inputs_kwargs=knob_kwargs,
                   outputs=[ui["images"], ui["info"], ui["frames"], ui["files"], ui["gif"], ui["diagram"],
                            ui["schedule"]], api_name="txt2img", **HEAVY)

    def img2img(model, init_image, prompt, negative_prompt, strength, progress=gr.Progress(), **values):
        result = generation.image_to_image(engine, model, prompt, negative_prompt, _settings_from(values, strength),
                                           init_image=_composite(init_image), knobs=_memory_from(values),
                                           progress=progress_callback(progress))
        pngs = generation.save_pngs(result, scratch_dir("diffusion"))
        return (_captioned(result, pngs), _summary(result), _write_frames(result), pngs,
                plots.pipeline_diagram_html(result.shapes, _result_kind(model)), _result_schedule(result))

    ui["go_i2i"].click(user_errors(img2img), [ui["model"], ui["init"], ui["prompt"], ui["negative"], ui["strength"]],
                       inputs_kwargs=knob_kwargs,
                       outputs=[ui["images_i2i"], ui["info_i2i"], ui["frames_i2i"], ui["files_i2i"], ui["diagram"],
                                ui["schedule_i2i"]], api_name="img2img", **HEAVY)


def _wire_schedule(engine, ui: dict) -> Share:
    """The noise schedule follows the model, scheduler and steps; a deep link
    (?tab=diffusion&scheduler=Euler&steps=10) fills the knobs and draws it."""
    ctl = ui["ctl"]

    def show_schedule(model, scheduler, steps):
        alphas, visited = generation.noise_schedule(engine, model, scheduler, steps)
        return _schedule_figure(alphas, visited, scheduler, len(visited))

    inputs = [ui["model"], ctl["scheduler"], ctl["steps"]]
    gr.on([ctl["steps"].release, ctl["scheduler"].input], user_errors(show_schedule), inputs, [ui["schedule"]],
          api_name="noise_schedule")
    ui["model_changed"].then(user_errors(show_schedule), inputs, [ui["schedule"]], api_name=False)
    return Share(params={"prompt": ui["prompt"], "negative_prompt": ui["negative"],
                         **{k: ctl[k] for k in KNOBS}, "seed": ui["seed"]},
                 run=user_errors(show_schedule), run_inputs=inputs, run_outputs=[ui["schedule"]])


def _show_steps_run(strength_value, steps_value):
    s = make(generation.DiffusionSettings, steps=steps_value, strength=strength_value)
    run = generation.steps_to_run(s, img2img=True)
    return (f"**Steps actually run = int(strength x steps) = int({s.strength:g} x "
            f"{s.steps}) = {run}** of {s.steps}")


def _preview(model, image):
    """The canvas as the model sees it. An empty canvas keeps the preview as it is: the editor
    sends an empty value while an upload is still loading (its picture then comes with the
    upload event), and the clear event empties the preview."""
    image = _composite(image)
    if image is None:
        return gr.skip()
    return generation.prepare_init_image(image, generation.profile_for(model)).resize((160, 160), 0)


def _use_sample(model, digit):
    """A real digit of the dataset on the canvas, and at once as the model sees it."""
    img = generation.sample_digit(int(digit)).resize((320, 320), 0).convert("RGBA")
    return {"background": img, "layers": [], "composite": img}, _preview(model, img)


def _wire_init_image(ui: dict) -> None:
    """Image to image: the steps that strength leaves, a dataset digit as the init image, and the
    init image as the model sees it."""
    strength, steps = ui["strength"], ui["ctl"]["steps"]
    for trigger in (strength, steps):
        trigger.change(user_errors(_show_steps_run), [strength, steps], [ui["steps_run"]], api_name=False)
    ui["use_digit"].click(user_errors(_use_sample), [ui["model"], ui["digit"]], [ui["init"], ui["init_preview"]],
                          api_name="sample_digit")
    # An upload sends a change with an empty value first (at 1280 px its picture never reached the
    # preview): the preview follows the upload event too, and is emptied only by clear.
    for event in (ui["init"].upload, ui["init"].change):
        event(user_errors(_preview), [ui["model"], ui["init"]], [ui["init_preview"]], api_name=False)
    ui["init"].clear(lambda: None, None, [ui["init_preview"]], api_name=False, queue=False)


def _sweep_columns(column_axis, column_values) -> list:
    """The sweep's columns: step counts (checked by the engine as the steps knob), or scheduler names."""
    if column_axis == "steps":
        return _numbers("steps values", column_values)
    return [c.strip() for c in check_text("scheduler names", column_values, max_chars=500,
                                          allow_empty=True).split(",") if c.strip()]


def _wire_sweep(engine, ui: dict, knob_kwargs: dict) -> None:
    """The guidance x steps (or scheduler) grid."""
    def run_sweep(model, prompt, negative_prompt, guidance_values, column_axis, column_values,
                  progress=gr.Progress(), **values):
        guidances = _numbers("guidance values", guidance_values)
        cols = _sweep_columns(column_axis, column_values)
        image, params = generation.sweep(engine, model, prompt, negative_prompt, _settings_from(values), guidances,
                                         cols, column_axis, knobs=_memory_from(values),
                                         progress=progress_callback(progress))
        path = scratch_dir("sweep") / "sweep.png"
        path.write_bytes(generation.png_bytes(image, params))
        return str(path)

    ui["go_sweep"].click(user_errors(run_sweep),
                         [ui["model"], ui["prompt"], ui["negative"], ui["guid_list"], ui["axis"], ui["col_list"]],
                         inputs_kwargs=knob_kwargs, outputs=[ui["grid"]], api_name="diffusion_sweep", **HEAVY)


def _composite(image):
    """A Sketchpad value (dict with a composite) or a plain picture."""
    if isinstance(image, dict):
        image = image.get("composite") or image.get("background")
    return image


def _numbers(name: str, text: str) -> list[str]:
    """The comma-separated values as typed: generation.sweep checks each one as its knob (a
    number, finite, in range, whole for steps), so the message names the value as typed."""
    text = check_text(name, text, max_chars=500, allow_empty=True)
    values = [v.strip() for v in str(text).split(",") if v.strip()]
    if not values:
        raise UserInputError(f"{name} is empty: give 1 to 6 numbers separated by commas, e.g. 1, 3, 7.5")
    return values


# --- Teach it a new symbol ---------------------------------------------------------------------
TEACH_TRAIN = dict(concurrency_id="teach_train", concurrency_limit=2)  # the engine's gate lets one run


def _enlarged(images) -> list:
    return [generation.upscale(im, 128) for im in images]


def _build_teach(engine) -> None:
    """The "Teach it a new symbol" sub-tab: layout, then its listeners."""
    ui = _teach_pictures()
    ui.update(_teach_training(runner.cap_seconds(engine)))
    ui.update(_teach_use())
    _wire_teach_pictures(ui)
    _wire_teach_training(engine, ui)
    _wire_teach_use(engine, ui)


def _teach_pictures() -> dict:
    """The intro, the session's state, and step 1: the pictures of the symbol."""
    ui = {}
    gr.Markdown("Teach the digits model a symbol it has never seen, bound to a made-up word. DreamBooth "
                "fine-tunes the U-Net; prior preservation also trains on the model's own digits so it keeps "
                "them; textual inversion trains one new word vector only. Your copy only: the shared model "
                "never changes. A run's first steps are timed, then it is fitted to the time budget below.")
    ui["session"] = gr.State(None)
    ui["pics"] = gr.State([])  # the 16x16 images of the symbol (PIL)
    gr.Markdown("**1. Your symbol: 3 to 10 pictures**")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            ui["pad"] = gr.Sketchpad(label="Draw one (16x16 pixels, shown enlarged)", type="pil",
                                     canvas_size=(256, 256), sources=[], height=300, elem_id="teach-pad")
            ui["add"] = gr.Button("Add this drawing", size="sm")
        with gr.Column(scale=1, min_width=300):
            ui["symbol_set"] = gr.Dropdown(list(teach.SYMBOL_SETS), value="star", label="or an example set (drawn by "
                                           "scripts/draw_symbols.py)")
            ui["load_set"] = gr.Button("Load the example set", size="sm", elem_id="teach-load-set")
            ui["uploads"] = gr.File(label="or upload pictures", file_count="multiple", file_types=["image"],
                                     elem_id="teach-uploads")
            ui["clear"] = gr.Button("Clear the pictures", size="sm", elem_id="teach-clear")
        ui["shown"] = gr.Gallery(label="As the model sees them (16x16)", columns=5, height=300, object_fit="contain",
                                 elem_id="teach-images", scale=1)
    return ui


def _teach_training(cap_seconds: float) -> dict:
    """Step 2, the made-up word, and step 3, the training."""
    ui = {}
    gr.Markdown("**2. A made-up word**")
    with gr.Row():
        ui["word"] = gr.Textbox("zorb", label="Word", max_lines=1, scale=1)
        ui["split_md"] = gr.Markdown(elem_id="teach-split")
    gr.Markdown("**3. Train**")
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            ui["method"] = gr.Radio([(v, k) for k, v in teach.METHODS.items()], value="dreambooth", label="Method")
            ui["ctl"] = controls_for(teach.TeachSettings, ["steps", "learning_rate", "batch_size", "seed",
                                                           "prior_preservation", "class_prompt", "num_class_images",
                                                           "prior_weight", "train_text_encoder", "lora_rank"])
            ui["ctl"]["time_budget"] = budget_control(teach.TeachSettings, cap_seconds)
            with gr.Row():
                ui["train_btn"] = gr.Button("Train", variant="primary", elem_id="teach-train")
                ui["stop_btn"] = gr.Button("Stop (keeps what is trained)")
        with gr.Column(scale=2):
            ui["status"] = gr.Markdown(elem_id="teach-status")
            ui["loss_plot"] = Plot(filename="teach-loss", initial=lambda: plots.teach_loss_figure([], 150),
                                   label="Loss")
            ui["class_gallery"] = gr.Gallery(label="Class images the model made (prior preservation)", columns=10,
                                             height=140, object_fit="contain")
    return ui


def _teach_use() -> dict:
    """Step 4, generating with the taught word, and step 5, what the model forgot."""
    ui = {}
    gr.Markdown("**4. Use the word**")
    with gr.Row():
        ui["prompt"] = gr.Textbox("a zorb", label="Prompt", max_lines=1, scale=3)
        ui["seed"] = seed_box(1, scale=1)
        ui["render_btn"] = gr.Button("Generate with the taught model", variant="primary", scale=1,
                                     elem_id="teach-render")
    examples([["a zorb"], ["a bold zorb"], ["a thin zorb"], ["a handwritten 7"]], [ui["prompt"]],
             label="Prompts (put your word in place of zorb)")
    ui["images"] = gr.Gallery(label="Taught model", columns=8, height=190, object_fit="contain", elem_id="teach-out")
    ui["frames"] = gr.Gallery(label="Denoising gallery", columns=6, height=160, object_fit="contain")
    gr.Markdown("**5. What did it forget?** Share of 'a handwritten 0..9' samples (5 per digit) that a digits "
                "classifier (SVC on scikit-learn's digits) recognises, before and after; train with and without "
                "prior preservation to fill both rows. In brackets: the 95% interval (Wilson) of each share. "
                "With 50 samples an interval is 7 to 27 points wide, so a change of a few points may be chance.")
    with gr.Row():
        ui["forget_btn"] = gr.Button("Measure forgetting", elem_id="teach-forget")
        ui["download_btn"] = gr.Button("Download the trained weights")
    ui["forget_table"] = data_table("teach-forgetting", label="Forgetting", elem_id="teach-forgetting", wrap=True,
                                    column_widths=["13%", "24%", "8%", "16%", "16%", "13%", "10%"])
    ui["weights"] = gr.File(label="Weights (diffusers / peft formats; teach.json says how to load them)")
    return ui


def _add_images(current, new):
    current = list(current or [])
    if len(current) + len(new) > teach.MAX_IMAGES:
        raise UserInputError(f"images = {len(current) + len(new)}: at most {teach.MAX_IMAGES}; clear some first.")
    current += teach.to_pil(teach.prepare_images(new, check_count=False))
    return current, _enlarged(current)


def _on_add(current, drawing):
    img = _composite(drawing)
    if img is None:
        raise UserInputError("the canvas is empty: draw the symbol first.")
    return _add_images(current, [img])


def _on_set(name):
    imgs = teach.to_pil(teach.prepare_images(teach.load_symbol_set(name)))
    return imgs, _enlarged(imgs)


def _on_upload(current, files):
    return _add_images(current, [f if isinstance(f, str) else f.name for f in (files or [])])


def _wire_teach_pictures(ui: dict) -> None:
    pics, shown = ui["pics"], ui["shown"]
    ui["add"].click(user_errors(_on_add), [pics, ui["pad"]], [pics, shown], api_name="teach_add_drawing")
    ui["load_set"].click(user_errors(_on_set), [ui["symbol_set"]], [pics, shown], api_name="teach_example_set")
    ui["uploads"].upload(user_errors(_on_upload), [pics, ui["uploads"]], [pics, shown], api_name="teach_upload")
    ui["clear"].click(lambda: ([], [], None), None, [pics, shown, ui["uploads"]], api_name=False, queue=False)


def _on_method(m):
    return gr.update(value=teach.DEFAULT_LR[m])


def _do_stop(state):
    if isinstance(state, teach.TeachSession) and state.training:
        state.stop.set()
        return "⏹️ Stopping after this step; what is trained so far is kept."
    return "Nothing is training in this session."


def _wire_teach_training(engine, ui: dict) -> None:
    """The word's tokens, the method's learning rate, Train and Stop."""
    def on_word(w):
        return plots.split_markdown(teach.word_split(engine.load(teach.KEY).pipe.tokenizer, w))

    ui["word"].change(user_errors(on_word), [ui["word"]], [ui["split_md"]], api_name="teach_word_split")
    ui["method"].change(_on_method, [ui["method"]], [ui["ctl"]["learning_rate"]], api_name=False, queue=False)

    def do_train(current, w, method, state, progress=gr.Progress(), **values):
        s = make(teach.TeachSettings, method=method, **values)
        state = state if isinstance(state, teach.TeachSession) else teach.TeachSession()
        if state.training:
            raise UserInputError("this session is already training: wait for it or press Stop.")
        # the checks train() makes, before "Starting": a refused run leaves no "⏳ Starting..." behind
        teach.check_word(w), teach.prepare_images(current)
        yield "⏳ Starting...", plots.teach_loss_figure([], s.steps), [], state
        cls_shown = []
        for u in teach.train(engine, state, current, w, s, progress=progress_callback(progress)):
            if state.class_images is not None and not cls_shown:
                cls_shown = _enlarged(teach.to_pil(state.class_images))
            yield (plots.teach_status_markdown(u, state), plots.teach_loss_figure(u.losses, u.max_steps), cls_shown,
                   state)

    session, status = ui["session"], ui["status"]
    ui["train_btn"].click(user_errors(do_train), [ui["pics"], ui["word"], ui["method"], session],
                          inputs_kwargs=ui["ctl"], outputs=[status, ui["loss_plot"], ui["class_gallery"], session],
                          api_name="teach_train", show_progress="minimal", show_progress_on=[status], **TEACH_TRAIN)
    ui["stop_btn"].click(_do_stop, [session], [status], api_name="teach_stop", concurrency_limit=None)


def _wire_teach_use(engine, ui: dict) -> None:
    """Generate with the taught model, measure forgetting, download the weights."""
    def do_render(p, seed_value, state, progress=gr.Progress()):
        state = state if isinstance(state, teach.TeachSession) else teach.TeachSession()
        s = make(generation.DiffusionSettings, guidance_scale=3.0, steps=25, width=16, height=16, scheduler="DDIM",
                 num_images=8, seed=0 if seed_value is None else seed_value)
        result = teach.render(engine, state, p, s, progress=progress_callback(progress))
        pngs = generation.save_pngs(result, scratch_dir("teach"))
        return _captioned(result, pngs), _write_frames(result, pairs=False)

    def do_forget(state, progress=gr.Progress()):
        import pandas as pd

        state = state if isinstance(state, teach.TeachSession) else teach.TeachSession()
        if not state.ready:
            raise UserInputError("nothing is taught in this session yet: train first (step 3).")
        progress(0.1, desc="Sampling 50 digits before and after...")
        teach.forgetting_row(engine, state)
        return pd.DataFrame(state.forgetting)

    def do_download(state):
        state = state if isinstance(state, teach.TeachSession) else teach.TeachSession()
        return str(teach.export(state, scratch_dir("teach-weights")))

    session = ui["session"]
    ui["render_btn"].click(user_errors(do_render), [ui["prompt"], ui["seed"], session], [ui["images"], ui["frames"]],
                           api_name="teach_generate", **HEAVY)
    ui["forget_btn"].click(user_errors(do_forget), [session], [ui["forget_table"]], api_name="teach_forgetting",
                           **HEAVY)
    ui["download_btn"].click(user_errors(do_download), [session], [ui["weights"]], api_name="teach_download", **HEAVY)
