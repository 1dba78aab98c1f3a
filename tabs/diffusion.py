"""Diffusion: text-to-image and image-to-image with every knob, the denoising steps as a gallery,
a guidance x steps sweep, and the pipeline with the tensor shape at each stage."""
from __future__ import annotations

import gradio as gr

from engine.core.errors import check_text
from engine.diffusion import generation as D
from engine.diffusion import plots as DP
from engine.diffusion import teach as T
from engine.core.settings import knob_info
from tabs._ui import (HEAVY, Plot, controls_for, data_table, examples, model_picker, notice, progress_callback,
                      scratch_dir, seed_box, user_errors)

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
    spec, p = engine.registry.get(key), D.profile_for(key)
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


def _write_frames(result) -> list[tuple[str, str]]:
    folder = scratch_dir("frames")
    out = []
    for f in result.frames:
        path = folder / f"step-{f.step:03d}.png"
        f.image.save(path)
        out.append((str(path), f"step {f.step}/{result.steps_run}"))
    return out


def _summary(result) -> str:
    p = result.params
    applied = ", ".join(result.applied) if result.applied else "none (CPU)" if not result.applied else ""
    seeds = result.seeds
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]} to {seeds[-1]} (one per image)"
    warmup = (f" ({result.unet_calls} U-Net calls: {p['scheduler']} warms up by making its first step twice)"
              if result.warmup_calls else "")
    return (f"{len(result.images)} image(s) in **{result.seconds:.2f} s** · **{result.steps_run}** denoising "
            f"steps run{warmup} · {seed_text} · {p['scheduler']} · guidance {p['guidance_scale']:g} · "
            f"memory savers: {applied}. Each PNG carries its parameters in its metadata.")


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
        profile_md = gr.Markdown(_profile_md(engine, model.value))
    start = D.defaults_for(model.value) if model.value else D.DiffusionSettings()
    profile = D.profile_for(model.value or "sd15")
    with gr.Accordion("Prompt builder", open=False):
        with gr.Row():
            fields = [gr.Textbox(label=label, placeholder=hint, max_lines=1) for _, label, hint in BUILDER_FIELDS]
        compose = gr.Button("Compose into the prompt below", size="sm")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", value="a handwritten 7", lines=2, scale=3)
        negative = gr.Textbox(label="Negative prompt", value="", lines=2, scale=2,
                              placeholder="what to steer away from, e.g. bold")
    example_box = gr.Column()  # filled below, once the guidance and seed controls exist
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            plain = [k for k in KNOBS if k not in ("width", "height")]
            ctl = controls_for(D.DiffusionSettings, plain, **{
                "guidance_scale": {"value": start.guidance_scale},
                "steps": {"value": start.steps},
                "scheduler": {"value": start.scheduler, "choices": profile.schedulers},
            })
            for name in ("width", "height"):  # bounds depend on the model: set here, updated on change
                ctl[name] = gr.Slider(profile.min_size, profile.max_size, value=getattr(start, name), step=8,
                                      label=name, info=knob_info(D.DiffusionSettings, name).help)
            seed = seed_box(42)
            with example_box:
                examples([[p, n, g, 42] for p, n, g in EXAMPLES[profile.kind]],
                         [prompt, negative, ctl["guidance_scale"], seed], columns=[0, 1, 2],
                         label="Examples (click one, then Generate)")
            on_gpu = engine.device.kind == "cuda"
            with gr.Accordion("GPU memory knobs" + ("" if on_gpu else " (GPU only: off on this CPU)"),
                              open=False):
                fp16 = gr.Checkbox(True, label="fp16 weights", interactive=on_gpu)
                attn = gr.Checkbox(False, label="attention slicing", interactive=on_gpu)
                vae_slice = gr.Checkbox(False, label="VAE slicing", interactive=on_gpu)
                vae_tile = gr.Checkbox(False, label="VAE tiling", interactive=on_gpu)
                offload = gr.Checkbox(False, label="model CPU offload", interactive=on_gpu)
                gr.Markdown("Applied only on a CUDA GPU. fp16 halves the weights' memory; slicing runs "
                            "attention / VAE decoding in pieces; tiling decodes large images tile by tile; "
                            "CPU offload keeps each model on the CPU until it is needed.")
        with gr.Column(scale=2):
            with gr.Tabs():
                with gr.Tab("Text to image"):
                    go = gr.Button("Generate", variant="primary", elem_id="diffusion-generate")
                    images = gr.Gallery(label="Images (PNG with parameters)", columns=4, height="auto",
                                        object_fit="contain", elem_id="diffusion-images")
                    info = gr.Markdown()
                    frames = gr.Gallery(label="Denoising gallery: the first image every few steps", columns=6,
                                        height=220, object_fit="contain", elem_id="diffusion-frames")
                    notice("Early steps are almost pure noise; the shape appears in the middle steps and the "
                           "last steps only sharpen it. Same seed, same image.")
                    with gr.Row():
                        files = gr.File(label="Download PNGs", file_count="multiple")
                        gif = gr.File(label="Denoising as animated GIF")
                with gr.Tab("Image to image"):
                    with gr.Row():
                        init = gr.Sketchpad(label="Init image: draw or upload", type="pil",
                                            canvas_size=(320, 320), sources=["upload"], height=360)
                        with gr.Column():
                            strength = controls_for(D.DiffusionSettings, ["strength"])["strength"]
                            steps_run = gr.Markdown()
                            digit = gr.Dropdown([str(i) for i in range(10)], value="3",
                                                label="or start from a real digit of the dataset")
                            use_digit = gr.Button("Use this digit", size="sm")
                            init_preview = gr.Image(label="Init image as the model sees it", type="pil",
                                                    height=160, interactive=False, image_mode="L",
                                                    format="png", elem_id="diffusion-init-preview")  # exact pixels
                    go_i2i = gr.Button("Generate from the image", variant="primary")
                    images_i2i = gr.Gallery(label="Results", columns=4, height="auto", object_fit="contain")
                    info_i2i = gr.Markdown()
                    frames_i2i = gr.Gallery(label="Denoising gallery", columns=6, height=200, object_fit="contain")
                    files_i2i = gr.File(label="Download PNGs", file_count="multiple")
                    notice("Strength 0 returns your image; strength 1 ignores it. Only int(strength x steps) "
                           "steps run, starting from your image with that much noise added.")
                with gr.Tab("Sweep"):
                    with gr.Row():
                        guid_list = gr.Textbox("1, 3, 7.5", label="Guidance values (rows)")
                        axis = gr.Radio(["steps", "scheduler"], value="steps", label="Columns vary")
                        col_list = gr.Textbox("5, 10, 25", label="Steps values or scheduler names (columns)",
                                              info=_scheduler_info(profile))
                    go_sweep = gr.Button("Run the sweep", variant="primary", elem_id="diffusion-sweep")
                    grid = gr.Image(label="Sweep grid (same seed in every cell)", type="filepath", show_label=False,
                                    elem_id="diffusion-grid", height=560)
                    notice("Read across for steps, down for guidance. Too little guidance ignores the prompt; "
                           "too much over-cooks it.")
                with gr.Tab("Teach it a new symbol", elem_id="diffusion-teach-tab"):
                    _build_teach(engine)
                with gr.Tab("How it works"):
                    diagram = gr.HTML(DP.pipeline_diagram_html([], profile.kind))
                    gr.Markdown("Shapes are (batch, ...). With guidance > 1 every U-Net call runs the prompt "
                                "and the negative prompt together (batch x 2) and mixes the two predictions: "
                                "`noise = uncond + guidance x (cond - uncond)`. Stable Diffusion works on 4 x 64 x 64 "
                                "latents for a 512 x 512 image; the digits model works on the 1 x 16 x 16 pixels.")

    # Register listeners
    # The knobs, seed and memory savers reach the listeners as keyword arguments named after the
    # settings fields, so the API (view_api) names every parameter instead of param_3, param_4...
    memory = dict(zip(MEMORY, [fp16, attn, vae_slice, vae_tile, offload]))
    knob_kwargs = {**{k: ctl[k] for k in KNOBS}, "seed": seed, **memory}

    def settings_from(values: dict, strength_value=None) -> D.DiffusionSettings:
        kw = {k: values[k] for k in KNOBS}
        for name in ("steps", "num_images", "width", "height", "gallery_every"):
            kw[name] = int(kw[name])
        if strength_value is not None:
            kw["strength"] = strength_value
        return D.DiffusionSettings(seed=int(values["seed"] or 0), **kw)

    def memory_from(values: dict) -> D.MemoryKnobs:
        return D.MemoryKnobs(**{k: bool(values[k]) for k in MEMORY})

    def on_model(model):
        p, s = D.profile_for(model), D.defaults_for(model)
        size = dict(minimum=p.min_size, maximum=p.max_size)
        return (_profile_md(engine, model), gr.update(value=s.guidance_scale), gr.update(value=s.steps),
                gr.update(value=s.scheduler, choices=list(p.schedulers)), gr.update(value=s.width, **size),
                gr.update(value=s.height, **size), gr.update(info=_scheduler_info(p)))

    model.change(user_errors(on_model), [model], [profile_md, ctl["guidance_scale"], ctl["steps"],
                                                  ctl["scheduler"], ctl["width"], ctl["height"], col_list],
                 api_name="diffusion_defaults")
    compose.click(user_errors(D.compose_prompt), fields, [prompt], api_name="compose_prompt")

    def txt2img(model, prompt, negative_prompt, progress=gr.Progress(), **values):
        result = D.generate(engine, model, prompt, negative_prompt, settings_from(values),
                            knobs=memory_from(values), progress=progress_callback(progress))
        pngs = D.save_pngs(result, scratch_dir("diffusion"))
        gif_path = D.save_gif(result.frames, scratch_dir("denoising") / "denoising.gif") if result.frames else None
        return (_captioned(result, pngs), _summary(result), _write_frames(result), pngs, gif_path,
                DP.pipeline_diagram_html(result.shapes, result_kind(model)))

    def result_kind(key):
        return D.profile_for(key).kind

    go.click(user_errors(txt2img), [model, prompt, negative], inputs_kwargs=knob_kwargs,
             outputs=[images, info, frames, files, gif, diagram], api_name="txt2img", **HEAVY)

    def img2img(model, init_image, prompt, negative_prompt, strength, progress=gr.Progress(), **values):
        result = D.image_to_image(engine, model, prompt, negative_prompt, settings_from(values, strength),
                                  init_image=_composite(init_image), knobs=memory_from(values),
                                  progress=progress_callback(progress))
        pngs = D.save_pngs(result, scratch_dir("diffusion"))
        return (_captioned(result, pngs), _summary(result), _write_frames(result), pngs,
                DP.pipeline_diagram_html(result.shapes, result_kind(model)))

    go_i2i.click(user_errors(img2img), [model, init, prompt, negative, strength], inputs_kwargs=knob_kwargs,
                 outputs=[images_i2i, info_i2i, frames_i2i, files_i2i, diagram], api_name="img2img", **HEAVY)

    def show_steps_run(strength_value, steps_value):
        s = D.DiffusionSettings(steps=int(steps_value), strength=float(strength_value))
        run = D.steps_to_run(s, img2img=True)
        return (f"**Steps actually run = int(strength x steps) = int({s.strength:g} x "
                f"{s.steps}) = {run}** of {s.steps}")

    for trigger in (strength, ctl["steps"]):
        trigger.change(user_errors(show_steps_run), [strength, ctl["steps"]], [steps_run], api_name=False)

    def preview(model, image):
        image = _composite(image)
        if image is None:  # cleared canvas: nothing to show
            return None
        return D.prepare_init_image(image, D.profile_for(model)).resize((160, 160), 0)

    def use_sample(model, digit):
        """A real digit of the dataset on the canvas, and at once as the model sees it."""
        img = D.sample_digit(int(digit)).resize((320, 320), 0).convert("RGBA")
        return {"background": img, "layers": [], "composite": img}, preview(model, img)

    use_digit.click(user_errors(use_sample), [model, digit], [init, init_preview], api_name="sample_digit")
    init.change(user_errors(preview), [model, init], [init_preview], api_name=False)

    def run_sweep(model, prompt, negative_prompt, guidance_values, column_axis, column_values,
                  progress=gr.Progress(), **values):
        guidances = _numbers("guidance values", guidance_values)
        cols = ([int(v) for v in _numbers("steps values", column_values)] if column_axis == "steps"
                else [c.strip() for c in check_text("scheduler names", column_values, max_chars=500,
                                                    allow_empty=True).split(",") if c.strip()])
        image, params = D.sweep(engine, model, prompt, negative_prompt, settings_from(values), guidances, cols,
                                column_axis, knobs=memory_from(values), progress=progress_callback(progress))
        path = scratch_dir("sweep") / "sweep.png"
        path.write_bytes(D.png_bytes(image, params))
        return str(path)

    go_sweep.click(user_errors(run_sweep), [model, prompt, negative, guid_list, axis, col_list],
                   inputs_kwargs=knob_kwargs, outputs=[grid], api_name="diffusion_sweep", **HEAVY)


def _composite(image):
    """A Sketchpad value (dict with a composite) or a plain picture."""
    if isinstance(image, dict):
        image = image.get("composite") or image.get("background")
    return image


def _numbers(name: str, text: str) -> list[float]:
    text = check_text(name, text, max_chars=500, allow_empty=True)
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise D.UserInputError(f"{name} = {text!r} must be numbers separated by commas, e.g. 1, 3, 7.5") from None
    if not values:
        raise D.UserInputError(f"{name} is empty: give 1 to 6 numbers separated by commas, e.g. 1, 3, 7.5")
    return values


# --- Teach it a new symbol ---------------------------------------------------------------------
TEACH_TRAIN = dict(concurrency_id="teach_train", concurrency_limit=2)  # the engine's gate lets one run


def _enlarged(images) -> list:
    return [D.upscale(im, 128) for im in images]


def _build_teach(engine) -> None:
    gr.Markdown("Teach the digits model a symbol it has never seen, bound to a made-up word. DreamBooth "
                "fine-tunes the U-Net; prior preservation also trains on the model's own digits so it keeps "
                "them; textual inversion trains one new word vector only. Your copy only: the shared model "
                "never changes. Default run: about a minute on a CPU.")
    session = gr.State(None)
    pics = gr.State([])  # the 16x16 images of the symbol (PIL)
    gr.Markdown("**1. Your symbol: 3 to 10 pictures**")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            pad = gr.Sketchpad(label="Draw one (16x16 pixels, shown enlarged)", type="pil", canvas_size=(256, 256),
                               sources=[], height=300, elem_id="teach-pad")
            add = gr.Button("Add this drawing", size="sm")
        with gr.Column(scale=1, min_width=300):
            symbol_set = gr.Dropdown(list(T.SYMBOL_SETS), value="star", label="or an example set (drawn by "
                                     "scripts/draw_symbols.py)")
            load_set = gr.Button("Load the example set", size="sm", elem_id="teach-load-set")
            uploads = gr.File(label="or upload pictures", file_count="multiple", file_types=["image"])
            clear = gr.Button("Clear the pictures", size="sm")
        shown = gr.Gallery(label="As the model sees them (16x16)", columns=5, height=300, object_fit="contain",
                           elem_id="teach-images", scale=1)
    gr.Markdown("**2. A made-up word**")
    with gr.Row():
        word = gr.Textbox("zorb", label="Word", max_lines=1, scale=1)
        split_md = gr.Markdown(elem_id="teach-split")
    gr.Markdown("**3. Train**")
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            method = gr.Radio([(v, k) for k, v in T.METHODS.items()], value="dreambooth", label="Method")
            ctl = controls_for(T.TeachSettings, ["steps", "learning_rate", "batch_size", "seed", "prior_preservation",
                                                 "class_prompt", "num_class_images", "prior_weight",
                                                 "train_text_encoder", "lora_rank"])
            with gr.Row():
                train_btn = gr.Button("Train", variant="primary", elem_id="teach-train")
                stop_btn = gr.Button("Stop (keeps what is trained)")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="teach-status")
            loss_plot = Plot(filename="teach-loss", value=DP.teach_loss_figure([], 150), label="Loss")
            class_gallery = gr.Gallery(label="Class images the model made (prior preservation)", columns=10,
                                       height=140, object_fit="contain")
    gr.Markdown("**4. Use the word**")
    with gr.Row():
        prompt = gr.Textbox("a zorb", label="Prompt", max_lines=1, scale=3)
        seed = seed_box(1, scale=1)
        render_btn = gr.Button("Generate with the taught model", variant="primary", scale=1, elem_id="teach-render")
    examples([["a zorb"], ["a bold zorb"], ["a thin zorb"], ["a handwritten 7"]], [prompt],
             label="Prompts (put your word in place of zorb)")
    images = gr.Gallery(label="Taught model", columns=8, height=190, object_fit="contain", elem_id="teach-out")
    frames = gr.Gallery(label="Denoising gallery", columns=6, height=160, object_fit="contain")
    gr.Markdown("**5. What did it forget?** Share of 'a handwritten 0..9' samples (5 per digit) that a digits "
                "classifier (SVC on scikit-learn's digits) recognises, before and after; train with and without "
                "prior preservation to fill both rows.")
    with gr.Row():
        forget_btn = gr.Button("Measure forgetting", elem_id="teach-forget")
        download_btn = gr.Button("Download the trained weights")
    forget_table = data_table("teach-forgetting", label="Forgetting", elem_id="teach-forgetting", wrap=True,
                              column_widths=["13%", "24%", "8%", "16%", "16%", "13%", "10%"])
    weights = gr.File(label="Weights (diffusers / peft formats; teach.json says how to load them)")

    def add_images(current, new):
        current = list(current or [])
        if len(current) + len(new) > T.MAX_IMAGES:
            raise T.UserInputError(f"images = {len(current) + len(new)}: at most {T.MAX_IMAGES}; clear some first.")
        current += T.to_pil(T.prepare_images(new, check_count=False))
        return current, _enlarged(current)

    def on_add(current, drawing):
        img = _composite(drawing)
        if img is None:
            raise T.UserInputError("the canvas is empty: draw the symbol first.")
        return add_images(current, [img])

    def on_set(name):
        imgs = T.to_pil(T.prepare_images(T.load_symbol_set(name)))
        return imgs, _enlarged(imgs)

    def on_upload(current, files):
        return add_images(current, [f if isinstance(f, str) else f.name for f in (files or [])])

    add.click(user_errors(on_add), [pics, pad], [pics, shown], api_name="teach_add_drawing")
    load_set.click(user_errors(on_set), [symbol_set], [pics, shown], api_name="teach_example_set")
    uploads.upload(user_errors(on_upload), [pics, uploads], [pics, shown], api_name="teach_upload")
    clear.click(lambda: ([], []), None, [pics, shown], api_name=False, queue=False)

    def on_word(w):
        return DP.split_markdown(T.word_split(engine.load(T.KEY).pipe.tokenizer, w))

    word.change(user_errors(on_word), [word], [split_md], api_name="teach_word_split")

    def on_method(m):
        return gr.update(value=T.DEFAULT_LR[m])

    method.change(on_method, [method], [ctl["learning_rate"]], api_name=False, queue=False)

    def do_train(current, w, method, state, progress=gr.Progress(), **values):
        s = T.TeachSettings(method=method, **{k: (int(v) if k in ("steps", "batch_size", "seed", "num_class_images",
                                                                  "lora_rank") else v) for k, v in values.items()})
        state = state if isinstance(state, T.TeachSession) else T.TeachSession()
        if state.training:
            raise T.UserInputError("this session is already training: wait for it or press Stop.")
        yield "⏳ Starting...", DP.teach_loss_figure([], s.steps), [], state
        cls_shown = []
        for u in T.train(engine, state, current, w, s, progress=progress_callback(progress)):
            if state.class_images is not None and not cls_shown:
                cls_shown = _enlarged(T.to_pil(state.class_images))
            yield DP.teach_status_markdown(u, state), DP.teach_loss_figure(u.losses, s.steps), cls_shown, state

    train_btn.click(user_errors(do_train), [pics, word, method, session], inputs_kwargs=ctl,
                    outputs=[status, loss_plot, class_gallery, session], api_name="teach_train",
                    show_progress="minimal", **TEACH_TRAIN)

    def do_stop(state):
        if isinstance(state, T.TeachSession) and state.training:
            state.stop.set()
            return "⏹️ Stopping after this step; what is trained so far is kept."
        return "Nothing is training in this session."

    stop_btn.click(do_stop, [session], [status], api_name="teach_stop", concurrency_limit=None)

    def do_render(p, seed_value, state, progress=gr.Progress()):
        state = state if isinstance(state, T.TeachSession) else T.TeachSession()
        s = D.DiffusionSettings(guidance_scale=3.0, steps=25, width=16, height=16, scheduler="DDIM", num_images=8,
                                seed=int(seed_value or 0))
        result = T.render(engine, state, p, s, progress=progress_callback(progress))
        pngs = D.save_pngs(result, scratch_dir("teach"))
        return _captioned(result, pngs), _write_frames(result)

    render_btn.click(user_errors(do_render), [prompt, seed, session], [images, frames], api_name="teach_generate",
                     **HEAVY)

    def do_forget(state, progress=gr.Progress()):
        import pandas as pd

        state = state if isinstance(state, T.TeachSession) else T.TeachSession()
        if not state.ready:
            raise T.UserInputError("nothing is taught in this session yet: train first (step 3).")
        progress(0.1, desc="Sampling 50 digits before and after...")
        T.forgetting_row(engine, state)
        return pd.DataFrame(state.forgetting)

    forget_btn.click(user_errors(do_forget), [session], [forget_table], api_name="teach_forgetting", **HEAVY)

    def do_download(state):
        state = state if isinstance(state, T.TeachSession) else T.TeachSession()
        return str(T.export(state, scratch_dir("teach-weights")))

    download_btn.click(user_errors(do_download), [session], [weights], api_name="teach_download", **HEAVY)
