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
