"""The zip-based formats (.docx, .pptx, .xlsx, .epub) judged from their zip directory before a parser inflates
anything: not a zip (truncated, password-protected) and zip bombs are refused in one line."""

from __future__ import annotations

import io
import zipfile

from ingest.loaders.common import _fmt_size
from rag.errors import FileError

ZIP_MAX_UNCOMPRESSED = 500 * 2**20  # an archive that inflates past this is treated as a zip bomb
ZIP_MIN_BOUND = 64 * 2**20  # ... the bound never drops below this, so a small --max-file-mb still reads them
ZIP_MAX_RATIO = 100  # a big archive whose parts compress more than this is crafted (real ones: ~3-20x)
ZIP_RATIO_FLOOR = 16 * 2**20  # the ratio is only judged past this size: tiny repetitive parts are harmless


def check_zip(raw: bytes, name: str, kind: str, required: str, fix: str, max_bytes: int) -> list[str]:
    """Refuse ``raw`` unless it is a zip holding ``required`` that inflates to a sane size; ``kind`` (".pptx")
    and ``fix`` ("re-save it from PowerPoint") word the error. Returns the member names."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise FileError(
            name, f"corrupt {kind} (not a zip archive; truncated or password-protected?): {fix}"
        ) from None
    names = [i.filename for i in infos]
    if required not in names:
        raise FileError(name, f"corrupt {kind} (no {required}): {fix}")
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos) or 1
    bound = min(ZIP_MAX_UNCOMPRESSED, max(20 * max_bytes, ZIP_MIN_BOUND))
    if total > bound or (total > ZIP_RATIO_FLOOR and total / packed > ZIP_MAX_RATIO):
        raise FileError(name, f"suspicious {kind} (inflates to {_fmt_size(total)}, zip bomb?): not ingested")
    return names
