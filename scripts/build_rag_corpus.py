"""Rebuild assets/rag/docs/: pages of the Python 3.11 documentation as plain text, for the
Retrieval (RAG) tab's bundled corpus.

The pages come from Debian's python3.11-doc package (the HTML that docs.python.org serves,
licensed under the PSF License Version 2; examples also under the Zero-Clause BSD licence).

    python scripts/build_rag_corpus.py                 # apt-get download + dpkg-deb -x in a temp dir
    python scripts/build_rag_corpus.py --html DIR      # an unpacked .../doc/python3.11/html folder

Each page's main body (Sphinx's <div class="body" role="main">) becomes text: headings as
'#' lines, paragraphs and list items separated by blank lines, code blocks kept as they are,
the pilcrow anchors dropped. Writes assets/rag/docs/<page>.txt and assets/rag/manifest.json
(id, title, file, source URL, characters) and assets/rag/LICENSE.txt. The questions in assets/rag/questions.json quote
passages of these texts; check_questions() verifies each quote is still found verbatim.
"""
from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "rag"
PACKAGE = "python3.11-doc"
BASE_URL = "https://docs.python.org/3.11/"

PAGES = (
    "tutorial/appetite", "tutorial/interpreter", "tutorial/introduction", "tutorial/controlflow",
    "tutorial/datastructures", "tutorial/modules", "tutorial/inputoutput", "tutorial/errors",
    "tutorial/classes", "tutorial/stdlib", "tutorial/stdlib2", "tutorial/venv", "tutorial/whatnow",
    "tutorial/interactive", "tutorial/floatingpoint", "tutorial/appendix",
    "howto/sorting", "howto/ipaddress", "howto/annotations", "howto/argparse", "howto/sockets",
    "howto/unicode",
)
MAX_TOTAL_BYTES = 1_500_000

BLOCK = {"p", "li", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "tr", "blockquote", "section",
         "div", "table", "ul", "ol", "dl"}


class BodyText(HTMLParser):
    """Text of Sphinx's main body div, with blank lines between blocks."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0  # div nesting inside the body; 0 = outside
        self.skip = 0  # inside a headerlink anchor
        self.pre = 0
        self.parts: list[str] = []
        self.title = ""
        self._in_h1 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.depth == 0:
            if tag == "div" and a.get("role") == "main":
                self.depth = 1
            return
        if tag == "div":
            self.depth += 1
        if tag == "a" and "headerlink" in (a.get("class") or ""):
            self.skip += 1
        if tag == "pre":
            self.pre += 1
            self.parts.append("\n\n")
        elif tag in BLOCK:
            self.parts.append("\n\n")
        if tag in ("h1", "h2", "h3", "h4"):
            self.parts.append("#" * int(tag[1]) + " ")
            self._in_h1 = tag == "h1" and not self.title
        if tag == "li":
            self.parts.append("- ")
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if self.depth == 0:
            return
        if tag == "div":
            self.depth -= 1
            return
        if tag == "a" and self.skip:
            self.skip -= 1
        if tag == "pre":
            self.pre -= 1
            self.parts.append("\n\n")
        elif tag in BLOCK:
            self.parts.append("\n\n")
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if self.depth == 0 or self.skip:
            return
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
        if self._in_h1:
            self.title += data
        self.parts.append(data)

    def text(self) -> str:
        raw = "".join(self.parts)
        blocks = []
        for block in re.split(r"\n\s*\n", raw):
            if block.strip():
                # code keeps its lines and indentation; prose is one line per paragraph
                blocks.append(block.rstrip() if "\n" in block.strip("\n") else block.strip())
        return "\n\n".join(b.strip("\n") for b in blocks) + "\n"


def page_text(path: Path) -> tuple[str, str]:
    parser = BodyText()
    parser.feed(path.read_text(encoding="utf-8"))
    title = re.sub(r"^[\d.]+\s*", "", html.unescape(parser.title).strip())
    return title, parser.text()


def license_text(root: Path) -> str:
    """The PSF licence agreement and the Zero-Clause BSD licence for the documentation's code,
    as the package's license page states them."""
    _, text = page_text(root / "license.html")
    psf = text.index("### PSF LICENSE AGREEMENT")
    psf_end = text.index("### BEOPEN", psf)
    bsd = text.index("### ZERO-CLAUSE BSD LICENSE")
    bsd_end = text.index("## Licenses and Acknowledgements", bsd)
    return ("Copyright © 2001-2023 Python Software Foundation. All rights reserved.\n\n"
            + text[psf:psf_end] + text[bsd:bsd_end])


def fetch_html() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="pydoc-"))
    subprocess.run(["apt-get", "download", PACKAGE], cwd=tmp, check=True)
    deb = next(tmp.glob(f"{PACKAGE}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "x")], check=True)
    print(f"unpacked {deb.name}")
    return tmp / "x" / "usr" / "share" / "doc" / "python3.11" / "html"


def check_questions(docs: dict[str, str]) -> list[str]:
    """Each question's passage must be found verbatim in its document."""
    path = OUT / "questions.json"
    if not path.exists():
        return []
    problems = []
    for q in json.loads(path.read_text())["questions"]:
        if q["passage"] not in docs.get(q["doc"], ""):
            problems.append(f"{q['doc']}: passage not found for {q['question']!r}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", type=Path, help="an unpacked python3.11 html folder (default: download the .deb)")
    args = ap.parse_args(argv)
    root = args.html or fetch_html()
    docs_dir = OUT / "docs"
    docs_dir.mkdir(parents=True, exist_ok=True)
    for old in docs_dir.glob("*.txt"):
        old.unlink()
    manifest, texts, total = [], {}, 0
    for page in PAGES:
        title, text = page_text(root / f"{page}.html")
        doc_id = page.replace("/", "-")
        (docs_dir / f"{doc_id}.txt").write_text(text, encoding="utf-8")
        total += len(text.encode())
        texts[doc_id] = text
        manifest.append(dict(id=doc_id, title=title, file=f"docs/{doc_id}.txt", url=f"{BASE_URL}{page}.html",
                             chars=len(text)))
        print(f"{doc_id:28} {len(text):7,} chars  {title}")
    (OUT / "LICENSE.txt").write_text(license_text(root), encoding="utf-8")
    if total > MAX_TOTAL_BYTES:
        print(f"corpus is {total:,} bytes, over {MAX_TOTAL_BYTES:,}: drop pages", file=sys.stderr)
        return 1
    (OUT / "manifest.json").write_text(json.dumps(dict(source=f"Debian package {PACKAGE}", license="PSF-2.0",
                                                       documents=manifest), indent=1) + "\n")
    print(f"{len(manifest)} pages, {total:,} bytes -> {docs_dir}")
    problems = check_questions(texts)
    for p in problems:
        print("question:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
