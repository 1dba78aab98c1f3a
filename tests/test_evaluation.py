"""Engine tests for the evaluation tab: perplexity, bits per byte, sliding windows, entropy, the
cross-entropy toy, answer metrics and quantized copies. Each checks against an independent
computation (raw model logits, torch's cross_entropy, known edit distances)."""
from __future__ import annotations

import math
import unicodedata

import pytest
import torch

from engine.evaluation import answers as am
from engine.evaluation import metrics as M
from engine.evaluation import quantization as Q
from engine.evaluation.int8 import WeightOnlyInt8Linear
from engine.core.errors import UserInputError
from tests.conftest import tiny_causal_lm

TEXT = "The capital of France is Paris. Students visit the Louvre, eat crêpes and walk along the Seine."


def raw_logprobs(model, tokenizer, text):
    """Independent reference: one plain forward pass, log-softmax of the logits, the log-prob
    of each actual next token (the text preceded by <|endoftext|>)."""
    ids = torch.tensor([[M.begin_token_id(tokenizer)] + tokenizer(text, add_special_tokens=False).input_ids])
    with torch.no_grad():
        logits = model(ids).logits[0].float()  # (n, V)
    logp = torch.log_softmax(logits, -1)[:-1]  # (n-1, V): row i predicts token i+1
    return logp.gather(1, ids[0, 1:, None])[:, 0], logits[:-1], ids[0, 1:]


@pytest.fixture(scope="module")
def tiny(tiny_llama):
    """The shared tiny random Llama with SmolLM2's vocabulary (untied head) and its tokenizer."""
    return tiny_llama.model, tiny_llama.tokenizer


@pytest.fixture(scope="module")
def scored(smollm):
    """Our report for TEXT and the raw reference, computed once for the module."""
    return (M.perplexity(smollm.model, smollm.tokenizer, TEXT), *raw_logprobs(smollm.model, smollm.tokenizer, TEXT))


def test_perplexity_is_exp_of_mean_nll_from_raw_logits(scored):
    rep, lp, logits, targets = scored
    assert rep.n_tokens == lp.numel()
    ours = torch.tensor([t.logprob for t in rep.tokens])
    assert torch.allclose(ours, lp.double().float(), atol=1e-4)
    # perplexity is exactly exp of our own mean NLL; against the raw pass it can only differ by the
    # per-token float32 noise allowed above (a mean shift of 1e-4 nats is a relative 1e-4 in perplexity)
    assert rep.perplexity == pytest.approx(math.exp(-ours.double().mean().item()), rel=1e-9)
    assert rep.perplexity == pytest.approx(math.exp(-lp.double().mean().item()), rel=1e-4)
    # ranks and entropies from the same raw logits
    ranks = (logits > logits.gather(1, targets[:, None])).sum(1) + 1
    assert [t.rank for t in rep.tokens] == ranks.tolist()
    p = torch.softmax(logits, -1)
    ent = -(p * torch.log2(p.clamp_min(1e-45))).sum(1)
    assert torch.allclose(torch.tensor([t.entropy_bits for t in rep.tokens]), ent, atol=1e-3)
    # the pieces join back to the text exactly
    assert "".join(t.piece for t in rep.tokens) == TEXT


def test_bits_per_byte_and_char_are_total_bits_over_utf8_bytes(scored):
    rep, lp, _, _ = scored
    total_bits = -lp.double().sum().item() / math.log(2)
    n_bytes = len(TEXT.encode("utf-8"))
    assert n_bytes > len(TEXT)  # the text has non-ASCII characters, so bytes and characters differ
    assert rep.bits_per_byte == pytest.approx(total_bits / n_bytes, rel=1e-5)
    assert rep.bits_per_char == pytest.approx(total_bits / len(TEXT), rel=1e-5)
    # and consistent with perplexity: bits/byte = log2(ppl) * tokens / bytes
    assert rep.bits_per_byte == pytest.approx(math.log2(rep.perplexity) * rep.n_tokens / n_bytes, rel=1e-9)


def test_sliding_window_equals_single_pass_when_text_fits(smollm, scored):
    one = scored[0]
    n = one.n_tokens + 1  # with the begin token
    fits = M.perplexity(smollm.model, smollm.tokenizer, TEXT, window=n, stride=8)
    assert len(one.windows) == len(fits.windows) == 1
    assert fits.perplexity == pytest.approx(one.perplexity, rel=1e-6)
    # a window shorter than the text: several passes, every token still scored exactly once
    short = M.perplexity(smollm.model, smollm.tokenizer, TEXT, window=16, stride=8)
    assert len(short.windows) > 1
    assert [t.index for t in short.tokens] == list(range(one.n_tokens))
    assert all(t.context >= 16 - 8 for t in short.tokens[15:])
    assert short.perplexity != pytest.approx(one.perplexity, rel=1e-6)  # less context, other numbers


def test_plan_windows_covers_each_position_once():
    for n, w, s in [(10, 4, 2), (100, 32, 7), (33, 33, 1), (5, 64, 32), (1000, 128, 127)]:
        plan = M.plan_windows(n, w, s)
        scored = [p for (_, end, first) in plan for p in range(first, end)]
        assert scored == list(range(1, n))
        for begin, end, first in plan:
            assert end - begin <= w and first > begin  # at least one token of context
    with pytest.raises(UserInputError, match="stride = 8 must be smaller than window = 8"):
        M.plan_windows(100, 8, 8)


def test_sliding_window_matches_the_transformers_guide_loop(tiny):
    """The perplexity guide's loop (labels -100 on the context part, loss from the model) gives
    the same total NLL when the windows line up ((n - window) divisible by stride)."""
    model, tok = tiny
    text = " ".join(["rivers carry water back to the sea"] * 12)
    ids = [M.begin_token_id(tok)] + tok(text, add_special_tokens=False).input_ids
    window, stride = 32, 8
    n = len(ids) - ((len(ids) - window) % stride)
    ids = ids[:n]
    text = tok.decode(ids[1:])
    assert tok(text, add_special_tokens=False).input_ids == ids[1:]
    rep = M.perplexity(model, tok, text, window=window, stride=stride)
    x = torch.tensor([ids])
    nll_sum, prev_end = 0.0, 0
    with torch.no_grad():
        for begin in range(0, n, stride):
            end = min(begin + window, n)
            trg = end - prev_end
            inp = x[:, begin:end]
            labels = inp.clone()
            labels[:, :-trg] = -100
            loss = model(inp, labels=labels).loss
            scored = (labels[:, 1:] != -100).sum().item()
            nll_sum += loss.item() * scored
            prev_end = end
            if end == n:
                break
    assert rep.total_nll == pytest.approx(nll_sum, rel=1e-4)


def test_entropy_of_uniform_is_log_v(tiny):
    for v in (2, 7, 49152):
        assert M.entropy_bits([1 / v] * v) == pytest.approx(math.log2(v))
    model, tok = tiny
    flat = type(model)(model.config).eval()
    with torch.no_grad():
        flat.lm_head.weight.zero_()  # every logit 0: the prediction is uniform over the vocabulary
    rep = M.perplexity(flat, tok, "uniform predictions everywhere", window=256, stride=128)
    v = model.config.vocab_size
    assert all(t.entropy_bits == pytest.approx(math.log2(v), rel=1e-5) for t in rep.tokens)
    assert all(t.rank == 1 for t in rep.tokens)
    assert rep.perplexity == pytest.approx(v, rel=1e-4)


def test_cross_entropy_toy_matches_torch():
    labels, logits = M.parse_logits("cat 3.0, dog: 2.2\ncar=0.5, tree -1")
    assert labels == ["cat", "dog", "car", "tree"] and logits == [3.0, 2.2, 0.5, -1.0]
    for target, temp in (("dog", 1.0), ("tree", 0.5), ("cat", 3.0)):
        toy = M.cross_entropy_toy(labels, logits, target, temp)
        ref = torch.nn.functional.cross_entropy(torch.tensor([logits]) / temp, torch.tensor([labels.index(target)]))
        assert toy["loss_nats"] == pytest.approx(ref.item(), rel=1e-6)
        assert sum(toy["probs"]) == pytest.approx(1.0)
    big = M.cross_entropy_toy(["a", "b"], [50.0, -50.0], "b", 0.05)  # no overflow
    assert big["loss_nats"] == pytest.approx(2000.0)
    with pytest.raises(UserInputError, match="'pear'"):
        M.cross_entropy_toy(labels, logits, "pear")
    with pytest.raises(UserInputError, match="2 to 20"):
        M.parse_logits("cat 1")
    with pytest.raises(UserInputError, match="'cat x'"):
        M.parse_logits("cat x, dog 1")


def test_edit_distance_and_exact_match_known_cases():
    assert am.edit_distance("kitten", "sitting") == 3
    assert am.edit_distance("flaw", "lawn") == 2
    assert am.edit_distance("", "abc") == am.edit_distance("abc", "") == 3
    assert am.edit_distance("Paris", "Paris") == 0
    assert am.edit_distance("abc", "xyzw") == am.edit_distance("xyzw", "abc") == 4
    assert am.edit_ratio("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert am.edit_ratio("", "") == 1.0
    assert am.exact_match("Paris", "Paris") and not am.exact_match("Paris", "paris.")
    assert am.exact_match("Paris", "  the PARIS! ", "normalized")
    assert not am.exact_match("Paris", "Lyon", "normalized")
    assert am.normalize("The  Eiffel-Tower, in an instant!") == "eiffeltower in instant"


NFC = unicodedata.normalize("NFC", "café crème")  # é as one code point
NFD = unicodedata.normalize("NFD", "café crème")  # e + U+0301 COMBINING ACUTE ACCENT


def test_exact_match_variants_do_what_their_descriptions_say():
    assert NFC != NFD and len(NFD) == len(NFC) + 2
    # raw: nothing normalised, not even the spaces around the answer or the Unicode form
    for same_looking in (NFD, NFC + " ", " " + NFC, NFC + "\t"):
        assert not am.exact_match(NFC, same_looking, "raw")
    assert am.exact_match(NFC, NFC, "raw")
    # unicode: NFC form + trimmed; case and punctuation still count
    assert am.exact_match(NFC, NFD, "unicode") and am.exact_match(NFC, " " + NFD + " ", "unicode")
    assert not am.exact_match(NFC, NFC.upper(), "unicode") and not am.exact_match(NFC, NFC + "!", "unicode")
    # normalized (SQuAD-style) also sees NFC and NFD as the same text
    assert am.exact_match(NFC, NFD.upper() + ".", "normalized")
    assert am.normalize(NFD) == am.normalize(NFC) == NFC
    # NFKC folds compatibility forms (full-width letters, ligatures), NFC does not
    wide = "ｃａｆé"
    assert not am.exact_match("café", wide, "unicode", "NFC") and am.exact_match("café", wide, "unicode", "NFKC")
    assert am.exact_match("ﬁne", "fine", "normalized", "NFKC") and not am.exact_match("ﬁne", "fine", "normalized")
    # "dropping punctuation" means all of it, not only ASCII
    assert am.normalize("¿Dónde está? «París» — 東京。") == am.normalize("Dónde está París 東京")
    with pytest.raises(UserInputError, match="'NFD'.*'NFC', 'NFKC'"):
        am.exact_match("a", "a", "unicode", "NFD")
    with pytest.raises(UserInputError, match="'NFD'"):
        am.compare_answers("a", "a", form="NFD")


def test_compare_answers_keeps_candidates_as_typed():
    rows = am.compare_answers(NFC, [NFC, NFD, NFC + " ", "  " + NFC, "\n"])
    assert [r["candidate"] for r in rows] == [NFC, NFD, NFC + " ", "  " + NFC]  # blank line skipped
    assert [r["exact_raw"] for r in rows] == [True, False, False, False]
    assert all(r["exact_unicode"] and r["exact_normalized"] for r in rows)
    assert all(r["edit_distance"] == 0 and r["token_f1"] == 1.0 for r in rows)  # on the NFC, trimmed text
    same = am.compare_answers("Paris ", "Paris\nParis ")  # the reference is kept as typed too
    assert [r["exact_raw"] for r in same] == [False, True]
    wide = am.compare_answers("café", "ｃａｆé", form="NFKC")[0]
    assert wide["exact_unicode"] and wide["edit_distance"] == 0 and wide["unicode_form"] == "NFKC"
    assert am.compare_answers("café", "ｃａｆé")[0]["edit_distance"] == 3


def test_token_and_bigram_f1():
    # SQuAD-style: ref 'the cat sat on the mat' -> [cat sat on mat]; cand [cat sat] -> P=1, R=0.5
    assert am.ngram_f1("the cat sat on the mat", "a cat sat", 1) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert am.ngram_f1("cat sat on mat", "mat on sat cat", 1) == 1.0
    assert am.ngram_f1("cat sat on mat", "mat on sat cat", 2) == 0.0  # same words, no shared pair
    assert am.ngram_f1("Paris", "London", 2) == 0.0 and am.ngram_f1("Paris", "paris", 2) == 1.0


def test_semantic_similarity_and_judge(minilm, smollm):
    sims = am.semantic_similarity(minilm.model, minilm.tokenizer, "The capital of France is Paris.",
                                  ["The capital of France is Paris.", "Paris is France's capital city.",
                                   "I had soup for lunch."])
    assert sims[0] == pytest.approx(1.0, abs=1e-5)
    assert sims[1] > sims[2]
    res = am.judge(smollm.model, smollm.tokenizer, "Paris", "London", "What is the capital of France?")
    assert sum(res["digit_probs"]) == pytest.approx(1.0)
    assert 1 <= res["expected"] <= 5 and 0 < res["digit_mass"] <= 1
    ids = smollm.tokenizer(res["prompt"], add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        p = torch.softmax(smollm.model(ids).logits[0, -1].float(), -1)
    digits = p[[smollm.tokenizer.convert_tokens_to_ids(str(d)) for d in range(1, 6)]]
    assert torch.allclose(torch.tensor(res["digit_probs"]), digits / digits.sum(), atol=1e-4)
    rows = am.compare_answers("Paris", "Paris\nparis.\nLondon", encoder_bundle=minilm)
    assert [r["exact_raw"] for r in rows] == [True, False, False]
    assert [r["exact_normalized"] for r in rows] == [True, True, False]
    with pytest.raises(UserInputError, match="1 to 8"):
        am.compare_answers("Paris", "\n\n")


def test_input_checks(smollm):
    with pytest.raises(UserInputError, match="stride = 512 must be smaller than window = 256"):
        M.perplexity(smollm.model, smollm.tokenizer, TEXT, window=256, stride=512)
    with pytest.raises(UserInputError, match="window = 4"):
        M.perplexity(smollm.model, smollm.tokenizer, TEXT, window=4, stride=2)
    with pytest.raises(UserInputError, match="empty"):
        M.perplexity(smollm.model, smollm.tokenizer, "   ")


def test_quantized_copies_leave_the_base_model_alone(tiny, engine, monkeypatch):
    from engine import Engine
    from engine.core.models import TextModel

    model, tok = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bundle = TextModel(model, tok, None, torch.device("cpu"), torch.float32)
    eng = Engine(device="cpu", offline=True, cache_bytes=2**30)
    monkeypatch.setattr(eng, "load", lambda key, variant="default", progress=None: bundle)
    text = "Rivers carry the water back to the sea, and the sun warms the oceans again."
    rows = Q.quantization_compare(eng, "smollm2-135m-instruct", text, ["int8-dynamic", "fp32", "int8-weights", "bf16"],
                                  new_tokens=3)
    assert [r["variant"] for r in rows] == ["fp32", "bf16", "int8-weights", "int8-dynamic"]
    fp32, bf16, weights, dynamic = rows
    assert "weights only" in weights["description"] and "activations stay float" in weights["description"]
    assert "weights + activations" in dynamic["description"]
    assert bf16["size_mb"] == pytest.approx(fp32["size_mb"] / 2)
    assert weights["size_mb"] < fp32["size_mb"] and dynamic["size_mb"] < fp32["size_mb"]
    assert fp32["perplexity"] == pytest.approx(M.perplexity(model, tok, text, 512, 256).perplexity, rel=1e-6)
    assert bf16["perplexity"] == pytest.approx(fp32["perplexity"], rel=0.05)
    assert all(r["tokens_per_s"] > 0 for r in rows)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and next(model.parameters()).dtype == torch.float32
    keys = [e["key"] for e in eng.cache.stats()["entries"]]
    assert sum("eval-quantization" in k for k in keys) == 3
    assert Q.free_variants(eng, "smollm2-135m-instruct") == 3
    assert not any("eval-quantization" in e["key"] for e in eng.cache.stats()["entries"])
    with pytest.raises(UserInputError, match="fp16"):
        Q.quantization_compare(eng, "smollm2-135m-instruct", text, ["fp16"])
    with pytest.raises(UserInputError, match="'int8'.*int8-weights, int8-dynamic"):  # say which int8
        Q.quantization_compare(eng, "smollm2-135m-instruct", text, ["int8"])


@pytest.fixture(scope="module")
def small_llama():
    """A tiny random Llama with its own small vocabulary (no tokenizer needed)."""
    return tiny_causal_lm(vocab_size=97, hidden_size=48, intermediate_size=80, max_position_embeddings=64)


def _linears(model, kind):
    return {n: m for n, m in model.named_modules() if type(m) is kind}


def test_weight_only_int8_rounds_weights_and_leaves_activations_float(small_llama):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    weights = Q.build_variant(small_llama, "int8-weights")
    dynamic = Q.build_variant(small_llama, "int8-dynamic")
    floats = {n: m for n, m in small_llama.named_modules() if isinstance(m, torch.nn.Linear)}
    quantized = _linears(weights, WeightOnlyInt8Linear)
    # every block Linear is int8 in both variants; the output head stays a float Linear
    assert set(quantized) == set(_linears(dynamic, DynamicLinear)) == set(floats) - {"lm_head"}
    assert not _linears(weights, DynamicLinear) and type(weights.lm_head) is torch.nn.Linear
    for name, q in quantized.items():
        w = floats[name].weight.detach()
        assert q.weight_int8.dtype == torch.int8 and q.weight_int8.abs().max() <= 127
        step = q.scale[:, None]  # one quantization step per output row
        assert torch.all((q.dequantized_weight() - w).abs() <= step / 2 * (1 + 1e-5))
    # activations: each int8-weights layer gets a float32 input and computes with it unrounded,
    # while the dynamic layers round their input (their outputs stray far further from the float
    # product with their own int8 weights)
    seen = {}

    def record(name):
        def hook(mod, args, out):
            seen.setdefault(name, (args[0], out))  # returns None: the output is left as it is
        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in quantized.items()]
    ids = torch.randint(0, 97, (1, 12))
    with torch.no_grad():
        weights(input_ids=ids)
    for h in hooks:
        h.remove()
    assert set(seen) == set(quantized)
    for name, (x, out) in seen.items():
        assert x.dtype == torch.float32 and out.dtype == torch.float32
        expected = torch.nn.functional.linear(x, quantized[name].dequantized_weight())
        assert torch.allclose(out, expected, atol=1e-5, rtol=1e-5), name
    name = "model.layers.0.mlp.down_proj"
    x = seen[name][0]
    dyn = dynamic.get_submodule(name)
    with torch.no_grad():
        dyn_err = (dyn(x) - torch.nn.functional.linear(x, dyn.weight().dequantize())).abs().max()
        own_err = (quantized[name](x) - torch.nn.functional.linear(x, quantized[name].dequantized_weight())).abs().max()
    assert dyn_err > 100 * own_err


@pytest.mark.slow
def test_smollm2_weight_only_int8_stays_close_to_fp32(engine, smollm):
    """The claim the tab makes: rounding weights to int8 costs little perplexity; rounding the
    activations too (dynamic quantization) costs far more."""
    text = "The sun warms the oceans, and some of the water rises into the air as vapour. " * 2
    rows = Q.quantization_compare(engine, "smollm2-135m-instruct", text, ["fp32", "int8-weights", "int8-dynamic"],
                                  new_tokens=1)
    fp32, weights, dynamic = (r["perplexity"] for r in rows)
    assert abs(weights / fp32 - 1) < 0.1
    assert dynamic / fp32 - 1 > 2 * abs(weights / fp32 - 1)
    Q.free_variants(engine, "smollm2-135m-instruct")
