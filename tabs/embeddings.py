"""Embeddings & attention: look inside a transformer with the models the app ships.

Attention heatmaps per layer and head (encoder vs causal), bertviz's views rendered offline,
the word "bank" in two senses across layers, and a mini vector search (the retrieval step of RAG)
next to TF-IDF. The engine does the model work; this file lays out and wires the widgets."""
from __future__ import annotations

import gradio as gr

from engine.core.errors import UserInputError, check_range
from engine.core.markdown import md_code_block, md_text
from engine.embeddings import attention as att
from engine.embeddings import bertviz_page
from engine.embeddings import vectors as emb
from engine.embeddings import plots
from tabs._ui import (HEAVY, ModelSlider, Plot, Share, clamp_slider, data_table, examples, first_view, notice, on_gpu,
                      progress_callback, user_errors, view_link)

TITLE = "Embeddings & attention"

DEFAULT_TEXT = "The animal didn't cross the street because it was too tired."
MODEL_CHOICES = [("Encoder: all-MiniLM-L6-v2 (sees both sides)", "minilm-l6"),
                 ("Causal: SmolLM2-135M (sees only the past)", "smollm2-135m-instruct")]
def model_options(engine) -> list[tuple[str, str]]:
    """MODEL_CHOICES, then the encoders and causal LMs added to the registry (the operator's --model rows,
    the Hub rows when online), labelled with what they see and where they come from."""
    sees = {"encoder": "Encoder", "causal-lm": "Causal"}
    extra = [k for k in att.attention_models(engine) if k not in att.ATTENTION_MODELS]
    return MODEL_CHOICES + [(f"{sees[engine.registry.get(k).task]}: {engine.registry.get(k).title}", k) for k in extra]


VIEW_CHOICES = [("Head view (one layer, lines between tokens)", "head"),
                ("Model view (every layer x every head)", "model")]
LIGHT = dict(concurrency_limit=None)  # re-plotting from state: no model work


# Clicking a heatmap cell picks its row (the query token): plotly's click event writes the row
# into a hidden textbox, whose change event re-plots from state. The hook is attached after
# each redraw (the plot element can be replaced), once per element.
HOOK_CLICKS_JS = """() => {
  const hook = (tries) => {
    const plot = document.querySelector('#att-heatmap .js-plotly-plot');
    if (!plot || !plot.on) { if (tries > 0) setTimeout(() => hook(tries - 1), 250); return; }
    if (plot.dataset.clickHooked) return;
    plot.dataset.clickHooked = '1';
    plot.on('plotly_click', (ev) => {
      const box = document.querySelector('#att-click textarea, #att-click input');
      if (!box || !ev.points.length) return;
      box.value = ev.points[0].y + ':' + Date.now();  // a new value on every click
      box.dispatchEvent(new Event('input', {bubbles: true}));
    });
  };
  hook(20);
}"""

SUITCASE_TEXT = "The trophy didn't fit in the suitcase because it was too small."
# What MiniLM's heads do with 'it' (scripts/find_coreference_head.py scans them all; test_embeddings
# recomputes the numbers): the strongest 'it' head picks the subject, not the noun 'it' means.
ATTENTION_NOTICE = (
    "Each row is one token looking at the others and sums to 1. Many heads send most weight to [CLS], [SEP] "
    "or the first token: a 'no-op' they fall back on. Layer 1, head 3 looks at the previous word. In layer 4, "
    "head 2, 'it' sends 0.68 of its weight to 'animal', the subject; in the suitcase example it sends 0.61 to "
    "'trophy', the subject again, though there 'it' means the suitcase. The head follows the sentence's form, "
    "not its meaning: no MiniLM head picks the meant noun in all four sentences that "
    "scripts/find_coreference_head.py tries.")

# Examples: (label, text, model) for the heatmap; (label, sentences, word) for the senses.
ATTENTION_EXAMPLES = (
    ("Pronoun: 'it' = the animal", DEFAULT_TEXT, "minilm-l6"),
    ("Pronoun: 'it' = the suitcase", SUITCASE_TEXT, "minilm-l6"),
    ("Agreement across words", "The keys to the old cabinet are on the kitchen table.", "minilm-l6"),
    ("Causal: only the past", "Once upon a time there was a little dragon who loved books.", "smollm2-135m-instruct"),
)
SENSE_EXAMPLES = (
    ("bank: river or money", "\n".join(emb.BANK_SENTENCES), "bank"),
    ("bat: animal or sport", "A bat flew out of the cave at dusk.\nThe bat hung upside down from the branch.\n"
     "He swung the bat and hit the ball.\nShe bought a new cricket bat for the season.", "bat"),
    ("pitch: sound or field", "The singer hit a very high pitch.\nThe violin was tuned to the right pitch.\n"
     "The players ran onto the pitch.\nRain flooded the football pitch.", "pitch"),
    ("apple: fruit or company", "She ate a crisp apple from the tree.\nApple pie needs sour apples.\n"
     "Apple released a new phone this year.\nShares of Apple rose after the launch.", "apple"),
)


# --- listener bodies (plain functions: the engine validates, user_errors maps errors) -------


def _token_choices(maps: att.AttentionMaps) -> list[tuple[str, int]]:
    return [(f"{i} · {t}", i) for i, t in enumerate(maps.tokens)]


def _views(maps: att.AttentionMaps, layer, head, mean_heads: bool, token):
    head = None if mean_heads else head
    token = att.default_token(maps) if token is None else att.check_token(maps, token)
    return (plots.heatmap(maps, layer, head, token), plots.attends_bar(maps, layer, head, token),
            plots.head_grid(maps, int(layer)), att.summary(maps, layer, head, token))


def _shape_line(maps: att.AttentionMaps) -> str:
    kind = "causal: the future is masked, rows sum to 1 over the past" if maps.causal else \
        "encoder: every row sums to 1 over all tokens"
    return (f"`attentions: {maps.n_layers} x [1, {maps.n_heads}, {maps.n_tokens}, {maps.n_tokens}]` "
            f"(layers x [batch, heads, query tokens, key tokens]) · {kind}")


def _compare_figure(maps: dict, enc_layer, causal_layer):
    return plots.side_by_side(maps["minilm-l6"], enc_layer, maps["smollm2-135m-instruct"], causal_layer)


def _shapes_markdown(sim: dict) -> str:
    width = max(len(k) for k in sim["shapes"])
    lines = [f"{k + ':':<{width + 1}} {v}" for k, v in sim["shapes"].items()]
    pieces = ", ".join(f"S{i + 1}: {md_text(' '.join(p))}" for i, p in enumerate(sim["pieces"]))
    return (f"Tensor shapes for S1 (“{md_text(sim['shapes_of'])}”):\n" + md_code_block("\n".join(lines)) + "\n"
            f"Word pieces of “{md_text(sim['word'])}”: {pieces} (several pieces are averaged).")


def _sentence_legend(sim: dict) -> str:
    return "\n".join(f"**S{i + 1}** {md_text(s)}  " for i, s in enumerate(sim["sentences"]))


UNRANKED = "—"
TFIDF_LABEL = f"TF-IDF ranking (scikit-learn); {UNRANKED} = no word shared with the query (score 0: tied, so unranked)"


def _ranking_rows(rows: list[dict]) -> list[list]:
    """Table rows; an unranked passage (TF-IDF 0: no word shared with the query) shows "—"."""
    return [[UNRANKED if r["rank"] is None else r["rank"], r["passage"], r["score"], r["text"]] for r in rows]



def build(engine) -> Share:
    gr.Markdown("## Inside the transformer: attention and contextual embeddings\n"
                "Each layer lets every token gather information from other tokens (**attention**), "
                "so a word's vector changes with its sentence (**contextual embeddings**).")
    with gr.Tabs(overflow_behavior="wrap") as views:
        with gr.Tab("Attention heatmaps", id="emb-attention") as attention_tab:
            heatmaps = _attention_panel(model_options(engine))
            pair = _compare_panel()
        with gr.Tab("bertviz", id="emb-bertviz") as bertviz_tab:
            bertviz = _bertviz_panel(model_options(engine))
        with gr.Tab("Contextual embeddings", id="emb-context") as context_tab:
            context = _context_panel()
        with gr.Tab("Mini vector search", id="emb-search") as search_tab:
            search = _search_panel()
    view, open_view = view_link({"attention": attention_tab, "bertviz": bertviz_tab, "context": context_tab,
                                 "search": search_tab})

    attention = _wire_attention(engine, heatmaps)
    first_view(heatmaps["run"], heatmaps["heat"])  # the default text's heatmap, drawn when the tab opens
    _wire_compare(engine, heatmaps["text"], pair)
    _wire_bertviz(engine, bertviz)
    embedding_similarity = _wire_context(engine, context)
    _wire_search(engine, search)
    _fill_examples(heatmaps, attention, context, embedding_similarity, search)
    # A link to this tab reopens the attention heatmap with the same text and knobs, and the
    # sub-view it was made on (&view=bertviz|context|search).
    def linked(name, *inputs):
        return [*user_errors(attention)(*inputs), open_view(name)]

    return Share(params=dict(text=heatmaps["text"], model=heatmaps["model"], layer=heatmaps["layer"],
                             head=heatmaps["head"], mean=heatmaps["mean_heads"], view=view),
                 run=linked, run_inputs=[view, *_attention_inputs(heatmaps)],
                 run_outputs=[*_attention_outputs(heatmaps), views])


# --- layout: each function makes one part of a sub-tab and returns its components ----------


def _attention_panel(choices: list[tuple[str, str]] = MODEL_CHOICES) -> dict:
    """The heatmap of one layer and head, what one token attends to, and every head of the layer."""
    parts = {}
    with gr.Row():
        parts["text"] = gr.Textbox(DEFAULT_TEXT, label="Text (1 to 128 tokens)", lines=2, scale=4, elem_id="att-text")
        with gr.Column(scale=2):
            parts["model"] = gr.Radio(choices, value="minilm-l6", label="Model")
            parts["run"] = gr.Button("Show attention", variant="primary", elem_id="att-run")
    with gr.Row():
        parts["layer"] = ModelSlider(1, att.MAX_LAYERS, value=4, step=1, label="Layer", elem_id="att-layer")
        parts["head"] = ModelSlider(1, att.MAX_HEADS, value=2, step=1, label="Head", elem_id="att-head")
        parts["mean_heads"] = gr.Checkbox(False, label="Mean over heads", elem_id="att-mean")
        parts["token"] = gr.Dropdown([], value=None, label="Query token (or click a row of the heatmap)",
                                     elem_id="att-token")
    parts["examples"] = gr.Column()
    parts["shape_md"] = gr.Markdown()
    with gr.Row():
        parts["heat"] = Plot(filename="attention-heatmap",
                             show_label=False, label="Attention heatmap", scale=3, elem_id="att-heatmap")
        parts["bar"] = Plot(filename="attends-to",
                            show_label=False, label="What the chosen token attends to", scale=2, elem_id="att-bar")
    notice(ATTENTION_NOTICE)
    parts["grid"] = Plot(filename="attention-heads", show_label=False, label="All heads of this layer",
                         elem_id="att-grid")
    with gr.Accordion("Numbers (what the `attention` API endpoint returns)", open=False):
        parts["summary"] = gr.JSON(label="attention summary")
    parts["clicked"] = gr.Textbox(visible="hidden", elem_id="att-click")  # row of a clicked cell
    parts["maps"] = gr.State(None)
    return parts


def _compare_panel() -> dict:
    """Encoder vs causal on the heatmap's text (under the heatmaps, same sub-tab)."""
    parts = {}
    gr.Markdown("### Encoder vs causal on the same text")
    with gr.Row():
        parts["run"] = gr.Button("Compare encoder vs causal", elem_id="cmp-run", scale=1)
        parts["enc_layer"] = gr.Slider(1, att.MAX_LAYERS, value=1, step=1, label="Encoder layer", scale=2)
        parts["causal_layer"] = gr.Slider(1, att.MAX_LAYERS, value=1, step=1, label="Causal layer", scale=2)
    parts["plot"] = Plot(filename="encoder-vs-causal",
                         show_label=False, label="Encoder vs causal (mean over heads)", elem_id="cmp-plot")
    notice("The encoder fills the whole square: each token reads the words after it too. The "
           "causal model only fills the lower triangle (grey = masked future), which is what lets "
           "it generate text one token at a time.")
    parts["maps"] = gr.State(None)
    return parts


def _bertviz_panel(choices: list[tuple[str, str]] = MODEL_CHOICES) -> dict:
    gr.Markdown("bertviz's interactive views, running inside the app with no internet: its "
                "JavaScript (d3, jQuery, require.js) is bundled. **Head view**: hover a token to "
                "see its lines; double-click a colour to show one head. **Model view**: every head "
                "of every layer; click a thumbnail to enlarge it. bertviz counts layers and heads from 0.")
    parts = {}
    with gr.Row():
        parts["text"] = gr.Textbox("The cat sat on the mat because it was warm.", label="Text (1 to 64 tokens)",
                                   lines=2, scale=4, elem_id="bv-text")
        with gr.Column(scale=2):
            parts["model"] = gr.Radio(choices, value="minilm-l6", label="Model")
            parts["view"] = gr.Radio(VIEW_CHOICES, value="head", label="View")
            parts["run"] = gr.Button("Draw bertviz view", variant="primary", elem_id="bv-run")
    parts["html"] = gr.HTML(elem_id="bv-html")
    return parts


def _context_panel() -> dict:
    """One word in several sentences: its similarity across layers and a 2D map of the vectors."""
    parts = {}
    with gr.Row():
        parts["sentences"] = gr.Textbox("\n".join(emb.BANK_SENTENCES), lines=5, scale=4,
                                        label=f"Sentences, one per line (2 to {emb.MAX_SENTENCES}), each "
                                              "containing the word", elem_id="ctx-sentences")
        with gr.Column(scale=2):
            parts["word"] = gr.Textbox("bank", label="Word", elem_id="ctx-word")
            parts["pca_layer"] = gr.Slider(0, 6, value=6, step=1, label="Layer for the 2D map (0 = embedding layer)")
            parts["run"] = gr.Button("Compare the word's vectors", variant="primary", elem_id="ctx-run")
    parts["examples"] = gr.Column()
    parts["legend"] = gr.Markdown()
    with gr.Row():
        parts["sim_plot"] = Plot(filename="word-similarity-across-layers",
                                 show_label=False, label="Similarity across layers", elem_id="ctx-sim")
        parts["pca_plot"] = Plot(filename="token-vectors-pca",
                                 show_label=False, label="2D PCA of token vectors", elem_id="ctx-pca")
    notice("At layer 0 every “bank” starts from the same table row, so all pairs are alike (only "
           "the position differs). Layer by layer the context flows in: pairs with the same sense "
           "(river/stream, or money) end up more alike than pairs with different senses.")
    parts["shapes_md"] = gr.Markdown(elem_id="ctx-shapes")
    with gr.Accordion("Numbers (what the `embedding_similarity` API endpoint returns)", open=False):
        parts["json"] = gr.JSON(label="similarity")
    return parts


def _search_panel() -> dict:
    """The retrieval step of RAG: embedding ranking next to TF-IDF."""
    gr.Markdown("The retrieval step of RAG: embed every passage once, embed the query, rank by "
                "cosine similarity. Next to it, TF-IDF ranks by shared words only.")
    parts = {}
    with gr.Row():
        parts["passages"] = gr.Textbox("\n".join(emb.EXAMPLE_PASSAGES), lines=10, scale=3,
                                       label=f"Passages, one per line (1 to {emb.MAX_PASSAGES}); paste your own",
                                       elem_id="search-passages")
        with gr.Column(scale=2):
            parts["query"] = gr.Textbox(emb.EXAMPLE_QUERIES[0], label="Query", elem_id="search-query")
            parts["top_k"] = gr.Slider(1, 10, value=5, step=1, label="Show the top k passages")
            parts["run"] = gr.Button("Search", variant="primary", elem_id="search-run")
            parts["examples"] = gr.Column()
    parts["plot"] = Plot(filename="search-scores", show_label=False, label="Scores", elem_id="search-plot")
    with gr.Row():
        parts["dense"] = data_table("embedding-ranking", headers=["rank", "id", "cosine", "passage"],
                                    label="Embedding ranking (MiniLM, mean pooling)", wrap=True,
                                    column_widths=["9%", "12%", "13%", "66%"],
                                    interactive=False, elem_id="search-dense")
        parts["sparse"] = data_table("tfidf-ranking", headers=["rank", "id", "tf-idf", "passage"],
                                     label=TFIDF_LABEL, wrap=True,
                                     column_widths=["9%", "12%", "13%", "66%"],
                                     interactive=False, elem_id="search-sparse")
    notice("“flat tire on my bike” shares no word with “punctured bicycle tyre”, so TF-IDF scores it "
           "0; the embedding still puts it first. Exact keywords are where TF-IDF is strong.")
    with gr.Accordion("Numbers (what the `semantic_search` API endpoint returns)", open=False):
        parts["json"] = gr.JSON(label="rankings")
    return parts


# --- wiring: listeners on the parts above ---------------------------------------------------


def _attention_inputs(heatmaps) -> list:
    return [heatmaps[k] for k in ("text", "model", "layer", "head", "mean_heads", "token")]


def _attention_views(heatmaps) -> list:
    return [heatmaps[k] for k in ("heat", "bar", "grid", "summary")]


def _attention_outputs(heatmaps) -> list:
    return [*(heatmaps[k] for k in ("maps", "layer", "head", "token", "shape_md")), *_attention_views(heatmaps)]


def _attention_listeners(engine):
    """attention (run the model, then plot) and set_model (move the sliders to a new model's size)."""
    def attention(text, model_key, layer, head, mean_heads, token, progress=gr.Progress()):
        maps = att.attention_maps(engine, text, model_key, progress=progress_callback(progress))
        if token is not None and check_range("token", token, 0, att.MAX_TOKENS - 1, integer=True) >= maps.n_tokens:
            token = None  # the text changed under the dropdown
        views = _views(maps, layer, head, bool(mean_heads), token)
        chosen = views[3]["token"]
        return (maps, gr.Slider(maximum=maps.n_layers), gr.Slider(maximum=maps.n_heads),
                gr.Dropdown(choices=_token_choices(maps), value=chosen), _shape_line(maps), *views)

    def set_model(model_key, layer, head, progress=gr.Progress()):
        n_layers, n_heads = att.model_dims(engine, model_key, progress_callback(progress))
        return (gr.Slider(maximum=n_layers, value=clamp_slider(layer, n_layers)),
                gr.Slider(maximum=n_heads, value=clamp_slider(head, n_heads)), None)  # new tokens: new query

    return attention, set_model


def _wire_attention(engine, heatmaps):
    """The heatmap's run, model switch, cell clicks and re-plots from state; returns attention."""
    def view(maps, layer, head, mean_heads, token):
        if maps is None:
            raise UserInputError("Click “Show attention” first.")
        return _views(maps, layer, head, bool(mean_heads), token)

    def click(maps, layer, head, mean_heads, row):
        if maps is None or not str(row).strip():
            raise UserInputError("Click “Show attention” first.")
        token = att.check_token(maps, str(row).split(":")[0].strip())
        return token, *_views(maps, layer, head, bool(mean_heads), token)

    attention, set_model = _attention_listeners(engine)
    text, model, layer, head, mean_heads, token = _attention_inputs(heatmaps)
    att_views = _attention_views(heatmaps)
    gr.on([heatmaps["run"].click, text.submit], user_errors(on_gpu(attention)), inputs=_attention_inputs(heatmaps),
          outputs=_attention_outputs(heatmaps), api_name="attention", **HEAVY)
    model.input(user_errors(on_gpu(set_model)), inputs=[model, layer, head], outputs=[layer, head, token],
                api_name="attention_model_dims", api_visibility="undocumented", **HEAVY).success(  # not twice
        user_errors(on_gpu(attention)), inputs=_attention_inputs(heatmaps),
        outputs=_attention_outputs(heatmaps), api_visibility="private", **HEAVY)
    text.input(lambda: None, outputs=token, api_visibility="private", queue=False)  # positions change
    heatmaps["heat"].change(None, js=HOOK_CLICKS_JS, api_visibility="private", queue=False)
    clicked, maps = heatmaps["clicked"], heatmaps["maps"]
    clicked.change(user_errors(click), inputs=[maps, layer, head, mean_heads, clicked], outputs=[token, *att_views],
                   api_name="attention_click", api_visibility="undocumented", **LIGHT)
    gr.on([layer.release, head.release, mean_heads.input, token.input], user_errors(view),
          inputs=[maps, layer, head, mean_heads, token], outputs=att_views,
          api_name="attention_view", api_visibility="undocumented", **LIGHT)
    return attention


def _wire_compare(engine, text, pair):
    def compare(text, enc_layer, causal_layer, progress=gr.Progress()):
        enc_layer = check_range("encoder layer", enc_layer, 1, att.MAX_LAYERS, integer=True)
        causal_layer = check_range("causal layer", causal_layer, 1, att.MAX_LAYERS, integer=True)
        cb = progress_callback(progress)
        maps = {key: att.attention_maps(engine, text, key, progress=cb) for key in att.ATTENTION_MODELS}
        enc, causal = maps["minilm-l6"], maps["smollm2-135m-instruct"]
        enc_layer, causal_layer = min(enc_layer, enc.n_layers), min(causal_layer, causal.n_layers)
        return (maps, gr.Slider(maximum=enc.n_layers, value=enc_layer),
                gr.Slider(maximum=causal.n_layers, value=causal_layer),
                _compare_figure(maps, enc_layer, causal_layer))

    def compare_view(maps, enc_layer, causal_layer):
        if maps is None:
            raise UserInputError("Click “Compare encoder vs causal” first.")
        return _compare_figure(maps, enc_layer, causal_layer)

    enc_layer, causal_layer = pair["enc_layer"], pair["causal_layer"]
    pair["run"].click(user_errors(on_gpu(compare)), inputs=[text, enc_layer, causal_layer],
                      outputs=[pair["maps"], enc_layer, causal_layer, pair["plot"]],
                      api_name="attention_compare", **HEAVY)
    gr.on([enc_layer.release, causal_layer.release], user_errors(compare_view),
          inputs=[pair["maps"], enc_layer, causal_layer], outputs=pair["plot"],
          api_name="attention_compare_view", api_visibility="undocumented", **LIGHT)


def _wire_bertviz(engine, bv):
    def bertviz(text, model_key, view_name, progress=gr.Progress()):
        maps = att.attention_maps(engine, text, model_key, max_tokens=bertviz_page.MAX_TOKENS,
                                  progress=progress_callback(progress))
        return bertviz_page.iframe(view_name, maps, layer=min(3, maps.n_layers))

    gr.on([bv["run"].click, bv["text"].submit], user_errors(on_gpu(bertviz)),
          inputs=[bv["text"], bv["model"], bv["view"]], outputs=bv["html"], api_name="bertviz", **HEAVY)


def _context_outputs(ctx) -> list:
    return [ctx["legend"], ctx["sim_plot"], ctx["pca_plot"], ctx["shapes_md"], ctx["json"]]


def _wire_context(engine, ctx):
    """Returns embedding_similarity, for the examples."""
    def embedding_similarity(sentences_text, word_text, layer_value, progress=gr.Progress()):
        sim, pca = emb.contextual(engine, sentences_text, word_text, layer_value,
                                  progress=progress_callback(progress))
        return (_sentence_legend(sim), plots.similarity_lines(sim), plots.pca_scatter(pca, sim["word"]),
                _shapes_markdown(sim), {**sim, "pca": pca})

    gr.on([ctx["run"].click, ctx["word"].submit, ctx["pca_layer"].release], user_errors(on_gpu(embedding_similarity)),
          inputs=[ctx["sentences"], ctx["word"], ctx["pca_layer"]], outputs=_context_outputs(ctx),
          api_name="embedding_similarity", **HEAVY)
    return embedding_similarity


def _wire_search(engine, search):
    def semantic_search(query_text, passages_text, k, progress=gr.Progress()):
        result = emb.semantic_search(engine, query_text, passages_text, top_k=k,
                                     progress=progress_callback(progress))
        return plots.search_bars(result), _ranking_rows(result["embedding"]), _ranking_rows(result["tfidf"]), result

    gr.on([search["run"].click, search["query"].submit], user_errors(on_gpu(semantic_search)),
          inputs=[search["query"], search["passages"], search["top_k"]],
          outputs=[search["plot"], search["dense"], search["sparse"], search["json"]], api_name="semantic_search",
          **HEAVY)


def _fill_examples(heatmaps, attention, ctx, embedding_similarity, search) -> None:
    """The examples under the heatmap, the senses and the search box (after every listener)."""
    with heatmaps["examples"]:
        examples([[t, m, 4, 2, False, None] for _, t, m in ATTENTION_EXAMPLES], _attention_inputs(heatmaps),
                 labels=[e[0] for e in ATTENTION_EXAMPLES], fn=user_errors(on_gpu(attention)),
                 outputs=_attention_outputs(heatmaps))
    with ctx["examples"]:  # MiniLM on a few sentences: cheap and deterministic, so cached
        examples([[sents, w, 6] for _, sents, w in SENSE_EXAMPLES], [ctx["sentences"], ctx["word"], ctx["pca_layer"]],
                 labels=[e[0] for e in SENSE_EXAMPLES], fn=user_errors(on_gpu(embedding_similarity)),
                 outputs=_context_outputs(ctx), cache=True)
    with search["examples"]:
        # fills the query only: passages pasted by the user stay
        examples([[q] for q in emb.EXAMPLE_QUERIES], [search["query"]], label="Example queries (then press Search)")
