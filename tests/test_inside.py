"""Inside the model (issue 17): the numbers the tab shows are the model's own numbers.
Invariants on the real embedded SmolLM2 and MiniLM, plus the input checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine import inside
from engine.core.errors import UserInputError
from engine.core.settings import make
from engine.inside import plots

pytestmark = pytest.mark.slow
CAUSAL, ENCODER = "smollm2-135m-instruct", "minilm-l6"
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def causal(engine):
    bundle = inside.load(engine, CAUSAL)
    return bundle, inside.run_trace(bundle, PROMPT)


@pytest.fixture(scope="module")
def encoder(engine):
    bundle = inside.load(engine, ENCODER)
    return bundle, inside.run_trace(bundle, "The cat sat on the mat.")


def _softmax_from(q, k, causal_mask: bool) -> np.ndarray:
    """Attention weights from the shown Q and K alone, written out independently of the engine."""
    q, k = torch.tensor(q, dtype=torch.float64), torch.tensor(k, dtype=torch.float64)
    scores = q @ k.T / math.sqrt(q.shape[-1])
    if causal_mask:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1).numpy()


@pytest.mark.parametrize("layer,head", [(1, 1), (3, 5), (17, 9), (30, 4)])
def test_attention_from_shown_qkv_equals_output_attentions(causal, layer, head):
    _, tr = causal
    b = inside.block_view(tr, layer, head)
    assert b.kv_head == (head - 1) // 3 + 1  # 9 query heads share 3 K/V heads, in repeat_kv order
    model = tr.attentions[layer - 1, head - 1].numpy()
    assert np.abs(_softmax_from(b.q, b.k, True) - model).max() < 1e-5
    assert np.abs(b.weights - model).max() < 1e-5
    assert np.allclose(b.weights @ b.v, b.mixed, atol=1e-5)
    # all heads' weighted sums through o_proj give what attention adds to the stream
    assert np.abs(b.attn_add_recomputed - b.attn_add).max() < 1e-4
    assert np.isneginf(b.masked[0, 1]) and np.isfinite(b.scores[0, 1])  # before vs after the causal mask


def test_wrong_kv_head_would_not_match(causal):
    """The K/V mapping matters: query head 5 with the K of another K/V head gives other weights."""
    bundle, tr = causal
    b = inside.block_view(tr, 3, 5)
    other = inside.block_view(tr, 3, 1)  # reads K/V head 1, head 5 reads K/V head 2
    assert b.kv_head != other.kv_head
    assert np.abs(_softmax_from(b.q, other.k, True) - b.model_weights).max() > 1e-3


def test_residual_after_a_block_is_before_plus_attention_plus_mlp(causal):
    _, tr = causal
    for layer in (1, 12, 30):
        b = inside.block_view(tr, layer, 1)
        assert np.abs(b.before + b.attn_add + b.mlp_add - b.after).max() < 1e-5
        norms = b.norms()
        assert len(norms) == tr.n and all(r["after"] > 0 for r in norms)
    # the stream entering block l+1 is what left block l
    assert torch.equal(tr.layer_in[5], tr.layer_out[4])


def test_last_layer_of_the_logit_lens_is_the_models_distribution(causal):
    bundle, tr = causal
    lens = inside.logit_lens(tr, bundle.tokenizer, positions=5)
    model_probs = tr.logits[-1].softmax(-1).numpy()
    assert np.abs(lens.last_probs - model_probs).max() < 1e-5
    assert lens.target.strip() == "Paris" and lens.target_ranks[-1] == 1
    assert lens.first_top_layer is not None and lens.first_top_layer <= 30
    assert lens.top_probs.shape == (30, 5)
    headers, rows = plots.lens_rows(lens)
    assert len(headers) == 32 and len(rows) == 5
    # the charts show these numbers: the heatmap's cells are the top probabilities (position x layer),
    # the target line is p(final pick) after each block, its rank on the second axis
    heat = plots.lens_figure(lens).data[0]
    np.testing.assert_allclose(np.asarray(heat.z), lens.top_probs.T)
    assert list(heat.x) == list(lens.layers)
    line, rank = plots.lens_target_figure(lens).data
    np.testing.assert_allclose(line.y, lens.target_probs)
    assert list(rank.y) == list(lens.target_ranks) and rank.y[-1] == 1


def test_journey_shows_real_shapes_and_the_picked_token(causal):
    bundle, tr = causal
    j = inside.from_trace(tr, bundle.tokenizer)
    assert j.picked.strip() == "Paris" and j.continued == PROMPT + " Paris"
    assert j.shapes["embeddings"] == (1, 5, 576) and j.shapes["logits"] == (1, 5, 49152)
    assert abs(sum(p for _, _, p in j.top) - float(tr.logits[-1].softmax(-1).topk(5).values.sum())) < 1e-6
    # the embedding strip is the rows of the embedding table for the ids
    rows = bundle.model.get_input_embeddings().weight[torch.tensor(j.ids)].detach().numpy()
    assert np.array_equal(j.embeddings, rows)
    html = plots.journey_html(j)
    for text in ("(1, 5, 576)", "(1, 5, 49,152)", "49,152", "30 blocks", "Paris", "9 query heads, 3 K/V heads"):
        assert text in html, text
    # which sum is 1: all of the vocabulary; the five shown carry their own share, computed here
    shown = float(tr.logits[-1].double().softmax(-1).topk(5).values.sum())
    assert f"all 49,152 probabilities sum to 1; these 5 sum to {shown:.2f}" in html and "they sum to 1" not in html


def test_encoder_block_and_journey(encoder):
    bundle, tr = encoder
    b = inside.block_view(tr, 2, 7)
    assert np.abs(_softmax_from(b.q, b.k, False) - b.model_weights).max() < 1e-5
    assert np.abs(b.attn_add_recomputed - b.attn_add).max() < 1e-4
    j = inside.from_trace(tr, bundle.tokenizer)
    assert j.logit_stats == {} and abs(float(np.linalg.norm(j.sentence)) - 1) < 1e-5
    assert "Sentence vector" in plots.journey_html(j)


def test_bank_input_rows_are_identical_hidden_states_drift(engine):
    d = inside.static_vs_contextual(engine, *inside.BANK)
    assert d.same_ids and d.row_cosine == pytest.approx(1.0, abs=1e-12)
    assert d.cosines[0] == pytest.approx(1.0, abs=1e-12)  # SmolLM2 adds nothing before block 1
    assert len(d.cosines) == 31 and min(d.cosines[1:]) < 0.9
    enc = inside.static_vs_contextual(engine, *inside.BANK, model_key=ENCODER)
    assert enc.row_cosine == pytest.approx(1.0, abs=1e-12) and enc.cosines[-1] < 0.95
    line, star = plots.drift_figure(d).data  # the chart's points are the cosines per layer
    assert list(line.y) == d.cosines and list(line.x) == list(range(31)) and list(star.y) == [d.row_cosine]


def test_anatomy_counts_sum_to_the_models_parameters(engine):
    for key in (CAUSAL, ENCODER):
        bundle = inside.load(engine, key)
        a = inside.anatomy_of(bundle)
        assert a.total == sum(g["parameters"] for g in a.groups) == bundle.model.num_parameters()
        assert sum(g["share"] for g in a.groups) == pytest.approx(1.0)
    a = inside.anatomy_of(inside.load(engine, CAUSAL))
    assert a.tied and any(f["file"] == "tokenizer.json" for f in a.files)
    groups = {g["group"]: g for g in a.groups}
    assert groups["embeddings"]["parameters"] == 49152 * 576 and groups["head"]["parameters"] == 0
    bars = plots.anatomy_figure(a).data[0]  # one bar a group that has parameters (or a note)
    shown = dict(zip(bars.y, bars.x))
    assert all(shown[g["group"]] == g["parameters"] for g in a.groups if g["group"] in shown)
    assert sum(bars.x) == a.total and "tied: 0" in bars.text
    assert f"{a.num_parameters:,} parameters" in plots.config_markdown(a)


def test_random_weights_are_near_uniform_and_built_once(engine):
    trained, random, vocab = inside.before_training(engine, PROMPT)
    assert vocab == 49152
    assert random.entropy > 0.98 * math.log(vocab)
    assert trained.entropy < 0.5 * math.log(vocab)
    assert inside.random_model(engine) is inside.random_model(engine)
    assert inside.random_model(engine).model is not inside.load(engine, CAUSAL).model
    fig = plots.untrained_figure(trained, random, vocab)  # each panel's bars are that model's top tokens
    for bars, pred in zip(fig.data, (trained, random)):
        assert list(bars.y) == [p for _, p in pred.top]
    assert f"ln({vocab:,}) = {math.log(vocab):.2f}" in fig.layout.title.text


def test_cost_formula_is_about_twice_the_parameters(engine):
    c = inside.cost(engine, PROMPT, new_tokens=2)
    assert c.new_tokens == 2 and c.tokens_per_second > 0 and c.peak is None  # CPU: peak unknown
    assert 0.95 < c.flops_per_token / (2 * inside.load(engine, CAUSAL).model.num_parameters()) < 1.1
    assert inside.flops_per_token(10, 2, 4, 3) == 2 * 10 + 4 * 2 * 3 * 4
    assert "not known" in plots.cost_markdown(c)


# --- bad input ---------------------------------------------------------------------------------

def test_layer_and_head_out_of_range_name_the_valid_range(causal, encoder):
    _, tr = causal
    with pytest.raises(UserInputError, match=r"layer.*30 blocks.*1 to 30"):
        inside.block_view(tr, 31, 1)
    with pytest.raises(UserInputError, match=r"head.*1 to 9"):
        inside.block_view(tr, 1, 10)
    with pytest.raises(UserInputError, match=r"1 to 6"):
        inside.block_view(encoder[1], 7, 1)
    with pytest.raises(UserInputError, match="layer"):
        make(inside.InsideSettings, layer="NaN")


def test_empty_and_too_long_prompts_are_refused(engine):
    with pytest.raises(UserInputError, match="empty"):
        inside.journey(engine, "   ", CAUSAL)
    with pytest.raises(UserInputError, match="1 to 256 tokens"):
        inside.journey(engine, "word " * 300, CAUSAL)
    with pytest.raises(UserInputError, match="valid choice"):
        inside.journey(engine, PROMPT, "../../etc/passwd")


def test_next_token_views_refuse_the_encoder(engine):
    with pytest.raises(UserInputError, match="next-token head"):
        inside.lens(engine, PROMPT, 4, ENCODER)
    with pytest.raises(UserInputError, match="not in the sentence"):
        inside.static_vs_contextual(engine, "a river", "a bank account", "bank")


@pytest.mark.slow
def test_pieces_show_bytes_and_code_points_not_byte_level_letters(engine):
    """A zero-width space is split by SmolLM2's BPE into partial-byte pieces, and a no-break space
    is one piece: the journey shows bytes and the code point, never the BPE's 'âĢ' / 'Âł' letters."""
    import importlib

    tr = importlib.import_module("engine.inside.trace")  # the package face exports a function named trace

    bundle = engine.load("smollm2-135m-instruct")
    ids = bundle.tokenizer("a\u200bb\u00a0c", add_special_tokens=False)["input_ids"]
    pieces = tr.piece_texts(bundle.tokenizer, ids)
    joined = "".join(pieces)
    assert "<0xE2>" in joined and "[U+00A0]" in joined, pieces
    assert not any(ch in joined for ch in "âĢÂł"), pieces
    words = tr.piece_texts(bundle.tokenizer, bundle.tokenizer(" river bank", add_special_tokens=False)["input_ids"])
    assert words == [" river", " bank"]


def test_heat_strip_png_decodes_to_the_colours_of_the_numbers():
    """The strip PNG (palette colour type) is a valid image whose pixels are the diverging colours
    of the matrix: a decoder other than ours (Pillow) reads back exactly diverging_rgb."""
    import base64
    import io
    import re

    from PIL import Image

    rng = np.random.default_rng(0)
    m = rng.normal(size=(7, 33)).astype(np.float32)
    m[0, 0], m[1, 1] = 50.0, -50.0  # beyond the 99th percentile: clipped to the ends of the scale
    src = re.search(r'src="data:image/png;base64,([^"]+)"', plots.strip_img(m)).group(1)
    img = Image.open(io.BytesIO(base64.b64decode(src)))
    assert img.size == (33, 7)
    got = np.asarray(img.convert("RGB"))
    assert np.array_equal(got, plots.diverging_rgb(m))
    assert tuple(got[0, 0]) == tuple(plots.LUT[255]) and tuple(got[1, 1]) == tuple(plots.LUT[0])


@pytest.mark.parametrize("which", ["causal", "encoder"])
def test_journey_trace_without_block_hooks_reads_the_same_stream(which, request):
    """The journey's lighter trace (no hooks inside the blocks) gives the same residual stream,
    block by block, as the full trace whose hooks keep each block's output."""
    bundle, full = request.getfixturevalue(which)
    light = inside.run_trace(bundle, full.text, adds=False)
    assert light.attn_add == [] and light.mlp_add == [] and len(light.layer_out) == full.arch.n_layers
    for a, b in zip(light.layer_out, full.layer_out):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.equal(light.final, full.final)
    with pytest.raises(ValueError):
        inside.block_view(light, 1, 1)


def test_empty_prompt_is_refused_before_any_model_loads():
    """No engine at all (None): the prompt check comes first, so a bad prompt never costs a load."""
    for call in (lambda: inside.journey(None, "", CAUSAL), lambda: inside.trace(None, "   ", CAUSAL),
                 lambda: inside.lens(None, "", 8, CAUSAL)):
        with pytest.raises(UserInputError, match="empty"):
            call()
