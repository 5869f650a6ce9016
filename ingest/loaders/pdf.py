"""PDF -> text and page spans (pypdf): one text per page, joined by a blank line; a broken page is indexed as
empty rather than losing the document."""

from __future__ import annotations

import io
import logging

from ingest.loaders.common import NO_LIMITS, Limits, _describe, join_pages, text_chars
from ingest.loaders.pdf_ocr import ocr_scanned_pages
from rag.errors import FileError
from rag.types import PageSpan

log = logging.getLogger("ingest.loaders")

_ENCRYPTED = "encrypted PDF: decrypt it first (qpdf --decrypt in.pdf out.pdf)"


def _pdf_page_texts(raw: bytes, name: str, limits: Limits = NO_LIMITS) -> list[str]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(raw), strict=False)
        if reader.is_encrypted and not _pdf_decrypt_empty(reader):
            raise FileError(name, _ENCRYPTED)
        pages = list(reader.pages)
    except FileError:
        raise
    except FileNotDecryptedError:
        raise FileError(name, _ENCRYPTED) from None
    except Exception as exc:  # pypdf raises many kinds on broken files
        raise FileError(name, f"corrupt PDF ({_describe(exc)}): repair or re-export it") from None
    return _pdf_extract_pages(pages, name, limits)


def _pdf_extract_pages(pages: list[object], name: str, limits: Limits = NO_LIMITS) -> list[str]:
    """One broken page must not lose a whole document: it becomes an empty page (logged), unless every
    page is broken."""
    texts: list[str] = []
    first_error: Exception | None = None
    total = 0
    for i, page in enumerate(pages, start=1):
        limits.check(name, total)  # page by page: a crafted PDF is stopped at the limit, not at its end
        try:
            text = page.extract_text() or ""  # type: ignore[attr-defined]
        except Exception as exc:  # pypdf raises many kinds on broken content streams
            first_error = first_error or exc
            log.warning("%s: page %d unreadable, indexed as empty (%s)", name, i, _describe(exc))
            text = ""
        texts.append(text.replace("\r\n", "\n").strip())
        total += text_chars(texts[-1])
    limits.check_chars(name, total)
    if first_error is not None and not any(texts):
        raise FileError(name, f"corrupt PDF ({_describe(first_error)}): repair or re-export it")
    return texts


def _pdf_decrypt_empty(reader: object) -> bool:
    """Many PDFs are encrypted only against editing, with an empty password to open them."""
    try:
        return bool(reader.decrypt(""))  # type: ignore[attr-defined]
    except Exception:  # e.g. AES without a crypto library: treat as locked
        return False


def _load_pdf(raw: bytes, name: str, limits: Limits = NO_LIMITS) -> tuple[str, tuple[PageSpan, ...]]:
    texts = _pdf_page_texts(raw, name, limits)
    if not all(texts) and limits.ocr.enabled:  # a PDF whose every page has text is read exactly as before
        texts = ocr_scanned_pages(raw, name, texts, limits)
    if not any(texts):
        raise FileError(name, "PDF has no text layer (scanned?): run OCR first (e.g. ocrmypdf)")
    return join_pages(texts)  # empty pages keep an empty span: page numbers and offsets stay exact

