"""Spreadsheets -> text: .xlsx (openpyxl, read-only, cached formula values) and .csv. Every row becomes one line
that carries its place and its headers, so a cited row reads on its own: ``Sales, row 3: Region: North |
Revenue: 1200`` (.csv: ``Row 3: ...``). The first non-empty row of a sheet is its header row. For .xlsx each
sheet is a page (the page number is the sheet's position in the workbook); a .csv has no pages."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence

from ingest.loaders.common import NO_LIMITS, Limits, _describe, join_pages, text_chars
from ingest.loaders.text import decode_text
from ingest.loaders.zips import check_zip
from rag.errors import FileError
from rag.types import PageSpan

SHEET_MAX_CELLS = 5_000_000  # cells read per file, empty ones included: a sheet claiming a million rows of 16K
_XLSX_FIX = "re-save it from your spreadsheet program"
_CSV_DELIMITERS = ",;\t|"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())


class _RowWriter:
    """Rows of one sheet -> lines with their headers; counts characters and cells against the limits."""

    def __init__(self, name: str, limits: Limits, label: str) -> None:
        self.name, self.limits, self.label = name, limits, label  # label: "Sales, row" or "Row"
        self.chars = 0
        self.cells = 0

    def sheet(self, rows: Iterable[Sequence[object]]) -> str:
        lines: list[str] = []
        headers: list[str] | None = None
        for r, row in enumerate(rows, start=1):
            self.cells += len(row)
            if self.cells > SHEET_MAX_CELLS:
                raise FileError(self.name, f"sheet too large (over {SHEET_MAX_CELLS:,} cells): split it or export "
                                "the part you need")
            values = [_cell(v) for v in row]
            if not any(values):
                continue
            if headers is None:
                headers = [v or f"column {i}" for i, v in enumerate(values, start=1)]
                line = f"{self.label} {r} (headers): " + " | ".join(v for v in values if v)
            else:
                pairs = [f"{headers[i] if i < len(headers) else f'column {i + 1}'}: {v}"
                         for i, v in enumerate(values) if v]
                line = f"{self.label} {r}: " + " | ".join(pairs)
            lines.append(line)
            self.chars += text_chars(line)
            self.limits.check(self.name, self.chars)  # row by row: a huge sheet stops at the limit
        return "\n".join(lines)


def _load_xlsx(raw: bytes, name: str, max_bytes: int,
               limits: Limits = NO_LIMITS) -> tuple[str, tuple[PageSpan, ...]]:
    check_zip(raw, name, ".xlsx", "xl/workbook.xml", _XLSX_FIX, max_bytes)
    try:
        from openpyxl import load_workbook

        wb = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        try:
            writer = _RowWriter(name, limits, "")
            texts: list[str] = []
            for ws in wb.worksheets:
                writer.label = f"{ws.title}, row"
                rows = ws.iter_rows(values_only=True) if hasattr(ws, "iter_rows") else ()
                texts.append(writer.sheet(rows))
        finally:
            wb.close()
    except FileError:
        raise
    except Exception as exc:
        raise FileError(name, f"corrupt .xlsx ({_describe(exc)}): {_XLSX_FIX}") from None
    return join_pages(texts)


def _load_csv(raw: bytes, name: str, limits: Limits = NO_LIMITS) -> str:
    text = decode_text(raw, name).replace("\r\n", "\n")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:65536], delimiters=_CSV_DELIMITERS)
    except csv.Error:  # one column, or nothing to tell by
        dialect = csv.excel
    try:
        return _RowWriter(name, limits, "Row").sheet(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise FileError(name, f"malformed CSV ({_describe(exc)}): re-export it") from None
