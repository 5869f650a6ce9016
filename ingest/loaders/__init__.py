"""File -> `Document` (extracted text + page spans). Every failure is a `FileError` whose reason is short and
says what to do; no parser exception escapes as a traceback.

Text formats (.txt, .md, .markdown): ``Document.text`` is the decoded file itself, so offsets slice the file's
text exactly. The one normalisation is ``\\r\\n`` -> ``\\n`` (Windows line ends); a BOM is not part of the text.
A text file too big to hold at once is read as a `TextFile`: `scan_text_file` takes its hash and decides its
encoding in one pass, `iter_text` then yields its text in windows, the same text `load_document` would give.

One module per job: `common` (supported types, `Limits`), `files` (stat, read, hash), `text`, `html`, `pdf`,
`docx`, `pptx`, `sheets` (.xlsx and .csv), `epub`, `eml` and `images` (one format each), `zips` (the zip formats'
directory check), `ocr` and `pdf_ocr` (Tesseract; a PDF's scanned pages), `extract` (bytes -> `Document`),
`stream` (big text files), `walk` (paths -> files).
"""

from ingest.loaders.common import (
    HTML_SUFFIXES,
    NO_LIMITS,
    SUPPORTED_SUFFIXES,
    TEXT_SUFFIXES,
    Limits,
    text_chars,
    unsupported_reason,
)
from ingest.loaders.docx import DOCX_MAX_RATIO, DOCX_MAX_UNCOMPRESSED, DOCX_MIN_BOUND, DOCX_RATIO_FLOOR
from ingest.loaders.extract import document_from_bytes, load_document
from ingest.loaders.files import check_file, hash_file, read_file
from ingest.loaders.stream import STREAM_WINDOW, TextFile, iter_text, scan_text_file
from ingest.loaders.text import decode_text
from ingest.loaders.walk import iter_input_files

__all__ = [
    "DOCX_MAX_RATIO",
    "DOCX_MAX_UNCOMPRESSED",
    "DOCX_MIN_BOUND",
    "DOCX_RATIO_FLOOR",
    "HTML_SUFFIXES",
    "NO_LIMITS",
    "STREAM_WINDOW",
    "SUPPORTED_SUFFIXES",
    "TEXT_SUFFIXES",
    "Limits",
    "TextFile",
    "check_file",
    "decode_text",
    "document_from_bytes",
    "hash_file",
    "iter_input_files",
    "iter_text",
    "load_document",
    "read_file",
    "scan_text_file",
    "text_chars",
    "unsupported_reason",
]
