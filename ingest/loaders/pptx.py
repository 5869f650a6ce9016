"""PPTX -> text and page spans (python-pptx): one page per slide (the slide number is the page), its text frames
and table rows in shape order (groups opened), then its speaker notes; the archive is judged first (`zips`)."""

from __future__ import annotations

import io
from collections.abc import Iterator

from ingest.loaders.common import NO_LIMITS, Limits, _describe, join_pages, read_pages
from ingest.loaders.zips import check_zip
from rag.errors import FileError
from rag.types import PageSpan

_FIX = "re-save it from PowerPoint"
NOTES_LABEL = "Speaker notes:"


def _shape_texts(shapes: object) -> Iterator[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    stack = list(reversed(list(shapes)))  # type: ignore[call-overload]
    while stack:  # explicit stack: groups nest
        shape = stack.pop()
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            stack.extend(reversed(list(shape.shapes)))
        elif getattr(shape, "has_table", False) and shape.has_table:
            for row in shape.table.rows:
                cells = [" ".join(c.text.split()) for c in row.cells]
                line = " | ".join(c for c in cells if c)
                if line:
                    yield line
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            lines = [" ".join(p.text.split()) for p in shape.text_frame.paragraphs]
            text = "\n".join(line for line in lines if line)
            if text:
                yield text


def _slide_text(slide: object) -> str:
    parts = list(_shape_texts(slide.shapes))  # type: ignore[attr-defined]
    if slide.has_notes_slide:  # type: ignore[attr-defined]
        notes = slide.notes_slide.notes_text_frame  # type: ignore[attr-defined]
        text = "\n".join(" ".join(p.text.split()) for p in notes.paragraphs if p.text.strip()) if notes else ""
        if text:
            parts.append(f"{NOTES_LABEL} {text}")
    return "\n".join(parts)


def _load_pptx(raw: bytes, name: str, max_bytes: int,
               limits: Limits = NO_LIMITS) -> tuple[str, tuple[PageSpan, ...]]:
    check_zip(raw, name, ".pptx", "ppt/presentation.xml", _FIX, max_bytes)
    try:
        from pptx import Presentation

        slides = Presentation(io.BytesIO(raw)).slides
        texts = read_pages((_slide_text(slide) for slide in slides), name, limits)  # slide by slide
    except FileError:
        raise
    except Exception as exc:
        raise FileError(name, f"corrupt .pptx ({_describe(exc)}): {_FIX}") from None
    return join_pages(texts)
