"""Document titles and the links they make: a document's title (its heading, or its file name), and which
documents a text names by title, word for word (BM25's ``linked``, the retriever's second round)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from rag.text import INDEX_STOPWORDS, folded_words, plain_words

TITLE_MAX_WORDS = 10


def reads_as_heading(line: str) -> bool:
    """``line`` reads as a heading, not a sentence: 1 to ``TITLE_MAX_WORDS`` words, at most 120 characters, no
    closing punctuation."""
    words = plain_words(line)
    return bool(line) and 1 <= len(words) <= TITLE_MAX_WORDS and len(line) <= 120 and not line.endswith(
        (".", ":", ";", ","))


def document_title(first_chunk_text: str, source: str) -> str:
    """A document's title: its first line when that reads as a heading (at most ``TITLE_MAX_WORDS`` words, not a
    sentence), else its file name without extension ("q3_report" -> "q3 report")."""
    line = first_chunk_text.lstrip().split("\n", 1)[0].strip().lstrip("#").strip()
    if reads_as_heading(line):
        return line
    return re.sub(r"[_\-]+", " ", Path(source).stem).strip()


_MARKDOWN_HEADING = re.compile(r"#{1,6}\s")
_LIST_ITEM = re.compile(r"(?:[-*+>|]|\d{1,3}[.)])\s")  # a list item, quote or table row states something


def is_heading(text: str, start: int, end: int, *, opens_document: bool) -> bool:
    """The sentence ``text[start:end]`` of a chunk is a heading, not a statement: a markdown heading, or the
    document's title (its first line when that reads as a heading and more text follows; ``opens_document``: the chunk
    starts the document). It names what follows; quoted as an answer or as a citation it says nothing."""
    span = text[start:end]
    if _MARKDOWN_HEADING.match(span):
        return True
    if not opens_document or text[:start].strip() or not text[end:].strip():
        return False
    line = text[start:].split("\n", 1)[0].strip()
    return line == span.strip() and reads_as_heading(line) and not _LIST_ITEM.match(line)


def title_key(title: str) -> tuple[str, ...] | None:
    """The words a title is matched by in other documents' text (casefolded), or None when the title is too
    common to mean a link (a single stopword or a word of fewer than 4 letters)."""
    words = tuple(folded_words(title))
    if not words or len(words) > TITLE_MAX_WORDS:
        return None
    if len(words) == 1 and (words[0] in INDEX_STOPWORDS or len(words[0]) < 4):
        return None
    return words


class TitleLinks:
    """Title words -> the ids (first chunks) of the documents with that title, for ``titles``: id -> title."""

    def __init__(self, titles: Mapping[str, str]) -> None:
        table: dict[tuple[str, ...], list[str]] = {}
        for cid, title in titles.items():
            key = title_key(title)
            if key:
                table.setdefault(key, []).append(cid)
        self.table = table
        self.lengths = sorted({len(key) for key in table}, reverse=True)  # word counts of the titles, longest first

    def __len__(self) -> int:
        return len(self.table)

    def mentioned(self, text: str) -> Iterator[str]:
        """The ids of the documents whose title occurs in ``text`` (word for word, case-insensitive), in the order
        the titles occur, the longest title starting at a word first ("New York Times" before "New York");
        an id named twice comes twice."""
        words = folded_words(text)
        for i in range(len(words)):
            for n in self.lengths:
                yield from self.table.get(tuple(words[i : i + n]), ())
