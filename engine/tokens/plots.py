"""What the Tokens tab draws: coloured token chips, side-by-side cards, the round-trip diff and
the padded batch table. Pure functions: data in, HTML out."""
from __future__ import annotations

import functools

from .base import Batch, Piece, RoundTrip, Tok, Tokenized, piece_of


CSS = """<style>
.tkv{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:15px;line-height:1.9;color:#111}
.tkv .grid{display:grid;gap:12px}
.tkv .card{border:1px solid #d6d6e0;border-radius:10px;padding:8px 10px;background:#fff;min-width:0}
.tkv .head{font-family:system-ui,sans-serif;font-size:14px;margin-bottom:6px;color:#222;line-height:1.4}
.tkv .head b{font-size:15px}.tkv .sub{color:#555;font-size:12.5px}
.tkv .body{max-height:520px;overflow:auto;word-break:break-all}
.tkv .t{display:inline-block;border-radius:4px;padding:0 2px;margin:1px 1px;white-space:pre;vertical-align:top;line-height:1.35}
.tkv .t i{font-style:normal;color:#8a8a99}
.tkv .t small{display:block;font-size:10px;color:#444;text-align:center;line-height:1.1}
.tkv .sp{outline:2px solid #333;font-weight:700}
.tkv .by{font-size:12px;border:1px dashed #777}
.tkv .pad{opacity:.45}
.tkv .bar{height:6px;background:#eceff3;border-radius:3px;margin-top:4px}
.tkv .bar div{height:6px;background:#6366f1;border-radius:3px}
.tkv .more{font-family:system-ui,sans-serif;font-size:12.5px;color:#7a4b00;background:#fff4d6;
 border-radius:6px;padding:2px 8px;margin-top:6px;display:inline-block}
.tkv table.bt{border-collapse:collapse;margin:4px 0 10px}
.tkv table.bt td,.tkv table.bt th{border:1px solid #e2e2ea;padding:2px 4px;text-align:center;font-size:12.5px}
.tkv table.bt th{font-family:system-ui,sans-serif;background:#f5f5fa;font-weight:600}
.tkv .m1{background:#1f9d55;color:#fff}.tkv .m0{background:#eceff3;color:#999}
.tkv del{background:#ffd7d7;text-decoration:line-through}.tkv ins{background:#c9f2d0;text-decoration:none}
.tkv pre{white-space:pre-wrap;background:#f7f7fb;border-radius:8px;padding:8px;font-size:13px}
</style>"""


@functools.lru_cache(maxsize=1 << 16)
def colour(tid: int) -> str:
    """The same id gets the same pastel colour in every view (golden-angle hues)."""
    return f"hsl({(tid * 137.508) % 360:.0f},85%,{84 + (tid % 3) * 3}%)"


def _visible(text: str) -> str:
    from html import escape

    return (escape(text).replace(" ", "<i>·</i>").replace("\t", "<i>→</i>")
            .replace("\r", "<i>␍</i>").replace("\n", "<i>↵</i>"))


def piece_html(p: Piece, show_ids: bool = True, extra: str = "") -> str:
    return _piece_html(p.id, p.text, p.kind, show_ids, extra)


@functools.lru_cache(maxsize=1 << 16)  # a pure function of its arguments; texts repeat the same pieces
def _piece_html(tid: int, text: str, kind: str, show_ids: bool, extra: str) -> str:
    p = Piece(tid, text, kind)
    cls = "t" + {"special": " sp", "bytes": " by"}.get(p.kind, "") + extra
    body = _visible(p.text) if p.kind != "bytes" else f"⟨{p.text}⟩"
    title = f"id {p.id}" + (" · bytes" if p.kind == "bytes" else " · special" if p.kind == "special" else "")
    ids = f"<small>{p.id}</small>" if show_ids else ""
    brk = "<br>" * p.text.count("\n") if p.kind == "text" else ""
    return f'<span class="{cls}" style="background:{colour(p.id)}" title="{title}">{body}{ids}</span>{brk}'


def card_html(r: Tokenized, show_ids: bool = True, most: int = 0) -> str:
    s = r.stats()
    pct = 100 * r.n_tokens / most if most else 100
    head = (f"<div class='head'><b>{r.title}</b><br><span class='sub'><b>{r.n_tokens:,}</b> tokens · "
            f"{s['chars_per_token']} chars/token · vocab {r.vocab_size:,} · {r.algorithm}</span>"
            f"<div class='bar' title='tokens, relative to the longest'><div style='width:{pct:.0f}%'></div></div></div>")
    body = "".join(piece_html(p, show_ids) for p in r.pieces)
    more = ""
    if r.shown < r.n_tokens:
        more = (f"<div class='more'>Showing the first {r.shown:,} of {r.n_tokens:,} tokens; "
                f"the counts are exact for the whole text.</div>")
    return f"<div class='card'>{head}<div class='body'>{body}</div>{more}</div>"


def render_side_by_side(results: list[Tokenized], show_ids: bool = True) -> str:
    cols = max(len(results), 1)
    most = max((r.n_tokens for r in results), default=0)
    cards = "".join(card_html(r, show_ids, most) for r in results)
    return f"{CSS}<div class='tkv'><div class='grid' style='grid-template-columns:repeat({cols},minmax(0,1fr))'>{cards}</div></div>"


DIFF_LIMIT = 4000


def diff_html(a: str, b: str) -> str:
    """Characters of a missing from b struck out in red, characters b adds in green."""
    import difflib
    from html import escape

    a, b = a[:DIFF_LIMIT], b[:DIFF_LIMIT]
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escape(a[i1:i2]))
        if op in ("delete", "replace"):
            out.append(f"<del>{_visible(a[i1:i2])}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{_visible(b[j1:j2])}</ins>")
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
def _tokens_card(tok: Tok, title: str, text: str, max_render: int = 1500) -> str:
    from html import escape

    ids = tok.encode(text)
    pieces = [piece_of(tok, i) for i in ids[:max_render]]
    n_special = sum(p.kind == "special" for p in pieces)
    body = "".join(piece_html(p, True) for p in pieces)
    return (f"<div class='card'><div class='head'><b>{escape(title)}</b><br><span class='sub'>{len(ids):,} tokens, "
            f"{n_special} of them special (outlined): each is ONE token, not the letters you see</span></div>"
            f"<div class='body'>{body}</div></div>")
