"""File -> `Document` (extracted text + page spans). Every failure is a `FileError` whose reason is short and
says what to do; no parser exception escapes as a traceback.

Text formats (.txt, .md, .markdown): ``Document.text`` is the decoded file itself, so offsets slice the file's
text exactly. The one normalisation is ``\\r\\n`` -> ``\\n`` (Windows line ends); a BOM is not part of the text.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path

from rag.errors import FileError
from rag.types import Document, PageSpan

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
_MIME = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
DOCX_MAX_UNCOMPRESSED = 500 * 2**20  # a .docx that inflates past this is treated as a zip bomb
DOCX_MIN_BOUND = 64 * 2**20  # ... the bound never drops below this, so a small --max-file-mb still reads .docx
DOCX_MAX_RATIO = 100  # a big .docx whose parts compress more than this is crafted (real ones: ~3-20x)
DOCX_RATIO_FLOOR = 16 * 2**20  # the ratio is only judged past this size: tiny repetitive parts are harmless
_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# C0 controls that ordinary text never contains (tab, newline, form feed, carriage return and ESC are fine)
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27))
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL)
_ASCII = bytes(range(128))
_SNIFF = 1 << 16


def unsupported_reason(suffix: str) -> str:
    return f"unsupported type {suffix or '(no extension)'}; supported: {' '.join(SUPPORTED_SUFFIXES)}"


def _fmt_size(n: float) -> str:
    if n >= 10 * 2**20:
        return f"{n / 2**20:.0f} MB"
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB"
    if n >= 2**10:
        return f"{n / 2**10:.1f} KB"
    return f"{int(n)} bytes"


# ---------------------------------------------------------------------------------------------- text decoding


def _looks_binary(sample: bytes) -> bool:
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    control = len(sample.translate(None, _NOT_CONTROL))
    return control / len(sample) > 0.10


def _mostly_non_ascii(sample: bytes) -> bool:
    """Western text in cp1252/latin-1 is mostly ASCII; a sample that is not is some other legacy encoding
    (Greek, Cyrillic, CJK...) that cp1252 would turn into mojibake. Too short a sample proves nothing."""
    return len(sample) >= 32 and len(sample.translate(None, _ASCII)) / len(sample) > 0.30


def decode_text(raw: bytes, name: str) -> str:
    """Decode text bytes: a BOM decides (UTF-8/16/32), else UTF-8, else cp1252 then latin-1 for legacy files."""
    for bom, enc in _BOMS:
        if raw.startswith(bom):
            try:
                text = raw.decode(enc)
            except UnicodeDecodeError as exc:
                raise FileError(name, f"invalid {enc} text ({exc.reason}): re-save it as UTF-8") from None
            break
    else:
        text = _decode_without_bom(raw, name)
    if "\x00" in text:
        raise FileError(name, "looks binary, not text: convert it to a text format first")
    return text


def _decode_without_bom(raw: bytes, name: str) -> str:
    sample = raw[:_SNIFF]
    if _looks_binary(sample):
        raise FileError(name, "looks binary, not text: convert it to a text format first")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if _mostly_non_ascii(sample):
        raise FileError(name, "undecodable text (not UTF-8, not Western cp1252/latin-1): re-save it as UTF-8")
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined; latin-1 maps every byte
        return raw.decode("latin-1")


def _load_text(raw: bytes, name: str) -> str:
    return decode_text(raw, name).replace("\r\n", "\n")


# ----------------------------------------------------------------------------------------------------- HTML

_BLOCK_TAGS = frozenset(
    "p div li ul ol h1 h2 h3 h4 h5 h6 tr table section article pre blockquote header footer main aside nav "
    "dd dt dl figure figcaption form hr address details summary caption thead tbody tfoot body html".split()
)
_CELL_TAGS = frozenset(("td", "th"))
# title is dropped from the walk because it is emitted once, as the first line
_DROP_TAGS = frozenset(
    "script style noscript template head title svg canvas iframe object embed math button select".split()
)
_SKIP_STRINGS = frozenset(("Comment", "Doctype", "Declaration", "ProcessingInstruction", "CData"))


class _Lines:
    """Collects inline text into lines; whitespace runs inside a line collapse to one space."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._current: list[str] = []

    def add(self, text: str) -> None:
        self._current.append(text)

    def flush(self) -> None:
        line = " ".join("".join(self._current).split())
        if line:
            self.lines.append(line)
        self._current.clear()


def _html_to_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    out = _Lines()
    if soup.title is not None:
        out.add(soup.title.get_text(" "))
        out.flush()
    _walk_html(soup.body or soup, out)
    out.flush()
    return "\n\n".join(out.lines)


def _walk_html(root: object, out: _Lines) -> None:
    """Depth-first walk with an explicit stack: deeply nested HTML must not hit Python's recursion limit."""
    from bs4 import NavigableString, Tag

    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            out.flush()
        elif isinstance(node, NavigableString):
            if type(node).__name__ not in _SKIP_STRINGS:
                out.add(str(node))
        elif isinstance(node, Tag) and node.name not in _DROP_TAGS:
            if node.name == "br":
                out.flush()
                continue
            if node.name in _CELL_TAGS:
                out.add(" | " if node.find_previous_sibling(["td", "th"]) is not None else " ")
            if node.name in _BLOCK_TAGS:
                out.flush()
                stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
# browsers read these labels as windows-1252, which decode_text's fallback already does
_WESTERN_LABELS = frozenset(("iso-8859-1", "iso8859-1", "latin1", "latin-1", "us-ascii", "ascii", "windows-1252"))


def _decode_html(raw: bytes, name: str) -> str:
    """A BOM or valid UTF-8 wins; otherwise the page's own <meta charset> (Shift_JIS, KOI8-R...) is honoured."""
    m = _META_CHARSET.search(raw[:4096])
    label = m.group(1).decode("ascii").lower() if m else ""
    if label and label not in _WESTERN_LABELS and not raw.startswith(tuple(b for b, _ in _BOMS)):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = raw.decode(label)
            except (LookupError, UnicodeDecodeError):
                pass
            else:
                if "\x00" not in text:
                    return text
    return decode_text(raw, name)


def _load_html(raw: bytes, name: str) -> str:
    html = _decode_html(raw, name)
    try:
        return _html_to_text(html)
    except RecursionError:
        raise FileError(name, "HTML nested too deeply: simplify or convert it to text first") from None


# ------------------------------------------------------------------------------------------------------ PDF

_ENCRYPTED = "encrypted PDF: decrypt it first (qpdf --decrypt in.pdf out.pdf)"


def _pdf_page_texts(raw: bytes, name: str) -> list[str]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(raw), strict=False)
        if reader.is_encrypted and not _pdf_decrypt_empty(reader):
            raise FileError(name, _ENCRYPTED)
        pages = list(reader.pages)
    except FileError:
        raise
    except FileNotDecryptedError:
        raise FileError(name, _ENCRYPTED) from None
    except Exception as exc:  # pypdf raises many kinds on broken files
        raise FileError(name, f"corrupt PDF ({_describe(exc)}): repair or re-export it") from None
    return _pdf_extract_pages(pages, name)


def _pdf_extract_pages(pages: list[object], name: str) -> list[str]:
    """One broken page must not lose a whole document: it becomes an empty page (logged), unless every
    page is broken."""
    texts: list[str] = []
    first_error: Exception | None = None
    for i, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""  # type: ignore[attr-defined]
        except Exception as exc:  # pypdf raises many kinds on broken content streams
            first_error = first_error or exc
            log.warning("%s: page %d unreadable, indexed as empty (%s)", name, i, _describe(exc))
            text = ""
        texts.append(text.replace("\r\n", "\n").strip())
    if first_error is not None and not any(texts):
        raise FileError(name, f"corrupt PDF ({_describe(first_error)}): repair or re-export it")
    return texts


def _pdf_decrypt_empty(reader: object) -> bool:
    """Many PDFs are encrypted only against editing, with an empty password to open them."""
    try:
        return bool(reader.decrypt(""))  # type: ignore[attr-defined]
    except Exception:  # e.g. AES without a crypto library: treat as locked
        return False


def _load_pdf(raw: bytes, name: str) -> tuple[str, tuple[PageSpan, ...]]:
    texts = _pdf_page_texts(raw, name)
    if not any(texts):
        raise FileError(name, "PDF has no text layer (scanned?): run OCR first (e.g. ocrmypdf)")
    spans: list[PageSpan] = []
    pos = 0
    for i, t in enumerate(texts, start=1):
        # empty pages keep an empty span so page numbers and offsets stay exact
        spans.append(PageSpan(i, pos, pos + len(t)))
        pos += len(t) + 2
    return "\n\n".join(texts), tuple(spans)


# ----------------------------------------------------------------------------------------------------- DOCX


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


def _docx_blocks(raw: bytes) -> list[str]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    blocks: list[str] = []
    for item in docx.Document(io.BytesIO(raw)).iter_inner_content():
        if isinstance(item, Paragraph):
            blocks.append(item.text.strip())
        elif isinstance(item, Table):
            blocks.extend(_docx_rows(item))
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


def _load_docx(raw: bytes, name: str, max_bytes: int) -> str:
    _check_docx_zip(raw, name, max_bytes)
    try:
        blocks = _docx_blocks(raw)
    except Exception as exc:
        raise FileError(name, f"corrupt .docx ({_describe(exc)}): re-save it from your editor") from None
    return "\n\n".join(b for b in blocks if b)


# -------------------------------------------------------------------------------------------- load_document


def _describe(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())[:120]
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _check_file(path: Path, suffix: str, max_bytes: int) -> None:
    name = str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileError(name, "no such file") from None
    except OSError as exc:
        raise FileError(name, f"cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileError(name, "not a regular file")
    if suffix not in SUPPORTED_SUFFIXES:
        raise FileError(name, unsupported_reason(suffix))
    if st.st_size > max_bytes:
        reason = f"file is {_fmt_size(st.st_size)}, over the {_fmt_size(max_bytes)} limit; raise --max-file-mb"
        raise FileError(name, reason)
    if st.st_size == 0:
        raise FileError(name, "empty file (no text)")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError:
        raise FileError(str(path), "permission denied: make it readable (chmod +r)") from None
    except IsADirectoryError:
        raise FileError(str(path), "not a regular file") from None
    except OSError as exc:
        raise FileError(str(path), f"cannot read ({exc.strerror or exc})") from None


def _extract(raw: bytes, name: str, suffix: str, max_bytes: int) -> tuple[str, tuple[PageSpan, ...]]:
    try:
        if suffix in TEXT_SUFFIXES:
            return _load_text(raw, name), ()
        if suffix in HTML_SUFFIXES:
            return _load_html(raw, name), ()
        if suffix == ".pdf":
            return _load_pdf(raw, name)
        return _load_docx(raw, name, max_bytes), ()
    except FileError:
        raise
    except MemoryError:
        raise FileError(name, "too large to extract in memory: split it") from None
    except RecursionError:
        raise FileError(name, "nested too deeply to parse: simplify or convert it first") from None
    except Exception as exc:  # a parser bug or an input no branch above foresaw: still one line, no traceback
        raise FileError(name, f"cannot extract text ({_describe(exc)})") from None


def load_document(path: Path, max_bytes: int = 200 * 2**20) -> Document:
    """Extract the text of ``path``. Raises FileError (path + reason) for anything that cannot be ingested.

    The file is read once: the content hash is taken over exactly the bytes that were parsed (no race with
    a writer), and a big file is never held twice.
    """
    path = Path(path)
    name = str(path)
    suffix = path.suffix.lower()
    _check_file(path, suffix, max_bytes)
    raw = _read(path)
    if len(raw) > max_bytes:  # grew since the stat
        raise FileError(name, f"file is over the {_fmt_size(max_bytes)} limit; raise --max-file-mb")
    digest = hashlib.sha256(raw).hexdigest()
    text, pages = _extract(raw, name, suffix, max_bytes)
    del raw
    if not text.strip():
        raise FileError(name, "no text (empty or whitespace only)")
    return Document(source=str(path.resolve()), text=text, content_hash=digest, pages=pages, mime=_MIME[suffix])


# ----------------------------------------------------------------------------------------- iter_input_files


class _Collector:
    """Walks the given paths into files to ingest plus the errors for what cannot be ingested."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.errors: list[FileError] = []
        self._seen_files: set[Path] = set()
        self._seen_dirs: set[Path] = set()

    def add_file(self, p: Path) -> None:
        rp = p.resolve()
        if rp in self._seen_files:
            return
        self._seen_files.add(rp)
        if p.suffix.lower() in SUPPORTED_SUFFIXES:
            self.files.append(rp)
        else:
            self.errors.append(FileError(str(rp), unsupported_reason(p.suffix.lower())))

    def visit(self, p: Path) -> list[Path]:
        """Handle one path; return the children of a folder (sorted) still to visit."""
        try:
            if p.is_dir():
                return self._children(p)
            if p.is_file():
                self.add_file(p)
            elif p.is_symlink():
                self.errors.append(FileError(str(p), "broken symbolic link"))
            elif p.exists():
                self.errors.append(FileError(str(p), "not a regular file or folder"))
            else:
                self.errors.append(FileError(str(p), "no such file or folder"))
        except OSError as exc:
            self.errors.append(FileError(str(p), f"cannot read ({exc.strerror or exc})"))
        return []

    def _children(self, d: Path) -> list[Path]:
        rd = d.resolve()
        if rd in self._seen_dirs:  # a symlink loop, or a folder reached twice
            return []
        self._seen_dirs.add(rd)
        try:
            entries = _scandir(d)
        except OSError as exc:
            self.errors.append(FileError(str(d), f"cannot read folder ({exc.strerror or exc})"))
            return []
        return [Path(e.path) for e in sorted(entries, key=lambda e: e.name) if not e.name.startswith(".")]


def _scandir(d: Path) -> list[os.DirEntry[str]]:
    with os.scandir(d) as it:
        return list(it)


def iter_input_files(paths: Sequence[Path]) -> tuple[list[Path], list[FileError]]:
    """Expand files and folders (recursive, sorted, hidden entries skipped, symlinks followed without looping,
    duplicates dropped) into resolved absolute paths to ingest, and the errors for what cannot be ingested:
    missing paths, unreadable folders, broken links, unsupported types found in folders."""
    walker = _Collector()
    for raw in paths:
        # explicit stack instead of recursion: arbitrarily deep trees, same order as a sorted recursive walk
        stack = [Path(raw).expanduser()]
        while stack:
            stack.extend(reversed(walker.visit(stack.pop())))
    return walker.files, walker.errors
