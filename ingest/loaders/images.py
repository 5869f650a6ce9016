"""Images (.png .jpg .jpeg .tiff .tif .webp) -> text by OCR (`ocr`): one page per frame (a multi-page TIFF is a
scanned document), so page numbers are kept. A truncated or crafted image (decompression bomb) is one line."""

from __future__ import annotations

import io
from collections.abc import Iterator

from ingest.loaders.common import NO_LIMITS, Limits, _describe, join_pages, read_pages
from ingest.loaders.ocr import IMAGE_MAX_PIXELS, ocr_image
from rag.errors import FileError
from rag.types import PageSpan

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tiff", ".tif", ".webp")


def _frames(raw: bytes, name: str) -> list[object]:
    from PIL import Image, ImageSequence

    try:
        img = Image.open(io.BytesIO(raw))
        w, h = img.size
        if w * h > IMAGE_MAX_PIXELS:
            raise FileError(name, f"image of {w} x {h} pixels, over {IMAGE_MAX_PIXELS:,} (decompression bomb?): "
                            "scale it down")
        frames = [f.copy() for f in ImageSequence.Iterator(img)]  # copy() decodes: a truncated file fails here
    except FileError:
        raise
    except Exception as exc:  # PIL raises many kinds on broken files
        raise FileError(name, f"corrupt image ({_describe(exc)}): re-save it") from None
    return frames


def _load_image(raw: bytes, name: str, limits: Limits = NO_LIMITS) -> tuple[str, tuple[PageSpan, ...]]:
    opts = limits.ocr
    if not opts.enabled:
        raise FileError(name, "an image needs OCR, which is off (CITEQA_OCR=off): turn it on to read images")
    frames = _frames(raw, name)
    opts.check_pages(name, len(frames))

    def pages() -> Iterator[str]:
        for i, frame in enumerate(frames):
            opts.progress(i, len(frames), name)
            yield ocr_image(frame, name, opts)

    texts = read_pages(pages(), name, limits)
    opts.progress(len(frames), len(frames), name)
    return join_pages(texts)
