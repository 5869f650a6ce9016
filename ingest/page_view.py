"""A cited PDF page as an image with the cited span's boxes, for the Sources panel (issue 17). Nothing is rendered
at ingest: a page is rendered (pypdfium2) when a citation on it is shown, and kept in a small cache.

The boxes come from the page's own text layer (pdfium's character boxes) or, for a scanned page, from the OCR's
word boxes (Tesseract, run again on that one page when it is first shown). The stored text (pypdf's, or the
OCR's) and these come from different readers, so the cited span is found in them by its letters and digits
alone (spaces and line breaks ignored); a span that runs onto the next page is boxed as far as this page goes."""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ingest.loaders.ocr import OCR_DPI, OcrOptions, ocr_available, ocr_words

log = logging.getLogger("ingest.page_view")

VIEW_DPI = 110  # the page image's resolution: readable in the panel, ~100 KB as PNG
CACHE_PAGES = 32


@dataclass(frozen=True)
class Box:
    """A rectangle as fractions of the page's width and height, from its top-left corner."""

    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class PageView:
    png: bytes
    width: int  # pixels
    height: int
    boxes: tuple[Box, ...]
    by: str  # where the boxes come from: "text layer", "OCR", or "" when the span was not found


def _key(text: str) -> tuple[str, list[int]]:
    """``text`` without whitespace, lowercased, and where each kept character was."""
    keep = [(i, ch.lower()) for i, ch in enumerate(text) if not ch.isspace()]
    return "".join(ch for _, ch in keep), [i for i, _ in keep]


def find_span(haystack: str, cited: str) -> list[int]:
    """Indices in ``haystack`` of the characters of ``cited`` (compared without whitespace, case-folded); the
    longest prefix of ``cited`` found when all of it is not (a span running onto the next page); [] if none."""
    hay, where = _key(haystack)
    needle, _ = _key(cited)
    if not needle:
        return []
    at = hay.find(needle)
    if at < 0:
        lo, hi = 0, len(needle)  # the longest prefix found (a prefix found means every shorter one is)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if hay.find(needle[:mid]) >= 0:
                lo = mid
            else:
                hi = mid - 1
        if lo < min(8, len(needle)):
            return []
        needle = needle[:lo]
        at = hay.find(needle)
    return where[at:at + len(needle)]


def merge_lines(rects: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Character or word rectangles (left, top, right, bottom; y down) in reading order -> one per line."""
    lines: list[list[float]] = []
    for left, top, right, bottom in rects:
        if lines:
            last = lines[-1]
            overlap = min(bottom, last[3]) - max(top, last[1])
            if overlap > 0.5 * min(bottom - top, last[3] - last[1]) and left >= last[0] - 1:
                last[0], last[1] = min(last[0], left), min(last[1], top)
                last[2], last[3] = max(last[2], right), max(last[3], bottom)
                continue
        lines.append([left, top, right, bottom])
    return [(a, b, c, d) for a, b, c, d in lines]


def _text_layer_boxes(page: object, cited: str) -> tuple[list[tuple[float, float, float, float]], int]:
    """The line boxes of ``cited`` in PDF points (y down), and how many characters the text layer has."""
    textpage = page.get_textpage()  # type: ignore[attr-defined]
    try:
        n = textpage.count_chars()
        if n == 0:
            return [], 0
        text = textpage.get_text_range(0, n)
        if len(text) != n:  # indices must be character indices
            text = "".join(textpage.get_text_range(i, 1) or " " for i in range(n))
        _, height = page.get_size()  # type: ignore[attr-defined]
        rects = []
        for i in find_span(text, cited):
            left, bottom, right, top = textpage.get_charbox(i, loose=True)
            rects.append((left, height - top, right, height - bottom))
        return merge_lines(rects), n
    finally:
        textpage.close()


def _ocr_boxes(image: object, cited: str) -> list[tuple[float, float, float, float]]:
    """Word boxes, in ``image``'s pixels, of the cited words, from Tesseract's words of the page."""
    words = ocr_words(image, "page", OcrOptions(), dpi=OCR_DPI)
    text, owner = "", []  # the page's words joined by spaces, and which word each character belongs to
    for k, (w, _) in enumerate(words):
        text += w + " "
        owner.extend([k] * (len(w) + 1))
    hit = sorted({owner[i] for i in find_span(text, cited)})
    return merge_lines([tuple(float(v) for v in words[k][1]) for k in hit])  # type: ignore[misc]


def render_view(path: Path, page_no: int, cited: str, dpi: int = VIEW_DPI) -> PageView:
    """Page ``page_no`` (1-based) of the PDF at ``path`` as a PNG with the boxes of ``cited`` on it."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        page = pdf[page_no - 1]
        try:
            width, height = page.get_size()
            image = page.render(scale=dpi / 72).to_pil()
            rects, chars = _text_layer_boxes(page, cited)
            by, scale_x, scale_y = "text layer", width, height
            if not chars and ocr_available():  # a scanned page: the OCR's word boxes
                scan = page.render(scale=OCR_DPI / 72).to_pil()
                rects, by = _ocr_boxes(scan, cited), "OCR"
                scale_x, scale_y = scan.width, scan.height
        finally:
            page.close()
    finally:
        pdf.close()
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    boxes = tuple(Box(a / scale_x, b / scale_y, c / scale_x, d / scale_y) for a, b, c, d in rects)
    return PageView(buf.getvalue(), image.width, image.height, boxes, by if boxes else "")


class PageViews:
    """Cited pages rendered on demand and cached by (file content, page, cited span). A file that changed since
    it was ingested (its hash is not the one given) is not shown: the boxes would point at other words."""

    def __init__(self, max_pages: int = CACHE_PAGES) -> None:
        self.max_pages = max_pages
        self._cache: OrderedDict[tuple[str, int, str], PageView] = OrderedDict()
        self._hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256
        self._lock = threading.Lock()

    def _digest(self, path: Path) -> str | None:
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self._hashes:
            h = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            self._hashes[key] = h.hexdigest()
        return self._hashes[key]

    def view(self, source: str, content_hash: str, page: int, cited: str) -> PageView | None:
        """The page view of a citation of ``source`` (a PDF ingested with ``content_hash``), or None when the
        file is gone, changed or cannot be rendered."""
        path = Path(source)
        if path.suffix.lower() != ".pdf" or page < 1:
            return None
        key = (content_hash, page, cited)
        try:
            if self._digest(path) != content_hash:  # from stat when the file is as last seen
                return None
            with self._lock:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    return self._cache[key]
            view = render_view(path, page, cited)
        except Exception as exc:  # a file pdfium cannot open or render: the text view still shows the citation
            log.warning("%s: page %d not rendered (%s: %s)", source, page, type(exc).__name__, exc)
            return None
        with self._lock:
            self._cache[key] = view
            while len(self._cache) > self.max_pages:
                self._cache.popitem(last=False)
        return view
