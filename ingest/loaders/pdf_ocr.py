"""The pages of a PDF that have no text layer but hold an image (a scan) are rendered (pypdfium2) and read by
OCR (`ocr`); pages with text are kept as pypdf extracted them. Without Tesseract, a PDF that also has text pages
is still ingested (its scanned pages empty, logged); one that is only scans gets the line saying what to
install."""

from __future__ import annotations

import logging

from ingest.loaders.common import Limits, _describe, text_chars
from ingest.loaders.ocr import OCR_DPI, ocr_available, ocr_image
from rag.errors import FileError

log = logging.getLogger("ingest.loaders")


def _scanned(pdf: object, texts: list[str]) -> list[int]:
    """0-based numbers of the pages without text that show an image."""
    import pypdfium2.raw as pdfium_c

    out = []
    for i, text in enumerate(texts):
        if text:
            continue
        page = pdf[i]  # type: ignore[index]
        try:
            if next(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3), None) is not None:
                out.append(i)
        finally:
            page.close()
    return out


def ocr_scanned_pages(raw: bytes, name: str, texts: list[str], limits: Limits) -> list[str]:
    """``texts`` with each scanned page's text read by OCR."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(raw)
    except Exception as exc:  # pypdf read it; pdfium may still refuse it
        log.warning("%s: pages without text not read by OCR (%s)", name, _describe(exc))
        return texts
    try:
        todo = _scanned(pdf, texts)
        if not todo:
            return texts
        if not ocr_available() and any(texts):
            log.warning("%s: %d scanned pages indexed as empty (Tesseract is not installed)", name, len(todo))
            return texts
        opts = limits.ocr
        opts.check_pages(name, len(todo))
        out = list(texts)
        total = sum(map(text_chars, texts))
        for n, i in enumerate(todo):
            opts.progress(n, len(todo), name)
            page = pdf[i]
            try:
                image = page.render(scale=OCR_DPI / 72).to_pil()
            except Exception as exc:
                raise FileError(name, f"cannot render page {i + 1} for OCR ({_describe(exc)})") from None
            finally:
                page.close()
            out[i] = ocr_image(image, name, opts, dpi=OCR_DPI)
            total += text_chars(out[i])
            limits.check(name, total)  # page by page, time included: OCR is slow
        opts.progress(len(todo), len(todo), name)
        return out
    finally:
        pdf.close()
