"""Class mode's views as HTML: the projector (large type, the class's bars beside the model's), a
student's phone view, and the QR code of the join link. Pure functions of the data the room's
service returns. Every text a user typed (nicknames, answers, prompts) is escaped here.
"""
from __future__ import annotations

from html import escape

from .activities import TITLES

CLASS_COLOR, MODEL_COLOR = "#f59e0b", "#6366f1"


def qr_svg(url: str) -> str:
    """The join link as an inline SVG QR code (segno: pure Python)."""
    import segno

    return segno.make_qr(url, error="m").svg_inline(scale=6, border=2, dark="#111", light="#fff")


def _bars(rows: list, color: str, title: str, as_share: bool, big: bool) -> str:
    """Horizontal bars: rows of (label, value); as_share: values are probabilities (shown as %)."""
    size = "1.5em" if big else "1em"
    top = max([v for _, v in rows] + [1e-9])
    total = sum(v for _, v in rows) or 1
    out = [f"<div style='flex:1;min-width:14em'><div style='font-weight:600;font-size:{size}'>{escape(title)}</div>"]
    if not rows:
        out.append("<div style='opacity:.7'>nothing yet</div>")
    for label, value in rows:
        width = 100 * value / top
        shown = f"{value:.1%}" if as_share else f"{value} ({value / total:.0%})"
        out.append(f"<div style='display:flex;align-items:center;gap:.5em;font-size:{size};margin:.15em 0'>"
                   f"<span style='width:8em;text-align:right;font-family:monospace;overflow:hidden;"
                   f"white-space:nowrap'>{escape(str(label))}</span>"
                   f"<span style='flex:1'><span style='display:block;height:1.1em;width:{width:.1f}%;"
                   f"background:{color};border-radius:3px'></span></span>"
                   f"<span style='width:6em'>{shown}</span></div>")
    return "".join(out) + "</div>"


def _results(view: dict, big: bool) -> str:
    res = view.get("results")
    if not res:
        return ""
    act = view["round"]["activity"]
    if act in ("predict", "sample"):
        model = [(r[0], r[1]) for r in res["model_rows"]]
        what = "class guesses" if act == "predict" else "class draws"
        model_title = "model: next-token probability" if act == "predict" else "model after the knobs"
        return ("<div style='display:flex;gap:2em;flex-wrap:wrap'>" + _bars(res["class_bars"], CLASS_COLOR, what,
                False, big) + _bars(model, MODEL_COLOR, model_title, True, big) + "</div>")
    if act == "vote":
        kappa, n = res["kappa"]
        k = "needs 2 revealed votes" if kappa is None else f"{kappa:.2f} over {n} votes"
        return _bars(list(res["votes"].items()), CLASS_COLOR, "votes", False, big) + (
            f"<div style='font-size:{'1.4em' if big else '1em'}'>Agreement between students (Fleiss' κ): {k}</div>")
    right = ", ".join(escape(x) for x in res["right"])
    return (_bars(res["options"], CLASS_COLOR, "answers", False, big)
            + f"<div style='font-size:{'1.4em' if big else '1em'}'>✅ {right} <span style='opacity:.75'>"
              f"({escape(res['why'])})</span></div>")


def _question(rnd: dict, big: bool) -> str:
    p, act = rnd["public"], rnd["activity"]
    size = "1.8em" if big else "1.15em"
    head = (f"<div style='opacity:.75'>Round {rnd['number']} · {escape(TITLES[act])} · "
            f"{'answers are open' if rnd['state'] == 'open' else 'revealed'}</div>")
    if act in ("predict", "sample"):
        knobs = ""
        if act == "sample":
            k = p["knobs"]
            knobs = (f"<div>temperature {k['temperature']:g} · top-k {k['top_k'] or 'off'} · top-p {k['top_p']:g} · "
                     f"{p['kept']:,} tokens can be drawn</div>")
        body = f"<div style='font-size:{size}'>“{escape(p['prompt'])}” <b>…?</b></div>{knobs}"
    elif act == "vote":
        body = (f"<div style='font-size:{size}'>{escape(p['prompt'])}</div><div style='display:flex;gap:1em;"
                f"flex-wrap:wrap'>" + "".join(f"<div style='flex:1;min-width:12em;border:1px solid #999;border-"
                                              f"radius:8px;padding:.5em'><b>{x}</b>: {escape(p[x])}</div>"
                                              for x in ("A", "B")) + "</div>")
    else:
        body = f"<div style='font-size:{size}'>{escape(p['question'])}</div>"
    return head + body


def host_html(view: dict, join_url: str) -> str:
    """The projector: join code, QR, students, the round, who answered, the results."""
    code, names = view["code"], view["students"]
    join = (f"<div style='display:flex;gap:2em;align-items:center;flex-wrap:wrap'><div>{qr_svg(join_url)}</div>"
            f"<div><div style='font-size:1.4em'>Join at</div><div style='font-family:monospace;font-size:1.1em'>"
            f"{escape(join_url)}</div><div style='font-size:1.4em'>code</div>"
            f"<div style='font-size:4em;font-weight:700;letter-spacing:.1em'>{escape(code)}</div>"
            f"<div style='font-size:1.6em'>{len(names)} joined</div></div></div>")
    rnd = view.get("round")
    if rnd is None:
        return f"<div class='class-projector'>{join}<p style='font-size:1.4em'>No round yet.</p></div>"
    answered = set(rnd["answered"])
    chips = " ".join(f"<span style='padding:.1em .5em;border-radius:1em;background:"
                     f"{'#22c55e' if n in answered else '#9ca3af'};color:#fff'>{escape(n)}</span>" for n in names)
    who = (f"<div style='font-size:1.5em;margin:.5em 0'><b>{rnd['count']}</b> of {len(names)} answered</div>"
           f"<div style='font-size:1.1em;line-height:2'>{chips}</div>")
    return (f"<div class='class-projector'>{join}<hr>{_question(rnd, True)}{who}{_results(view, True)}"
            f"{_scores(view)}{_leaders(view)}</div>")


def _scores(view: dict) -> str:
    rows = view.get("scores")
    if not rows:
        return ""
    body = "".join(f"<tr><td>{escape(n)}</td><td>{escape(v)}</td><td>{'' if s is None else f'{s:.2%}'}</td>"
                   f"<td>{'' if r is None else r}</td></tr>" for n, v, s, r in rows[:40])
    return ("<table style='font-size:1.1em'><tr><th>student</th><th>answer</th><th>score (model probability or "
            f"right = 100%)</th><th>rank</th></tr>{body}</table>")


def _leaders(view: dict) -> str:
    rows = view.get("leaderboard")
    if not rows:
        return ""
    return ("<div style='font-size:1.3em'><b>Leaderboard</b> (sum of scores): "
            + ", ".join(f"{escape(n)} {s:.2f}" for n, s in rows) + "</div>")


def student_html(view: dict) -> str:
    """A student's phone view: the question, their answer, and the results after the reveal."""
    head = f"<div>Room <b>{escape(view['code'])}</b> as <b>{escape(view['nickname'])}</b></div>"
    rnd = view.get("round")
    if rnd is None:
        return head + "<p>Waiting for the host to open the first round…</p>"
    mine = rnd.get("mine")
    if mine is None:
        yours = "<p>You have not answered yet.</p>"
    else:
        score = ""
        if mine.get("score") is not None:
            score = f" · score {mine['score']:.2%}" + (f" · rank {mine['rank']:,}" if mine.get("rank") else "")
        yours = f"<p>Your answer: <b>{escape(mine['value'])}</b>{score}</p>"
    status = f"<p>{rnd['count']} answered so far.</p>" if rnd["state"] == "open" else ""
    return head + _question(rnd, False) + yours + status + _results(view, False)
