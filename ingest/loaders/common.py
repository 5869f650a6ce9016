"""What every loader shares: the supported types, the per-file `Limits`, and the short wording of sizes and
parser failures."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from ingest.loaders.ocr import OcrOptions
from rag.errors import FileError
from rag.types import PageSpan

SUPPORTED_SUFFIXES = (
    ".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx", ".csv", ".epub", ".eml",
    ".png", ".jpg", ".jpeg", ".tiff", ".tif", ".webp",
)
TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
_MIME = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".csv": "text/csv",
    ".epub": "application/epub+zip",
    ".eml": "message/rfc822",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tiff": "image/tiff",
    ".tif": "image/tiff",
    ".webp": "image/webp",
}


_PAGE_WORDS = {".pptx": "slide", ".xlsx": "sheet", ".epub": "chapter"}  # what a page is in these formats


def page_label(source: str, page: int) -> str:
    """How a citation's page reads for its file: "page 3", "slide 3", "sheet 2", "chapter 4"."""
    dot = source.rfind(".")
    return f"{_PAGE_WORDS.get(source[dot:].lower() if dot >= 0 else '', 'page')} {page}"


def unsupported_reason(suffix: str) -> str:
    return f"unsupported type {suffix or '(no extension)'}; supported: {' '.join(SUPPORTED_SUFFIXES)}"


def _fmt_size(n: float) -> str:
    if n >= 10 * 2**20:
        return f"{n / 2**20:.0f} MB"
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB"
    if n >= 2**10:
        return f"{n / 2**10:.1f} KB"
    return f"{int(n)} bytes"


def text_chars(text: str) -> int:
    """The characters of ``text`` that count against `Limits.max_chars`: all but spaces, tabs and line ends (a
    file of mostly blank lines costs little to index)."""
    return len(text) - sum(text.count(ch) for ch in " \n\t\r\f\v")


@dataclass(frozen=True)
class Limits:
    """What one file may cost an ingest: ``max_chars`` characters of extracted text (`text_chars`), and its
    ingest must end by ``deadline`` (``time.monotonic()``). A small file can expand to far more text than its
    size says (a .docx is a zip), so these are checked while the text is extracted, chunked and embedded.
    ``ocr``: whether pages without text are read by OCR, and how many a file may have."""

    max_chars: int | None = None
    max_seconds: float | None = None
    deadline: float | None = None
    ocr: OcrOptions = field(default_factory=OcrOptions)

    @classmethod
    def start(cls, max_chars: int | None, max_seconds: float | None, ocr: OcrOptions | None = None) -> Limits:
        """The limits of a file whose ingest starts now."""
        deadline = time.monotonic() + max_seconds if max_seconds else None
        return cls(max_chars, max_seconds, deadline, ocr or OcrOptions())

    def check_chars(self, name: str, n: int) -> None:
        if self.max_chars is not None and n > self.max_chars:
            raise FileError(
                name, f"its text is over the limit of {self.max_chars:,} characters per file (CITEQA_MAX_TEXT_CHARS): "
                "split it, or raise the limit"
            )

    def check_time(self, name: str) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise FileError(
                name, f"its ingest took longer than the limit of {self.max_seconds:g} s per file "
                "(CITEQA_MAX_INGEST_SECONDS): split it, or raise the limit"
            )

    def check(self, name: str, n: int) -> None:
        self.check_chars(name, n)
        self.check_time(name)


NO_LIMITS = Limits()


def _describe(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())[:120]
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__



def _over_limit(size: int | None, max_bytes: int) -> str:
    """``size`` None: the file grew past the limit after its stat (it is not read to the end to measure it)."""
    what = "over" if size is None else f"{_fmt_size(size)}, over"
    return f"file is {what} the {_fmt_size(max_bytes)} limit; raise --max-file-mb"



def read_pages(pages: Iterable[str], name: str, limits: Limits) -> list[str]:
    """The texts of ``pages`` in order, the file's limits checked after each one: a crafted file is stopped at the
    limit, not at its end."""
    texts: list[str] = []
    total = 0
    for text in pages:
        texts.append(text)
        total += text_chars(text)
        limits.check(name, total)
    return texts


def join_pages(texts: list[str]) -> tuple[str, tuple[PageSpan, ...]]:
    """Page texts (1-based in order) -> the document text, joined by a blank line, and each page's span; an empty
    page keeps an empty span so page numbers and offsets stay exact."""
    spans: list[PageSpan] = []
    pos = 0
    for i, t in enumerate(texts, start=1):
        spans.append(PageSpan(i, pos, pos + len(t)))
        pos += len(t) + 2
    return "\n\n".join(texts), tuple(spans)
