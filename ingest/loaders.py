"""File -> `Document` (extracted text + page spans). Every failure is a `FileError` whose reason is short and
says what to do; no parser exception escapes as a traceback."""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path

from rag.errors import FileError
from rag.types import Document, PageSpan

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
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
DOCX_MAX_RATIO = 200  # ... or whose members compress more than this (text compresses ~5-20x)


def unsupported_reason(suffix: str) -> str:
    return f"unsupported type {suffix or '(no extension)'}; supported: {' '.join(SUPPORTED_SUFFIXES)}"


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _looks_binary(raw: bytes) -> bool:
    sample = raw[:65536]
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return control / len(sample) > 0.05


def decode_text(raw: bytes, name: str) -> str:
    """Decode text bytes: BOMs first (UTF-8/16/32), then UTF-8, then cp1252/latin-1 for legacy files."""
    for bom, enc in (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if raw.startswith(bom):
            try:
                return raw.decode(enc)
            except UnicodeDecodeError as exc:
                raise FileError(name, f"invalid {enc} text ({exc.reason}): re-save it as UTF-8") from None
    if _looks_binary(raw):
        raise FileError(name, "looks binary, not text: convert it to a text format first")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _load_text(path: Path) -> str:
    # \r\n and lone \r become \n: the offsets then point into the text as every editor shows it.
    return decode_text(path.read_bytes(), str(path)).replace("\r\n", "\n").replace("\r", "\n")


_BLOCK_TAGS = {
    "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section", "article",
    "pre", "blockquote", "header", "footer", "main", "aside", "nav", "dd", "dt", "dl", "figure", "figcaption",
    "form", "hr", "address", "details", "summary", "caption", "thead", "tbody", "title",
}
_DROP_TAGS = {"script", "style", "noscript", "template", "svg", "canvas", "iframe", "object"}


def _load_html(path: Path) -> str:
    from bs4 import BeautifulSoup, NavigableString, Tag

    html = decode_text(path.read_bytes(), str(path))
    soup = BeautifulSoup(html, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    body = soup.body or soup
    lines: list[str] = [title] if title else []
    current: list[str] = []

    def flush() -> None:
        line = " ".join(" ".join(current).split())
        if line:
            lines.append(line)
        current.clear()

    # iterative walk: deeply nested HTML must not hit Python's recursion limit
    stack: list[tuple[object, bool]] = [(body, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            flush()
            continue
        if isinstance(node, NavigableString):
            if type(node).__name__ in ("Comment", "Doctype", "Declaration", "ProcessingInstruction", "CData"):
                continue
            current.append(str(node))
            continue
        if not isinstance(node, Tag) or node.name in _DROP_TAGS or node.name == "head":
            continue
        if node.name == "br":
            flush()
            continue
        block = node.name in _BLOCK_TAGS
        if block:
            flush()
            stack.append((node, True))
        stack.extend((child, False) for child in reversed(list(node.children)))
    flush()
    return "\n\n".join(lines)


def _load_pdf(path: Path) -> tuple[str, tuple[PageSpan, ...]]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    name = str(path)
    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:
                ok = 0
            if not ok:
                raise FileError(name, "encrypted PDF: decrypt it first (e.g. qpdf --decrypt in.pdf out.pdf)")
        texts: list[str] = []
        for page in reader.pages:
            texts.append((page.extract_text() or "").replace("\r\n", "\n").replace("\r", "\n").strip())
    except FileError:
        raise
    except FileNotDecryptedError:
        raise FileError(name, "encrypted PDF: decrypt it first (e.g. qpdf --decrypt in.pdf out.pdf)") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        raise FileError(name, f"corrupt PDF ({type(exc).__name__}: {str(exc)[:120]}): repair or re-export it") from None
    except Exception as exc:  # pypdf raises many kinds on broken files
        raise FileError(name, f"corrupt PDF ({type(exc).__name__}: {str(exc)[:120]}): repair or re-export it") from None
    if not any(t.strip() for t in texts):
        raise FileError(name, "PDF has no text layer (scanned?): run OCR first (e.g. ocrmypdf)")
    parts: list[str] = []
    spans: list[PageSpan] = []
    pos = 0
    for i, t in enumerate(texts, start=1):
        if parts:
            parts.append("\n\n")
            pos += 2
        spans.append(PageSpan(i, pos, pos + len(t)))
        parts.append(t)
        pos += len(t)
    return "".join(parts), tuple(spans)


def _check_docx_zip(path: Path, max_bytes: int) -> None:
    name = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError):
        raise FileError(name, "corrupt .docx (not a valid zip archive): re-save it from your editor") from None
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos) or 1
    if total > min(DOCX_MAX_UNCOMPRESSED, max(20 * max_bytes, 50 * 2**20)) or total / packed > DOCX_MAX_RATIO:
        raise FileError(name, f"suspicious .docx (inflates to {total / 2**20:.0f} MB, zip bomb?): not ingested")


def _load_docx(path: Path, max_bytes: int) -> str:
    _check_docx_zip(path, max_bytes)
    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        d = docx.Document(str(path))
        blocks: list[str] = []
        for item in d.iter_inner_content():
            if isinstance(item, Paragraph):
                blocks.append(item.text.strip())
            elif isinstance(item, Table):
                for row in item.rows:
                    cells: list[str] = []
                    for cell in row.cells:
                        t = " ".join(cell.text.split())
                        if t and (not cells or cells[-1] != t):  # merged cells repeat their text
                            cells.append(t)
                    blocks.append(" | ".join(cells))
    except FileError:
        raise
    except Exception as exc:
        raise FileError(str(path), f"corrupt .docx ({type(exc).__name__}: {str(exc)[:120]})") from None
    return "\n\n".join(b for b in blocks if b)


def load_document(path: Path, max_bytes: int = 200 * 2**20) -> Document:
    """Extract the text of ``path``. Raises FileError (path + reason) for anything that cannot be ingested."""
    path = Path(path)
    name = str(path)
    suffix = path.suffix.lower()
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
        raise FileError(
            name, f"file is {st.st_size / 2**20:.0f} MB, over the {max_bytes / 2**20:.0f} MB limit: raise --max-file-mb"
        )
    if st.st_size == 0:
        raise FileError(name, "empty file (no text)")
    if not os.access(path, os.R_OK):
        raise FileError(name, "permission denied: make it readable")
    try:
        pages: tuple[PageSpan, ...] = ()
        if suffix in (".txt", ".md", ".markdown"):
            text = _load_text(path)
        elif suffix in (".html", ".htm"):
            text = _load_html(path)
        elif suffix == ".pdf":
            text, pages = _load_pdf(path)
        else:
            text = _load_docx(path, max_bytes)
        digest = _hash_file(path)
    except FileError:
        raise
    except PermissionError:
        raise FileError(name, "permission denied: make it readable") from None
    except MemoryError:
        raise FileError(name, "too large to extract in memory: split it or raise the limit") from None
    except RecursionError:
        raise FileError(name, "nested too deeply to parse") from None
    except OSError as exc:
        raise FileError(name, f"cannot read ({exc.strerror or exc})") from None
    if not text.strip():
        raise FileError(name, "no text (empty or whitespace only)")
    return Document(source=str(path.resolve()), text=text, content_hash=digest, pages=pages, mime=_MIME[suffix])


def iter_input_files(paths: Sequence[Path]) -> tuple[list[Path], list[FileError]]:
    """Expand files and folders (recursive, sorted, hidden entries skipped, symlink loops broken) into the
    files to ingest, and the errors for what cannot be: missing paths, unreadable folders, unsupported types."""
    files: list[Path] = []
    errors: list[FileError] = []
    seen_files: set[Path] = set()
    seen_dirs: set[Path] = set()

    def add_file(p: Path) -> None:
        rp = p.resolve()
        if rp in seen_files:
            return
        seen_files.add(rp)
        if p.suffix.lower() not in SUPPORTED_SUFFIXES:
            errors.append(FileError(str(rp), unsupported_reason(p.suffix)))
        else:
            files.append(rp)

    def walk(d: Path) -> None:
        rd = d.resolve()
        if rd in seen_dirs:
            return  # a symlink loop or a folder reached twice
        seen_dirs.add(rd)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            errors.append(FileError(str(d), f"cannot read folder ({exc.strerror or exc})"))
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            p = Path(e.path)
            try:
                if e.is_dir(follow_symlinks=True):
                    walk(p)
                elif e.is_file(follow_symlinks=True):
                    add_file(p)
                elif e.is_symlink():
                    errors.append(FileError(str(p), "broken symbolic link"))
            except OSError as exc:
                errors.append(FileError(str(p), f"cannot read ({exc.strerror or exc})"))

    for raw in paths:
        p = Path(raw).expanduser()
        try:
            if p.is_dir():
                walk(p)
            elif p.is_file():
                add_file(p)
            elif p.exists():
                errors.append(FileError(str(p), "not a regular file or folder"))
            else:
                errors.append(FileError(str(p), "no such file or folder"))
        except OSError as exc:
            errors.append(FileError(str(p), f"cannot read ({exc.strerror or exc})"))
    return files, errors
