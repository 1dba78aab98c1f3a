"""The Post-training tab through its API (gradio_client) on the real embedded Gemma 3 270M base and
SmolLM2-Instruct: base vs instruct, the loss-mask view, a 2-step SFT that leaves the shared base as it
was, and a fresh session that has no adapter."""
from __future__ import annotations

import pytest
import torch

from engine.training import sft as S

pytestmark = pytest.mark.usefixtures("one_thread")
# source, upload, mask, r, lr, steps, batch, max_len, seed, targets
SMALL = ("bundled", None, "response", 4, 0.002, 2, 2, 40, 42, ["q_proj", "v_proj"])


@pytest.fixture(scope="module")
def gemma(engine):
    return engine.load(S.BASE_KEY)


def test_base_vs_instruct_format_and_a_short_sft(client, gemma, app_url):
    ids = gemma.tokenizer("What is 2 + 2?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = gemma.model(input_ids=ids).logits
    base, iraw, ichat, md = client.predict("What is 2 + 2?", 7, 8, 0.0, api_name="/posttraining_base_vs_instruct")
    assert base.startswith("What is 2 + 2?") and "<|im_start|>assistant" in ichat and "Same seed" in md
    text, view = client.predict("What is 23 + 58?", "81", api_name="/posttraining_format")
    assert text.startswith("<bos><start_of_turn>user\nWhat is 23 + 58?<end_of_turn>\n<start_of_turn>model\n81")
    # response only: '8', '1', '<end_of_turn>' count; everything: every token but the first
    assert "3 tokens counted" in view and view.count("data-counted='1'") == 3 + len(gemma.tokenizer(
        text, add_special_tokens=False)["input_ids"]) - 1
    status, _ = client.predict(*SMALL, api_name="/posttraining_sft_train")
    assert "Done" in status and "2 / 2" in status, status
    with torch.no_grad():
        assert torch.equal(gemma.model(input_ids=ids).logits, before)  # the shared base did not move
    with pytest.raises(Exception, match=r"(max steps = 0|Value 0 is less than minimum value 1)"):
        client.predict(*SMALL[:5], 0, *SMALL[6:], api_name="/posttraining_sft_train")

    from gradio_client import Client

    with pytest.raises(Exception, match="no SFT adapter in this session"):
        Client(app_url, verbose=False).predict(1, api_name="/posttraining_sft_compare")
