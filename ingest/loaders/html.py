"""HTML -> text: the title as the first line, then one line per block element; scripts, styles and other
non-text elements dropped."""

from __future__ import annotations

import re

from ingest.loaders.text import _BOMS, decode_text
from rag.errors import FileError

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

