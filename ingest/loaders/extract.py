"""Bytes -> `Document`: the loader for the file's type, with parser failures and chatter turned into one
`FileError` line."""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ingest.loaders.common import (
    _MIME,
    HTML_SUFFIXES,
    NO_LIMITS,
    TEXT_SUFFIXES,
    Limits,
    _describe,
    text_chars,
    unsupported_reason,
)
from ingest.loaders.docx import _load_docx
from ingest.loaders.eml import _load_eml
from ingest.loaders.epub import _load_epub
from ingest.loaders.files import check_file, read_file
from ingest.loaders.html import _load_html
from ingest.loaders.images import IMAGE_SUFFIXES, _load_image
from ingest.loaders.pdf import _load_pdf
from ingest.loaders.pptx import _load_pptx
from ingest.loaders.sheets import _load_csv, _load_xlsx
from ingest.loaders.text import _load_text
from rag.errors import FileError
from rag.types import Document, PageSpan


@contextmanager
def _parser_chatter_off() -> Iterator[None]:
    """Parsers narrate what they repair ("EOF marker not found", bs4's markup warnings) on stderr, without a
    file name; every failure becomes one FileError line instead, so their logging and warnings are muted."""
    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pypdf_log.setLevel(level)


def _extract(raw: bytes, name: str, suffix: str, max_bytes: int,
             limits: Limits = NO_LIMITS) -> tuple[str, tuple[PageSpan, ...]]:
    with _parser_chatter_off():
        return _extract_text(raw, name, suffix, max_bytes, limits)


def _extract_text(raw: bytes, name: str, suffix: str, max_bytes: int,
                  limits: Limits = NO_LIMITS) -> tuple[str, tuple[PageSpan, ...]]:
    try:
        if suffix in TEXT_SUFFIXES:
            return _load_text(raw, name), ()
        if suffix in HTML_SUFFIXES:
            return _load_html(raw, name), ()
        if suffix == ".pdf":
            return _load_pdf(raw, name, limits)
        if suffix == ".docx":
            return _load_docx(raw, name, max_bytes, limits), ()
        return _load_other(raw, name, suffix, max_bytes, limits)
    except FileError:
        raise
    except MemoryError:
        raise FileError(name, "too large to extract in memory: split it") from None
    except RecursionError:
        raise FileError(name, "nested too deeply to parse: simplify or convert it first") from None
    except Exception as exc:  # a parser bug or an input no branch above foresaw: still one line, no traceback
        raise FileError(name, f"cannot extract text ({_describe(exc)})") from None


def _load_other(raw: bytes, name: str, suffix: str, max_bytes: int,
                limits: Limits) -> tuple[str, tuple[PageSpan, ...]]:
    """The formats added after the first five (issue 17)."""
    if suffix == ".pptx":
        return _load_pptx(raw, name, max_bytes, limits)
    if suffix == ".xlsx":
        return _load_xlsx(raw, name, max_bytes, limits)
    if suffix == ".epub":
        return _load_epub(raw, name, max_bytes, limits)
    if suffix == ".csv":
        return _load_csv(raw, name, limits), ()
    if suffix == ".eml":
        return _load_eml(raw, name, limits), ()
    if suffix in IMAGE_SUFFIXES:
        return _load_image(raw, name, limits)
    raise FileError(name, unsupported_reason(suffix))


def document_from_bytes(path: Path, raw: bytes, digest: str, max_bytes: int = 200 * 2**20, *,
                        limits: Limits = NO_LIMITS) -> Document:
    """Extract the text of ``path`` from its bytes ``raw`` (``digest``: their sha256, which the caller has
    already taken to tell whether the file changed, so a file is read and hashed once). ``limits``: what its
    text may cost (FileError past them)."""
    path = Path(path)
    suffix = path.suffix.lower()
    text, pages = _extract(raw, str(path), suffix, max_bytes, limits)
    if suffix in TEXT_SUFFIXES:  # the text is the file itself, already bounded by max_file_mb
        limits.check_time(str(path))
    else:
        limits.check(str(path), text_chars(text))
    if not text.strip():
        raise FileError(str(path), "no text (empty or whitespace only)")
    return Document(source=str(path.resolve()), text=text, content_hash=digest, pages=pages, mime=_MIME[suffix])


def load_document(path: Path, max_bytes: int = 200 * 2**20) -> Document:
    """Extract the text of ``path``. Raises FileError (path + reason) for anything that cannot be ingested.

    The file is read once: the content hash is taken over exactly the bytes that were parsed (no race with
    a writer), and a big file is never held twice.
    """
    path = Path(path)
    check_file(path, max_bytes)
    raw = read_file(path, max_bytes)
    return document_from_bytes(path, raw, hashlib.sha256(raw).hexdigest(), max_bytes)

