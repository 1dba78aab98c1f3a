"""User text inside Markdown outputs, shown as the text it is: the one helper every Markdown view
uses where it holds text a user typed (or a model wrote from it), as the HTML views use
html.escape. Without it `**`, `[x](http://...)`, `![](...)`, `<img ...>` or a line of backticks
would be rendered, link out, or close the block around it. html_text is the one helper for text
inside HTML: a gr.HTML view, an HTML block inside Markdown (a notice's <div>, where backslash
escapes do not apply) and a toast (gr.Error, gr.Warning and gr.Info take HTML): there a special
token such as <end_of_turn> or <mask> would be read as a tag and vanish with the text after it."""
from __future__ import annotations

import html
import re

# CommonMark: any ASCII punctuation character may be backslash-escaped, and is then literal.
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")
_LEADING = re.compile(r"^[ \t]+", re.M)


def md_text(text) -> str:
    """Text shown literally in Markdown: every ASCII punctuation mark escaped (no emphasis, link,
    image, HTML tag, heading, list, table or fence can start), each line break kept as a line
    break, and leading indentation kept as non-breaking spaces (never an indented code block)."""
    text = _PUNCT.sub(r"\\\1", str(text)).replace("\r\n", "\n").replace("\r", "\n")
    text = _LEADING.sub(lambda m: m.group().replace("\t", "    ").replace(" ", "&nbsp;"), text)
    return "  \n".join(text.split("\n"))


def html_text(text) -> str:
    """Text shown literally inside HTML: &, < and > as character references, which HTML, an HTML
    block in Markdown and Markdown's own text all show as the characters themselves."""
    return html.escape(str(text), quote=False)


def _longest_backtick_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"`+", text)), default=0)


def md_code(text) -> str:
    """Text as one inline code span: delimited by more backticks than any run inside it, so a
    backtick in the text cannot end the span."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_code_block(text, language: str = "") -> str:
    """Text as a fenced code block: the fence is longer than any backtick run inside the text, so
    no line the user typed can close it (CommonMark: a fence closes only on one at least as long)."""
    text = str(text)
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"{fence}{language}\n{text}\n{fence}"
