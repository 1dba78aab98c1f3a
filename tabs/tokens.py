"""Tokens: the same text cut into pieces by real tokenizers side by side, ids, the decode round
trip, padded batches with attention masks, chat templates and fill-in-the-middle sentinels."""
from __future__ import annotations

import gradio as gr

from engine import UserInputError
from engine import tokens as T
from tabs._ui import Share, control_for, data_table, examples, notice, progress_callback, scratch_dir, user_errors

TITLE = "Tokens"
DEFAULT_PICKS = ("tok-gpt2", "tok-cl100k", "tok-bert-uncased", "tok-llama2")
NEW_PICKS = ("tok-llama3", "tok-tekken", "tok-deepseek-llm", "tok-command-r")  # today's families
INTRO = (
    "## Text is not what the model sees\n"
    "A tokenizer cuts text into pieces from a fixed vocabulary and gives each piece a number (its id); "
    "the model only ever sees the ids. Same text, different tokenizers, different pieces: compare "
    "them below. Each colour stands for one id (the same id has the same colour everywhere), "
    "`·` is a space, `↵` a new line, `→` a tab, dashed boxes are raw bytes (part of a character), "
    "outlined boxes are special tokens."
)
# Curated comparisons: (example name in T.EXAMPLES, the tokenizers that show its point best).
EXAMPLE_PICKS = (
    ("Mixed (start here)", DEFAULT_PICKS),
    ("Mixed: today's tokenizers", NEW_PICKS),
    ("Capital letters", ("tok-gpt2", "tok-cl100k", "tok-bert-uncased", "tok-llama2")),
    ("Emoji", ("tok-gpt2", "tok-o200k", "tok-llama2", "tok-qwen2")),
    ("Code with indentation", ("tok-gpt2", "tok-cl100k", "tok-starcoder", "tok-llama2")),
    ("Numbers and dates", ("tok-gpt2", "tok-cl100k", "tok-llama2", "tok-phi3")),
    ("Spaces and newlines", ("tok-gpt2", "tok-cl100k", "tok-bert-uncased", "tok-llama2")),
    ("CJK and other scripts", ("tok-gpt2", "tok-o200k", "tok-qwen2", "tok-llama2")),
    ("Accents", ("tok-gpt2", "tok-bert-uncased", "tok-llama2", "toy-byte")),
)
# Vocabulary sizes from the course notes: (name, registry key, size). Whether each is in the list
# is read from the registry, so the note never says a shipped tokenizer is missing.
VOCAB_FACTS = (("BERT", "tok-bert-uncased", 30_522), ("GPT-2", "tok-gpt2", 50_257),
               ("RoBERTa", "tok-roberta", 50_265), ("T5", "tok-t5", 32_128))


def facts(usable_keys) -> str:
    """The vocabulary-size note: which of these tokenizers are in the list, which only online."""
    fmt = lambda rows: " · ".join(f"{name} {size:,}" for name, _, size in rows)  # noqa: E731
    here = [r for r in VOCAB_FACTS if r[1] in usable_keys]
    away = [r for r in VOCAB_FACTS if r[1] not in usable_keys]
    parts = []
    if here:
        parts.append(f"{fmt(here)} (in the list above)")
    if away:
        parts.append(f"{fmt(away)} (not shipped here: online they load from the Hub and appear in the list)")
    return "Vocabulary sizes (from the course notes): " + "; ".join(parts) + "."


def label(spec) -> str:
    """A picker label: the title (family · name (vocabulary, algorithm)) and its licence beside it."""
    return f"{spec.title} — {spec.license}" if spec.license and spec.license != "project" else spec.title


def _choices(engine, only=None) -> list[tuple[str, str]]:
    usable = T.tokenizer_keys(engine)
    keys = usable if only is None else [k for k in only if k in usable]
    return [(label(engine.registry.get(key)), key) for key in keys]


# Ids to paste into "Ids → text": (label, tokenizer, ids).
DECODE_EXAMPLES = (
    ("Llama 3: 'Hello world 🦙' (the emoji is 3 byte pieces)", "tok-llama3", "[9906, 1917, 11410, 99, 247]"),
    ("GPT-2 ids, one per line", "tok-gpt2", "15496\n995\n0"),
    ("Same ids, other tokenizer: other text", "tok-cl100k", "15496, 995, 0"),
    ("Special tokens decode too (Qwen2 chat markers)", "tok-qwen2", "151644 872 198 13048 151645"),
)


def build(engine) -> Share:
    choices = _choices(engine)
    keys = [k for _, k in choices]
    defaults = [k for k in DEFAULT_PICKS if k in keys] or keys[:2]

    gr.Markdown(INTRO)
    with gr.Tabs():
        with gr.Tab("Side by side"):
            with gr.Row():
                with gr.Column(scale=3):
                    text = gr.Textbox(value=T.EXAMPLES["Mixed (start here)"], lines=6, max_lines=14,
                                      label="Text", elem_id="tok-text")
                with gr.Column(scale=2):
                    picks = gr.Dropdown(choices=choices, value=defaults, multiselect=True, max_choices=4,
                                        label="Tokenizers (2 to 4 side by side)", elem_id="tok-picks")
                    with gr.Row():
                        show_ids = gr.Checkbox(value=True, label="show ids")
                        long_btn = gr.Button("Paste 100 kB of text", size="sm")
                    max_render = control_for(T.TokensSettings, "max_render")
            run = gr.Button("Tokenize", variant="primary", elem_id="tok-run")
            example_rows = [(name, [k for k in picks_ if k in keys]) for name, picks_ in EXAMPLE_PICKS
                            if name in T.EXAMPLES]
            example_box = gr.Column()  # filled once the listener exists (below)
            notice("Capital letters, emoji, indentation and non-English text cost very different numbers of "
                   "tokens in different tokenizers: more tokens = more compute and less room in the context.")
            view = gr.HTML(elem_id="tok-side-by-side")
            stats = data_table("tokenizer-stats", headers=T.STATS_HEADERS, interactive=False, wrap=True, label="Per tokenizer",
                                 elem_id="tok-stats")
            gr.Markdown(f"<div class='notice'>{facts(keys)}</div>")
            with gr.Accordion("Decode round trip: does decode(encode(text)) give the text back?", open=False):
                rt_btn = gr.Button("Decode round trip")
                rt_view = gr.HTML()
            with gr.Accordion("Token table, ids as JSON, CSV export", open=False):
                with gr.Row():
                    one = gr.Dropdown(choices=choices, value=defaults[0] if defaults else None, label="Tokenizer")
                    table_btn = gr.Button("Show its tokens")
                    csv_btn = gr.Button("Export CSV (every token, chosen tokenizers)")
                table = data_table("first-tokens", headers=T.CSV_HEADERS, label="First tokens")
                ids_json = gr.JSON(label="ids (all of them) and counts")
                csv_file = gr.File(label="CSV", interactive=False)

        with gr.Tab("Ids → text"):
            gr.Markdown("Paste token ids (a Python/JSON list, one per line, or separated by spaces or commas) to see "
                        "the piece each id stands for and the text they decode to. The same ids mean different "
                        "text in another tokenizer: an id is only a row number in one vocabulary.")
            with gr.Row():
                dec_tok = gr.Dropdown(choices=choices, value="tok-llama3" if "tok-llama3" in keys else
                                      (keys[0] if keys else None), label="Tokenizer", elem_id="tok-dec-tok")
                dec_ids = gr.Textbox(value=DECODE_EXAMPLES[0][2], lines=3, max_lines=10,
                                     label=f"ids (at most {T.MAX_IDS:,})", elem_id="tok-dec-ids")
            dec_btn = gr.Button("Decode", variant="primary", elem_id="tok-dec-run")
            dec_box = gr.Column()
            dec_view = gr.HTML(elem_id="tok-decoded")
            with gr.Accordion("As JSON (ids, pieces, text)", open=False):
                dec_json = gr.JSON(label="decoded")

        with gr.Tab("Batch: padding & attention mask"):
            gr.Markdown("A model takes a batch as one rectangle: shorter sentences are **padded**, longer ones "
                        "**truncated**, and the **attention mask** tells the model which positions are real (1) "
                        "and which are padding (0).")
            with gr.Row():
                sentences = gr.Textbox(value="The cat sat.\nTokenizers cut text into pieces, and models read "
                                             "the pieces as numbers.\nHi!", lines=5, label="Sentences, one per line")
                with gr.Column():
                    batch_tok = gr.Dropdown(choices=choices, value="tok-bert-uncased" if "tok-bert-uncased" in keys
                                            else (keys[0] if keys else None), label="Tokenizer")
                    side = gr.Radio(choices=list(T.PAD_SIDES), value="right", label="padding side",
                                    info="decoder-only models generate after the last token, so they pad on the left")
                    max_len = control_for(T.TokensSettings, "max_length")
                    with gr.Row():
                        truncation = gr.Checkbox(value=True, label="truncate to max_length")
                        add_special = gr.Checkbox(value=True, label="add the model's special tokens")
                    pad_to = gr.Radio(choices=list(T.PAD_TO), value="longest", label="pad to")
            batch_btn = gr.Button("Encode the batch", variant="primary")
            notice("BERT wraps every sentence in [CLS] … [SEP]; GPT-2 and the tiktoken encodings add nothing and "
                   "have no pad token; Llama adds &lt;s&gt; at the start. Padding never changes the real tokens.")
            batch_view = gr.HTML(elem_id="tok-batch")
            with gr.Accordion("What the model receives (input_ids, attention_mask as JSON)", open=False):
                batch_json = gr.JSON(label="batch")

        with gr.Tab("Special tokens: chat & FIM"):
            gr.Markdown("### Chat template\nAn instruct model never sees 'roles': its chat template turns the "
                        "conversation into one text with special tokens that mark who speaks.")
            with gr.Row():
                chat_choices = _choices(engine, T.CHAT_KEYS)
                chat_tok = gr.Dropdown(choices=chat_choices, value=chat_choices[0][1] if chat_choices else None,
                                       label="Instruct tokenizer")
                system = gr.Textbox(value="You are a friendly tutor.", label="system")
                user = gr.Textbox(value="What is a token?", label="user")
                assistant = gr.Textbox(value="", label="assistant (optional)")
            chat_btn = gr.Button("Show the chat template as tokens")
            chat_view = gr.HTML(elem_id="tok-chat")
            with gr.Accordion("Token counts as JSON", open=False):
                chat_json = gr.JSON(label="tokens per message and in all")
            gr.Markdown("### Fill in the middle\nCode models can complete a gap: the prompt is the code before the "
                        "gap and the code after it, marked by sentinel tokens; the model writes the middle.")
            with gr.Row():
                fim_choices = _choices(engine, T.FIM_KEYS)
                fim_tok = gr.Dropdown(choices=fim_choices, value=fim_choices[0][1] if fim_choices else None,
                                      label="Code tokenizer")
                prefix = gr.Textbox(value="def average(xs):\n    ", lines=3, label="code before the gap")
                suffix = gr.Textbox(value="\n    return total / len(xs)\n", lines=3, label="code after the gap")
            fim_btn = gr.Button("Show the FIM prompt as tokens")
            fim_view = gr.HTML()

    # Register listeners
    def compare_tokenizers(text, keys, max_render, show_ids, progress=gr.Progress()):
        results = T.compare(engine, keys, text, max_render, progress_callback(progress))
        return T.render_side_by_side(results, bool(show_ids), text), T.stats_rows(results)

    def decode_ids(key, ids, progress=gr.Progress()):
        return T.decode_view(engine, key, ids, progress_callback(progress))

    def tokenize(text, key, max_render, progress=gr.Progress()):
        r = T.tokenize(engine, key, text, max_render, progress_callback(progress))
        return T.token_table(engine, key, text, limit=int(max_render)), {
            **r.stats(), "ids": r.ids, "pieces": [p.text for p in r.pieces], "shown": r.shown}

    def round_trip(text, keys, progress=gr.Progress()):
        keys = list(keys or [])
        if not 1 <= len(keys) <= 4:
            raise UserInputError(f"Choose 1 to 4 tokenizers, got {len(keys)}.")
        return T.render_round_trips([T.round_trip(engine, k, text, progress_callback(progress)) for k in keys])

    def export_csv(text, keys):
        path = scratch_dir("tokens") / "tokens.csv"
        path.write_text(T.token_csv(engine, keys, text), encoding="utf-8")
        return str(path)

    def batch_encode(sentences, key, side, max_len, truncation, pad_to, add_special, progress=gr.Progress()):
        b = T.batch_encode(engine, key, sentences, side, max_len, bool(truncation), pad_to, bool(add_special),
                           progress_callback(progress))
        return T.render_batch_html(b), b.as_dict()

    def chat_template(key, system, user, assistant, progress=gr.Progress()):
        _, html, counts = T.chat_build(engine, key, system, user, assistant, progress_callback(progress))
        return html, counts

    def fim_prompt(key, prefix, suffix, progress=gr.Progress()):
        return T.fim_view(engine, key, prefix, suffix, progress_callback(progress))[1]

    cmp_in, cmp_out = [text, picks, max_render, show_ids], [view, stats]
    run.click(user_errors(compare_tokenizers), cmp_in, cmp_out, api_name="compare_tokenizers")
    # Re-render on the user's own edits (.input), not on .change: a deep link or an example sets
    # these inputs and renders once itself; .change would render (or refuse) a second time.
    gr.on([text.input, picks.input, show_ids.input, max_render.release], user_errors(compare_tokenizers),
          cmp_in, cmp_out, trigger_mode="always_last", show_progress="minimal", api_visibility="private")
    with example_box:
        # Cheap and deterministic: each example's result is cached the first time it is clicked.
        examples([[T.EXAMPLES[name], picks_, T.TokensSettings().max_render, True] for name, picks_ in example_rows],
                 cmp_in, labels=[name for name, _ in example_rows], fn=user_errors(compare_tokenizers),
                 outputs=cmp_out, cache=True, label="Examples: where tokenizers differ")
    long_btn.click(lambda: T.long_text(100_000), None, text, api_visibility="private").then(
        user_errors(compare_tokenizers), cmp_in, cmp_out, api_visibility="private")
    rt_btn.click(user_errors(round_trip), [text, picks], rt_view, api_name="round_trip")
    table_btn.click(user_errors(tokenize), [text, one, max_render], [table, ids_json], api_name="tokenize")
    csv_btn.click(user_errors(export_csv), [text, picks], csv_file, api_name="export_tokens_csv")
    batch_in = [sentences, batch_tok, side, max_len, truncation, pad_to, add_special]
    batch_btn.click(user_errors(batch_encode), batch_in, [batch_view, batch_json], api_name="batch_encode")
    gr.on([batch_tok.change, side.change, max_len.release, truncation.change, pad_to.change, add_special.change],
          user_errors(batch_encode), batch_in, [batch_view, batch_json], trigger_mode="always_last",
          api_visibility="private")
    chat_btn.click(user_errors(chat_template), [chat_tok, system, user, assistant], [chat_view, chat_json],
                   api_name="chat_template")
    dec_in, dec_out = [dec_tok, dec_ids], [dec_view, dec_json]
    dec_btn.click(user_errors(decode_ids), dec_in, dec_out, api_name="decode_ids")
    with dec_box:
        examples([[k, ids] for _, k, ids in DECODE_EXAMPLES if k in keys], dec_in,
                 labels=[name for name, k, _ in DECODE_EXAMPLES if k in keys], fn=user_errors(decode_ids),
                 outputs=dec_out, cache=True, label="Examples: ids to decode")
    # The hover highlight: one delegated listener, installed by the first render of either view.
    for v in (view, dec_view):
        v.change(None, js=T.HOVER_JS, api_visibility="private", queue=False)
    fim_btn.click(user_errors(fim_prompt), [fim_tok, prefix, suffix], fim_view, api_name="fim_prompt")

    def linked(text, keys, max_render, show_ids, ids, ids_key):
        """A deep link renders the comparison, and the ids when the link carries some."""
        out = list(user_errors(compare_tokenizers)(text, keys, max_render, show_ids))
        if ids and str(ids).strip():
            try:
                return out + list(T.decode_view(engine, ids_key, ids))
            except UserInputError as err:  # bad ids in a link: say so, keep the comparison
                gr.Warning(str(err))
        return out + [gr.skip(), gr.skip()]

    # Deep link: ?tab=tokens&text=...&picks=tok-gpt2,tok-cl100k reopens this exact comparison;
    # &ids=9906,1917&ids_tok=tok-llama3 also fills and decodes "Ids → text".
    return Share(params={"text": text, "picks": picks, "show_ids": show_ids, "max_render": max_render,
                         "ids": dec_ids, "ids_tok": dec_tok},
                 run=linked, run_inputs=cmp_in + dec_in[::-1], run_outputs=cmp_out + dec_out)
