"""Start here: a card per lesson, each with what it teaches and a link to a first example."""
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
