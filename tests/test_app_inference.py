"""The Inference tab through its API (gradio_client): the KV-cache view on SmolLM2, and a bad knob refused."""
from __future__ import annotations

import pytest
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"


def test_kv_cache_api_checks_the_bytes_and_refuses_a_bad_knob(client):
    figure, md, table = client.predict(MODEL, "The capital of France is", 4, api_name="/inference_kv_cache")
    assert "30 × 2 × 3 × 64" in md and ": equal" in md and "the same tokens" in md
    assert "Measured on" in md and "CPU" in md
    assert [r[0] for r in table["data"]] == [1024, 4096, 8192, 32768]
    with pytest.raises(AppError, match=r"new_tokens|minimum value 4"):  # the slider or the engine
        client.predict(MODEL, "The capital of France is", 0, api_name="/inference_kv_cache")
