"""What the Tokens tab asks for: tokenize and compare, stats, the decode round trip, chat
templates, fill-in-the-middle, CSV export and the example texts."""
from __future__ import annotations

import csv
import io
import re
import time

from ..core.errors import UserInputError, check_choice, check_range, check_text
from ..core.markdown import html_text
from .base import MAX_CHARS, Piece, RoundTrip, Tok, Tokenized, piece_of
from .plots import CSS, DIFF_LIMIT, _tokens_card, diff_html, piece_html, typed_specials_html


# ---------------------------------------------------------------------------------------------
# What the tab shows
# ---------------------------------------------------------------------------------------------
def tokenizer_keys(engine) -> list[str]:
    return [k for k in engine.registry.keys("tokenizer") if engine.registry.usable(k)]


def get(engine, key: str, progress=None) -> Tok:
    keys = engine.registry.keys("tokenizer")
    check_choice("tokenizer", key, keys)
    return engine.load(key, progress=progress)


def check_token_text(name: str, text, max_chars: int = MAX_CHARS) -> str:
    """check_text, except that whitespace is text here: how "    " tokenizes is a fair question.
    Only "" is empty."""
    text = check_text(name, text, max_chars=max_chars, allow_empty=True)
    if text == "":
        raise UserInputError(f"{name} is empty: type some text (1 to {max_chars:,} characters; spaces count).")
    return text


def tokenize(engine, key: str, text: str, max_render: int = 800, progress=None) -> Tokenized:
    """Exact ids of the whole text; display pieces for the first max_render tokens only."""
    text = check_token_text("text", text)
    max_render = check_range("tokens shown", max_render, 1, 5000, integer=True)
    tok = get(engine, key, progress)
    start = time.perf_counter()
    ids = tok.encode(text)
    seconds = time.perf_counter() - start
    pieces = [piece_of(tok, i) for i in ids[:max_render]]
    visible = [n for n in tok.specials if not n.startswith("[PAD") and "placeholder" not in n]
    spans = None
    if len(text) <= SPAN_CHARS:  # for the hover highlight; the full text's spans, cut to the shown pieces
        spans = tok.char_spans(text, ids)
        spans = spans[:max_render] if spans is not None else None
    added = tok.wrapping() or ([], [])
    return Tokenized(tok.key, tok.title, tok.algorithm, ids, pieces, len(text), len(text.encode("utf-8")),
                     tok.vocab_size, visible, tok.lossless, seconds, tok.note, spans, added, tok.wrapping(chat=True),
                     tuple([piece_of(tok, i) for i in part] for part in added))


SPAN_CHARS = 20_000  # texts up to this long get the hover highlight (the source text is drawn once more)


def compare(engine, keys, text: str, max_render: int = 800, progress=None) -> list[Tokenized]:
    keys = list(keys or [])
    if not 1 <= len(keys) <= 4:
        raise UserInputError(f"Choose 1 to 4 tokenizers to compare (2 to 4 side by side), got {len(keys)}.")
    return [tokenize(engine, k, text, max_render, progress) for k in keys]


STATS_HEADERS = ["tokenizer", "algorithm", "tokens", "chars/token", "bytes/token", "vocab size",
                 "special tokens", "lossless", "the model receives", "as a chat message"]


def stats_rows(results: list[Tokenized]) -> list[list]:
    rows = []
    for r in results:
        s = r.stats()
        added = f" (+ {' '.join(s['added'])})" if s["added"] else " (adds nothing)"
        chat = "no chat template" if r.chat_tokens is None else f"{r.chat_tokens:,} (+{r.chat_tokens - r.n_tokens} " \
            "of the template)"
        rows.append([s["tokenizer"], s["algorithm"], s["tokens"], s["chars_per_token"], s["bytes_per_token"],
                     s["vocab_size"], s["special_tokens"], "yes" if s["lossless"] else "no",
                     f"{s['model_tokens']:,}{added}", chat])
    return rows


# ---- decode round trip -------------------------------------------------------------------------


def round_trip(engine, key: str, text: str, progress=None) -> RoundTrip:
    text = check_token_text("text", text)
    tok = get(engine, key, progress)
    decoded = tok.decode(tok.encode(text))
    same = decoded == text
    if same:
        body = f"<b>✓ identical</b>: decode(encode(text)) gives back all {len(text):,} characters."
    else:
        cut = " (first 4,000 characters compared)" if max(len(text), len(decoded)) > DIFF_LIMIT else ""
        body = (f"<b>✗ different</b>{cut}: <del>struck out</del> = lost, <ins>green</ins> = added."
                f"<pre>{diff_html(text, decoded)}</pre>")
    return RoundTrip(tok.key, tok.title, decoded, same,
                     f"<div class='card'><div class='head'><b>{html_text(tok.title)}</b></div>{body}</div>")


def chat_messages(system: str, user: str, assistant: str = "") -> list[dict]:
    messages = []
    if system and system.strip():
        messages.append({"role": "system", "content": check_text("system message", system, max_chars=5000)})
    messages.append({"role": "user", "content": check_text("user message", user, max_chars=5000)})
    if assistant and assistant.strip():
        messages.append({"role": "assistant", "content": check_text("assistant message", assistant, max_chars=5000)})
    return messages


def chat_counts(tok: Tok, messages: list[dict], ids: list[int]) -> dict:
    """Tokens of each message's content alone, of the templated ids the model is given, and the
    difference: what the template itself costs (role markers, special tokens). A special-token
    string typed in a message counts as the plain text it is, in both."""
    per = [len(tok.plain_ids(m["content"])) for m in messages]
    total = len(ids)
    return {"messages": [{"role": m["role"], "tokens": n} for m, n in zip(messages, per)],
            "content_tokens": sum(per), "total_tokens": total, "template_tokens": total - sum(per)}


def chat_view(engine, key: str, system: str, user: str, assistant: str = "", progress=None) -> tuple[str, str]:
    """The instruct model's chat template filled with a conversation: the text, a table of
    tokens per message and in all, and the tokens."""
    return chat_build(engine, key, system, user, assistant, progress)[:2]


def chat_build(engine, key: str, system: str, user: str, assistant: str = "", progress=None) -> tuple[str, str, dict]:
    from html import escape

    tok = get(engine, key, progress)
    messages = chat_messages(system, user, assistant)
    text = tok.render_chat(messages)
    ids = tok.chat_ids(messages)  # a '<|im_end|>' typed in a message stays plain text: no forged turn
    counts = chat_counts(tok, messages, ids)
    rows = "".join(f"<tr><td>{escape(m['role'])}</td><td>{m['tokens']:,}</td></tr>" for m in counts["messages"])
    table = (f"<table class='bt'><tr><th>message</th><th>tokens (its text alone)</th></tr>{rows}"
             f"<tr><td>the messages' texts</td><td>{counts['content_tokens']:,}</td></tr>"
             f"<tr><td>added by the chat template</td><td>+{counts['template_tokens']:,}</td></tr>"
             f"<tr><th>the model sees</th><th>{counts['total_tokens']:,}</th></tr></table>")
    html = (f"{CSS}<div class='tkv'><div class='head'><b>Tokens per message, and what the model sees</b> "
            f"(chat template of {escape(tok.title)}, with the assistant turn opened)</div>{table}"
            f"<div class='head'><b>The text the model is given</b></div><pre>{escape(text)}</pre>"
            f"{typed_specials_html(tok, messages)}{_tokens_card(tok, 'As tokens', text, ids=ids)}</div>")
    return text, html, counts


def fim_view(engine, key: str, prefix: str, suffix: str, progress=None) -> tuple[str, str]:
    """Fill-in-the-middle: prefix, suffix, then the model writes the middle (PSM order)."""
    from html import escape

    tok = get(engine, key, progress)
    names = tok.fim()
    if names is None:
        choices = [k for k in engine.registry.keys("tokenizer") if k in FIM_KEYS]
        raise UserInputError(f"{tok.title} has no fill-in-the-middle tokens: choose one of {', '.join(choices)}.")
    prefix = check_text("prefix", prefix, max_chars=20_000, allow_empty=True)
    suffix = check_text("suffix", suffix, max_chars=20_000, allow_empty=True)
    p, s, m = names
    text = f"{p}{prefix}{s}{suffix}{m}"
    html = (f"{CSS}<div class='tkv'><div class='head'><b>Prompt for fill-in-the-middle</b> "
            f"({escape(p)} code before {escape(s)} code after {escape(m)} → the model writes the middle)</div>"
            f"{_tokens_card(tok, tok.title, text)}</div>")
    return text, html


FIM_KEYS = ("tok-starcoder", "tok-cl100k")
CHAT_KEYS = ("tok-smollm2", "tok-phi3", "tok-qwen2", "tok-command-r")


# ---- ids back to text -------------------------------------------------------------------------
MAX_IDS = 20_000
_ID_SPLIT = re.compile(r"[\s,;]+")


def parse_ids(text) -> list[int]:
    """ids from a paste: a Python/JSON list "[1, 2]", one per line, or separated by spaces,
    commas or semicolons. Every item must be a whole number; at most MAX_IDS of them."""
    text = check_text("ids", text, max_chars=MAX_IDS * 12)
    body = text.strip()
    if body[:1] in "[(" and body[-1:] in "])":
        body = body[1:-1]
    items = [x for x in _ID_SPLIT.split(body) if x]
    if not items:
        raise UserInputError("ids is empty: paste token ids, e.g. [15496, 995] or one per line.")
    if len(items) > MAX_IDS:
        raise UserInputError(f"{len(items):,} ids is too many: at most {MAX_IDS:,} at a time.")
    out = []
    for x in items:
        if not re.fullmatch(r"[+-]?\d{1,12}", x):
            raise UserInputError(f"{x[:40]!r} is not a token id: ids are whole numbers (0, 1, 2, ...).")
        out.append(int(x))
    return out


def check_ids(tok: Tok, ids: list[int]) -> None:
    """Every id inside the vocabulary and used by it (tiktoken's cl100k leaves a few unused)."""
    for tid in ids:
        if not 0 <= tid < tok.vocab_size:
            raise UserInputError(f"id {tid} is outside the vocabulary of {tok.title}: valid ids are 0 to "
                                 f"{tok.vocab_size - 1:,}.")
    for tid in set(ids):
        try:
            tok.piece_bytes(tid)
        except (KeyError, IndexError, ValueError):
            raise UserInputError(f"id {tid} is not used by {tok.title} (a gap in its vocabulary): "
                                 f"valid ids are 0 to {tok.vocab_size - 1:,} except the unused ones.") from None


def decode_ids(engine, key: str, ids_text, progress=None) -> tuple[list[int], list[Piece], str]:
    """(ids, their pieces, the decoded text) for pasted ids."""
    ids = parse_ids(ids_text)
    tok = get(engine, key, progress)
    check_ids(tok, ids)
    return ids, [piece_of(tok, i) for i in ids], tok.decode(ids)


def decode_view(engine, key: str, ids_text, progress=None) -> tuple[str, dict]:
    """HTML (the pieces, the decoded text) and a JSON record for the API."""
    from html import escape

    ids, pieces, text = decode_ids(engine, key, ids_text, progress)
    tok = get(engine, key)
    shown = pieces[:2000]
    more = (f"<div class='more'>Showing the first {len(shown):,} of {len(ids):,} pieces; the text below is "
            f"all of them.</div>") if len(shown) < len(pieces) else ""
    html = (f"{CSS}<div class='tkv'><div class='card'><div class='head'><b>{escape(tok.title)}</b><br>"
            f"<span class='sub'>{len(ids):,} ids → {len(text):,} characters</span></div>"
            f"<div class='body'>{''.join(piece_html(p, True) for p in shown)}</div>{more}</div>"
            f"<div class='head'><b>Decoded text</b></div><pre>{escape(text)}</pre></div>")
    return html, {"tokenizer": tok.key, "ids": ids, "pieces": [p.text for p in pieces], "text": text}


# ---- export -----------------------------------------------------------------------------------
CSV_HEADERS = ["tokenizer", "position", "id", "piece", "kind", "bytes_hex"]


def token_table(engine, key: str, text: str, limit: int | None = None) -> list[list]:
    text = check_token_text("text", text)
    tok = get(engine, key)
    ids = tok.encode(text)
    rows = []
    for pos, tid in enumerate(ids if limit is None else ids[:limit]):
        p = piece_of(tok, tid)
        rows.append([tok.key, pos, tid, p.text, p.kind, tok.piece_bytes(tid).hex(" ")])
    return rows


def token_csv(engine, keys, text: str) -> str:
    """Every token of the text (not only the shown ones) for each tokenizer, as CSV text."""
    keys = list(keys or [])
    if not 1 <= len(keys) <= 4:
        raise UserInputError(f"Choose 1 to 4 tokenizers to export, got {len(keys)}.")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_HEADERS)
    for k in keys:
        w.writerows(token_table(engine, k, text))
    return buf.getvalue()


# ---- example texts ----------------------------------------------------------------------------
EXAMPLES = {
    "Mixed (start here)": "Hello world! HELLO WORLD! 🦙🚀 naïve café\n\n    def add(a, b):\n        return a + b\n"
                          "On 2024-03-15 it cost $1,234.56 · 東京は晴れ https://example.com/a?b=1",
    "Mixed: today's tokenizers": "Llama 3, Mistral NeMo, DeepSeek, Command-R: 🦙 naïve café, 東京は晴れ, "
                                 "Привет!\n    def add(a, b):\n        return a + b  # 1234567 or 3.14159",
    "Capital letters": "hello Hello HELLO hElLo. The Transformer, the transformer, THE TRANSFORMER.",
    "Emoji": "I love pizza 🍕! Family: 👨‍👩‍👧 flags: 🇫🇷🇯🇵 thumbs: 👍🏽 llama: 🦙",
    "Code with indentation": "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n"
                             "for i in range(10):\n\tprint(i, fib(i))\n",
    "Numbers and dates": "In 1969, 3 astronauts flew 384,400 km. Pi = 3.14159265. Call 555-0123 on 07/20/2024 "
                         "or 2024-07-20 at 13:45. 1000000 vs 1,000,000 vs 1e6.",
    "Spaces and newlines": "one space. two  spaces.   three.\n\n\nthree newlines\n\ttab\t\ttwo tabs\r\nwindows line end",
    "Accents": "Crème brûlée, façade, Ångström, São Paulo, Dvořák, Łódź, ﬁne (ligature), e\u0301 (e + accent)",
    "CJK and other scripts": "日本語のテキスト。中文文本。한국어 텍스트. Русский текст. नमस्ते दुनिया. مرحبا بالعالم",
    "A URL": "https://www.example.org/search?q=large+language+models&lang=en#results",
    "Unseen words (toy word tokenizer)": "The cat sat on the mat. The quokka sat on the trampoline.",
}


def long_text(n_bytes: int = 100_000) -> str:
    """About n_bytes of varied text (all the examples repeated), for the responsiveness demo."""
    base = "\n\n".join(EXAMPLES.values()) + "\n\n"
    reps = n_bytes // len(base.encode("utf-8")) + 1
    out = (base * reps).encode("utf-8")[:n_bytes]
    return out.decode("utf-8", errors="ignore")
