"""OCR, fully offline: Tesseract 5 (the ``tesseract`` program with its English data, Debian's tesseract-ocr and
tesseract-ocr-eng, run as a program with the image on stdin) reads images and the image-only pages of PDFs
(rendered by pypdfium2). Its models are the traineddata files the Debian package installs: nothing is
downloaded at run time.

Why Tesseract: on pages rendered from known text (``python -m evals.tools.bench_ocr``, figures in the README)
its character error rate was 0.04% against RapidOCR's 34% (rapidocr-onnxruntime, whose wheel ships PP-OCR ONNX
models: its lines come out of reading order and it spaces punctuation), at a tenth of the CPU a page; it also
gives the word boxes the page view needs.

OCR is slow (seconds a page), so each page reports progress (`OcrOptions.on_page`) and a file may have at most
`OcrOptions.max_pages` pages read by OCR (CITEQA_OCR_MAX_PAGES)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rag.errors import FileError

OCR_DPI = 300  # Tesseract reads body text best at about 300 dpi
OCR_PAGE_SECONDS = 300  # one page that takes longer is a crafted image (or a machine far too busy)
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
    """The ``tesseract`` program is on the PATH."""
    return shutil.which("tesseract") is not None


def run_tesseract(image: Any, name: str, opts: OcrOptions, *, tsv: bool = False, dpi: int | None = None) -> str:
    """Tesseract's text (or, ``tsv``, its words with their boxes as TSV) of a PIL image, which goes to it as a
    PNG on stdin. One thread (OMP_THREAD_LIMIT=1): its OpenMP threads spin on a busy machine, and one page per
    thread is faster there (2.3 against 6.3 CPU seconds a page on 2 cores, see evals/tools/bench_ocr.py)."""
    if not ocr_available():
        raise FileError(name, _MISSING)
    exe = shutil.which("tesseract") or "tesseract"
    buf = io.BytesIO()
    image.convert("L").save(buf, format="PNG")
    args = [exe, "stdin", "stdout", "-l", opts.lang, *(["--dpi", str(dpi)] if dpi else []), *(["tsv"] if tsv else [])]
    try:
        r = subprocess.run(args, input=buf.getvalue(), capture_output=True, timeout=OCR_PAGE_SECONDS,
                           env={**os.environ, "OMP_THREAD_LIMIT": "1"}, check=False)
    except subprocess.TimeoutExpired:
        raise FileError(name, f"OCR of one page took over {OCR_PAGE_SECONDS} s: split the file or scale it down"
                        ) from None
    except OSError as exc:
        raise FileError(name, f"OCR failed ({exc.strerror or exc})") from None
    if r.returncode != 0:
        msg = " ".join(r.stderr.decode("utf-8", "replace").split())[-160:]
        raise FileError(name, f"OCR failed (tesseract exit {r.returncode}: {msg})")
    return r.stdout.decode("utf-8", "replace")


_SPACES = re.compile(r"[ \t]+")
_BLANKS = re.compile(r"\n{3,}")


def clean_ocr_text(text: str) -> str:
    """Tesseract's output as stored text: no form feed, no trailing spaces, at most one blank line in a row."""
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.replace("\r\n", "\n").replace("\f", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def ocr_image(image: Any, name: str, opts: OcrOptions, dpi: int | None = None) -> str:
    """The text of a PIL image, cleaned (`clean_ocr_text`)."""
    return clean_ocr_text(run_tesseract(image, name, opts, dpi=dpi))


def ocr_words(image: Any, name: str, opts: OcrOptions, dpi: int | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """The words Tesseract reads in a PIL image, each with its box (left, top, right, bottom) in pixels."""
    words = []
    for line in run_tesseract(image, name, opts, tsv=True, dpi=dpi).splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) == 12 and cols[0] == "5" and cols[11].strip():
            left, top, width, height = (int(v) for v in cols[6:10])
            words.append((cols[11], (left, top, left + width, top + height)))
    return words
