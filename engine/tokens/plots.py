"""What the Tokens tab draws: coloured token chips, side-by-side cards, the round-trip diff and
the padded batch table. Pure functions: data in, HTML out."""
from __future__ import annotations

import functools
import re
import unicodedata

from ..core.markdown import html_text
from .base import Batch, Piece, RoundTrip, Tok, Tokenized, piece_of


CSS = """<style>
/* Text takes the theme's colour (var(--body-text-color), light or dark); every pastel or light background
   sets dark text of its own, so nothing is white on white in the dark theme (?__theme=dark). */
.tkv{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:15px;line-height:1.9;color:var(--body-text-color,#111)}
.tkv .grid{display:grid;gap:12px}
.tkv .card{border:1px solid var(--border-color-primary,#d6d6e0);border-radius:10px;padding:8px 10px;background:var(--block-background-fill,#fff);min-width:0}
.tkv .head{font-family:system-ui,sans-serif;font-size:14px;margin-bottom:6px;line-height:1.4}
.tkv .head b{font-size:15px}.tkv .sub{color:var(--body-text-color-subdued,#555);font-size:12.5px}
.tkv .body{max-height:520px;overflow:auto;word-break:break-all}
.tkv .t{color:#111;display:inline-block;border-radius:4px;padding:0 2px;margin:1px 1px;white-space:pre;vertical-align:top;line-height:1.35}
.tkv .t i{font-style:normal;color:#5c5c6e}
.tkv i.cp{font-style:normal;font-family:system-ui,sans-serif;font-size:9px;line-height:1;color:#9a3412;
 background:#ffedd5;border:1px solid #fb923c;border-radius:3px;padding:0 2px;margin:0 1px;vertical-align:middle}
.tkv .t small{display:block;font-size:10px;color:#444;text-align:center;line-height:1.1}
.tkv .sp{outline:2px solid var(--body-text-color,#333);font-weight:700}
.tkv .by{font-size:12px;border:1px dashed #777}
.tkv .pad{opacity:.45}
.tkv .bar{height:6px;background:var(--border-color-primary,#eceff3);border-radius:3px;margin-top:4px}
.tkv .bar div{height:6px;background:#6366f1;border-radius:3px}
.tkv .more{font-family:system-ui,sans-serif;font-size:12.5px;color:#7a4b00;background:#fff4d6;
 border-radius:6px;padding:2px 8px;margin-top:6px;display:inline-block}
.tkv table.bt{border-collapse:collapse;margin:4px 0 10px}
.tkv table.bt td,.tkv table.bt th{border:1px solid var(--border-color-primary,#e2e2ea);padding:2px 4px;text-align:center;font-size:12.5px}
.tkv table.bt th{font-family:system-ui,sans-serif;background:var(--background-fill-secondary,#f5f5fa);font-weight:600}
.tkv .m1{background:#1f9d55;color:#fff}.tkv .m0{background:#eceff3;color:#555}
.tkv del{background:#ffd7d7;color:#111;text-decoration:line-through}.tkv ins{background:#c9f2d0;color:#111;text-decoration:none}
.tkv pre{white-space:pre-wrap;background:var(--background-fill-secondary,#f7f7fb);border-radius:8px;padding:8px;font-size:13px}
.tkv .src{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all;
 background:var(--background-fill-secondary,#f7f7fb);border-radius:8px;padding:6px 8px;margin-bottom:8px;max-height:180px;overflow:auto;font-size:14px}
.tkv .src span.on{background:#fde047;color:#111;outline:1px solid #ca8a04}
.tkv .t.on{outline:3px solid #e11d48;outline-offset:0}.tkv .t.same{box-shadow:0 0 0 3px #2563eb}
.tkv .t[data-i]{cursor:pointer}
.tkv .t.add{outline:3px solid #7c3aed;outline-offset:1px}
.tkv .recv{color:#8b5cf6}
</style>"""


@functools.lru_cache(maxsize=1 << 16)
def colour(tid: int) -> str:
    """The same id gets the same pastel colour in every view (golden-angle hues)."""
    return f"hsl({(tid * 137.508) % 360:.0f},85%,{84 + (tid % 3) * 3}%)"


_MARKS = {" ": "·", "\t": "→", "\r": "␍", "\n": "↵"}
# Characters that print as nothing or as a plain blank although Unicode does not class them as
# format, separator or control characters: Hangul fillers, the braille blank, variation selectors.
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e") | frozenset(map(chr, range(0xFE00, 0xFE10)))


def invisible_code(ch: str) -> str | None:
    """'U+200B' for a character a reader cannot see (zero-width and format characters, spaces
    other than ' ', control characters other than tab/newline/CR, fillers); None otherwise."""
    if ch in _MARKS:
        return None
    if ch in _BLANK or 0xE0100 <= ord(ch) <= 0xE01EF or unicodedata.category(ch) in ("Cf", "Zs", "Zl", "Zp", "Cc",
                                                                                    "Co", "Cn", "Cs"):
        return f"U+{ord(ch):04X}"
    return None


def _badge(ch: str, code: str) -> str:
    from html import escape

    name = unicodedata.name(ch, "") if ord(ch) < 0xD800 or ord(ch) > 0xDFFF else "surrogate"
    return f"<i class='cp' title='{escape(name or code, quote=True)}'>{code}</i>"


def _visible(text: str, spaces: bool = True) -> str:
    """HTML of text with nothing hidden: invisible characters as a small code-point badge
    (U+200B); with spaces=True also space · tab → CR ␍ newline ↵."""
    from html import escape

    if text.isprintable() and not spaces:  # the common case: no invisible character at all
        return escape(text)
    out = []
    for ch in text:
        if ch in _MARKS:
            out.append(f"<i>{_MARKS[ch]}</i>" if spaces else ch)
        else:
            code = invisible_code(ch)
            out.append(_badge(ch, code) if code else escape(ch))
    return "".join(out)


def piece_html(p: Piece, show_ids: bool = True, extra: str = "", span: tuple[int, int] | None = None) -> str:
    """One chip; span = its (start, end) characters in the source text, for the hover highlight
    (only numbers go into attributes)."""
    html = _piece_html(p.id, p.text, p.kind, show_ids, extra)
    if span is None:
        return html
    return html.replace("<span ", f'<span data-s="{int(span[0])}" data-e="{int(span[1])}" ', 1)


@functools.lru_cache(maxsize=1 << 16)  # a pure function of its arguments; texts repeat the same pieces
def _piece_html(tid: int, text: str, kind: str, show_ids: bool, extra: str) -> str:
    p = Piece(tid, text, kind)
    cls = "t" + {"special": " sp", "bytes": " by"}.get(p.kind, "") + extra
    body = _visible(p.text) if p.kind != "bytes" else f"⟨{p.text}⟩"
    title = f"id {p.id}" + (" · bytes" if p.kind == "bytes" else " · special" if p.kind == "special" else "")
    ids = f"<small>{p.id}</small>" if show_ids else ""
    brk = "<br>" * p.text.count("\n") if p.kind == "text" else ""
    return (f'<span class="{cls}" data-i="{int(p.id)}" style="background:{colour(p.id)}" title="{title}">'
            f'{body}{ids}</span>{brk}')


def card_html(r: Tokenized, show_ids: bool = True, most: int = 0) -> str:
    s = r.stats()
    pct = 100 * r.n_tokens / most if most else 100
    before, after = r.added_pieces
    receives = (f"<br><span class='sub recv'>the model receives <b>{r.model_tokens:,}</b>: "
                f"{'+ '.join(html_text(p.text) + ' ' for p in before + after)}added (purple outline)</span>"
                if before or after else "<br><span class='sub recv'>the model receives these alone (nothing added)</span>")
    head = (f"<div class='head'><b>{html_text(r.title)}</b><br><span class='sub'><b>{r.n_tokens:,}</b> tokens · "
            f"{s['chars_per_token']} chars/token · vocab {r.vocab_size:,} · {html_text(r.algorithm)}</span>{receives}"
            f"<div class='bar' title='tokens, relative to the longest'><div style='width:{pct:.0f}%'></div></div></div>")
    spans = r.spans or [None] * len(r.pieces)
    body = "".join(piece_html(p, show_ids, span=sp) for p, sp in zip(r.pieces, spans))
    body = "".join(piece_html(p, show_ids, " add") for p in before) + body
    if r.shown == r.n_tokens:  # the end is shown: what the tokenizer adds after the text too
        body += "".join(piece_html(p, show_ids, " add") for p in after)
    more = ""
    if r.shown < r.n_tokens:
        more = (f"<div class='more'>Showing the first {r.shown:,} of {r.n_tokens:,} tokens; "
                f"the counts are exact for the whole text.</div>")
    return f"<div class='card'>{head}<div class='body'>{body}</div>{more}</div>"


def source_html(text: str, results: list[Tokenized]) -> str:
    """The source text cut at every token border of every tokenizer, each segment tagged with its
    character offsets, so hovering a chip can light up exactly its characters."""

    cuts = {0}
    end = 0
    for r in results:
        for a, b in r.spans or []:
            cuts.update((a, b))
            end = max(end, b)
    if end == 0:
        return ""
    cuts = sorted(c for c in cuts if c <= end)
    segs = "".join(f'<span data-s="{a}" data-e="{b}">{_visible(text[a:b], spaces=False)}</span>'
                   for a, b in zip(cuts, cuts[1:]))
    rest = f"<span style='color:#888'>{_visible(text[end:end + 200], spaces=False)}…</span>" if end < len(text) else ""
    return (f"<div class='head'><b>Source text</b> <span class='sub'>hover or click a piece to light up its "
            f"characters here, the pieces over the same characters in the other columns (red) and the same id "
            f"(blue)</span></div><div class='src'>{segs}{rest}</div>")


def render_side_by_side(results: list[Tokenized], show_ids: bool = True, text: str | None = None) -> str:
    most = max((r.n_tokens for r in results), default=0)
    cards = "".join(card_html(r, show_ids, most) for r in results)
    src = source_html(text, results) if text is not None else ""
    # one column per tokenizer where they fit at 220 px each; on a phone they stack
    return (f"{CSS}<div class='tkv'>{src}<div class='grid' style='grid-template-columns:"
            f"repeat(auto-fit,minmax(min(220px,100%),1fr))'>{cards}</div></div>")


# Installed once per page (from a .change listener of the view): one delegated listener lights up,
# for the chip under the pointer, the source characters it covers, the chips over the same
# characters in the other columns and the chips with the same id. A click pins the highlight.
# It reads only the numeric data-i/-s/-e attributes; no text of the page goes into the script.
HOVER_JS = """() => {
  if (window.__tokHover) return;
  window.__tokHover = true;
  let pinned = null;
  const clear = (root) => root.querySelectorAll('.on,.same').forEach(e => e.classList.remove('on', 'same'));
  const light = (chip) => {
    const root = chip.closest('.tkv');
    if (!root) return;
    clear(root);
    const id = chip.dataset.i, s = chip.dataset.s, e = chip.dataset.e;
    root.querySelectorAll('.t[data-i="' + Number(id) + '"]').forEach(c => c.classList.add('same'));
    chip.classList.add('on');
    if (s === undefined) return;
    const a = Number(s), b = Number(e);
    root.querySelectorAll('.src span[data-s]').forEach(g => {
      if (Number(g.dataset.s) >= a && Number(g.dataset.e) <= b && b > a) g.classList.add('on');
    });
    const card = chip.closest('.card');
    root.querySelectorAll('.card .t[data-s]').forEach(c => {
      if (c.closest('.card') === card) return;
      const x = Number(c.dataset.s), y = Number(c.dataset.e);
      if (x < b && a < y) c.classList.add('on');
    });
  };
  document.addEventListener('mouseover', (ev) => {
    const chip = ev.target.closest && ev.target.closest('.tkv .t[data-i]');
    if (chip && !pinned) light(chip);
  });
  document.addEventListener('mouseout', (ev) => {
    const chip = ev.target.closest && ev.target.closest('.tkv .t[data-i]');
    if (chip && !pinned) { const root = chip.closest('.tkv'); if (root) clear(root); }
  });
  document.addEventListener('click', (ev) => {
    const chip = ev.target.closest && ev.target.closest('.tkv .t[data-i]');
    if (!chip) return;
    if (pinned === chip) { pinned = null; const root = chip.closest('.tkv'); if (root) clear(root); return; }
    pinned = null; light(chip); pinned = chip;
  });
}"""


DIFF_LIMIT = 4000


# Diff units: special tokens as written ([UNK], <unk>, <|endoftext|>), words, runs of one
# whitespace character, any other single character.
_UNIT = re.compile(r"\[[A-Z]+\]|<\|?[A-Za-z_]+\|?>|\w+|(\s)\1*|.", re.S)


def diff_units(text: str) -> list[str]:
    """text cut where tokens are cut (words, punctuation, special tokens); "".join() gives it back."""
    return [m.group(0) for m in _UNIT.finditer(text)]


def diff_html(a: str, b: str) -> str:
    """Token by token: what a has and b lost struck out in red, what b adds in green, so a word
    replaced by <unk> reads "quokka → <unk>", not as shuffled letters. Invisible characters show
    their code point everywhere."""
    import difflib

    ua, ub = diff_units(a[:DIFF_LIMIT]), diff_units(b[:DIFF_LIMIT])
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ua, ub, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(_visible("".join(ua[i1:i2]), spaces=False))
        if op in ("delete", "replace"):
            out.append(f"<del>{_visible(''.join(ua[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{_visible(''.join(ub[j1:j2]))}</ins>")
    return "".join(out)


def render_round_trips(items: list[RoundTrip]) -> str:
    return f"{CSS}<div class='tkv'><div class='grid'>{''.join(i.html for i in items)}</div></div>"


def render_batch_html(b: Batch, show_ids: bool = True) -> str:
    from html import escape

    width = len(b.input_ids[0]) if b.input_ids else 0
    head = "<tr><th>#</th>" + "".join(f"<th>{j}</th>" for j in range(width)) + "</tr>"
    tok_rows, mask_rows = [], []
    for r, (pieces, mask) in enumerate(zip(b.pieces, b.attention_mask)):
        cells = "".join(f"<td>{piece_html(p, show_ids, '' if m else ' pad')}</td>" for p, m in zip(pieces, mask))
        tok_rows.append(f"<tr><th title='{escape(b.sentences[r])}'>{r}</th>{cells}</tr>")
        mcells = "".join(f"<td class='m{m}'>{m}</td>" for m in mask)
        mask_rows.append(f"<tr><th>{r}</th>{mcells}</tr>")
    note = f"<div class='more'>{escape(b.note)}</div>" if b.note else ""
    return (f"{CSS}<div class='tkv'><div class='head'><b>input_ids</b> ({len(b.input_ids)} × {width}, "
            f"pad id {b.pad_id}, padding on the {b.padding_side}; faded = padding, outlined = special "
            f"token)</div><div style='overflow:auto'><table class='bt'>{head}{''.join(tok_rows)}</table></div>"
            f"<div class='head'><b>attention_mask</b> (1 = attend, 0 = padding, ignored)</div>"
            f"<div style='overflow:auto'><table class='bt'>{head}{''.join(mask_rows)}</table></div>{note}</div>")


# ---- special tokens: chat templates and fill-in-the-middle --------------------------------------
def _tokens_card(tok: Tok, title: str, text: str, max_render: int = 1500, ids: list[int] | None = None) -> str:
    """The chips of `text` (or of `ids` when given: the chat template's ids, where a special-token
    string typed in a message is plain text)."""
    from html import escape

    ids = tok.encode(text) if ids is None else ids
    pieces = [piece_of(tok, i) for i in ids[:max_render]]
    n_special = sum(p.kind == "special" for p in pieces)
    body = "".join(piece_html(p, True) for p in pieces)
    return (f"<div class='card'><div class='head'><b>{escape(title)}</b><br><span class='sub'>{len(ids):,} tokens, "
            f"{n_special} of them special (outlined): each is ONE token, not the letters you see</span></div>"
            f"<div class='body'>{body}</div></div>")


def typed_specials_html(tok: Tok, messages: list[dict]) -> str:
    """For each special-token string typed inside a message: its plain pieces (what the model is
    given) beside the one special token it is not. '' when no message has one."""
    from html import escape

    items = []
    for m in messages:
        for name in sorted((n for n in tok.specials if n and n in m["content"]), key=lambda n: (-len(n), n)):
            plain = "".join(piece_html(piece_of(tok, i), True) for i in tok.plain_ids(name))
            token = piece_html(piece_of(tok, tok.specials[name]), True)
            items.append(f"<li>The {escape(m['role'])} message contains <code>{escape(name)}</code>. "
                         f"<b>The model is given it as plain text</b>: {plain} <b>not as the special token</b> "
                         f"{token} that the template writes. Read as that token, it would be the template's own marker, "
                         "and the text around it could pose as a turn of its own (a forged system turn: a prompt "
                         "injection).</li>")
    if not items:
        return ""
    return ("<div class='card'><div class='head'><b>Special-token strings typed in a message stay text</b></div>"
            f"<ul class='sub'>{''.join(items)}</ul></div>")
