"""OCR (issue 17) on files made here: a PNG of known text, a PDF whose pages are only pictures of a text PDF
(alone and mixed with a born-digital page), with page numbers kept, offsets slicing the stored text, the same
text when read again, a progress call per page, the page limit, and one line when Tesseract is missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest.chunking import chunk_document
from ingest.loaders import images, load_document, ocr, pdf_ocr
from ingest.loaders.common import Limits
from ingest.loaders.extract import document_from_bytes
from ingest.loaders.ocr import OcrOptions, ocr_available
from rag.errors import FileError
from tests.format_files import image_pdf, render_pages, text_pdf, text_png
from tests.unit.test_loaders import failure, write

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not ocr_available(), reason="Tesseract is not installed (apt-get install tesseract-ocr "
                       "tesseract-ocr-eng, or make ocr)"),
]

SCAN = [
    "The harbour board met on the fourth of May and approved a budget of 38 million euros for the new quay.",
    "Dredging starts in June. The contractor, Van Oord, expects to remove 900,000 cubic metres of sand.",
]
PNG_TEXT = "Invoice 4471\nThree pallets of cement\nTotal due: 812 euros"


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def scanned_pdf(tmp_path: Path, text_pages: dict[int, str] | None = None) -> Path:
    src = text_pdf(tmp_path / "born-digital.pdf", SCAN)
    return image_pdf(tmp_path / "scan.pdf", render_pages(src, dpi=150), text_pages)


def test_png_of_text_is_read(tmp_path: Path) -> None:
    doc = load_document(text_png(tmp_path / "invoice.png", PNG_TEXT))
    assert doc.mime == "image/png" and [p.page for p in doc.pages] == [1]
    assert words(doc.text) == words(PNG_TEXT), doc.text
    for c in chunk_document(doc, 40, 8):
        assert doc.text[c.start:c.end] == c.text and c.page == 1
    assert load_document(tmp_path / "invoice.png") == doc  # OCR is deterministic: re-ingest finds it unchanged


def test_image_only_pdf_is_read_page_by_page(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    path = scanned_pdf(tmp_path)
    opts = OcrOptions(on_page=lambda done, total, name: calls.append((done, total)))
    doc = document_from_bytes(path, path.read_bytes(), "h", limits=Limits(ocr=opts))
    assert [p.page for p in doc.pages] == [1, 2]
    for span, expected in zip(doc.pages, SCAN, strict=True):
        got = words(doc.text[span.start:span.end])
        assert sum(a == b for a, b in zip(got, words(expected), strict=False)) >= 0.9 * len(words(expected)), got
    chunks = chunk_document(doc, 24, 4)
    assert {c.page for c in chunks} == {1, 2}
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
    assert calls == [(0, 2), (1, 2), (2, 2)]


def test_scan_mixed_with_a_text_page_keeps_the_text_layer(tmp_path: Path) -> None:
    path = scanned_pdf(tmp_path, text_pages={1: "This page was typed, not scanned: 17 berths."})
    doc = load_document(path)
    assert [p.page for p in doc.pages] == [1, 2, 3]
    second = doc.pages[1]
    assert doc.text[second.start:second.end] == "This page was typed, not scanned: 17 berths."  # pypdf's text
    assert "Van Oord" in doc.text[doc.pages[2].start:doc.pages[2].end]


def test_ocr_page_limit(tmp_path: Path) -> None:
    path = scanned_pdf(tmp_path)
    with pytest.raises(FileError) as info:
        document_from_bytes(path, path.read_bytes(), "h", limits=Limits(ocr=OcrOptions(max_pages=1)))
    assert info.value.reason == ("2 pages need OCR, over the limit of 1 per file (CITEQA_OCR_MAX_PAGES): split it, "
                                 "or raise the limit")


def test_ocr_off(tmp_path: Path) -> None:
    off = Limits(ocr=ocr.OCR_OFF)
    png = text_png(tmp_path / "a.png", PNG_TEXT)
    with pytest.raises(FileError, match="an image needs OCR, which is off"):
        document_from_bytes(png, png.read_bytes(), "h", limits=off)
    path = scanned_pdf(tmp_path)
    with pytest.raises(FileError, match=r"PDF has no text layer \(scanned\?\): run OCR first"):
        document_from_bytes(path, path.read_bytes(), "h", limits=off)


def test_tesseract_missing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in (ocr, pdf_ocr):
        monkeypatch.setattr(mod, "ocr_available", lambda: False)
    reason = failure(text_png(tmp_path / "a.png", PNG_TEXT))
    assert reason.startswith("OCR needs Tesseract, which is not installed: apt-get install tesseract-ocr")
    assert failure(scanned_pdf(tmp_path)).startswith("OCR needs Tesseract")
    mixed = scanned_pdf(tmp_path, text_pages={0: "Typed cover page."})  # still ingested: its scans empty
    doc = load_document(mixed)
    assert doc.text.startswith("Typed cover page.") and doc.pages[1].start == doc.pages[1].end


def test_broken_and_hostile_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = text_png(tmp_path / "good.png", PNG_TEXT).read_bytes()
    assert failure(write(tmp_path / "cut.png", raw[: len(raw) // 2])).startswith("corrupt image (")
    assert failure(write(tmp_path / "fake.jpg", b"\xff\xd8\xff not really")).startswith("corrupt image (")
    monkeypatch.setattr(images, "IMAGE_MAX_PIXELS", 1000)
    assert "(decompression bomb?)" in failure(tmp_path / "good.png")


def test_scans_ingest_with_a_page_bar_answer_on_their_page_and_reingest_unchanged(embedder, tmp_path: Path,
                                                                                 monkeypatch) -> None:
    from ingest import runner
    from ingest.compose import Citeqa
    from rag.settings import load_settings

    folder = tmp_path / "scans"
    folder.mkdir()
    scanned_pdf(tmp_path)  # writes tmp_path/scan.pdf
    (tmp_path / "scan.pdf").rename(folder / "scan.pdf")
    text_png(folder / "invoice.png", PNG_TEXT)
    pages: list[tuple[int, int, str]] = []
    real = runner.Ingestor.ingest

    def spy(self, paths, **kw):  # type: ignore[no-untyped-def]
        bar = kw.get("page_progress")
        if bar is not None:  # the bar's own callback, and a note of each call
            kw["page_progress"] = lambda d, t, n: (pages.append((d, t, Path(n).name)), bar(d, t, n))
        return real(self, paths, **kw)

    monkeypatch.setattr(runner.Ingestor, "ingest", spy)
    qa = Citeqa(load_settings(embedder="minilm-int8", collection="scans"), embedder=embedder)
    report = qa.ingest([folder], progress=True)  # the rich bars, OCR pages included
    assert report.ok and len(report.added) == 2, report.failed
    assert ("scan.pdf" in {n for _, _, n in pages}) and (2, 2, "scan.pdf") in pages and (1, 1, "invoice.png") in pages
    hits = qa.retriever.retrieve("Who is the dredging contractor?", 3)
    top = hits[0].chunk
    assert Path(top.source).name == "scan.pdf" and top.page == 2 and "Van Oord" in top.text
    assert qa.collection.document_text(top.source)[top.start:top.end] == top.text
    again = qa.ingest([folder], progress=False)
    assert len(again.unchanged) == 2 and not again.added and not again.updated and again.chunks == 0
