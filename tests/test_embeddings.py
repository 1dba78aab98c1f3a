"""Engine tests for the Embeddings & attention tab, on the real embedded MiniLM and SmolLM2."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from engine.embeddings import attention as att
from engine.embeddings import bertviz_page
from engine.embeddings import vectors as emb
from engine.embeddings import plots
from engine.core.errors import UserInputError

pytestmark = pytest.mark.slow  # every test here runs the real MiniLM or SmolLM2
TEXT = "The animal didn't cross the street because it was too tired."
CAUSAL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def enc_maps(engine):
    return att.attention_maps(engine, TEXT, "minilm-l6")


@pytest.fixture(scope="module")
def causal_maps(engine):
    return att.attention_maps(engine, TEXT, CAUSAL)


@pytest.mark.parametrize("which", ["enc_maps", "causal_maps"])
def test_rows_sum_to_one_and_shape(request, engine, which):
    maps = request.getfixturevalue(which)
    bundle = att.load_attention_model(engine, maps.model_key)
    cfg = bundle.model.config
    n = len(bundle.tokenizer(TEXT)["input_ids"])
    assert maps.weights.shape == (cfg.num_hidden_layers, cfg.num_attention_heads, n, n)
    assert len(maps.tokens) == n
    np.testing.assert_allclose(maps.weights.sum(axis=-1), 1.0, atol=1e-4)
    assert (maps.weights >= 0).all()


def test_slider_limits_cover_every_model(engine):
    dims = [att.model_dims(engine, key) for key in att.ATTENTION_MODELS]
    assert (att.MAX_LAYERS, att.MAX_HEADS) == (max(d[0] for d in dims), max(d[1] for d in dims))


def test_causal_is_lower_triangular_encoder_is_not(enc_maps, causal_maps):
    n = causal_maps.n_tokens
    upper = np.triu_indices(n, k=1)
    assert causal_maps.causal and not enc_maps.causal
    assert np.all(causal_maps.weights[:, :, upper[0], upper[1]] == 0.0)
    m = enc_maps.n_tokens
    enc_upper = enc_maps.weights[:, :, np.triu_indices(m, k=1)[0], np.triu_indices(m, k=1)[1]]
    assert enc_upper.sum() > 1.0  # the encoder does look ahead


def test_equals_raw_library_call(engine, enc_maps):
    bundle = engine.load("minilm-l6")
    enc = bundle.tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        raw = bundle.model(**enc, output_attentions=True).attentions
    for layer in range(len(raw)):
        np.testing.assert_allclose(enc_maps.weights[layer], raw[layer][0].numpy(), atol=1e-6)


def test_views_validate_and_mean(enc_maps):
    mean = att.matrix(enc_maps, 2, None)
    np.testing.assert_allclose(mean, enc_maps.weights[1].mean(axis=0), atol=1e-7)
    with pytest.raises(UserInputError, match="layer .*1 to 6"):
        att.matrix(enc_maps, 7, 1)
    with pytest.raises(UserInputError, match="head .*1 to 12"):
        att.matrix(enc_maps, 1, 0)
    ranked = att.attends_to(enc_maps, 3, 1, 0)
    assert [w for _, _, w in ranked] == sorted((w for _, _, w in ranked), reverse=True)
    s = att.summary(enc_maps, 3, None, att.default_token(enc_maps))
    assert enc_maps.tokens[s["token"]] == "it"
    np.testing.assert_allclose(s["row_sums"], 1.0, atol=1e-4)


def test_bad_inputs_name_the_range(engine):
    with pytest.raises(UserInputError, match="1 to 128 tokens"):
        att.attention_maps(engine, "word " * 300, "minilm-l6")
    with pytest.raises(UserInputError, match="minilm-l6"):
        att.attention_maps(engine, TEXT, "gpt-17")
    with pytest.raises(UserInputError, match="empty"):
        att.attention_maps(engine, "   ", "minilm-l6")


def test_figures_build(enc_maps, causal_maps):
    fig = plots.heatmap(causal_maps, 2, None, 3)
    z = np.array(fig.data[0].z, dtype=float)
    assert np.isnan(z[0, 1]) and not np.isnan(z[1, 0])  # masked future is drawn blank
    assert len(plots.head_grid(enc_maps, 1).data) == enc_maps.n_heads
    assert len(plots.side_by_side(enc_maps, 1, causal_maps, 1).data) == 2


def _last_layer_cos(sim: dict, a: int, b: int) -> float:
    return sim["cosine"][sim["pairs"].index([a, b])][-1]


def test_same_sense_is_closer_than_different_sense(engine):
    # S1, S2: river bank; S3, S4: money bank
    sim = emb.word_similarity(engine, list(emb.BANK_SENTENCES), "bank")
    assert sim["layers"] == list(range(7)) and len(sim["pairs"]) == 6
    assert sim["shapes"]["last_hidden_state"][-1] == 384
    same = [_last_layer_cos(sim, 1, 2), _last_layer_cos(sim, 3, 4)]
    different = [_last_layer_cos(sim, 1, 3), _last_layer_cos(sim, 1, 4), _last_layer_cos(sim, 2, 3),
                 _last_layer_cos(sim, 2, 4)]
    assert min(same) > max(different), (same, different)
    # A second word, with other sentences: "bat" the animal vs the club.
    sim2 = emb.word_similarity(engine, ["A bat flew out of the dark cave at night.",
                                        "The bat hung upside down from the cave roof.",
                                        "He swung the bat and hit the ball over the fence."], "bat")
    assert _last_layer_cos(sim2, 1, 2) > max(_last_layer_cos(sim2, 1, 3), _last_layer_cos(sim2, 2, 3))


def test_word_pieces_and_missing_word(engine):
    enc = emb.encode_sentence(engine.load("minilm-l6"), "Contextual embeddings are neat.")
    pos = emb.word_positions(enc, "embeddings")
    assert len(pos) >= 2 and "".join(enc.tokens[p].lstrip("#") for p in pos) == "embeddings"
    with pytest.raises(UserInputError, match="not in sentence 2"):
        emb.word_similarity(engine, ["The bank is open.", "The shop is open."], "bank")


def test_pca_projects_every_real_token(engine):
    sim, pca = emb.contextual(engine, list(emb.BANK_SENTENCES[:2]), "bank", layer=6)
    assert len(pca["x"]) == len(pca["labels"]) and sum(pca["is_word"]) == 2
    assert "[CLS]" not in pca["labels"] and 0 < sum(pca["explained"]) <= 1


def test_sentence_embeddings_are_mean_pooled_unit_vectors(engine):
    bundle = engine.load("minilm-l6")
    texts = ["short one", "a somewhat longer sentence that needs padding in the batch"]
    vecs = emb.sentence_embeddings(bundle, texts)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    enc = bundle.tokenizer(texts[0], return_tensors="pt")  # alone: no padding at all
    with torch.no_grad():
        alone = bundle.model(**enc).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(vecs[0], (alone / alone.norm()).numpy(), atol=1e-5)


def test_search_ranks_paraphrase_above_unrelated(engine):
    passages = list(emb.EXAMPLE_PASSAGES)
    result = emb.semantic_search(engine, emb.EXAMPLE_QUERIES[0], passages, top_k=len(passages))
    order = [r["passage"] for r in result["embedding"]]
    paraphrase = 1 + passages.index(next(p for p in passages if "bicycle" in p))
    unrelated = 1 + passages.index(next(p for p in passages if "Eiffel" in p))
    assert order[0] == paraphrase and order.index(paraphrase) < order.index(unrelated)
    scores = [r["score"] for r in result["embedding"]]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    # TF-IDF sees no shared word with the paraphrase ("tire"/"tyre", "bike"/"bicycle")
    tfidf = {r["passage"]: r for r in result["tfidf"]}
    assert tfidf[paraphrase]["score"] == 0.0 and tfidf[paraphrase]["rank"] is None  # tied at 0: no rank
    with pytest.raises(UserInputError, match="top_k"):
        emb.semantic_search(engine, "q", passages[:3], top_k=5)


def test_bertviz_page_is_offline(enc_maps, causal_maps):
    for view in bertviz_page.VIEWS:
        page = bertviz_page.offline_page(view, causal_maps if view == "model" else enc_maps, layer=2)
        assert "cdnjs" not in page and "//cdn" not in page
        assert not re.search(r"<script[^>]*\bsrc=", page)
        i_d3, i_jq, i_req = (page.index(f"/* {name} */") for name in bertviz_page.LIBS)
        assert i_d3 < i_jq < i_req < page.index("define('d3'") < page.index("requirejs(['jquery', 'd3']")
    frame = bertviz_page.iframe("head", enc_maps)
    assert frame.startswith("<iframe") and 'sandbox="allow-scripts"' in frame and "srcdoc=" in frame
    assert bertviz_page.frame_height("head", enc_maps) > enc_maps.n_tokens * 20


# ---- issue 25 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["enc_maps", "causal_maps"])
def test_attends_to_bars_are_the_matrix_row_of_the_chosen_token(request, which):
    maps = request.getfixturevalue(which)
    n = maps.n_tokens
    for layer, head in ((1, 1), (3, 2), (maps.n_layers, maps.n_heads), (2, None)):
        m = att.matrix(maps, layer, head)  # (q, k)
        for token in (0, n // 2, n - 1):
            ranked = att.attends_to(maps, layer, head, token)
            weights = np.zeros(n)
            for pos, label, w in ranked:
                weights[pos] = w
                assert label == maps.tokens[pos]
            np.testing.assert_allclose(weights, m[token], atol=1e-7)  # the row, not the column
            assert abs(weights.sum() - 1.0) < 1e-4
            bars = plots.attends_bar(maps, layer, head, token).data[0]
            np.testing.assert_allclose(np.array(bars.x, dtype=float), m[token], atol=1e-7)
            s = att.summary(maps, layer, head, token)
            top = {d["position"]: d["weight"] for d in s["attends_to"]}
            assert all(abs(m[token][p] - w) < 1e-4 for p, w in top.items())
        if maps.causal:  # token 0 sees only itself; token i only positions 0..i
            assert att.attends_to(maps, layer, head, 0)[0][:1] == (0,) and abs(m[0, 0] - 1.0) < 1e-5
            assert np.all(m[0, 1:] == 0) and np.all(m[n - 2, n - 1:] == 0)
        else:
            assert m[0, 1:].sum() > 0  # an encoder's first token sees the others


def test_pca_labels_do_not_overlap(engine):
    for sentences, word in (("\n".join(emb.BANK_SENTENCES), "bank"),
                            ("A bat flew out of the cave.\nThe bat hung upside down.\nHe swung the bat.", "bat")):
        sim, pca = emb.contextual(engine, sentences, word, layer=6)
        width, height = 620, 460
        fig = plots.pca_scatter(pca, sim["word"], height=height, width=width)
        xs, ys = pca["x"], pca["y"]
        scale = ((width - 140) / ((max(xs) - min(xs)) or 1), (height - 130) / ((max(ys) - min(ys)) or 1))
        boxes, stars = [], 0
        for trace in fig.data:
            positions = trace.textposition if isinstance(trace.textposition, (list, tuple)) else \
                [trace.textposition] * len(trace.x)
            for x, y, text, pos in zip(trace.x, trace.y, trace.text, positions):
                plain = re.sub(r"<[^>]+>", "", text)
                if plain:
                    size = trace.textfont.size
                    boxes.append(plots.label_box(x, y, plain, size, pos, scale))
                    stars += size == 14
        assert stars == sum(pca["is_word"])  # every occurrence of the word is labelled
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
        for trace in fig.data[::2]:  # every other token still names itself on hover
            assert list(trace.hovertext) and all(trace.hovertext)


def test_bertviz_frame_leaves_room_under_the_last_token(enc_maps, causal_maps):
    for maps in (enc_maps, causal_maps):
        # head view: the token rows end at TEXT_TOP + n * BOXHEIGHT under the layer menu (~60 px)
        assert bertviz_page.frame_height("head", maps) - (maps.n_tokens * 22.5 + 30 + 60) >= 30


def test_the_attention_notice_says_what_the_it_heads_do(engine):
    """Issue 32: the notice said layer 4, head 2 links 'it' to its referent, but on the suitcase
    sentence it sends 'it' to 'trophy'. Every claim of the notice, recomputed from the model."""
    import importlib.util
    from pathlib import Path

    from tabs.embeddings import ATTENTION_NOTICE, DEFAULT_TEXT, SUITCASE_TEXT

    def it_row(text, layer, head) -> dict:
        maps = att.attention_maps(engine, text, "minilm-l6")
        return dict(zip(maps.tokens, maps.weights[layer - 1, head - 1, maps.tokens.index("it")].tolist()))

    animal, suitcase = it_row(DEFAULT_TEXT, 4, 2), it_row(SUITCASE_TEXT, 4, 2)
    assert max(animal, key=animal.get) == "animal" and max(suitcase, key=suitcase.get) == "trophy"
    assert f"'it' sends {animal['animal']:.2f} of its weight to 'animal'" in ATTENTION_NOTICE
    assert f"it sends {suitcase['trophy']:.2f} to 'trophy'" in ATTENTION_NOTICE
    assert suitcase["trophy"] > 2 * suitcase["suitcase"]  # the subject, not the noun 'it' means
    prev = att.attention_maps(engine, DEFAULT_TEXT, "minilm-l6").weights[0, 2]  # layer 1, head 3: (q, k)
    assert "Layer 1, head 3 looks at the previous word" in ATTENTION_NOTICE
    assert all(int(prev[i].argmax()) == i - 1 for i in range(1, len(prev) - 1))
    path = Path(__file__).resolve().parent.parent / "scripts" / "find_coreference_head.py"
    spec = importlib.util.spec_from_file_location("find_coreference_head", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rows = script.scan(engine)
    assert len(rows) == 6 * 12 and not [r for r in rows if all(r["resolved"])]
    assert "no MiniLM head picks the meant noun in all four sentences" in ATTENTION_NOTICE
