"""File -> `Document` (extracted text + page spans). Every failure is a `FileError` whose reason is short and
says what to do; no parser exception escapes as a traceback.

Text formats (.txt, .md, .markdown): ``Document.text`` is the decoded file itself, so offsets slice the file's
text exactly. The one normalisation is ``\\r\\n`` -> ``\\n`` (Windows line ends); a BOM is not part of the text.
A text file too big to hold at once is read as a `TextFile`: `scan_text_file` takes its hash and decides its
encoding in one pass, `iter_text` then yields its text in windows, the same text `load_document` would give.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import logging
import os
import re
import stat
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
_CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"  # the five bytes cp1252 leaves undefined (latin-1 maps them)
_SNIFF = 1 << 16
STREAM_WINDOW = 2 * 2**20  # bytes of a big .txt/.md file decoded and chunked at a time
_BLOCK = 1 << 20  # bytes per read when only hashing / scanning


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


def text_chars(text: str) -> int:
    """The characters of ``text`` that count against `Limits.max_chars`: all but spaces, tabs and line ends (a
    file of mostly blank lines costs little to index)."""
    return len(text) - sum(text.count(ch) for ch in " \n\t\r\f\v")


@dataclass(frozen=True)
class Limits:
    """What one file may cost an ingest: ``max_chars`` characters of extracted text (`text_chars`), and its
    ingest must end by ``deadline`` (``time.monotonic()``). A small file can expand to far more text than its
    size says (a .docx is a zip), so these are checked while the text is extracted, chunked and embedded."""

    max_chars: int | None = None
    max_seconds: float | None = None
    deadline: float | None = None

    @classmethod
    def start(cls, max_chars: int | None, max_seconds: float | None) -> Limits:
        """The limits of a file whose ingest starts now."""
        return cls(max_chars, max_seconds, time.monotonic() + max_seconds if max_seconds else None)

    def check_chars(self, name: str, n: int) -> None:
        if self.max_chars is not None and n > self.max_chars:
            raise FileError(
                name, f"its text is over the limit of {self.max_chars:,} characters per file (CITEQA_MAX_TEXT_CHARS): "
                "split it, or raise the limit"
            )

    def check_time(self, name: str) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise FileError(
                name, f"its ingest took longer than the limit of {self.max_seconds:g} s per file "
                "(CITEQA_MAX_INGEST_SECONDS): split it, or raise the limit"
            )

    def check(self, name: str, n: int) -> None:
        self.check_chars(name, n)
        self.check_time(name)


NO_LIMITS = Limits()


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


_BINARY = "looks binary, not text: convert it to a text format first"
_UNDECODABLE = "undecodable text (not UTF-8, not Western cp1252/latin-1): re-save it as UTF-8"


def _bom_encoding(head: bytes) -> str | None:
    return next((enc for bom, enc in _BOMS if head.startswith(bom)), None)


def _invalid(enc: str, exc: UnicodeDecodeError) -> str:
    return f"invalid {enc} text ({exc.reason}): re-save it as UTF-8"


def decode_text(raw: bytes, name: str) -> str:
    """Decode text bytes: a BOM decides (UTF-8/16/32), else UTF-8, else cp1252 then latin-1 for legacy files."""
    enc = _bom_encoding(raw)
    if enc is not None:
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError as exc:
            raise FileError(name, _invalid(enc, exc)) from None
    else:
        text = _decode_without_bom(raw, name)
    if "\x00" in text:
        raise FileError(name, _BINARY)
    return text


def _decode_without_bom(raw: bytes, name: str) -> str:
    sample = raw[:_SNIFF]
    if _looks_binary(sample):
        raise FileError(name, _BINARY)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if _mostly_non_ascii(sample):
        raise FileError(name, _UNDECODABLE)
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


def _pdf_page_texts(raw: bytes, name: str, limits: Limits = NO_LIMITS) -> list[str]:
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
    return _pdf_extract_pages(pages, name, limits)


def _pdf_extract_pages(pages: list[object], name: str, limits: Limits = NO_LIMITS) -> list[str]:
    """One broken page must not lose a whole document: it becomes an empty page (logged), unless every
    page is broken."""
    texts: list[str] = []
    first_error: Exception | None = None
    total = 0
    for i, page in enumerate(pages, start=1):
        limits.check(name, total)  # page by page: a crafted PDF is stopped at the limit, not at its end
        try:
            text = page.extract_text() or ""  # type: ignore[attr-defined]
        except Exception as exc:  # pypdf raises many kinds on broken content streams
            first_error = first_error or exc
            log.warning("%s: page %d unreadable, indexed as empty (%s)", name, i, _describe(exc))
            text = ""
        texts.append(text.replace("\r\n", "\n").strip())
        total += text_chars(texts[-1])
    limits.check_chars(name, total)
    if first_error is not None and not any(texts):
        raise FileError(name, f"corrupt PDF ({_describe(first_error)}): repair or re-export it")
    return texts


def _pdf_decrypt_empty(reader: object) -> bool:
    """Many PDFs are encrypted only against editing, with an empty password to open them."""
    try:
        return bool(reader.decrypt(""))  # type: ignore[attr-defined]
    except Exception:  # e.g. AES without a crypto library: treat as locked
        return False


def _load_pdf(raw: bytes, name: str, limits: Limits = NO_LIMITS) -> tuple[str, tuple[PageSpan, ...]]:
    texts = _pdf_page_texts(raw, name, limits)
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


# -------------------------------------------------------------------------------------------- load_document


def _describe(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())[:120]
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _over_limit(size: int | None, max_bytes: int) -> str:
    """``size`` None: the file grew past the limit after its stat (it is not read to the end to measure it)."""
    what = "over" if size is None else f"{_fmt_size(size)}, over"
    return f"file is {what} the {_fmt_size(max_bytes)} limit; raise --max-file-mb"


def check_file(path: Path, max_bytes: int) -> int:
    """What ``stat`` alone can tell, before a byte is read (so a file over the limit is never read): that
    ``path`` is a regular file of a supported type, not empty, at most ``max_bytes``. Returns its size."""
    name = str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileError(name, "no such file") from None
    except OSError as exc:
        raise FileError(name, f"cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileError(name, "not a regular file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise FileError(name, unsupported_reason(suffix))
    if st.st_size > max_bytes:
        raise FileError(name, _over_limit(st.st_size, max_bytes))
    if st.st_size == 0:
        raise FileError(name, "empty file (no text)")
    return st.st_size


def _open_error(path: Path, exc: OSError) -> FileError:
    if isinstance(exc, PermissionError):
        return FileError(str(path), "permission denied: make it readable (chmod +r)")
    if isinstance(exc, IsADirectoryError):
        return FileError(str(path), "not a regular file")
    return FileError(str(path), f"cannot read ({exc.strerror or exc})")


def read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes (after `check_file`); FileError when unreadable or grown past the limit since."""
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            raw = fh.read(min(size, max_bytes) + 1)  # one byte more shows whether it is longer than it said
            if len(raw) > size:
                raw += fh.read(max_bytes + 1 - len(raw))
    except OSError as exc:
        raise _open_error(path, exc) from None
    if len(raw) > max_bytes:  # grew since the stat
        raise FileError(str(path), _over_limit(None, max_bytes))
    return raw


@contextmanager
def _parser_chatter_off() -> Iterator[None]:
    """Parsers narrate what they repair ("EOF marker not found", bs4's markup warnings) on stderr, without a
    file name; every failure becomes one FileError line instead, so their logging and warnings are muted."""
    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pypdf_log.setLevel(level)


def _hash_blocks(path: Path, max_bytes: int, *feeds: Callable[[bytes], object]) -> tuple[str, int]:
    """(sha256, size) of a file read a block at a time, each block also given to ``feeds``; FileError when it
    is over ``max_bytes`` or cannot be read. Memory stays at one block whatever the size."""
    h = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as fh:
            while block := fh.read(_BLOCK):
                size += len(block)
                if size > max_bytes:
                    raise FileError(str(path), _over_limit(None, max_bytes))
                h.update(block)
                for feed in feeds:
                    feed(block)
    except OSError as exc:
        raise _open_error(path, exc) from None
    return h.hexdigest(), size


def hash_file(path: Path, max_bytes: int) -> str:
    """The sha256 of a file, read a block at a time (to tell whether a big file changed without holding it)."""
    return _hash_blocks(path, max_bytes)[0]


def _extract(raw: bytes, name: str, suffix: str, max_bytes: int,
             limits: Limits = NO_LIMITS) -> tuple[str, tuple[PageSpan, ...]]:
    with _parser_chatter_off():
        return _extract_text(raw, name, suffix, max_bytes, limits)


def _extract_text(raw: bytes, name: str, suffix: str, max_bytes: int,
                  limits: Limits = NO_LIMITS) -> tuple[str, tuple[PageSpan, ...]]:
    try:
        if suffix in TEXT_SUFFIXES:
            return _load_text(raw, name), ()
        if suffix in HTML_SUFFIXES:
            return _load_html(raw, name), ()
        if suffix == ".pdf":
            return _load_pdf(raw, name, limits)
        return _load_docx(raw, name, max_bytes, limits), ()
    except FileError:
        raise
    except MemoryError:
        raise FileError(name, "too large to extract in memory: split it") from None
    except RecursionError:
        raise FileError(name, "nested too deeply to parse: simplify or convert it first") from None
    except Exception as exc:  # a parser bug or an input no branch above foresaw: still one line, no traceback
        raise FileError(name, f"cannot extract text ({_describe(exc)})") from None


def document_from_bytes(path: Path, raw: bytes, digest: str, max_bytes: int = 200 * 2**20, *,
                        limits: Limits = NO_LIMITS) -> Document:
    """Extract the text of ``path`` from its bytes ``raw`` (``digest``: their sha256, which the caller has
    already taken to tell whether the file changed, so a file is read and hashed once). ``limits``: what its
    text may cost (FileError past them)."""
    path = Path(path)
    suffix = path.suffix.lower()
    text, pages = _extract(raw, str(path), suffix, max_bytes, limits)
    if suffix in TEXT_SUFFIXES:  # the text is the file itself, already bounded by max_file_mb
        limits.check_time(str(path))
    else:
        limits.check(str(path), text_chars(text))
    if not text.strip():
        raise FileError(str(path), "no text (empty or whitespace only)")
    return Document(source=str(path.resolve()), text=text, content_hash=digest, pages=pages, mime=_MIME[suffix])


def load_document(path: Path, max_bytes: int = 200 * 2**20) -> Document:
    """Extract the text of ``path``. Raises FileError (path + reason) for anything that cannot be ingested.

    The file is read once: the content hash is taken over exactly the bytes that were parsed (no race with
    a writer), and a big file is never held twice.
    """
    path = Path(path)
    check_file(path, max_bytes)
    raw = read_file(path, max_bytes)
    return document_from_bytes(path, raw, hashlib.sha256(raw).hexdigest(), max_bytes)


# -------------------------------------------------------------------------------------- streamed text files


@dataclass(frozen=True)
class TextFile:
    """A .txt/.md file to read in windows: its hash and the encoding that decodes the whole of it."""

    path: Path
    source: str  # absolute, resolved
    content_hash: str
    size: int
    encoding: str
    mime: str


class _EncodingScan:
    """Decides, block by block, the encoding `decode_text` would choose for the whole file (or its error)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bom: str | None = None
        self.sample = b""
        self.started = False
        self.utf8_ok = True
        self.cp1252_ok = True
        self.nul = False
        self._dec: codecs.IncrementalDecoder | None = None

    def feed(self, block: bytes, final: bool = False) -> None:
        if not self.started:
            self.started = True
            self.bom = _bom_encoding(block)
            self.sample = block[:_SNIFF]
            if self.bom is None and _looks_binary(self.sample):
                raise FileError(self.name, _BINARY)
            self._dec = codecs.getincrementaldecoder(self.bom or "utf-8")("strict")
        if self.bom is not None:
            try:
                self.nul = "\x00" in self._dec.decode(block, final) or self.nul  # type: ignore[union-attr]
            except UnicodeDecodeError as exc:
                raise FileError(self.name, _invalid(self.bom, exc)) from None
            return
        self.nul = self.nul or b"\x00" in block
        if self.utf8_ok:
            try:
                self._dec.decode(block, final)  # type: ignore[union-attr]
            except UnicodeDecodeError:
                self.utf8_ok = False
        if self.cp1252_ok and block.translate(None, _CP1252_UNDEFINED) != block:
            self.cp1252_ok = False

    def encoding(self) -> str:
        """The encoding, or the FileError, in the order `decode_text` finds them."""
        if self.bom is None and not self.utf8_ok and _mostly_non_ascii(self.sample):
            raise FileError(self.name, _UNDECODABLE)
        if self.nul:
            raise FileError(self.name, _BINARY)
        if self.bom is not None:
            return self.bom
        if self.utf8_ok:
            return "utf-8"
        return "cp1252" if self.cp1252_ok else "latin-1"


def scan_text_file(path: Path, max_bytes: int) -> TextFile:
    """One pass over a text file (after `check_file`): its sha256 and the encoding `load_document` would use,
    or the FileError it would raise (binary, undecodable). Memory stays at one block whatever the size."""
    path = Path(path)
    name = str(path)
    scan = _EncodingScan(name)
    digest, size = _hash_blocks(path, max_bytes, scan.feed)
    scan.feed(b"", final=True)
    if size == 0:
        raise FileError(name, "empty file (no text)")
    return TextFile(path, str(path.resolve()), digest, size, scan.encoding(), _MIME[path.suffix.lower()])


def iter_text(tf: TextFile, window_bytes: int = STREAM_WINDOW) -> Iterator[str]:
    """The text of ``tf`` (exactly `load_document`'s ``Document.text``) as consecutive pieces decoded from
    ``window_bytes`` of the file each. A character split between windows, or a ``\\r\\n`` split between them,
    comes out whole. Raises FileError when the file changed since the scan, or holds no text."""
    name = str(tf.path)
    dec = codecs.getincrementaldecoder(tf.encoding)("strict")
    h = hashlib.sha256()
    cr = False  # a "\r" held back: it may be the first half of "\r\n"
    any_text = False
    try:
        with tf.path.open("rb") as fh:
            while True:
                block = fh.read(window_bytes)
                h.update(block)
                text = dec.decode(block, final=not block)
                if cr:
                    text = "\r" + text
                cr = bool(block) and text.endswith("\r")
                if cr:
                    text = text[:-1]
                text = text.replace("\r\n", "\n")
                any_text = any_text or (bool(text) and not text.isspace())
                if text:
                    yield text
                if not block:
                    break
    except OSError as exc:
        raise _open_error(tf.path, exc) from None
    except UnicodeDecodeError:  # the scan decoded all of it: the file changed in between
        raise FileError(name, "changed while being read: run the ingest again") from None
    if h.hexdigest() != tf.content_hash:
        raise FileError(name, "changed while being read: run the ingest again")
    if not any_text:
        raise FileError(name, "no text (empty or whitespace only)")


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
