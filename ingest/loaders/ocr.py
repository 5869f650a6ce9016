"""OCR, fully offline: Tesseract (the ``tesseract`` program with its English data, Debian's tesseract-ocr and
tesseract-ocr-eng; driven by pytesseract) reads images and the image-only pages of PDFs (rendered by pypdfium2).
Its models are the traineddata files the Debian package installs: nothing is downloaded at run time.

Why Tesseract: measured against RapidOCR (rapidocr-onnxruntime, PP-OCR ONNX models in its wheel) on pages
rendered from known text (``python -m evals.tools.bench_ocr``), see docs/how-it-works.md for the figures; it
also gives word boxes, which the page view needs.

OCR is slow (about a second a page), so each page reports progress (`OcrOptions.on_page`) and a file may have
at most `OcrOptions.max_pages` pages read by OCR (CITEQA_OCR_MAX_PAGES)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rag.errors import FileError

OCR_DPI = 300  # Tesseract reads body text best at about 300 dpi
IMAGE_MAX_PIXELS = 100_000_000  # an image that claims more is a decompression bomb (a 10000 x 10000 scan)
_MISSING = ("OCR needs Tesseract, which is not installed: apt-get install tesseract-ocr tesseract-ocr-eng "
            "(or set CITEQA_OCR=off)")

PageProgress = Callable[[int, int, str], None]  # (pages done, pages to read, file name)


@dataclass(frozen=True)
class OcrOptions:
    """Whether pages without text are read by OCR, how many a file may have, and who hears of each page."""

    enabled: bool = True
    max_pages: int = 100
    lang: str = "eng"
    on_page: PageProgress | None = None

    def check_pages(self, name: str, n: int) -> None:
        if n > self.max_pages:
            raise FileError(name, f"{n} pages need OCR, over the limit of {self.max_pages} per file "
                            "(CITEQA_OCR_MAX_PAGES): split it, or raise the limit")

    def progress(self, done: int, total: int, name: str) -> None:
        if self.on_page is not None:
            self.on_page(done, total, name)


OCR_OFF = OcrOptions(enabled=False)


def ocr_available() -> bool:
    """Tesseract's program and its Python driver are both there."""
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return False
    return shutil.which("tesseract") is not None


def _tesseract(name: str) -> Any:
    if not ocr_available():
        raise FileError(name, _MISSING)
    import pytesseract

    return pytesseract


_SPACES = re.compile(r"[ \t]+")
_BLANKS = re.compile(r"\n{3,}")


def clean_ocr_text(text: str) -> str:
    """Tesseract's output as stored text: no form feed, no trailing spaces, at most one blank line in a row."""
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.replace("\r\n", "\n").replace("\f", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def ocr_image(image: Any, name: str, opts: OcrOptions) -> str:
    """The text of a PIL image, cleaned (`clean_ocr_text`)."""
    tess = _tesseract(name)
    try:
        return clean_ocr_text(tess.image_to_string(image.convert("L"), lang=opts.lang))
    except tess.TesseractNotFoundError:
        raise FileError(name, _MISSING) from None
    except tess.TesseractError as exc:
        msg = " ".join(str(exc.message).split())[:120]
        raise FileError(name, f"OCR failed ({msg})") from None
