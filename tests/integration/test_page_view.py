"""The page view of a PDF citation (issue 17): rendered on demand, cached, with boxes that cover the cited
words, checked against the PDF's own character boxes (text layer) and against where the words are on a scan."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ingest.loaders import load_document
from ingest.loaders.ocr import ocr_available
from ingest.page_view import PageViews, find_span, merge_lines, render_view
from tests.format_files import image_pdf, render_pages, text_pdf

pytestmark = pytest.mark.integration

PAGES = [
    "Annual report of the ferry company. It opened two new routes.",
    "The ferry company carried 61,200 passengers in 2023, more than in any year before. The crossing to "
    "Kirkwall takes ninety minutes and the boats sail every two hours in summer.",
]
CITED = "The ferry company carried 61,200 passengers in 2023, more than in any year before."


def char_boxes(path: Path, page_no: int, needle: str) -> list[tuple[float, float, float, float]]:
    """pdfium's own boxes (fractions, y down) of the characters of ``needle`` on the page."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    page = pdf[page_no - 1]
    w, h = page.get_size()
    tp = page.get_textpage()
    text = tp.get_text_range()
    at = text.index(needle)
    out = []
    for i in range(at, at + len(needle)):
        if not text[i].isspace():
            left, bottom, right, top = tp.get_charbox(i)
            out.append((left / w, (h - top) / h, right / w, (h - bottom) / h))
    pdf.close()
    return out


def covered(inner: tuple[float, ...], boxes: list) -> bool:  # type: ignore[type-arg]
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return any(b.left <= cx <= b.right and b.top <= cy <= b.bottom for b in boxes)


def test_find_span_ignores_whitespace_and_keeps_a_prefix() -> None:
    assert find_span("ab  c\nd ef", "bc d") == [1, 4, 6]
    assert find_span("The quick brown fox", "brown fox jumps over") == [*range(10, 15), *range(16, 19)]
    assert find_span("nothing alike", "zzzz") == []
    assert merge_lines([(0, 0, 1, 1), (1, 0, 2, 1), (0, 2, 1, 3)]) == [(0, 0, 2, 1), (0, 2, 1, 3)]


def test_text_pdf_boxes_cover_the_cited_characters_and_nothing_far(tmp_path: Path) -> None:
    path = text_pdf(tmp_path / "report.pdf", PAGES)
    doc = load_document(path)
    assert CITED in doc.text and doc.page_at(doc.text.index(CITED)) == 2
    view = render_view(path, 2, CITED)
    assert view.by == "text layer" and view.png.startswith(b"\x89PNG") and view.boxes
    mine = char_boxes(path, 2, CITED)
    assert all(covered(c, list(view.boxes)) for c in mine), "every cited character is inside a box"
    after = char_boxes(path, 2, "Kirkwall")
    assert not any(covered(c, list(view.boxes)) for c in after), "words after the span are not"


def test_views_are_cached_and_refused_for_a_changed_file(tmp_path: Path) -> None:
    path = text_pdf(tmp_path / "report.pdf", PAGES)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    views = PageViews()
    first = views.view(str(path), digest, 2, CITED)
    assert first is not None and views.view(str(path), digest, 2, CITED) is first
    assert views.view(str(path), "0" * 64, 2, CITED) is None  # not the file that was ingested
    assert views.view(str(tmp_path / "gone.pdf"), digest, 2, CITED) is None


@pytest.mark.skipif(not ocr_available(), reason="Tesseract is not installed (make ocr)")
def test_scanned_page_boxes_come_from_the_ocr_words(tmp_path: Path) -> None:
    born = text_pdf(tmp_path / "born.pdf", PAGES)
    scan = image_pdf(tmp_path / "scan.pdf", render_pages(born, dpi=150))
    doc = load_document(scan)
    span = doc.pages[1]
    page_text = doc.text[span.start:span.end]
    cited = page_text[: page_text.index("2023") + 5]
    view = render_view(scan, 2, cited)
    assert view.by == "OCR" and view.boxes
    # the scan is the born-digital page, so its character boxes say where the words are on the image
    for c in char_boxes(born, 2, "carried 61,200 passengers"):
        assert covered(c, list(view.boxes))
    assert not any(covered(c, list(view.boxes)) for c in char_boxes(born, 2, "Kirkwall"))
