"""Evaluation: how language models are measured, with the arithmetic visible. Perplexity with
per-token surprisal, natural vs shuffled vs random text, the cross-entropy toy, answer metrics
(exact match to an AI judge) and the size/speed/quality trade-off of quantization."""
from __future__ import annotations

import gradio as gr

from engine.evaluation import answers
from engine.evaluation import metrics
from engine.evaluation import plots
from engine.evaluation import quantization as quant
from engine.core.errors import UserInputError, check_range, check_text
from engine.core.markdown import md_code, md_code_block
from engine.core.settings import make
from engine.serving import use_server
from tabs._ui import (HEAVY, Plot, heavy_or_served, Share, controls_for, data_table, examples, model_picker, notice, on_gpu, progress_callback,
                      user_errors, WholeNumber)

TITLE = "Evaluation"

EXAMPLE = (
    "The water cycle moves water around our planet. The sun warms the oceans, and some of the water "
    "rises into the air as vapour. High in the sky the vapour cools and forms clouds. When the droplets "
    "grow heavy, they fall back to the ground as rain or snow, and rivers carry the water back to the sea."
)
TOY_LOGITS = "cat 3.0, dog 2.2, car 0.5, tree -1.0"
# Perplexity examples: (label, text). Each shows one thing that makes text easy or hard to predict.
PERPLEXITY_EXAMPLES = (
    ("Plain English", EXAMPLE),
    ("Repeated sentence", "The cat sat on the mat. " * 6),
    ("Python code", "def mean(values):\n    total = 0\n    for v in values:\n        total += v\n"
                    "    return total / len(values)\n"),
    ("Poem", "Shall I compare thee to a summer's day? Thou art more lovely and more temperate."),
    ("Word salad", "Purple seven the quietly banana under galaxy spoons running of."),
    ("Not English", "Le soleil brille et les enfants jouent dans le parc pendant que les oiseaux chantent."),
)
# Cross-entropy toy: (label, logits, target, temperature)
TOY_EXAMPLES = (
    ("Confident and right", "cat 1.0, dog 4.0, car -1.0, tree 0.5", "dog", 1.0),
    ("Confident and wrong", "cat 4.0, dog 0.5, car -1.0, tree 0.5", "dog", 1.0),
    ("No idea (all equal)", "cat 1.0, dog 1.0, car 1.0, tree 1.0", "dog", 1.0),
    ("Right, but hot (T = 5)", "cat 1.0, dog 4.0, car -1.0, tree 0.5", "dog", 5.0),
)
# Answer metrics: (label, question, reference, candidates)
ANSWER_EXAMPLES = (
    ("Capital of France", "What is the capital of France?", "Paris",
     "Paris\nparis.\nThe capital is Paris.\nLondon\nIt's Lyon, I think"),
    ("Paraphrase vs reversed meaning", "Why is the sky blue?", "Air scatters blue light more than red light.",
     "Blue light is scattered more by the air than red light.\nThe air scatters red light more than blue.\n"
     "Because the ocean reflects onto it.\nair scatters blue light more than red light"),
    ("Numbers", "How many legs does a spider have?", "8",
     "8\neight\nEight legs.\n6\n8 legs"),
    # the same word four ways that look alike: composed é (NFC), e + combining accent (NFD),
    # with a trailing space, and in full-width letters (only NFKC folds those)
    ("Same letters, different code points", "Where do we meet?", "café",
     "café\ncafe\u0301\ncafé \nｃａｆé\nCafé!"),
)
ANSWER_QUESTION = "What is the capital of France?"
ANSWER_REFERENCE = "Paris"
ANSWER_CANDIDATES = "Paris\nparis.\nThe capital is Paris.\nLondon\nIt's Lyon, I think"


def answer_headers(form: str = "NFC") -> list[str]:
    return ["candidate", "exact (raw)", f"exact ({form}, trimmed)", "exact (normalized)", "edit distance",
            "edit ratio", "token F1", "bigram F1", "semantic (MiniLM cos)", "tiny judge: rating 1-5",
            "judge p(1..5)"]


def answer_metrics_markdown() -> str:
    """What each answer metric compares, from the engine's own descriptions."""
    forms = " or ".join(answers.UNICODE_FORMS) + ", as chosen"
    return " · ".join(f"**{name}**: {what.format(form=forms)}" for name, what in answers.METRIC_DESCRIPTIONS.items())


QUANT_HEADERS = ["variant", "what it quantizes", "weights MiB", "× fp32 size", "tokens/s", "perplexity",
                 "Δ ppl vs fp32", "bits/byte", "greedy continuation"]
COMPARE_HEADERS = ["text", "tokens", "perplexity", "mean NLL (nats)", "bits/token", "bits/byte", "bits/char",
                   "mean entropy (bits)"]


def _fmt(value, digits=3):
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "✅" if value else "❌"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return value


# ---- listeners (plain functions; wrapped with user_errors when registered) ----------------------
def make_perplexity(engine):
    def run(model_key, text, window, stride, progress=gr.Progress()):
        cb = progress_callback(progress)
        bundle = engine.load(model_key, progress=cb)
        rep = metrics.perplexity(bundle.model, bundle.tokenizer, text, window, stride, model_key, progress=cb,
                                 served=use_server(bundle))
        numbers = rep.summary()
        numbers["tokens"] = [dict(piece=t.piece, id=t.token_id, p=t.prob, rank=t.rank,
                                  surprisal_bits=t.surprisal_bits, entropy_bits=t.entropy_bits)
                             for t in rep.tokens[:2000]]
        return plots.surprisal_html(rep), plots.arithmetic_markdown(rep), plots.entropy_figure(rep), numbers
    return run


def make_variants(text, seed):
    check_text("natural text", text, max_chars=metrics.MAX_TEXT_CHARS)
    seed = check_range("seed", seed, 0, 2**32 - 1, integer=True)
    return metrics.shuffle_words(text, seed), metrics.random_characters(text, seed)


def make_compare_texts(engine):
    def run(model_key, natural, shuffled, random_text, progress=gr.Progress()):
        cb = progress_callback(progress)
        bundle = engine.load(model_key, progress=cb)
        texts = [("natural", natural), ("words shuffled", shuffled), ("random characters", random_text)]
        rows = metrics.compare_texts(bundle.model, bundle.tokenizer, texts, model_key=model_key, progress=cb)
        table = [[r["label"], r["tokens_scored"], _fmt(r["perplexity"], 2), _fmt(r["mean_nll_nats"]),
                  _fmt(r["bits_per_token"]), _fmt(r["bits_per_byte"]), _fmt(r["bits_per_char"]),
                  _fmt(r["mean_entropy_bits"], 2)] for r in rows]
        return table, plots.compare_figure(rows)
    return run


def note_logits(spec, seen):
    """Enter and then leaving the box are two events for one edit: only the first one renders the
    logits (or refuses them), so a bad value gives one error, not two."""
    return spec, spec != seen


def toy_update_if_new(spec, current, temperature, new):
    return toy_update(spec, current, temperature) if new else (gr.skip(), gr.skip(), gr.skip())


def toy_update(spec, current, temperature):
    """New logits typed: refresh the target choices, then the numbers."""
    labels, _ = metrics.parse_logits(spec)
    target = current if current in labels else labels[0]
    return (gr.Dropdown(choices=labels, value=target), *cross_entropy(spec, target, temperature))


def cross_entropy(spec, target, temperature):
    labels, logits = metrics.parse_logits(spec)  # a target not among the labels is refused, by name
    toy = metrics.cross_entropy_toy(labels, logits, target, temperature)
    return plots.toy_markdown(toy), plots.toy_figure(toy)


def make_compare_answers(engine):
    def run(question, reference, candidates, semantic, use_judge, unicode_form="NFC", progress=gr.Progress()):
        cb = progress_callback(progress)
        form = answers.check_form(unicode_form)
        encoder = engine.load("minilm-l6", progress=cb) if semantic else None
        judge = engine.load("smollm2-135m-instruct", progress=cb) if use_judge else None
        rows = answers.compare_answers(reference, candidates, encoder, judge, question, progress=cb, form=form)
        table, plain = [], []
        for r in rows:
            j = r.get("judge")
            table.append([r["candidate"], _fmt(r["exact_raw"]), _fmt(r["exact_unicode"]), _fmt(r["exact_normalized"]),
                          r["edit_distance"],
                          _fmt(r["edit_ratio"], 2), _fmt(r["token_f1"], 2), _fmt(r["bigram_f1"], 2),
                          _fmt(r.get("semantic"), 3),
                          f"{j['expected']:.2f} (top {j['rating']})" if j else "–",
                          " ".join(f"{p:.2f}" for p in j["digit_probs"]) if j else "–"])
            plain.append({k: v for k, v in r.items() if k != "judge"} | (
                {"judge_expected": j["expected"], "judge_rating": j["rating"], "judge_digit_probs": j["digit_probs"],
                 "judge_digit_mass": j["digit_mass"]} if j else {}))
        prompt = rows[0]["judge"]["prompt"] if use_judge else "(the judge was not asked)"
        # headers with the data: the header says which Unicode form was used
        return {"headers": answer_headers(form), "data": table}, md_code_block(prompt, "text"), plain
    return run


def make_quantization(engine):
    def run(model_key, text, variants, new_tokens, progress=gr.Progress()):
        cb = progress_callback(progress)
        settings = make(quant.QuantizationSettings, new_tokens=new_tokens)
        rows = quant.quantization_compare(engine, model_key, text, variants or [], settings.new_tokens, progress=cb)
        table = [[r["variant"], r["description"], _fmt(r["size_mb"], 1), _fmt(r["size_vs_fp32"], 2),
                  _fmt(r["tokens_per_s"], 1), _fmt(r["perplexity"], 3),
                  "–" if r["perplexity_change_pct"] is None else f"{r['perplexity_change_pct']:+.1f}%",
                  _fmt(r["bits_per_byte"]), r["sample"]] for r in rows]
        return table, plots.quantization_figure(rows), rows, _cache_line(engine)
    return run


def _cache_line(engine) -> str:
    st = engine.cache.stats()
    held = [e for e in st["entries"] if "eval-quantization" in e["key"]]
    if not held:
        return "No bf16/int8 copies are held in the model cache."
    names = ", ".join(f"{e['key'].split(' / ')[2]} ({e['mb']:.0f} MiB)" for e in held)
    return f"Held in the shared model cache: {names}. Free them when you are done."


def make_free(engine):
    def run(model_key):
        n = quant.free_variants(engine, model_key)
        return f"Freed {n} cop{'y' if n == 1 else 'ies'}. " + _cache_line(engine)
    return run


# ---- layout (each function creates its components in the current Blocks context) ---------------
INTRO = ("## Evaluation: how do we measure a language model?\n"
         "A language model assigns a probability to every next token. Evaluation starts from "
         "those probabilities: how surprised is the model by real text (perplexity), and how close is "
         "an answer to a reference (answer metrics)?")


def _perplexity_panel(engine) -> dict:
    """The "Perplexity & surprisal" sub-tab (knobs: name -> slider)."""
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(EXAMPLE, lines=4, label="Text to score", max_length=metrics.MAX_TEXT_CHARS)
            with gr.Row():
                knobs = controls_for(metrics.PerplexitySettings)
        with gr.Column(scale=1, min_width=260):
            model = model_picker(engine, "causal-lm", label="Language model", session_model=True)
            btn = gr.Button("Score the text", variant="primary")
    examples_box = gr.Column()
    surprisal = gr.HTML(elem_id="eval-surprisal")
    notice("Red tokens surprised the model (low probability); pale ones were expected. The start of a "
           "text is hard to predict; words that repeat get cheaper.")
    with gr.Row():
        with gr.Column(min_width=340):  # narrower, on a phone its words broke mid-word
            math = gr.Markdown(elem_id="eval-arithmetic")
        plot = Plot(filename="entropy-along-text", label="Entropy along the text")
    with gr.Accordion("All numbers (JSON, as the API returns them)", open=False):
        numbers = gr.JSON()
    return dict(text=text, knobs=knobs, model=model, btn=btn, examples_box=examples_box,
                inputs=[model, text, knobs["window"], knobs["stride"]], outputs=[surprisal, math, plot, numbers])


def _compare_panel(engine) -> dict:
    """The "Natural vs shuffled vs random" sub-tab."""
    with gr.Row():
        natural = gr.Textbox(EXAMPLE, lines=5, label="Natural text")
        shuffled = gr.Textbox(metrics.shuffle_words(EXAMPLE, 0), lines=5, label="Same words, shuffled")
        random_text = gr.Textbox(metrics.random_characters(EXAMPLE, 0), lines=5, label="Random characters")
    with gr.Row():
        seed = WholeNumber(0, minimum=0, label="Shuffle seed", scale=0, min_width=140)
        make_btn = gr.Button("Rebuild shuffled + random from the natural text")
        model = model_picker(engine, "causal-lm", label="Language model", session_model=True)
        btn = gr.Button("Compare", variant="primary")
    table = data_table("natural-shuffled-random", headers=COMPARE_HEADERS, interactive=False, label="Scores")
    plot = Plot(filename="natural-shuffled-random", show_label=False)
    notice("Shuffling keeps every word but destroys grammar, and perplexity jumps. Random letters look "
           "only a little worse per token because they are cut into many more tokens; bits per byte, "
           "which does not depend on how the text is cut, shows the real gap.")
    return dict(natural=natural, shuffled=shuffled, random_text=random_text, seed=seed, make_btn=make_btn,
                model=model, btn=btn, table=table, plot=plot)


def _toy_panel() -> dict:
    """The "Cross-entropy toy" sub-tab: softmax and the loss of one prediction, by hand."""
    gr.Markdown("One prediction, by hand: the model's logits become probabilities through softmax, and "
                "the loss is −ln of the probability of the right answer.")
    with gr.Row():
        spec = gr.Textbox(TOY_LOGITS, label="Logits: 'label value' pairs, comma separated", scale=3)
        target = gr.Dropdown(["cat", "dog", "car", "tree"], value="dog", label="Correct next token (target)",
                             allow_custom_value=True)
        temp = gr.Slider(0.05, 10, value=1.0, step=0.05, label="Temperature T")
    seen, new = gr.State(TOY_LOGITS), gr.State(False)  # the logits last rendered
    examples_box = gr.Column()
    labels, logits = metrics.parse_logits(TOY_LOGITS)
    toy = metrics.cross_entropy_toy(labels, logits, "dog", 1.0)
    math = gr.Markdown(plots.toy_markdown(toy))
    plot = Plot(filename="cross-entropy-toy", initial=lambda: plots.toy_figure(toy), show_label=False)
    notice("Make the target's logit the largest and the loss falls towards 0; make another one huge and "
           "the loss grows without bound.")
    return dict(spec=spec, target=target, temp=temp, seen=seen, new=new, examples_box=examples_box, math=math,
                plot=plot)


def _answers_panel() -> dict:
    """The "Answer metrics" sub-tab: candidates against a reference, exact match to an AI judge."""
    with gr.Row():
        with gr.Column():
            question = gr.Textbox(ANSWER_QUESTION, label="Question (shown to the judge only)")
            reference = gr.Textbox(ANSWER_REFERENCE, label="Reference answer")
        with gr.Column():
            candidates = gr.Textbox(ANSWER_CANDIDATES, lines=5, label="Candidate answers, one per line")
            with gr.Row():
                semantic = gr.Checkbox(True, label="Semantic similarity (MiniLM embeddings)")
                judge = gr.Checkbox(True, label="AI as judge (SmolLM2-135M, a tiny model)")
            form = gr.Radio(list(answers.UNICODE_FORMS), value="NFC",
                            label="Unicode normalisation (every metric except exact (raw))",
                            info="NFC: a composed é equals e + combining accent · NFKC: also "
                                 "full-width letters, ligatures (ﬁ) and superscripts (²)")
            btn = gr.Button("Compare answers", variant="primary")
    examples_box = gr.Column()
    table = data_table("answer-metrics", headers=answer_headers(), interactive=False, wrap=True,
                       label="Metrics per answer")
    gr.Markdown(answer_metrics_markdown() + ".", elem_id="eval-answer-metrics-help")
    notice("Each metric forgives a different kind of difference. The tiny judge gives almost the same "
           "rating to right and wrong answers: a judge must be far stronger than what it grades.")
    with gr.Accordion("The prompt the judge saw (first answer)", open=False):
        prompt = gr.Markdown()
    with gr.Accordion("All numbers (JSON)", open=False):
        numbers = gr.JSON()
    return dict(btn=btn, examples_box=examples_box,
                inputs=[question, reference, candidates, semantic, judge, form], outputs=[table, prompt, numbers])


BF16_MANTISSA_BITS, FP32_MANTISSA_BITS = 7, 23  # stored fraction bits (the leading 1 is implicit)
QUANT_HELP = (
    "**fp32**: 32-bit floats, the reference · **bf16**: every weight as bfloat16 (fp32's 8 exponent bits, "
    f"so its range, but {BF16_MANTISSA_BITS} stored mantissa bits instead of fp32's {FP32_MANTISSA_BITS}), and the "
    "math in bf16 · **int8-weights** (weights only): the Linear "
    "layers of the transformer blocks store int8 weights with one scale per output row; "
    "their inputs and outputs (the activations) stay float32 · **int8-dynamic** (weights + "
    "activations): PyTorch dynamic quantization of the same layers: the same kind of int8 "
    "weights, and at run time each layer's input is also rounded to 8 bits with one scale "
    "for the whole tensor. In both int8 variants the token embedding, shared with the "
    "output head, stays fp32.")


def _quantization_panel(engine) -> dict:
    """The "Quantization" sub-tab: fp32, bf16 and two int8 copies side by side."""
    gr.Markdown("The same model stored four ways, run on the CPU. Each copy is built on first use from "
                "the float model (the shared model is never changed) and kept in the model cache until "
                "freed.")
    with gr.Row():
        text = gr.Textbox(EXAMPLE, lines=4, label=f"Text for perplexity (its first {quant.TIMING_PROMPT_TOKENS} tokens are the prompt for timing)",
                          scale=3, max_length=4000)
        with gr.Column(scale=1, min_width=260):
            model = model_picker(engine, "causal-lm", label="Language model")
            variants = gr.CheckboxGroup(list(quant.VARIANTS), value=list(quant.VARIANTS), label="Variants")
            knobs = controls_for(quant.QuantizationSettings)
    with gr.Row():
        btn = gr.Button("Build and compare", variant="primary")
        free_btn = gr.Button("Free the bf16/int8 copies")
    table = data_table("quantization", headers=QUANT_HEADERS, interactive=False, wrap=True, label="Side by side",
                       column_widths=["10%", "22%", "7%", "6%", "8%", "9%", "7%", "8%", "23%"],
                       elem_id="eval-quant-table")
    gr.Markdown(QUANT_HELP, elem_id="eval-quant-help")
    plot = Plot(filename="quantization", show_label=False)
    status = gr.Markdown()
    notice("Fewer bits per weight: less memory. Rounding the weights to int8 costs little perplexity "
           "(compare int8-weights with fp32); the big jump of int8-dynamic comes from rounding the "
           "activations: a few very large activation values set the one scale of the whole tensor, "
           "and every other value gets only a handful of levels. Speed depends on the hardware (a "
           "CPU without bf16 units can be slower in bf16).")
    with gr.Accordion("All numbers (JSON)", open=False):
        numbers = gr.JSON()
    return dict(text=text, model=model, variants=variants, knobs=knobs, btn=btn, free_btn=free_btn, table=table,
                plot=plot, status=status, numbers=numbers)


# ---- wiring ------------------------------------------------------------------------------------------
def _wire_perplexity(engine, ppl):
    """Registers Score; returns the wrapped listener (the examples and the deep link run it too)."""
    score = user_errors(on_gpu(make_perplexity(engine)))
    ppl["btn"].click(score, inputs=ppl["inputs"], outputs=ppl["outputs"], api_name="perplexity",
                     **heavy_or_served(engine))
    return score


def _wire_compare(engine, cmp):
    cmp["make_btn"].click(user_errors(make_variants), inputs=[cmp["natural"], cmp["seed"]],
                          outputs=[cmp["shuffled"], cmp["random_text"]], api_name="make_shuffled_and_random")
    cmp["btn"].click(user_errors(on_gpu(make_compare_texts(engine))),
                     inputs=[cmp["model"], cmp["natural"], cmp["shuffled"], cmp["random_text"]],
                     outputs=[cmp["table"], cmp["plot"]], api_name="compare_texts", **HEAVY)


def _wire_toy(toy):
    spec, target, temp = toy["spec"], toy["target"], toy["temp"]
    for trigger in (spec.submit, spec.blur):
        trigger(note_logits, inputs=[spec, toy["seen"]], outputs=[toy["seen"], toy["new"]], api_name=False,
                queue=False, show_progress="hidden").then(
            user_errors(toy_update_if_new), inputs=[spec, target, temp, toy["new"]],
            outputs=[target, toy["math"], toy["plot"]], api_name="toy_logits_changed", api_visibility="private",
            show_progress="hidden")
    target.change(user_errors(cross_entropy), inputs=[spec, target, temp],
                  outputs=[toy["math"], toy["plot"]], api_name="toy_target_changed", api_visibility="private",
                  show_progress="hidden")
    temp.change(user_errors(cross_entropy), inputs=[spec, target, temp],
                outputs=[toy["math"], toy["plot"]], api_name="cross_entropy", show_progress="hidden")


def _wire_quantization(engine, q):
    q["btn"].click(user_errors(make_quantization(engine)),
                   inputs=[q["model"], q["text"], q["variants"], q["knobs"]["new_tokens"]],
                   outputs=[q["table"], q["plot"], q["numbers"], q["status"]], api_name="quantization_compare",
                   **HEAVY)
    q["free_btn"].click(user_errors(make_free(engine)), inputs=q["model"], outputs=q["status"],
                        api_name="quantization_free")


def _cached_examples(engine, ppl, toy, ans, score):
    """Examples: all three are deterministic, so a click's result is cached for everyone."""
    defaults = metrics.PerplexitySettings()
    with ppl["examples_box"]:
        examples([[ppl["model"].value, t, defaults.window, defaults.stride] for _, t in PERPLEXITY_EXAMPLES],
                 ppl["inputs"], labels=[e[0] for e in PERPLEXITY_EXAMPLES],
                 fn=score, outputs=ppl["outputs"], cache=True)
    with toy["examples_box"]:
        examples([list(e[1:]) for e in TOY_EXAMPLES], [toy["spec"], toy["target"], toy["temp"]],
                 labels=[e[0] for e in TOY_EXAMPLES], fn=user_errors(cross_entropy),
                 outputs=[toy["math"], toy["plot"]], cache=True)
    with ans["examples_box"]:  # the slow judge is off in the examples; tick it and press Compare to ask it
        examples([[q, r, c, True, False, "NFC"] for _, q, r, c in ANSWER_EXAMPLES],
                 ans["inputs"],
                 labels=[e[0] for e in ANSWER_EXAMPLES], fn=user_errors(on_gpu(make_compare_answers(engine))),
                 outputs=ans["outputs"], cache=True)


def _share(eval_tabs, ppl, score, suite_parts) -> Share:
    """A link to this tab reopens it with the same text and knobs and runs its view: the perplexity view, or
    (view=suite / view=stress) the task suite or the stress test with the linked knobs."""
    ppl_in, ppl_out = ppl["inputs"], ppl["outputs"]
    suite_fn, suite_in, suite_out = suite_parts["suite"]
    stress_fn, stress_in, stress_out = suite_parts["stress"]

    def linked(view, *values):
        a, b = len(ppl_in), len(ppl_in) + len(suite_in)
        skip = lambda outs: [gr.skip()] * len(outs)  # noqa: E731
        if view == "suite":
            return [gr.Tabs(selected="eval-suite"), *skip(ppl_out), *suite_fn(*values[a:b]), *skip(stress_out)]
        if view == "stress":
            return [gr.Tabs(selected="eval-stress"), *skip(ppl_out), *skip(suite_out), *stress_fn(*values[b:])]
        if view in ("consistency", "gltr"):  # open the sub-tab; its inputs come from the link, nothing runs
            return [gr.Tabs(selected=f"eval-{view}"), *skip(ppl_out), *skip(suite_out), *skip(stress_out)]
        return [gr.skip(), *score(*values[:a]), *skip(suite_out), *skip(stress_out)]

    knobs = ppl["knobs"]
    return Share(params={"text": ppl["text"], "window": knobs["window"], "stride": knobs["stride"],
                         "model": ppl["model"], "view": suite_parts["view"], **suite_parts["params"]},
                 run=linked, run_inputs=[suite_parts["view"], *ppl_in, *suite_in, *stress_in],
                 run_outputs=[eval_tabs, *ppl_out, *suite_out, *stress_out])


def build(engine) -> Share:
    gr.Markdown(INTRO)
    with gr.Tabs(overflow_behavior="wrap") as eval_tabs:
        with gr.Tab("Perplexity & surprisal", id="eval-perplexity"):
            ppl = _perplexity_panel(engine)
        with gr.Tab("Natural vs shuffled vs random", id="eval-compare"):
            cmp = _compare_panel(engine)
        with gr.Tab("Cross-entropy toy", id="eval-toy"):
            toy = _toy_panel()
        with gr.Tab("Answer metrics", id="eval-answers"):
            ans = _answers_panel()
        with gr.Tab("Quantization", id="eval-quant"):
            q = _quantization_panel(engine)
        suite_parts = build_suite_and_robustness(engine)
    score = _wire_perplexity(engine, ppl)
    _wire_compare(engine, cmp)
    _wire_toy(toy)
    ans["btn"].click(user_errors(on_gpu(make_compare_answers(engine))), inputs=ans["inputs"], outputs=ans["outputs"],
                     api_name="compare_answers", **HEAVY)
    _wire_quantization(engine, q)
    _cached_examples(engine, ppl, toy, ans, score)
    return _share(eval_tabs, ppl, score, suite_parts)


# ---- task suite, stress test, consistency, "written by a model?" ----------------------------
SUITE_SUMMARY_HEADERS = ["model", "items", "few-shot k", "acc", "acc 95% CI", "acc_norm", "acc_norm 95% CI",
                         "stderr (acc)", "items/s"]
SUITE_ITEM_HEADERS = ["model", "id", "skill", "question", "choices", "correct", "chosen (acc)", "chosen (acc_norm)",
                      "acc", "acc_norm", "p(correct)", "log-likelihood per choice", "source"]
STRESS_HEADERS = ["rule", "kind", "variant", "model's answer", "p(original answer)", "kept", "passed"]
CLUSTER_HEADERS = ["kind of perturbation", "variants", "failures", "failed rules"]
CONSISTENCY_HEADERS = ["temperature", "samples", "distinct answers", "most common answer", "its share", "answers grouped"]
SUITE_SOURCES = [("Bundled suite (200 items, 5 skills)", "bundled"), ("My .jsonl file", "upload")]
# Stress test examples: (label, question, choices)
STRESS_EXAMPLES = (
    ("Capital, 4 choices", "What is the capital of France?", "Paris\nLondon\nRome\nBerlin"),
    ("Negation matters", "Which of these is a fruit?", "apple\ncar\nhammer\nblue"),
    ("Numbers", "What is 12 + 7?", "19\n18\n21\n12"),
    ("Free answer (greedy)", "What is the largest planet in the solar system?", ""),
)
CONSISTENCY_EXAMPLES = (
    ("Open question", "Question: Name a colour of the rainbow.\nAnswer:", "0, 0.7, 1.5"),
    ("Fact", "Question: What is the capital of Japan?\nAnswer:", "0, 0.5, 1.0, 1.5"),
    ("Arithmetic", "Question: What is 7 + 8?\nAnswer:", "0.3, 1.0, 2.0"),
)
SUITE_EXAMPLES = (
    ("SmolLM2, 40 items, 0-shot", ["smollm2-135m-instruct"], 0, 40),
    ("SmolLM2, 40 items, 3-shot", ["smollm2-135m-instruct"], 3, 40),
    ("fp32 vs int8 copies, 20 items", ["smollm2-135m-instruct", "smollm2-135m-instruct · int8-weights",
                                       "smollm2-135m-instruct · int8-dynamic"], 0, 20),
)
SUITE_HELP = (
    "Each choice is scored by its **log-likelihood**: the sum of ln p(token) over the tokens of ' choice' after "
    "`Question: …\\nAnswer:` (with k solved examples of the same skill in front). **acc**: the choice with the "
    "highest sum is the model's pick. **acc_norm**: the sum divided by the choice's length **in characters** "
    "(lm-evaluation-harness divides by `len(choice)`; for ASCII choices that equals UTF-8 bytes), so long choices "
    "are not punished for having more tokens. The **95% interval** is a seeded bootstrap: resample the items "
    "with replacement, take the 2.5th and 97.5th percentiles of the resampled accuracy. **p(correct)**: softmax "
    "over the choices' log-likelihoods. Your own file: one JSON object a line, "
    "`{\"question\": …, \"choices\": [...], \"answer\": <index>}`, up to 300 items and 1 MiB.")


def _suite_tables(reports):
    summary, items, plain = [], [], []
    for rep in reports:
        s = rep.summary()
        plain.append(s)
        summary.append([s["model"], s["n_items"], s["k_shot"], _fmt(s["acc"]["value"]),
                        f"{s['acc']['ci_low']:.3f} – {s['acc']['ci_high']:.3f}", _fmt(s["acc_norm"]["value"]),
                        f"{s['acc_norm']['ci_low']:.3f} – {s['acc_norm']['ci_high']:.3f}", _fmt(s["acc"]["stderr"]),
                        _fmt(s["items_per_s"], 1)])
        for r in rep.items:
            items.append([rep.model, r["id"], r["skill"], r["question"], " | ".join(r["choices"]), r["correct"],
                          r["chosen"], r["chosen_norm"], _fmt(bool(r["acc"])), _fmt(bool(r["acc_norm"])),
                          _fmt(r["p_correct"]), " | ".join(f"{c}: {v:.2f}" for c, v in zip(r["choices"], r["loglik"])),
                          r["source"]])
    return summary, items, plain


def make_suite(engine):
    def run(models, src, upload, k_shot, max_items, seed, bootstrap, progress=gr.Progress()):
        from engine.evaluation import suite

        cb = progress_callback(progress)
        settings = make(suite.SuiteSettings, k_shot=k_shot, max_items=max_items, seed=seed, bootstrap=bootstrap)
        if src == "upload":  # (named src like the LoRA tab's dataset source)
            if not upload:
                raise UserInputError("src = 'upload' needs a .jsonl file: choose one (up to 1 MiB, 300 items).")
            items = suite.read_upload(upload)
        else:
            items = None
        reports = suite.run_suite(engine, models, settings, items, progress=cb)
        summary, rows, plain = _suite_tables(reports)
        return (summary, plots.suite_figure(plain), plots.suite_skill_figure(plain), rows,
                {"summaries": plain, "items": {r.model: r.items for r in reports}})
    return run


def _stress_summary(res: dict) -> str:
    """The stress test's headline: the original answer (a choice the user typed: one code span) and the score."""
    score = res["robustness"]
    md = (f"**Original answer** ({res['mode']}): {md_code(res['original_answer'])} with p = {res['p_original']:.3f}"
          f"  \n**Robustness score: {score:.0%}** ({sum(r['passed'] for r in res['rows'])} of {len(res['rows'])} "
          f"variants behaved as they should: kept the answer, or, for the negation swap, changed it)"
          if score == score else "No rule found anything to change in this question.")
    if res["skipped"]:
        md += f"  \nRules with nothing to change here: {', '.join(res['skipped'])}."
    return md


def make_stress(engine):
    def run(model_key, question, choices, rules, progress=gr.Progress()):
        from engine.evaluation import robustness

        cb = progress_callback(progress)
        res = robustness.stress_test(engine.load(model_key, progress=cb), question, choices, rules, progress=cb)
        # runs of spaces would collapse in the table: the whitespace rule's variant shows them as ·
        rows = [[r["rule"], r["kind"], r["variant"].replace(" ", "·") if r["kind"] == "whitespace" else r["variant"],
                 r["answer"], _fmt(r["p_original"]), _fmt(r["kept"]),
                 _fmt(r["passed"])] for r in res["rows"]]
        clusters = [[c["kind"], c["variants"], c["failures"], ", ".join(c["failed"]) or "–"] for c in res["clusters"]]
        return _stress_summary(res), rows, clusters, plots.robustness_figure(res), res
    return run


def make_consistency(engine):
    def run(model_key, prompt, temperatures, samples, max_new_tokens, seed, mode, progress=gr.Progress()):
        from engine.evaluation import consistency

        cb = progress_callback(progress)
        res = consistency.consistency(engine.load(model_key, progress=cb), prompt, temperatures, samples,
                                      max_new_tokens, seed, mode, progress=cb)
        rows = [[f"{r['temperature']:g}", len(r["samples"]), r["distinct"], r["mode_answer"], _fmt(r["mode_share"], 2),
                 "; ".join(f"{g['answer']} ×{g['count']}" for g in r["groups"])] for r in res["temperatures"]]
        return rows, plots.consistency_figure(res), res
    return run


def make_ranks(engine):
    def run(model_key, text_a, text_b, progress=gr.Progress()):
        from engine.evaluation import ranks

        cb = progress_callback(progress)
        bundle = engine.load(model_key, progress=cb)
        reps = [(label, ranks.rank_report(bundle.model, bundle.tokenizer, t, model_key))
                for label, t in (("Text A", text_a), ("Text B", text_b)) if t and t.strip()]
        if not reps:
            raise UserInputError("Both texts are empty: paste a text into A or B (1 to 4,000 characters).")
        html_out = [plots.ranks_html(r, label) for label, r in reps]
        if len(reps) == 1:  # only one text given: the other panel stays empty
            html_out = html_out + [""] if (text_a or "").strip() else [""] + html_out
        numbers = {label: {k: v for k, v in r.items() if k != "tokens"} for label, r in reps}
        return (*html_out, plots.ranks_figure(reps), numbers)
    return run


def make_rank_example(engine):
    def run(model_key, seed, progress=gr.Progress()):
        from engine.evaluation import ranks

        cb = progress_callback(progress)
        seed = check_range("seed", seed, 0, 2**32 - 1, integer=True)
        cb(None, "the model writes its own text")
        return ranks.example_pair(engine.load(model_key, progress=cb), seed)
    return run


def _suite_panel(engine) -> dict:
    """The "Task suite" sub-tab (knobs: name -> control). Its first component is the hidden view box."""
    from engine.evaluation import suite

    view = gr.Textbox("", visible=False)  # which sub-tab of the suite part is open, for the link
    gr.Markdown("A multiple-choice suite scored by log-likelihood, as lm-evaluation-harness does it with its "
                "default settings (no begin token before the context unless the tokenizer adds one itself), item "
                "by item. Choose several models (and quantized copies) to see them side by side on the same items.")
    with gr.Row():
        with gr.Column(scale=2):
            options = suite.model_options(engine)
            models = gr.Dropdown(options, value=[options[0][1]] if options else [], multiselect=True,
                                 max_choices=suite.MAX_MODELS, label="Models (causal LMs of the registry "
                                 "and their bf16/int8 copies)")
            with gr.Row():
                source = gr.Radio(SUITE_SOURCES, value="bundled", label="Items")
                file = gr.File(label="Your .jsonl (question, choices, answer), up to 1 MiB / 300 items",
                               file_types=[".jsonl"], type="filepath")
        with gr.Column(scale=2):
            knobs = controls_for(suite.SuiteSettings)
    btn = gr.Button("Run the suite", variant="primary")
    examples_box = gr.Column()
    summary = data_table("suite-summary", headers=SUITE_SUMMARY_HEADERS, label="Accuracy per model",
                         elem_id="eval-suite-summary")
    with gr.Row():
        plot = Plot(filename="suite-accuracy", show_label=False)
        skills = Plot(filename="suite-skills", show_label=False)
    items = data_table("suite-items", headers=SUITE_ITEM_HEADERS, label="Per item (⬇ CSV under the table)",
                       wrap=True, max_height=520, elem_id="eval-suite-items")
    gr.Markdown(SUITE_HELP)
    notice("A 135M model is near chance (25%) on some skills and good on others. Solved examples in front "
           "(k-shot) help some skills and do nothing for others: compare 0-shot with k-shot skill by skill. Look at "
           "the interval before believing a 2-point difference.")
    with gr.Accordion("All numbers (JSON), with the exact context of every item", open=False):
        numbers = gr.JSON()
    return dict(view=view, models=models, source=source, knobs=knobs, btn=btn, examples_box=examples_box,
                inputs=[models, source, file, knobs["k_shot"], knobs["max_items"], knobs["seed"], knobs["bootstrap"]],
                outputs=[summary, plot, skills, items, numbers])


def _stress_panel(engine) -> dict:
    """The "Stress test" sub-tab: a question changed by written rules."""
    from engine.evaluation import robustness

    gr.Markdown("Small changes made by written rules. A robust model keeps its answer when the meaning stays "
                "the same, and changes it when the negation swap flips the meaning.")
    with gr.Row():
        with gr.Column(scale=2):
            question = gr.Textbox(STRESS_EXAMPLES[0][1], label="Question", max_length=robustness.MAX_QUESTION_CHARS)
            choices = gr.Textbox(STRESS_EXAMPLES[0][2], lines=4, label="Choices, one a line (empty: the model "
                                 "answers freely, greedy)")
        with gr.Column(scale=2):
            rules = gr.CheckboxGroup(list(robustness.RULE_NAMES), value=list(robustness.RULE_NAMES),
                                     label="Rules", info=f"Each at most once (up to {len(robustness.RULE_NAMES)}): "
                                     "one model answer per rule")
            model = model_picker(engine, "causal-lm", label="Language model")
            btn = gr.Button("Stress it", variant="primary")
    examples_box = gr.Column()
    md = gr.Markdown(elem_id="eval-stress-score")
    table = data_table("stress-test", headers=STRESS_HEADERS, label="Each variant", wrap=True,
                       elem_id="eval-stress-table")
    with gr.Row():
        clusters = data_table("stress-clusters", headers=CLUSTER_HEADERS, label="Failures by kind")
        plot = Plot(filename="stress-test", show_label=False)
    gr.Markdown(" · ".join(f"**{r.name}**: {r.description}" for r in robustness.RULES))
    with gr.Accordion("All numbers (JSON)", open=False):
        numbers = gr.JSON()
    return dict(question=question, choices=choices, btn=btn, examples_box=examples_box,
                inputs=[model, question, choices, rules], outputs=[md, table, clusters, plot, numbers])


def _consistency_panel(engine) -> dict:
    """The "Consistency" sub-tab: one prompt sampled N times at several temperatures."""
    from engine.evaluation import consistency

    gr.Markdown("The same prompt sampled N times at several temperatures: how many different answers come "
                "back, and how often the most common one. Answers are compared by their first line, ignoring "
                "case, punctuation and articles.")
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(CONSISTENCY_EXAMPLES[0][1], lines=3, label="Prompt",
                                max_length=consistency.MAX_PROMPT_CHARS)
            temps = gr.Textbox(CONSISTENCY_EXAMPLES[0][2], label="Temperatures (comma separated, 0 to 2, "
                               "up to 5; 0 = greedy)")
        with gr.Column(scale=2):
            knobs = controls_for(consistency.ConsistencySettings)
            with gr.Row():
                mode = gr.Radio(["raw", "chat"], value="raw", label="Prompt as is, or in the chat template")
                model = model_picker(engine, "causal-lm", label="Language model")
    btn = gr.Button("Sample", variant="primary")
    examples_box = gr.Column()
    table = data_table("consistency", headers=CONSISTENCY_HEADERS, label="Per temperature", wrap=True)
    plot = Plot(filename="consistency", show_label=False)
    notice("At T = 0 there is one answer; as T grows the answers spread out. A model that gives a fact the "
           "same way at T = 1 is sure of it; one that scatters is guessing.")
    with gr.Accordion("All samples (JSON)", open=False):
        numbers = gr.JSON()
    return dict(prompt=prompt, temps=temps, btn=btn, examples_box=examples_box,
                inputs=[model, prompt, temps, knobs["samples"], knobs["max_new_tokens"], knobs["seed"], mode],
                outputs=[table, plot, numbers])


def _gltr_panel(engine) -> dict:
    """The "Model-written?" sub-tab: tokens coloured by their rank under the model (GLTR)."""
    gr.Markdown("GLTR's idea: colour each token by its **rank** under the model (1 = the model's top guess). "
                "Sampled text is mostly green (top-10); people pick rarer words more often. A hint, not proof.")
    with gr.Row():
        text_a = gr.Textbox(lines=5, label="Text A", max_length=4000)
        text_b = gr.Textbox(lines=5, label="Text B", max_length=4000)
    with gr.Row():
        model = model_picker(engine, "causal-lm", label="Language model")
        seed = WholeNumber(0, minimum=0, label="Example seed", scale=0, min_width=140)
        example_btn = gr.Button("Example: the model's own text (A) vs a human quote (B)")
        btn = gr.Button("Colour by rank", variant="primary")
    with gr.Row():
        html_a = gr.HTML(elem_id="eval-gltr-a")
        html_b = gr.HTML(elem_id="eval-gltr-b")
    plot = Plot(filename="rank-histogram", show_label=False)
    with gr.Accordion("Counts (JSON)", open=False):
        numbers = gr.JSON()
    return dict(text_a=text_a, text_b=text_b, model=model, seed=seed, example_btn=example_btn, btn=btn,
                outputs=[html_a, html_b, plot, numbers])


def _wire_gltr(engine, gltr):
    ranks_in = [gltr["model"], gltr["text_a"], gltr["text_b"]]
    ranks_fn = user_errors(on_gpu(make_ranks(engine)))
    gltr["btn"].click(ranks_fn, inputs=ranks_in, outputs=gltr["outputs"], api_name="token_ranks", **HEAVY)
    gltr["example_btn"].click(user_errors(on_gpu(make_rank_example(engine))), inputs=[gltr["model"], gltr["seed"]],
                              outputs=[gltr["text_a"], gltr["text_b"]], api_name="token_ranks_example",
                              **HEAVY).success(
        ranks_fn, inputs=ranks_in, outputs=gltr["outputs"], api_name=False, **HEAVY)


def _suite_examples(suite, stress, cons):
    with suite["examples_box"]:  # fill the knobs; press Run (the suite takes a while)
        examples([[m, "bundled", k, n] for _, m, k, n in SUITE_EXAMPLES],
                 [suite["models"], suite["source"], suite["knobs"]["k_shot"], suite["knobs"]["max_items"]],
                 labels=[e[0] for e in SUITE_EXAMPLES])
    with stress["examples_box"]:
        examples([[q, c] for _, q, c in STRESS_EXAMPLES], [stress["question"], stress["choices"]],
                 labels=[e[0] for e in STRESS_EXAMPLES])
    with cons["examples_box"]:
        examples([[p, t] for _, p, t in CONSISTENCY_EXAMPLES], [cons["prompt"], cons["temps"]],
                 labels=[e[0] for e in CONSISTENCY_EXAMPLES])


def build_suite_and_robustness(engine) -> dict:
    """The sub-tabs Task suite, Stress test, Consistency and Model-written? (inside build()'s gr.Tabs);
    returns what the deep link needs: the view box, the linked params, and (fn, inputs, outputs) of the
    suite and of the stress test."""
    with gr.Tab("Task suite", id="eval-suite") as t_suite:
        suite = _suite_panel(engine)
    with gr.Tab("Stress test", id="eval-stress") as t_stress:
        stress = _stress_panel(engine)
    with gr.Tab("Consistency", id="eval-consistency") as t_cons:
        cons = _consistency_panel(engine)
    with gr.Tab("Model-written?", id="eval-gltr") as t_gltr:
        gltr = _gltr_panel(engine)

    view = suite["view"]
    for tab, name in ((t_suite, "suite"), (t_stress, "stress"), (t_cons, "consistency"), (t_gltr, "gltr")):
        tab.select(lambda n=name: n, outputs=view, api_name=False, queue=False)
    suite_fn = user_errors(on_gpu(make_suite(engine)))
    suite["btn"].click(suite_fn, inputs=suite["inputs"], outputs=suite["outputs"], api_name="task_suite", **HEAVY)
    stress_fn = user_errors(on_gpu(make_stress(engine)))
    stress["btn"].click(stress_fn, inputs=stress["inputs"], outputs=stress["outputs"], api_name="stress_test", **HEAVY)
    cons["btn"].click(user_errors(on_gpu(make_consistency(engine))), inputs=cons["inputs"], outputs=cons["outputs"],
                      api_name="consistency", **HEAVY)
    _wire_gltr(engine, gltr)
    _suite_examples(suite, stress, cons)
    return dict(view=view, params={"k": suite["knobs"]["k_shot"], "items": suite["knobs"]["max_items"],
                                   "question": stress["question"], "choices": stress["choices"],
                                   "prompt": cons["prompt"], "text_a": gltr["text_a"], "text_b": gltr["text_b"]},
                suite=(suite_fn, suite["inputs"], suite["outputs"]),
                stress=(stress_fn, stress["inputs"], stress["outputs"]))
