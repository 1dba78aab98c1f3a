"""Regenerate the README's tab list, model table, settings table and API reference from the code itself:
`python scripts/update_readme.py`. Loads no model (it only builds the app's layout)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no <!-- {name}:start --> block")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def tabs_block() -> str:
    import tabs

    rows = ["| # | Tab | What it teaches |", "|---|---|---|",
            "| 0 | Start here | What each topic teaches; device and dtype in use; model cache; where each model comes from |"]
    present = {m.TITLE for m in tabs.available()}
    for i, (name, what) in enumerate(tabs.TOPICS, 1):
        shown = name if any(name.split()[0] in t for t in present) else f"{name} (not yet)"
        rows.append(f"| {i} | {shown} | {what} |")
    return "\n".join(rows)


def models_block() -> str:
    from engine.core.registry import ALL_SPECS

    rows = ["| key | task | online (Hub id @ revision) | offline (embedded) | license |", "|---|---|---|---|---|"]
    for s in ALL_SPECS:
        hub = f"{s.hub_id} @ {s.revision[:7]}" if s.hub_id else "(embedded only)"
        if s.embedded is None:
            off = "needs the Hub"
        else:
            off = f"`{s.embedded.pip}`" if s.embedded.pip else f"`assets/{s.embedded.asset}`"
            if s.stands_in_for:
                off += f" (fallback for {s.stands_in_for})"
        rows.append(f"| `{s.key}` | {s.task} | {hub} | {off} | {s.license} |")
    return "\n".join(rows)


def flags_block() -> str:
    from engine.core.config import flag_table

    return flag_table()


def api_block() -> str:
    from gradio_client.utils import json_schema_to_python_type  # noqa: F401  (ensures client installed)

    import app
    from engine import Engine

    demo = app.build_demo(Engine(device="cpu", offline=True))
    info = demo.get_api_info()["named_endpoints"]
    lines = ["| endpoint | tab | parameters (in order) |", "|---|---|---|"]
    for name, ep in info.items():
        names = []
        for p in ep["parameters"]:
            n = p.get("parameter_name") or ""
            names.append(f"{p['label']}" if not n or n.startswith("param_") else n)
        params = ", ".join(names)
        tab = _tab_of(demo, name)
        lines.append(f"| `{name}` | {tab} | {params or '-'} |")
    return "\n".join(lines)


def _tab_of(demo, api_name: str) -> str:
    for fn in demo.fns.values():
        if f"/{fn.api_name}" == api_name and fn.inputs + fn.outputs:
            comp = (fn.inputs + fn.outputs)[0]
            parent = comp.parent
            while parent is not None:
                if type(parent).__name__ == "Tab" and getattr(parent, "id", None) in _TAB_IDS():
                    return parent.label
                parent = parent.parent
    return "-"


def _TAB_IDS():
    import tabs

    return {m.__name__.split(".")[-1] for m in tabs.available()}


def front_matter_models(text: str) -> str:
    """The Space card's `models:` list: every Hub model the app uses online."""
    from engine.core.registry import ALL_SPECS

    ids = sorted({s.hub_id for s in ALL_SPECS if s.hub_id})
    block = "models:\n" + "".join(f"  - {i}\n" for i in ids)
    return re.sub(r"models:\n(?:  - .*\n)+", lambda m: block, text, count=1)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    text = front_matter_models(text)
    text = replace_block(text, "tabs", tabs_block())
    text = replace_block(text, "models", models_block())
    text = replace_block(text, "flags", flags_block())
    text = replace_block(text, "api", api_block())
    readme.write_text(text)
    print("README.md updated")


if __name__ == "__main__":
    main()
