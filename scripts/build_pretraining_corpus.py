"""Rebuild assets/pretraining/corpus.txt.gz: about 2.5 MB of English prose for the Pre-training tab.

The text is the prose of the Python 3.11 documentation (tutorial, FAQ, HOWTOs, language reference,
library reference, what's new), from Debian's python3.11-doc package: the HTML that docs.python.org
serves, licensed under the PSF License Version 2 (LICENSE.txt beside the corpus, as for the RAG tab).

    python scripts/build_pretraining_corpus.py              # apt-get download + dpkg-deb -x in a temp dir
    python scripts/build_pretraining_corpus.py --html DIR   # an unpacked .../doc/python3.11/html folder

Only paragraphs of prose are kept: code blocks, headings, list items, tables and short lines are
dropped, typographic quotes and dashes become ASCII, and a paragraph with any other character outside
printable ASCII is dropped, so that a character tokenizer needs fewer than 100 symbols. Pages are
read in the order of SECTIONS and paragraphs are added until TARGET_BYTES; duplicates are dropped.
Writes corpus.txt.gz (paragraphs separated by a blank line), SOURCE.md's numbers are printed.
"""
from __future__ import annotations

import argparse
import gzip
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_rag_corpus import fetch_html, license_text, page_text  # noqa: E402  (the same HTML reader)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "pretraining"
SECTIONS = ("tutorial", "faq", "howto", "reference", "library", "whatsnew", "using")
TARGET_BYTES = 2_600_000
MIN_CHARS = 120
ASCII = {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2014": " - ", "\u2013": "-",
         "\u2026": "...", "\u00a0": " ", "\u00b6": ""}
PRINTABLE = re.compile(r"^[\x20-\x7e]+$")


def prose(text: str) -> list[str]:
    """The prose paragraphs of one page's text (as build_rag_corpus.page_text writes it)."""
    out = []
    for block in text.split("\n\n"):
        block = block.strip()
        if "\n" in block or block.startswith(("#", "- ", ">>>", "$")) or len(block) < MIN_CHARS:
            continue
        for a, b in ASCII.items():
            block = block.replace(a, b)
        block = re.sub(r" {2,}", " ", block)
        if PRINTABLE.match(block) and sum(c.isalpha() for c in block) > 0.7 * len(block):
            out.append(block)
    return out


def build(html_root: Path) -> tuple[str, list[str]]:
    seen, kept, pages, size = set(), [], [], 0
    for section in SECTIONS:
        for page in sorted((html_root / section).glob("*.html")):
            _, text = page_text(page)
            added = 0
            for para in prose(text):
                if para in seen or size >= TARGET_BYTES:
                    continue
                seen.add(para)
                kept.append(para)
                size += len(para) + 2
                added += 1
            if added:
                pages.append(f"{section}/{page.name}")
    return "\n\n".join(kept) + "\n", pages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--html", type=Path, help="an unpacked doc/python3.11/html folder")
    args = ap.parse_args()
    root = args.html or fetch_html()
    corpus, pages = build(root)
    OUT.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(OUT / "corpus.txt.gz", "wb", mtime=0) as f:  # mtime 0: the same bytes on each rebuild
        f.write(corpus.encode("ascii"))
    (OUT / "LICENSE.txt").write_text(license_text(root), encoding="utf-8")
    print(f"{len(corpus):,} characters, {corpus.count(chr(10) + chr(10)) + 1:,} paragraphs from {len(pages)} pages, "
          f"{len(set(corpus))} distinct characters")


if __name__ == "__main__":
    main()
