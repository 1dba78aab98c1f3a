"""Tokens: the same text cut into pieces by real tokenizers side by side, ids, the decode round
trip, padded batches with attention masks, chat templates and fill-in-the-middle sentinels."""
from __future__ import annotations

import gradio as gr

from engine import UserInputError
from engine import tokens
from tabs._ui import (Share, control_for, data_table, examples, first_view, notice, progress_callback, scratch_dir,
                      user_errors, view_link, warn)

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
# Curated comparisons: (example name in tokens.EXAMPLES, the tokenizers that show its point best).
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
    usable = tokens.tokenizer_keys(engine)
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
    with gr.Tabs(overflow_behavior="wrap") as views:
        with gr.Tab("Side by side", id="side") as side_tab:
            side = _side_by_side_panel(choices, keys, defaults)
        with gr.Tab("Ids → text", id="ids") as ids_tab:
            dec = _decode_panel(choices, keys)
        with gr.Tab("Batch: padding & attention mask", id="batch") as batch_tab:
            batch = _batch_panel(choices, keys)
        with gr.Tab("Special tokens: chat & FIM", id="special") as special_tab:
            special = _special_panel(engine)
    sub_view = view_link({"side": side_tab, "ids": ids_tab, "batch": batch_tab, "special": special_tab})

    compare_tokenizers = _wire_compare(engine, side, keys)
    _wire_exports(engine, side)
    _wire_batch(engine, batch)
    first_view(batch["run"], batch["view"], tab=batch_tab)  # the default batch, drawn when the view opens
    _wire_chat_template(engine, special)
    _wire_decode(engine, dec, keys)
    # The hover highlight: one delegated listener, installed by the first render of either view.
    for v in (side["view"], dec["view"]):
        v.change(None, js=tokens.HOVER_JS, api_visibility="private", queue=False)
    _wire_fim(engine, special)
    return _deep_link(engine, side, dec, compare_tokenizers, sub_view, views)


def _side_by_side_panel(choices, keys, defaults) -> dict:
    """The Side by side sub-tab: text, tokenizers, the comparison, the round trip and the exports."""
    parts = {}
    with gr.Row():
        with gr.Column(scale=3):
            parts["text"] = gr.Textbox(value=tokens.EXAMPLES["Mixed (start here)"], lines=6, max_lines=14,
                                       label="Text", elem_id="tok-text")
        with gr.Column(scale=2):
            parts["picks"] = gr.Dropdown(choices=choices, value=defaults, multiselect=True, max_choices=4,
                                         label="Tokenizers (2 to 4 side by side)", elem_id="tok-picks")
            with gr.Row():
                parts["show_ids"] = gr.Checkbox(value=True, label="show ids")
                parts["long"] = gr.Button("Paste 100 kB of text", size="sm")
            parts["max_render"] = control_for(tokens.TokensSettings, "max_render")
    parts["run"] = gr.Button("Tokenize", variant="primary", elem_id="tok-run")
    parts["examples"] = gr.Column()  # filled once the listener exists (_wire_compare)
    notice("Capital letters, emoji, indentation and non-English text cost very different numbers of "
           "tokens in different tokenizers: more tokens = more compute and less room in the context.")
    parts["view"] = gr.HTML(elem_id="tok-side-by-side")
    parts["stats"] = data_table("tokenizer-stats", headers=tokens.STATS_HEADERS, interactive=False, wrap=True,
                                label="Per tokenizer", elem_id="tok-stats",
                                column_widths=["13%", "11%", "6%", "9%", "9%", "7%", "12%", "7%", "13%", "13%"])
    gr.Markdown(f"<div class='notice'>{facts(keys)}</div>")
    with gr.Accordion("Decode round trip: does decode(encode(text)) give the text back?", open=False):
        parts["rt_run"] = gr.Button("Decode round trip")
        parts["rt_view"] = gr.HTML()
    with gr.Accordion("Token table, ids as JSON, CSV export", open=False):
        with gr.Row():
            parts["one"] = gr.Dropdown(choices=choices, value=defaults[0] if defaults else None, label="Tokenizer")
            parts["table_run"] = gr.Button("Show its tokens")
            parts["csv_run"] = gr.Button("Export CSV (every token, chosen tokenizers)")
        parts["table"] = data_table("first-tokens", headers=tokens.CSV_HEADERS, label="First tokens")
        parts["ids_json"] = gr.JSON(label="ids (all of them) and counts")
        parts["csv_file"] = gr.File(label="CSV", interactive=False)
    return parts


def _decode_panel(choices, keys) -> dict:
    """The Ids → text sub-tab."""
    gr.Markdown("Paste token ids (a Python/JSON list, one per line, or separated by spaces or commas) to see "
                "the piece each id stands for and the text they decode to. The same ids mean different "
                "text in another tokenizer: an id is only a row number in one vocabulary.")
    parts = {}
    with gr.Row():
        parts["tok"] = gr.Dropdown(choices=choices, value="tok-llama3" if "tok-llama3" in keys else
                                   (keys[0] if keys else None), label="Tokenizer", elem_id="tok-dec-tok")
        parts["ids"] = gr.Textbox(value=DECODE_EXAMPLES[0][2], lines=3, max_lines=10,
                                  label=f"ids (at most {tokens.MAX_IDS:,})", elem_id="tok-dec-ids")
    parts["run"] = gr.Button("Decode", variant="primary", elem_id="tok-dec-run")
    parts["examples"] = gr.Column()
    parts["view"] = gr.HTML(elem_id="tok-decoded")
    with gr.Accordion("As JSON (ids, pieces, text)", open=False):
        parts["json"] = gr.JSON(label="decoded")
    return parts


def _batch_panel(choices, keys) -> dict:
    """The Batch sub-tab: sentences, padding and truncation knobs, the padded batch."""
    gr.Markdown("A model takes a batch as one rectangle: shorter sentences are **padded**, longer ones "
                "**truncated**, and the **attention mask** tells the model which positions are real (1) "
                "and which are padding (0).")
    parts = {}
    with gr.Row():
        parts["sentences"] = gr.Textbox(value="The cat sat.\nTokenizers cut text into pieces, and models read "
                                              "the pieces as numbers.\nHi!", lines=5, label="Sentences, one per line")
        with gr.Column():
            parts["tok"] = gr.Dropdown(choices=choices, value="tok-bert-uncased" if "tok-bert-uncased" in keys
                                       else (keys[0] if keys else None), label="Tokenizer")
            parts["side"] = gr.Radio(choices=list(tokens.PAD_SIDES), value="right", label="padding side",
                                     info="decoder-only models generate after the last token, so they pad on the left")
            parts["max_len"] = control_for(tokens.TokensSettings, "max_length")
            with gr.Row():
                parts["truncation"] = gr.Checkbox(value=True, label="truncate to max_length")
                parts["add_special"] = gr.Checkbox(value=True, label="add the model's special tokens")
            parts["pad_to"] = gr.Radio(choices=list(tokens.PAD_TO), value="longest", label="pad to")
    parts["run"] = gr.Button("Encode the batch", variant="primary", elem_id="tok-batch-run")
    notice("BERT wraps every sentence in [CLS] … [SEP]; GPT-2 and the tiktoken encodings add nothing and "
           "have no pad token; Llama adds <s> at the start. Padding never changes the real tokens.")
    parts["view"] = gr.HTML(elem_id="tok-batch")
    with gr.Accordion("What the model receives (input_ids, attention_mask as JSON)", open=False):
        parts["json"] = gr.JSON(label="batch")
    return parts


def _special_panel(engine) -> dict:
    """The Special tokens sub-tab: a chat template and a fill-in-the-middle prompt, as tokens."""
    gr.Markdown("### Chat template\nAn instruct model never sees 'roles': its chat template turns the "
                "conversation into one text with special tokens that mark who speaks.")
    parts = {}
    with gr.Row():
        chat_choices = _choices(engine, tokens.CHAT_KEYS)
        parts["chat_tok"] = gr.Dropdown(choices=chat_choices, value=chat_choices[0][1] if chat_choices else None,
                                        label="Instruct tokenizer")
        parts["system"] = gr.Textbox(value="You are a friendly tutor.", label="system")
        parts["user"] = gr.Textbox(value="What is a token?", label="user")
        parts["assistant"] = gr.Textbox(value="", label="assistant (optional)")
    parts["chat_run"] = gr.Button("Show the chat template as tokens")
    parts["chat_view"] = gr.HTML(elem_id="tok-chat")
    with gr.Accordion("Token counts as JSON", open=False):
        parts["chat_json"] = gr.JSON(label="tokens per message and in all")
    gr.Markdown("### Fill in the middle\nCode models can complete a gap: the prompt is the code before the "
                "gap and the code after it, marked by sentinel tokens; the model writes the middle.")
    with gr.Row():
        fim_choices = _choices(engine, tokens.FIM_KEYS)
        parts["fim_tok"] = gr.Dropdown(choices=fim_choices, value=fim_choices[0][1] if fim_choices else None,
                                       label="Code tokenizer")
        parts["prefix"] = gr.Textbox(value="def average(xs):\n    ", lines=3, label="code before the gap")
        parts["suffix"] = gr.Textbox(value="\n    return total / len(xs)\n", lines=3, label="code after the gap")
    parts["fim_run"] = gr.Button("Show the FIM prompt as tokens")
    parts["fim_view"] = gr.HTML()
    return parts


def _compare_inputs(side) -> tuple[list, list]:
    """The comparison's inputs and outputs."""
    return [side["text"], side["picks"], side["max_render"], side["show_ids"]], [side["view"], side["stats"]]


def _wire_compare(engine, side, keys):
    """The comparison: its button, re-renders on edits, the examples, the long text; returns its listener."""
    def compare_tokenizers(text, keys, max_render, show_ids, progress=gr.Progress()):
        results = tokens.compare(engine, keys, text, max_render, progress_callback(progress))
        return tokens.render_side_by_side(results, bool(show_ids), text), tokens.stats_rows(results)

    cmp_in, cmp_out = _compare_inputs(side)
    text = side["text"]
    side["run"].click(user_errors(compare_tokenizers), cmp_in, cmp_out, api_name="compare_tokenizers")
    # Re-render on the user's own edits (.input), not on .change: a deep link or an example sets
    # these inputs and renders once itself; .change would render (or refuse) a second time.
    gr.on([text.input, side["picks"].input, side["show_ids"].input, side["max_render"].release],
          user_errors(compare_tokenizers), cmp_in, cmp_out, trigger_mode="always_last", show_progress="minimal",
          api_visibility="private")
    example_rows = [(name, [k for k in picks_ if k in keys]) for name, picks_ in EXAMPLE_PICKS
                    if name in tokens.EXAMPLES]
    with side["examples"]:
        # Cheap and deterministic: each example's result is cached the first time it is clicked.
        examples([[tokens.EXAMPLES[name], picks_, tokens.TokensSettings().max_render, True]
                  for name, picks_ in example_rows],
                 cmp_in, labels=[name for name, _ in example_rows], fn=user_errors(compare_tokenizers),
                 outputs=cmp_out, cache=True, label="Examples: where tokenizers differ")
    side["long"].click(lambda: tokens.long_text(100_000), None, text, api_visibility="private").then(
        user_errors(compare_tokenizers), cmp_in, cmp_out, api_visibility="private")
    return compare_tokenizers


def _wire_exports(engine, side):
    """The round trip, the token table with its ids, and the CSV export."""
    def tokenize(text, key, max_render, progress=gr.Progress()):
        r = tokens.tokenize(engine, key, text, max_render, progress_callback(progress))
        return tokens.token_table(engine, key, text, limit=int(max_render)), {
            **r.stats(), "ids": r.ids, "pieces": [p.text for p in r.pieces], "shown": r.shown}

    def round_trip(text, keys, progress=gr.Progress()):
        keys = list(keys or [])
        if not 1 <= len(keys) <= 4:
            raise UserInputError(f"Choose 1 to 4 tokenizers, got {len(keys)}.")
        return tokens.render_round_trips([tokens.round_trip(engine, k, text, progress_callback(progress))
                                          for k in keys])

    def export_csv(text, keys):
        path = scratch_dir("tokens") / "tokens.csv"
        path.write_text(tokens.token_csv(engine, keys, text), encoding="utf-8")
        return str(path)

    text, picks = side["text"], side["picks"]
    side["rt_run"].click(user_errors(round_trip), [text, picks], side["rt_view"], api_name="round_trip")
    side["table_run"].click(user_errors(tokenize), [text, side["one"], side["max_render"]],
                            [side["table"], side["ids_json"]], api_name="tokenize")
    side["csv_run"].click(user_errors(export_csv), [text, picks], side["csv_file"], api_name="export_tokens_csv")


def _wire_batch(engine, batch):
    def batch_encode(sentences, key, side, max_len, truncation, pad_to, add_special, progress=gr.Progress()):
        b = tokens.batch_encode(engine, key, sentences, side, max_len, bool(truncation), pad_to, bool(add_special),
                                progress_callback(progress))
        return tokens.render_batch_html(b), b.as_dict()

    batch_in = [batch[k] for k in ("sentences", "tok", "side", "max_len", "truncation", "pad_to", "add_special")]
    batch_out = [batch["view"], batch["json"]]
    batch["run"].click(user_errors(batch_encode), batch_in, batch_out, api_name="batch_encode")
    gr.on([batch["tok"].change, batch["side"].change, batch["max_len"].release, batch["truncation"].change,
           batch["pad_to"].change, batch["add_special"].change],
          user_errors(batch_encode), batch_in, batch_out, trigger_mode="always_last", api_visibility="private")


def _wire_chat_template(engine, special):
    def chat_template(key, system, user, assistant, progress=gr.Progress()):
        _, html, counts = tokens.chat_build(engine, key, system, user, assistant, progress_callback(progress))
        return html, counts

    special["chat_run"].click(user_errors(chat_template),
                              [special["chat_tok"], special["system"], special["user"], special["assistant"]],
                              [special["chat_view"], special["chat_json"]], api_name="chat_template")


def _wire_decode(engine, dec, keys):
    def decode_ids(key, ids, progress=gr.Progress()):
        return tokens.decode_view(engine, key, ids, progress_callback(progress))

    dec_in, dec_out = [dec["tok"], dec["ids"]], [dec["view"], dec["json"]]
    dec["run"].click(user_errors(decode_ids), dec_in, dec_out, api_name="decode_ids")
    with dec["examples"]:
        examples([[k, ids] for _, k, ids in DECODE_EXAMPLES if k in keys], dec_in,
                 labels=[name for name, k, _ in DECODE_EXAMPLES if k in keys], fn=user_errors(decode_ids),
                 outputs=dec_out, cache=True, label="Examples: ids to decode")


def _wire_fim(engine, special):
    def fim_prompt(key, prefix, suffix, progress=gr.Progress()):
        return tokens.fim_view(engine, key, prefix, suffix, progress_callback(progress))[1]

    special["fim_run"].click(user_errors(fim_prompt), [special["fim_tok"], special["prefix"], special["suffix"]],
                             special["fim_view"], api_name="fim_prompt")


def _deep_link(engine, side, dec, compare_tokenizers, sub_view, views) -> Share:
    """sub_view: view_link's box and open_view for the sub-tabs (views)."""
    view, open_view = sub_view

    def linked(name, text, keys, max_render, show_ids, ids, ids_key):
        """A deep link renders the comparison, and the ids when the link carries some, and
        opens the linked sub-view (&view=ids|batch|special)."""
        out = list(user_errors(compare_tokenizers)(text, keys, max_render, show_ids))
        if ids and str(ids).strip():
            try:
                return out + list(tokens.decode_view(engine, ids_key, ids)) + [open_view(name)]
            except UserInputError as err:  # bad ids in a link: say so, keep the comparison
                warn(err)
        return out + [gr.skip(), gr.skip(), open_view(name)]

    def drawn_on_load(name, text, keys, max_render, show_ids, ids, ids_key):
        """Every page load: the counts of the default text (tokenizers load once, then it is cheap)."""
        try:
            return list(compare_tokenizers(text, keys, max_render, show_ids)) + [gr.skip()] * 3
        except UserInputError:  # nothing to compare (no tokenizer usable here): the button says why
            return [gr.skip()] * 5

    cmp_in, cmp_out = _compare_inputs(side)
    # Deep link: ?tab=tokens&text=...&picks=tok-gpt2,tok-cl100k reopens this exact comparison;
    # &ids=9906,1917&ids_tok=tok-llama3 also fills and decodes "Ids → text".
    return Share(params={"text": side["text"], "picks": side["picks"], "show_ids": side["show_ids"],
                         "max_render": side["max_render"], "ids": dec["ids"], "ids_tok": dec["tok"], "view": view},
                 run=linked, run_inputs=[view, *cmp_in, dec["ids"], dec["tok"]],
                 run_outputs=cmp_out + [dec["view"], dec["json"], views], on_load=drawn_on_load)
