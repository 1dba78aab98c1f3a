"""The Inference lesson (issue 38): the KV cache's bytes, cached = uncached tokens, assisted = plain
greedy, the expected-tokens formula against a simulation, pruning and its undo, timings from the
clock, bad knobs refused by name. Tiny random models from configs, except the one SmolLM2 check."""
from __future__ import annotations


import pytest
import torch

from engine import inference
from engine.core.errors import UserInputError
from engine.core.models import TextModel
from engine.core.registry import ModelSpec, Source
from engine.inference import batching, kv, measure, plots, sparsity, speculative, utilization
from tests.conftest import tiny_causal_lm

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPT = "The capital of France is"


def bundle(model, tokenizer, key="tiny") -> TextModel:
    spec = ModelSpec(key=key, task="causal-lm", title=key, loader="tests:none")
    return TextModel(model, tokenizer, Source(spec, "embedded", "(memory)"), torch.device("cpu"), torch.float32)


class FakeClock:
    """Each reading `step` seconds after the last: timings that only this clock decides."""

    def __init__(self, step: float):
        self.step, self.t = step, 0.0

    def __call__(self) -> float:
        self.t += self.step
        return self.t


@pytest.fixture(scope="module")
def gqa(smollm2_tokenizer):
    """Llama with 4 query heads sharing 2 K/V heads (grouped-query, as SmolLM2's 9 over 3)."""
    return bundle(tiny_causal_lm(max_position_embeddings=512), smollm2_tokenizer)


def test_cache_bytes_from_the_formula_equal_the_cache_tensors_and_tokens_match(gqa):
    st = kv.step_times(gqa, PROMPT, 6)
    assert st.kv.bytes == st.kv.formula == 2 * 2 * 2 * 8 * st.kv.tokens * 4  # layers, K+V, kv-heads, head-dim
    assert st.kv.tokens == st.prompt_tokens + 5  # the last token made is never fed back
    assert st.same_tokens and len(st.cached_ids) == 6
    assert st.mha_bytes == 2 * st.kv.bytes  # 4 query heads over 2 K/V heads
    ref = gqa.model.generate(**gqa.tokenizer(PROMPT, return_tensors="pt"), max_new_tokens=6, do_sample=False,
                             pad_token_id=0)
    assert st.cached_ids == ref[0, st.prompt_tokens:].tolist()
    md = plots.kv_markdown(st)
    assert f"2 × 2 × 2 × 8 × {st.kv.tokens} × 4 = **{st.kv.formula:,} bytes**" in md and ": equal" in md
    assert len(plots.kv_figure(st).data) == 3 and plots.kv_table(st)[0]["tokens"] == 1024


def test_timings_come_from_the_clock(gqa):
    slow = kv.step_times(gqa, PROMPT, 4, clock=FakeClock(0.5))
    fast = kv.step_times(gqa, PROMPT, 4, clock=FakeClock(0.1))
    assert slow.cached_s == pytest.approx([0.5] * 3) and fast.cached_s == pytest.approx([0.1] * 3)
    rows = batching.batching(gqa, 2, 4, clock=FakeClock(1.0))[0]
    assert [(r.batch, r.tokens_per_s, r.latency_s) for r in rows] == [(1, 4.0, 1.0), (2, 8.0, 1.0)]
    rows = batching.batching(gqa, 2, 4, clock=FakeClock(2.0))[0]
    assert [r.tokens_per_s for r in rows] == [2.0, 4.0]
    assert "Batch 2: **4.0 tokens/s** in all (2.0× batch 1)" in plots.batching_markdown(rows, "CPU", "")
    assert len(plots.batching_figure(rows).data) == 2
    peak = measure.matmul_peak("cpu", torch.float32, clock=FakeClock(0.25), size=64)
    assert peak.flops == pytest.approx(2 * 64 ** 3 / 0.25)


def test_with_a_server_set_the_same_requests_go_there_too(gqa, monkeypatch):
    from types import SimpleNamespace

    sent = []
    route = SimpleNamespace(client=SimpleNamespace(config=SimpleNamespace(concurrency=32)),
                            describe=lambda: "smollm2 at http://127.0.0.1:9/v1")
    monkeypatch.setattr(batching.serving, "use_server", lambda tm: route)
    monkeypatch.setattr(batching.serving, "complete", lambda r, ids, max_tokens, min_tokens: sent.append(ids) or
                        {"usage": {"completion_tokens": max_tokens}})
    rows, where, _ = batching.batching(gqa, 2, 4, clock=FakeClock(1.0))
    assert [(r.where, r.batch) for r in rows] == [("in-process", 1), ("server", 1), ("in-process", 2), ("server", 2)]
    assert len(sent) == 3 and "server: smollm2 at" in where
    assert all(r.tokens_per_s > 0 for r in rows)


def test_utilization_reads_the_anatomy_formula_and_the_measured_peak(gqa):
    u = utilization.utilization(gqa, PROMPT, 3, clock=FakeClock(0.5), peak_size=256, copy_mb=8)
    n_matmul, _ = utilization.matmul_weights(gqa.model)
    assert u.n_matmul == n_matmul == 2 * (32 * 32 * 2 + 32 * 16 * 2 + 3 * 32 * 64) + 49152 * 32
    assert u.prefill.seconds == 0.5 and u.decode.tokens_per_s == pytest.approx(3 / 0.5)
    assert u.share(u.decode) == pytest.approx(u.decode.achieved / u.peak.flops)
    assert "| decode | 3 |" in plots.utilization_markdown(u) and len(plots.utilization_figure(u).data) == 1
    assert u.peak.flops == pytest.approx(2 * 256 ** 3 / 0.5) and u.bandwidth.bytes_per_s == pytest.approx(2 * 8 * 2**20 / 0.5)


@pytest.mark.parametrize("alpha, k", [(0.0, 4), (0.3, 2), (0.6, 4), (0.9, 8), (1.0, 3)])
def test_expected_tokens_formula_matches_a_simulation(alpha, k):
    assert speculative.simulate(alpha, k, steps=40000) == pytest.approx(speculative.expected_tokens(alpha, k),
                                                                         rel=0.02)


def test_assisted_generation_equals_plain_greedy(gqa, smollm2_tokenizer):
    same = speculative.speculate(gqa, gqa, PROMPT, 12, 3)
    assert same.identical and not same.universal
    assert [(r.proposed, r.accepted) for r in same.rounds] == [(3, 3)] * 3  # a perfect draft: 4 tokens a forward
    other = bundle(tiny_causal_lm(seed=7, num_hidden_layers=1), smollm2_tokenizer, "draft")
    s = speculative.speculate(gqa, other, PROMPT, 12, 3)
    assert s.identical and s.plain_ids == same.plain_ids
    assert len(s.assisted_ids) == sum(r.accepted + 1 for r in s.rounds) == 12
    assert "**identical** to plain greedy" in plots.speculative_markdown(s)
    assert plots.speculative_figure(s).data[-1].name == "measured here"


def test_pruning_leaves_the_asked_share_of_zeros_and_restores_the_weights(gqa):
    model = speculative.twin(gqa.model)
    before = {n: p.detach().clone() for n, p in gqa.model.named_parameters()}
    for percent in (10, 50, 90):
        with sparsity.pruned(model, percent) as layers:
            assert all(abs(100 * float((m.weight == 0).float().mean()) - percent) <= 1 for m in layers)
        assert all(isinstance(m.weight, torch.nn.Parameter) for m in layers)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert all(torch.equal(p, before[n]) for n, p in gqa.model.named_parameters())


def test_sparsity_rows_measure_zeros_and_perplexity_and_leave_the_model_alone(gqa):
    before = {n: p.detach().clone() for n, p in gqa.model.named_parameters()}
    rows, device = sparsity.sparsity(gqa, "The cat sat on the mat. " * 4, 50, clock=FakeClock(0.01))
    assert [r.target for r in rows] == [0, 10, 30, 50] and "CPU" in device
    assert all(abs(r.zeros - r.target) <= 1 for r in rows) and all(r.forward_s == pytest.approx(0.01) for r in rows)
    assert rows[0].perplexity != rows[-1].perplexity
    assert "50% zeros" in plots.sparsity_markdown(rows, device) and len(plots.sparsity_table(rows)) == 4
    assert all(torch.equal(p, before[n]) for n, p in gqa.model.named_parameters())


def test_quantization_rows_read_as_a_table():
    rows = [dict(variant=v, description=v, size_mb=mb, size_vs_fp32=mb / 512, tokens_per_s=tps, perplexity=ppl,
                 perplexity_change_pct=100 * (ppl / 10 - 1), tokens_scored=60) for v, mb, tps, ppl in
            (("fp32", 512, 10.0, 10.0), ("int8-dynamic", 160, 15.0, 10.5))]
    assert [r["perplexity change"] for r in plots.quant_table(rows)] == ["+0.00%", "+5.00%"]
    assert "15.0 tokens/s (1.50× fp32)" in plots.quant_markdown(rows, "CPU", "")


@pytest.mark.parametrize("call, match", [
    (lambda e: inference.kv_cache(e, "smollm2-135m-instruct", PROMPT, 500), "new_tokens"),
    (lambda e: inference.run_batching(e, "smollm2-135m-instruct", 64, 8), "max_batch"),
    (lambda e: inference.run_batching(e, "smollm2-135m-instruct", 4, 2.5), "batch_tokens"),
    (lambda e: inference.speculate(e, "gemma3-270m-base", PROMPT, 16, 0), "draft_tokens"),
    (lambda e: inference.speculate(e, "minilm-l6", PROMPT, 16, 4), "target model"),
    (lambda e: inference.run_sparsity(e, "smollm2-135m-instruct", PROMPT, 95), "max_sparsity"),
    (lambda e: inference.kv_cache(e, "../../etc/passwd", PROMPT, 8), "model"),
    (lambda e: inference.quantization(e, "smollm2-135m-instruct", PROMPT, float("nan")), "quant_tokens"),
])
def test_bad_knobs_are_refused_by_name(engine, call, match):
    with pytest.raises(UserInputError, match=match):
        call(engine)


def test_batch_sizes_double_up_to_the_maximum():
    assert batching.batch_sizes(1) == [1]
    assert batching.batch_sizes(16) == [1, 2, 4, 8, 16]
    assert batching.batch_sizes(24) == [1, 2, 4, 8, 16, 24]
    ids, mask = batching.left_pad(type("T", (), {"pad_token_id": 0, "__call__": lambda s, p, **k: type(
        "E", (), {"input_ids": list(range(1, len(p) + 1))})()})(), ["ab", "abcd"], "cpu")
    assert ids.tolist() == [[0, 0, 1, 2], [1, 2, 3, 4]] and mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]


@pytest.mark.slow
def test_smollm2_cache_bytes_equal_its_tensors(smollm):
    st = kv.step_times(smollm, PROMPT, 2)
    assert (st.kv.layers, st.kv.kv_heads, st.kv.head_dim, st.heads) == (30, 3, 64, 9)
    assert st.kv.bytes == st.kv.formula == 30 * 2 * 3 * 64 * st.kv.tokens * 4
    assert st.same_tokens


