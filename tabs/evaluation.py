"""Evaluation: how language models are measured, with the arithmetic visible. Perplexity with
per-token surprisal, natural vs shuffled vs random text, the cross-entropy toy, answer metrics
(exact match to an AI judge) and the size/speed/quality trade-off of quantization."""
from __future__ import annotations

import gradio as gr

from engine.evaluation import answers
from engine.evaluation import metrics
from engine.evaluation import plots
from engine.evaluation import quantization as quant
from engine.core.errors import check_range, check_text
from engine.core.markdown import md_code_block
from engine.core.settings import dataclass, knob, make
from engine.serving import use_server
from tabs._ui import (HEAVY, Plot, heavy_or_served, Share, controls_for, data_table, examples, model_picker, notice, on_gpu, progress_callback,
                      user_errors)

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


QUANT_HEADERS = ["variant", "what it quantizes", "weights MB", "× fp32 size", "tokens/s", "perplexity",
                 "Δ ppl vs fp32", "bits/byte", "greedy continuation"]
COMPARE_HEADERS = ["text", "tokens", "perplexity", "mean NLL (nats)", "bits/token", "bits/byte", "bits/char",
                   "mean entropy (bits)"]


@dataclass
class QuantizationSettings:
    new_tokens: int = knob(16, 1, 64, "Tokens generated (greedy) to time each variant", step=1)


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
        settings = make(QuantizationSettings, new_tokens=new_tokens)
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
    names = ", ".join(f"{e['key'].split(' / ')[2]} ({e['mb']:.0f} MB)" for e in held)
    return f"Held in the shared model cache: {names}. Free them when you are done."


def make_free(engine):
    def run(model_key):
        n = quant.free_variants(engine, model_key)
        return f"Freed {n} cop{'y' if n == 1 else 'ies'}. " + _cache_line(engine)
    return run


# ---- layout --------------------------------------------------------------------------------------
def build(engine) -> None:
    gr.Markdown("## Evaluation: how do we measure a language model?\n"
                "A language model assigns a probability to every next token. Evaluation starts from "
                "those probabilities: how surprised is the model by real text (perplexity), and how close is "
                "an answer to a reference (answer metrics)?")
    with gr.Tabs():
        with gr.Tab("Perplexity & surprisal", id="eval-perplexity"):
            with gr.Row():
                with gr.Column(scale=3):
                    ppl_text = gr.Textbox(EXAMPLE, lines=4, label="Text to score", max_length=metrics.MAX_TEXT_CHARS)
                    with gr.Row():
                        ctl = controls_for(metrics.PerplexitySettings)
                with gr.Column(scale=1, min_width=260):
                    ppl_model = model_picker(engine, "causal-lm", label="Language model")
                    ppl_btn = gr.Button("Score the text", variant="primary")
            ppl_examples_box = gr.Column()
            ppl_html = gr.HTML(elem_id="eval-surprisal")
            notice("Red tokens surprised the model (low probability); pale ones were expected. The start of a "
                   "text is hard to predict; words that repeat get cheaper.")
            with gr.Row():
                ppl_math = gr.Markdown(elem_id="eval-arithmetic")
                ppl_plot = Plot(filename="entropy-along-text", label="Entropy along the text")
            with gr.Accordion("All numbers (JSON, as the API returns them)", open=False):
                ppl_json = gr.JSON()

        with gr.Tab("Natural vs shuffled vs random", id="eval-compare"):
            with gr.Row():
                cmp_nat = gr.Textbox(EXAMPLE, lines=5, label="Natural text")
                cmp_shuf = gr.Textbox(metrics.shuffle_words(EXAMPLE, 0), lines=5, label="Same words, shuffled")
                cmp_rand = gr.Textbox(metrics.random_characters(EXAMPLE, 0), lines=5, label="Random characters")
            with gr.Row():
                cmp_seed = gr.Number(0, precision=0, minimum=0, label="Shuffle seed", scale=0, min_width=140)
                cmp_make = gr.Button("Rebuild shuffled + random from the natural text")
                cmp_model = model_picker(engine, "causal-lm", label="Language model")
                cmp_btn = gr.Button("Compare", variant="primary")
            cmp_table = data_table("natural-shuffled-random", headers=COMPARE_HEADERS, interactive=False, label="Scores")
            cmp_plot = Plot(filename="natural-shuffled-random", show_label=False)
            notice("Shuffling keeps every word but destroys grammar, and perplexity jumps. Random letters look "
                   "only a little worse per token because they are cut into many more tokens; bits per byte, "
                   "which does not depend on how the text is cut, shows the real gap.")

        with gr.Tab("Cross-entropy toy", id="eval-toy"):
            gr.Markdown("One prediction, by hand: the model's logits become probabilities through softmax, and "
                        "the loss is −ln of the probability of the right answer.")
            with gr.Row():
                toy_spec = gr.Textbox(TOY_LOGITS, label="Logits: 'label value' pairs, comma separated", scale=3)
                toy_target = gr.Dropdown(["cat", "dog", "car", "tree"], value="dog", label="Correct next token (target)",
                                         allow_custom_value=True)
                toy_temp = gr.Slider(0.05, 10, value=1.0, step=0.05, label="Temperature T")
            toy_seen, toy_new = gr.State(TOY_LOGITS), gr.State(False)  # the logits last rendered
            toy_examples_box = gr.Column()
            toy_md, toy_fig = cross_entropy(TOY_LOGITS, "dog", 1.0)
            toy_math = gr.Markdown(toy_md)
            toy_plot = Plot(toy_fig, filename="cross-entropy-toy", show_label=False)
            notice("Make the target's logit the largest and the loss falls towards 0; make another one huge and "
                   "the loss grows without bound.")

        with gr.Tab("Answer metrics", id="eval-answers"):
            with gr.Row():
                with gr.Column():
                    ans_q = gr.Textbox(ANSWER_QUESTION, label="Question (shown to the judge only)")
                    ans_ref = gr.Textbox(ANSWER_REFERENCE, label="Reference answer")
                with gr.Column():
                    ans_cands = gr.Textbox(ANSWER_CANDIDATES, lines=5, label="Candidate answers, one per line")
                    with gr.Row():
                        ans_sem = gr.Checkbox(True, label="Semantic similarity (MiniLM embeddings)")
                        ans_judge = gr.Checkbox(True, label="AI as judge (SmolLM2-135M, a tiny model)")
                    ans_form = gr.Radio(list(answers.UNICODE_FORMS), value="NFC",
                                        label="Unicode normalisation (every metric except exact (raw))",
                                        info="NFC: a composed é equals e + combining accent · NFKC: also "
                                             "full-width letters, ligatures (ﬁ) and superscripts (²)")
                    ans_btn = gr.Button("Compare answers", variant="primary")
            ans_examples_box = gr.Column()
            ans_table = data_table("answer-metrics", headers=answer_headers(), interactive=False, wrap=True,
                                   label="Metrics per answer")
            gr.Markdown(answer_metrics_markdown() + ".", elem_id="eval-answer-metrics-help")
            notice("Each metric forgives a different kind of difference. The tiny judge gives almost the same "
                   "rating to right and wrong answers: a judge must be far stronger than what it grades.")
            with gr.Accordion("The prompt the judge saw (first answer)", open=False):
                ans_prompt = gr.Markdown()
            with gr.Accordion("All numbers (JSON)", open=False):
                ans_json = gr.JSON()

        with gr.Tab("Quantization", id="eval-quant"):
            gr.Markdown("The same model stored four ways, run on the CPU. Each copy is built on first use from "
                        "the float model (the shared model is never changed) and kept in the model cache until "
                        "freed.")
            with gr.Row():
                q_text = gr.Textbox(EXAMPLE, lines=4, label=f"Text for perplexity (its first {quant.TIMING_PROMPT_TOKENS} tokens are the prompt for timing)",
                                    scale=3, max_length=4000)
                with gr.Column(scale=1, min_width=260):
                    q_model = model_picker(engine, "causal-lm", label="Language model")
                    q_variants = gr.CheckboxGroup(list(quant.VARIANTS), value=list(quant.VARIANTS), label="Variants")
                    q_ctl = controls_for(QuantizationSettings)
            with gr.Row():
                q_btn = gr.Button("Build and compare", variant="primary")
                q_free = gr.Button("Free the bf16/int8 copies")
            q_table = data_table("quantization", headers=QUANT_HEADERS, interactive=False, wrap=True, label="Side by side",
                                   column_widths=["10%", "22%", "7%", "6%", "8%", "9%", "7%", "8%", "23%"],
                                   elem_id="eval-quant-table")
            gr.Markdown("**fp32**: 32-bit floats, the reference · **bf16**: every weight as bfloat16 (fp32's range, "
                        "8 bits of mantissa), and the math in bf16 · **int8-weights** (weights only): the Linear "
                        "layers of the transformer blocks store int8 weights with one scale per output row; "
                        "their inputs and outputs (the activations) stay float32 · **int8-dynamic** (weights + "
                        "activations): PyTorch dynamic quantization of the same layers: the same kind of int8 "
                        "weights, and at run time each layer's input is also rounded to 8 bits with one scale "
                        "for the whole tensor. In both int8 variants the token embedding, shared with the "
                        "output head, stays fp32.", elem_id="eval-quant-help")
            q_plot = Plot(filename="quantization", show_label=False)
            q_status = gr.Markdown()
            notice("Fewer bits per weight: less memory. Rounding the weights to int8 costs little perplexity "
                   "(compare int8-weights with fp32); the big jump of int8-dynamic comes from rounding the "
                   "activations: a few very large activation values set the one scale of the whole tensor, "
                   "and every other value gets only a handful of levels. Speed depends on the hardware (a "
                   "CPU without bf16 units can be slower in bf16).")
            with gr.Accordion("All numbers (JSON)", open=False):
                q_json = gr.JSON()

    # Register listeners
    score = user_errors(on_gpu(make_perplexity(engine)))
    ppl_btn.click(score,
                  inputs=[ppl_model, ppl_text, ctl["window"], ctl["stride"]],
                  outputs=[ppl_html, ppl_math, ppl_plot, ppl_json], api_name="perplexity",
                  **heavy_or_served(engine))
    cmp_make.click(user_errors(make_variants), inputs=[cmp_nat, cmp_seed], outputs=[cmp_shuf, cmp_rand],
                   api_name="make_shuffled_and_random")
    cmp_btn.click(user_errors(on_gpu(make_compare_texts(engine))), inputs=[cmp_model, cmp_nat, cmp_shuf, cmp_rand],
                  outputs=[cmp_table, cmp_plot], api_name="compare_texts", **HEAVY)
    for trigger in (toy_spec.submit, toy_spec.blur):
        trigger(note_logits, inputs=[toy_spec, toy_seen], outputs=[toy_seen, toy_new], api_name=False,
                queue=False, show_progress="hidden").then(
            user_errors(toy_update_if_new), inputs=[toy_spec, toy_target, toy_temp, toy_new],
            outputs=[toy_target, toy_math, toy_plot], api_name="toy_logits_changed", api_visibility="private",
            show_progress="hidden")
    toy_target.change(user_errors(cross_entropy), inputs=[toy_spec, toy_target, toy_temp],
                      outputs=[toy_math, toy_plot], api_name="toy_target_changed", api_visibility="private",
                      show_progress="hidden")
    toy_temp.change(user_errors(cross_entropy), inputs=[toy_spec, toy_target, toy_temp],
                    outputs=[toy_math, toy_plot], api_name="cross_entropy", show_progress="hidden")
    ans_btn.click(user_errors(on_gpu(make_compare_answers(engine))),
                  inputs=[ans_q, ans_ref, ans_cands, ans_sem, ans_judge, ans_form],
                  outputs=[ans_table, ans_prompt, ans_json], api_name="compare_answers", **HEAVY)
    q_btn.click(user_errors(make_quantization(engine)), inputs=[q_model, q_text, q_variants, q_ctl["new_tokens"]],
                outputs=[q_table, q_plot, q_json, q_status], api_name="quantization_compare", **HEAVY)
    q_free.click(user_errors(make_free(engine)), inputs=q_model, outputs=q_status, api_name="quantization_free")
    # Examples: all three are deterministic, so a click's result is cached for everyone.
    defaults = metrics.PerplexitySettings()
    with ppl_examples_box:
        examples([[ppl_model.value, t, defaults.window, defaults.stride] for _, t in PERPLEXITY_EXAMPLES],
                 [ppl_model, ppl_text, ctl["window"], ctl["stride"]], labels=[e[0] for e in PERPLEXITY_EXAMPLES],
                 fn=score, outputs=[ppl_html, ppl_math, ppl_plot, ppl_json], cache=True)
    with toy_examples_box:
        examples([list(e[1:]) for e in TOY_EXAMPLES], [toy_spec, toy_target, toy_temp],
                 labels=[e[0] for e in TOY_EXAMPLES], fn=user_errors(cross_entropy), outputs=[toy_math, toy_plot],
                 cache=True)
    with ans_examples_box:  # the slow judge is off in the examples; tick it and press Compare to ask it
        examples([[q, r, c, True, False, "NFC"] for _, q, r, c in ANSWER_EXAMPLES],
                 [ans_q, ans_ref, ans_cands, ans_sem, ans_judge, ans_form],
                 labels=[e[0] for e in ANSWER_EXAMPLES], fn=user_errors(on_gpu(make_compare_answers(engine))),
                 outputs=[ans_table, ans_prompt, ans_json], cache=True)
    # a link to this tab reopens it with the same text and knobs, and scores the text
    return Share(params={"text": ppl_text, "window": ctl["window"], "stride": ctl["stride"], "model": ppl_model},
                 run=score, run_inputs=[ppl_model, ppl_text, ctl["window"], ctl["stride"]],
                 run_outputs=[ppl_html, ppl_math, ppl_plot, ppl_json])
