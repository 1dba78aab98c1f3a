"""The Post-training tab through its API (gradio_client) on the real embedded Gemma 3 270M base and
SmolLM2-Instruct: base vs instruct, the loss-mask view, a 2-step SFT that leaves the shared base as it
was, and a fresh session that has no adapter."""
from __future__ import annotations

import pytest
import torch


pytestmark = pytest.mark.usefixtures("one_thread")
# /posttraining_sft_train's arguments by the API's names
SMALL = dict(src="bundled", file=None, mask="response", r=4, lr=0.002, steps=2, batch=2, max_len=40, seed_v=42,
             tmods=["q_proj", "v_proj"])


def test_base_vs_instruct_format_and_a_short_sft(client, gemma, app_url):
    ids = gemma.tokenizer("What is 2 + 2?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = gemma.model(input_ids=ids).logits
    base, iraw, ichat, md = client.predict(q="What is 2 + 2?", seed_v=7, n_new=8, temp=0.0,
                                           api_name="/posttraining_base_vs_instruct")
    assert base.startswith("What is 2 + 2?") and "<|im_start|>assistant" in ichat and "Same seed" in md
    text, view = client.predict(p="What is 23 + 58?", resp="81", api_name="/posttraining_format")
    assert text.startswith("<bos><start_of_turn>user\nWhat is 23 + 58?<end_of_turn>\n<start_of_turn>model\n81")
    # response only: '8', '1', '<end_of_turn>' count; everything: every token but the first
    assert "3 tokens counted" in view and view.count("data-counted='1'") == 3 + len(gemma.tokenizer(
        text, add_special_tokens=False)["input_ids"]) - 1
    status, _ = client.predict(**SMALL, api_name="/posttraining_sft_train")
    assert "Done" in status and "2 / 2" in status, status
    with torch.no_grad():
        assert torch.equal(gemma.model(input_ids=ids).logits, before)  # the shared base did not move
    with pytest.raises(Exception, match=r"(max steps = 0|Value 0 is less than minimum value 1)"):
        client.predict(**dict(SMALL, steps=0), api_name="/posttraining_sft_train")

    from gradio_client import Client

    with pytest.raises(Exception, match="no SFT adapter in this session"):
        Client(app_url, verbose=False).predict(n=1, api_name="/posttraining_sft_compare")
