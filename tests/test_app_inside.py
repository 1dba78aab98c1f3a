"""The Inside-the-model tab through its API (gradio_client)."""
from __future__ import annotations

import pytest
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"


def test_journey_api_draws_the_real_shapes(client):
    html, shapes, layer, head = client.predict("The capital of France is", MODEL, api_name="/inside_journey")
    assert "(1, 5, 576)" in html and "Paris" in html and "30 blocks" in html
    assert "49,152" in html and "logits" in shapes


def test_block_api_returns_tables_and_refuses_a_bad_layer(client):
    out = client.predict("The capital of France is", MODEL, 3, 5, api_name="/inside_block")
    worked, weights = out[1], out[8]
    assert "K/V head 2" in worked and "RoPE" in worked
    rows = weights["data"]
    assert len(rows) == 5 and all(abs(sum(r[1:]) - 1) < 1e-3 for r in rows)
    # SmolLM2 has 9 heads: the engine (or the slider, once a journey set its maximum) names the range
    with pytest.raises(AppError, match=r"1 to 9|maximum value 9"):
        client.predict("The capital of France is", MODEL, 3, 10, api_name="/inside_block")


def test_lens_api_refuses_the_encoder(client):
    with pytest.raises(AppError, match="next-token head"):
        client.predict("The cat sat", "minilm-l6", 4, api_name="/inside_lens")
