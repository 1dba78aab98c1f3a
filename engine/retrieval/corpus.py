"""Documents: the bundled Python documentation pages, and a user's own .txt/.md/.pdf files.

Uploads are bounded (files per upload, bytes per file, characters of text in all) and every
refusal names the file and the limit. A PDF's text comes from pypdf, page by page.
"""
from __future__ import annotations

import functools
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserInputError
from ..core.registry import ASSETS

CORPUS_DIR = ASSETS / "rag"
EXTENSIONS = (".txt", ".md", ".pdf")
MAX_FILES = 5
MAX_FILE_BYTES = 2_000_000  # per file, as uploaded
MAX_PDF_PAGES = 200
MAX_PDF_STREAM_BYTES = 16_000_000  # one PDF stream once decompressed (pypdf allows 75 MB): text needs far less
PDF_STREAM_LIMITS = ("zlib_maximum_output_length", "lzw_maximum_output_length", "run_length_maximum_output_length",
                     "array_based_stream_maximum_output_length", "maximum_declared_stream_length")
MAX_TOTAL_CHARS = 300_000  # text of all of one session's uploads together
# Content-stream operators one PDF may hold (its pages' and the forms they paint): text extraction
# reads each one in Python (~15-50 us each here); a 23 kB PDF can hold 240,000 of them.
MAX_PDF_OPERATORS = 100_000
_PDF_STRING = re.compile(rb"\((?:[^()\\]|\\.)*\)|<[0-9A-Fa-f\s]*>")  # (literal) and <hex> strings
_PDF_OPERATOR = re.compile(rb"(?:^|(?<=[\s\])>]))(?:[A-Za-z][A-Za-z01]{0,2}\*?|['\"])(?=[\s\[(</]|$)")
MAX_NAME_CHARS = 120


@dataclass(frozen=True)
class Document:
    doc_id: str  # stable id: the bundled page name, or "upload-<n>-<name>"
    title: str
    text: str
    source: str  # URL of a bundled page, or "upload: <file name>"


def _safe_name(name: str) -> str:
    """A file name as shown back to the user: the last path part, printable, bounded."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = "".join(ch if ch.isprintable() else "?" for ch in base)
    return base[:MAX_NAME_CHARS] or "unnamed"


@functools.lru_cache(maxsize=1)
def bundled() -> tuple[Document, ...]:
    """The bundled corpus (assets/rag/manifest.json), read once per process; immutable."""
    manifest = json.loads((CORPUS_DIR / "manifest.json").read_text(encoding="utf-8"))
    return tuple(Document(d["id"], d["title"], (CORPUS_DIR / d["file"]).read_text(encoding="utf-8"), d["url"])
                 for d in manifest["documents"])


def bundled_about() -> dict:
    manifest = json.loads((CORPUS_DIR / "manifest.json").read_text(encoding="utf-8"))
    return dict(source=manifest["source"], license=manifest["license"], documents=len(manifest["documents"]))


def document(docs, doc_id: str) -> Document:
    for d in docs:
        if d.doc_id == doc_id:
            return d
    shown = ", ".join(repr(d.doc_id) for d in list(docs)[:30])
    raise UserInputError(f"document = {doc_id!r} is not in this corpus: choose one of {shown}.")


class _TooManyOperators(Exception):
    """Raised from inside pypdf's text extraction once the PDF's operator budget is used up."""


def _operators_in(data: bytes) -> int:
    """How many operators a content stream holds: its operator-like tokens outside strings,
    counted by regular expressions (C speed, no parsing)."""
    return len(_PDF_OPERATOR.findall(_PDF_STRING.sub(b" ", data)))


def _forms(resources) -> list:
    """The form XObjects a page's (or a form's) resources can paint."""
    resources = resources.get_object() if resources is not None else None
    xobjects = resources.get("/XObject") if isinstance(resources, dict) else None
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not isinstance(xobjects, dict):
        return []
    forms = [x.get_object() for x in xobjects.values()]
    return [f for f in forms if isinstance(f, dict) and f.get("/Subtype") == "/Form" and hasattr(f, "get_data")]


def pdf_operators(reader) -> int:
    """The operators in a PDF's page contents and in the forms they can paint, each stream once."""
    total, seen = 0, set()
    for page in reader.pages:
        contents = page.get_contents()
        total += _operators_in(contents.get_data()) if contents is not None else 0
        todo = _forms(page.get("/Resources"))
        while todo and total <= MAX_PDF_OPERATORS:
            form = todo.pop()
            if id(form) not in seen:
                seen.add(id(form))
                total += _operators_in(form.get_data())
                todo.extend(_forms(form.get("/Resources")))
        if total > MAX_PDF_OPERATORS:
            break
    return total


def _pdf_pages(reader, name: str) -> list[str]:
    """Each page's text; refused by name once the PDF passes MAX_PDF_OPERATORS operators (counted
    before reading, and again as pypdf reads them: a form painted many times counts each time) or
    MAX_TOTAL_CHARS characters of text."""
    if len(reader.pages) > MAX_PDF_PAGES:
        raise UserInputError(f"{name!r} has {len(reader.pages)} pages: a PDF may have 1 to {MAX_PDF_PAGES} pages.")
    too_many = UserInputError(f"{name!r} holds more than {MAX_PDF_OPERATORS:,} drawing and text operators: a PDF "
                              f"may hold at most {MAX_PDF_OPERATORS:,}. Upload a shorter PDF, or its text as .txt.")
    if pdf_operators(reader) > MAX_PDF_OPERATORS:
        raise too_many
    count = [0]

    def budget(operator, operands, cm, tm):
        count[0] += 1
        if count[0] > MAX_PDF_OPERATORS:
            raise _TooManyOperators

    pages, chars = [], 0
    try:
        for page in reader.pages:
            pages.append((page.extract_text(visitor_operand_before=budget) or "").strip())
            if count[0] > MAX_PDF_OPERATORS:  # pypdf swallows an error raised inside a form it paints
                raise _TooManyOperators
            chars += len(pages[-1])
            if chars > MAX_TOTAL_CHARS:
                raise UserInputError(f"{name!r} has more than {MAX_TOTAL_CHARS:,} characters of text: the limit is "
                                     f"{MAX_TOTAL_CHARS:,} characters for all uploads together.")
    except _TooManyOperators:
        raise too_many from None
    return pages


def pdf_text(data: bytes, name: str) -> str:
    """The text of a PDF, page by page, within the page, operator and character limits. Any pypdf
    error (its base class PyPdfError: a broken file, a stream that unpacks past
    MAX_PDF_STREAM_BYTES, too many objects) is refused naming the file."""
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import LimitReachedError, PyPdfError

    limits = {k: MAX_PDF_STREAM_BYTES for k in PDF_STREAM_LIMITS}
    try:
        with apply_configuration(**limits):  # this call only (a context variable): no other reader changes
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                raise UserInputError(f"{name!r} is an encrypted PDF: upload an unencrypted copy.")
            pages = _pdf_pages(reader, name)
    except LimitReachedError:
        raise UserInputError(f"{name!r} could not be read as a PDF: it goes past one of the reader's limits "
                             f"(LimitReachedError: e.g. a stream that unpacks to more than {MAX_PDF_STREAM_BYTES:,} "
                             "bytes, or too many objects). Upload a smaller PDF, or its text as .txt.") from None
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, UserInputError):
            raise
        raise UserInputError(f"{name!r} could not be read as a PDF ({type(exc).__name__}): upload a valid .pdf file.") from None
    return "\n\n".join(p for p in pages if p)


def parse_upload(name: str, data: bytes, number: int = 1) -> Document:
    """One uploaded file as a Document; refused by name when too large, empty or of another kind."""
    shown = _safe_name(name)
    ext = Path(shown.lower()).suffix
    if ext not in EXTENSIONS:
        raise UserInputError(f"{shown!r} is a {ext or 'file without extension'}: upload "
                             f"{', '.join(EXTENSIONS)} files.")
    if len(data) > MAX_FILE_BYTES:
        raise UserInputError(f"{shown!r} is {len(data):,} bytes: the limit is {MAX_FILE_BYTES:,} bytes per file.")
    if ext == ".pdf":
        text = pdf_text(data, shown)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UserInputError(f"{shown!r} is not UTF-8 text: save it as UTF-8 and upload it again.") from None
    text = text.replace("\r\n", "\n").replace("\x00", "")
    if not text.strip():
        raise UserInputError(f"{shown!r} holds no text (a scanned PDF has none): upload a file with text.")
    if len(text) > MAX_TOTAL_CHARS:
        raise UserInputError(f"{shown!r} has {len(text):,} characters of text: the limit is "
                             f"{MAX_TOTAL_CHARS:,} characters for all uploads together.")
    slug = re.sub(r"[^a-z0-9]+", "-", shown.lower()).strip("-")[:40] or "file"
    return Document(f"upload-{number}-{slug}", shown, text, f"upload: {shown}")


def read_uploads(paths, already: int = 0, chars_before: int = 0) -> list[Document]:
    """Documents from uploaded file paths (as a web form hands them over). `already` documents
    and `chars_before` characters are in the session already; the limits count them too."""
    if paths is None:
        paths = []
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [p for p in paths if p]
    if not paths:
        raise UserInputError(f"No file given: upload 1 to {MAX_FILES} files ({', '.join(EXTENSIONS)}).")
    if already + len(paths) > MAX_FILES:
        raise UserInputError(f"{already + len(paths)} files in this session: the limit is {MAX_FILES} files; "
                             f"clear your uploads first.")
    docs, chars = [], chars_before
    for i, p in enumerate(paths):
        path = Path(str(getattr(p, "name", p)))
        name = getattr(p, "orig_name", None) or path.name
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:  # refuse before reading it into memory
            raise UserInputError(f"{_safe_name(name)!r} is {size:,} bytes: the limit is {MAX_FILE_BYTES:,} "
                                 f"bytes per file.")
        doc = parse_upload(name, path.read_bytes(), already + i + 1)
        chars += len(doc.text)
        if chars > MAX_TOTAL_CHARS:
            raise UserInputError(f"With {doc.title!r} your uploads hold {chars:,} characters of text: the limit is "
                                 f"{MAX_TOTAL_CHARS:,} characters for all uploads together.")
        docs.append(doc)
    return docs
