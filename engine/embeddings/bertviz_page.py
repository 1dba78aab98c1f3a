"""bertviz's head view and model view as one self-contained HTML page, with no CDN.

bertviz returns HTML that pulls require.js from cdnjs and a script whose require.config points
d3 and jquery at cdnjs too. Here the three libraries are inlined from assets/vendor/ (built by
scripts/vendor_bertviz_js.py) in the order that works: d3 first (with no AMD loader present it
sets window.d3), then jquery, then require.js, then `define` shims that hand the globals to
bertviz's `requirejs(['jquery', 'd3'], ...)`. bertviz's require.config is dropped.

Gradio's gr.HTML does not run <script>, so the page goes into <iframe srcdoc=...
sandbox="allow-scripts">: scripts run, but the page cannot touch the app or its cookies.
"""
from __future__ import annotations

import html
import re
from functools import lru_cache

import numpy as np

from .attention import AttentionMaps
from ..core.errors import UserInputError, check_choice, check_range
from ..core.lazy import torch
from ..core.registry import ASSETS

VENDOR = ASSETS / "vendor"
LIBS = ("d3-5.7.0.min.js", "jquery-2.2.4.min.js", "require-2.3.6.js")  # this order matters
SHIMS = "define('d3', [], function () { return window.d3; });\n" \
        "define('jquery', [], function () { return window.jQuery; });\n"
VIEWS = ("head", "model")
SPARE = 40  # px under the last token: a horizontal scrollbar or a taller font must not hide it
MAX_TOKENS = 64  # bertviz draws every pair as an SVG line; more gets slow and unreadable
CDN_TAG = re.compile(r"<script[^>]*\bsrc=[^>]*>\s*</script>", re.I)
REQUIRE_CONFIG = re.compile(r"require\.config\(\{.*?\n\}\);", re.S)


@lru_cache(maxsize=1)
def vendored_js() -> str:
    parts = []
    for name in LIBS:
        path = VENDOR / name
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run python scripts/vendor_bertviz_js.py")
        parts.append(f"<script>/* {name} */\n{path.read_text(encoding='utf-8')}\n</script>")
    parts.append(f"<script>{SHIMS}</script>")
    return "\n".join(parts)


def _bertviz_html(view: str, maps: AttentionMaps, layer: int | None, heads: list[int] | None) -> str:
    from bertviz import head_view, model_view

    # Rounded to 3 decimals in float64 so the JSON bertviz writes stays short (0.123, not
    # 0.12300000339746475).
    rounded = torch.from_numpy(np.round(maps.weights.astype(np.float64), 3))  # (layers, heads, q, k)
    attention = [layer[None] for layer in rounded]  # layers x (1, heads, q, k), as bertviz expects
    if view == "head":
        return head_view(attention, maps.tokens, prettify_tokens=False, layer=layer, heads=heads,
                         html_action="return").data
    return model_view(attention, maps.tokens, prettify_tokens=False, display_mode="light",
                      html_action="return").data


def offline_page(view: str, maps: AttentionMaps, layer: int | None = None, head: int | None = None) -> str:
    """A full HTML document that draws bertviz's view with the vendored libraries only.
    layer/head (1-based) preselect what the head view shows first; None = layer 1, all heads."""
    check_choice("view", view, VIEWS)
    first_layer = None if layer is None else check_range("layer", layer, 1, maps.n_layers, integer=True) - 1
    heads = None if head is None else [check_range("head", head, 1, maps.n_heads, integer=True) - 1]
    if maps.n_tokens > MAX_TOKENS:
        raise UserInputError(f"The text is {maps.n_tokens} tokens long: the bertviz views take 1 to "
                             f"{MAX_TOKENS} tokens. Shorten the text.")
    body = _bertviz_html(view, maps, first_layer, heads)
    body = CDN_TAG.sub("", body)  # bertviz's <script src="https://cdnjs..."> for require.js
    body, n = REQUIRE_CONFIG.subn("", body, count=1)  # its require.config pointing at cdnjs
    if n != 1 or "cdnjs" in body:
        raise RuntimeError("bertviz's HTML changed: could not remove its CDN references")
    style = ("body{margin:8px;background:#fff;color:#111;font-family:Helvetica,Arial,sans-serif}"
             "select{font-size:14px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style>\n"
            f"{vendored_js()}\n</head><body>\n{body}\n</body></html>")


def frame_height(view: str, maps: AttentionMaps) -> int:
    """The iframe does not size itself: estimate its height (px) from bertviz's own layout rules."""
    n = maps.n_tokens
    if view == "head":  # BOXHEIGHT per token + TEXT_TOP + the layer menu + room for a scrollbar
        return int(n * 22.5 + 30 + 60 + SPARE)
    thumb_box = 7 * 12 / maps.n_heads  # model_view.js: thumbnailBoxHeight
    thumb = n * thumb_box + 10
    axis = 15 + 5 + 13 + 5
    detail = n * 18 + 30 + 25
    return int(max(maps.n_layers * thumb + axis, detail) + 40 + SPARE)


def iframe(view: str, maps: AttentionMaps, layer: int | None = None, head: int | None = None) -> str:
    """The page inside a sandboxed iframe, ready for gr.HTML."""
    page = offline_page(view, maps, layer, head)
    height = frame_height(view, maps)
    return (f'<iframe class="bertviz-frame" title="bertviz {view} view" sandbox="allow-scripts" '
            f'style="width:100%;height:{height}px;border:1px solid #ddd;border-radius:6px;background:#fff" '
            f'srcdoc="{html.escape(page, quote=True)}"></iframe>')
