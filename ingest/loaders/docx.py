"""DOCX -> text (python-docx): paragraphs and table rows in document order; the archive is judged from its
zip directory first, so a zip bomb is refused before anything is inflated."""

from __future__ import annotations

import io
import zipfile

from ingest.loaders.common import NO_LIMITS, Limits, _describe, _fmt_size, text_chars
from rag.errors import FileError

DOCX_MAX_UNCOMPRESSED = 500 * 2**20  # a .docx that inflates past this is treated as a zip bomb
DOCX_MIN_BOUND = 64 * 2**20  # ... the bound never drops below this, so a small --max-file-mb still reads .docx
DOCX_MAX_RATIO = 100  # a big .docx whose parts compress more than this is crafted (real ones: ~3-20x)
DOCX_RATIO_FLOOR = 16 * 2**20  # the ratio is only judged past this size: tiny repetitive parts are harmless


def _check_docx_zip(raw: bytes, name: str, max_bytes: int) -> None:
    """Judge the archive from its directory before python-docx inflates anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise FileError(
            name, "corrupt .docx (not a zip archive; password-protected?): re-save it from your editor"
        ) from None
    if not any(i.filename == "word/document.xml" for i in infos):
        raise FileError(name, "corrupt .docx (no word/document.xml): re-save it as a Word document")
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos) or 1
    bound = min(DOCX_MAX_UNCOMPRESSED, max(20 * max_bytes, DOCX_MIN_BOUND))
    if total > bound or (total > DOCX_RATIO_FLOOR and total / packed > DOCX_MAX_RATIO):
        raise FileError(name, f"suspicious .docx (inflates to {_fmt_size(total)}, zip bomb?): not ingested")


def _docx_blocks(raw: bytes, name: str = "", limits: Limits = NO_LIMITS) -> list[str]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    blocks: list[str] = []
    total = 0
    for item in docx.Document(io.BytesIO(raw)).iter_inner_content():
        if isinstance(item, Paragraph):
            blocks.append(item.text.strip())
            total += text_chars(blocks[-1])
        elif isinstance(item, Table):
            rows = _docx_rows(item)
            blocks.extend(rows)
            total += sum(map(text_chars, rows))
        limits.check(name, total)  # block by block: a zip that passes the bomb check can still hold 40M characters
    return blocks


def _docx_rows(table: object) -> list[str]:
    rows: list[str] = []
    for row in table.rows:  # type: ignore[attr-defined]
        cells: list[str] = []
        for cell in row.cells:
            t = " ".join(cell.text.split())
            if t and (not cells or cells[-1] != t):  # a merged cell repeats its text in every grid cell
                cells.append(t)
        rows.append(" | ".join(cells))
    return rows


def _load_docx(raw: bytes, name: str, max_bytes: int, limits: Limits = NO_LIMITS) -> str:
    _check_docx_zip(raw, name, max_bytes)
    try:
        blocks = _docx_blocks(raw, name, limits)
    except FileError:
        raise
    except Exception as exc:
        raise FileError(name, f"corrupt .docx ({_describe(exc)}): re-save it from your editor") from None
    return "\n\n".join(b for b in blocks if b)

