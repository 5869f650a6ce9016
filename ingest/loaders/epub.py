"""EPUB -> text and page spans (ebooklib): one page per document of the reading order (the spine), so the page
number is the chapter's position in the book; each is read as HTML (`html`). The archive is judged first
(`zips`); a book under DRM (META-INF/encryption.xml) is refused."""

from __future__ import annotations

import io

from ingest.loaders.common import NO_LIMITS, Limits, _describe, join_pages, read_pages
from ingest.loaders.html import _load_html
from ingest.loaders.zips import check_zip
from rag.errors import FileError
from rag.types import PageSpan

_FIX = "re-export it from your e-book editor (e.g. Calibre)"


def _load_epub(raw: bytes, name: str, max_bytes: int,
               limits: Limits = NO_LIMITS) -> tuple[str, tuple[PageSpan, ...]]:
    members = check_zip(raw, name, ".epub", "META-INF/container.xml", _FIX, max_bytes)
    if "META-INF/encryption.xml" in members:
        raise FileError(name, "encrypted .epub (DRM): only DRM-free e-books can be read")
    try:
        import ebooklib
        from ebooklib import epub

        book = epub.read_epub(io.BytesIO(raw), options={"ignore_ncx": True})
        items = (book.get_item_with_id(idref) for idref, _linear in book.spine)
        chapters = (_load_html(item.get_content(), name) for item in items
                    if item is not None and item.get_type() == ebooklib.ITEM_DOCUMENT)
        texts = read_pages(chapters, name, limits)  # chapter by chapter
    except FileError:
        raise
    except Exception as exc:
        raise FileError(name, f"corrupt .epub ({_describe(exc)}): {_FIX}") from None
    return join_pages(texts)
