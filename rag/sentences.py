"""Sentence splitting with exact character offsets, shared by chunking and the extractive answerer.

blingfire finds sentence ends inside a block of prose; blocks are cut first at blank lines and at lines that
are structure rather than prose (markdown headings, list items, table rows), which blingfire would otherwise
glue onto the next sentence. Every returned span satisfies ``text[start:end] == text[start:end].strip()``.
"""

from __future__ import annotations

import re

_BLANK = re.compile(r"\n[ \t]*\n")
_STRUCTURAL = re.compile(r"^[ \t]*(#{1,6}\s|[-*+]\s|\d{1,3}[.)]\s|\||>)")
MAX_SENTENCE_CHARS = 1500  # longer runs (tables, code, run-on text) are cut at whitespace


def _blocks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` into prose blocks."""
    out: list[tuple[int, int]] = []
    pos = start
    for m in _BLANK.finditer(text, start, end):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, end))
    blocks: list[tuple[int, int]] = []
    for a, b in out:
        line_start = a
        block_start = a
        while line_start < b:
            nl = text.find("\n", line_start, b)
            line_end = b if nl < 0 else nl
            line = text[line_start:line_end]
            if _STRUCTURAL.match(line) and line_start > block_start:
                blocks.append((block_start, line_start))
                block_start = line_start
            if _STRUCTURAL.match(line) and nl >= 0:
                # a structural line ends its own block
                blocks.append((block_start, line_end))
                block_start = line_end + 1
            line_start = line_end + 1
        if block_start < b:
            blocks.append((block_start, b))
    return blocks


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _cut_long(text: str, a: int, b: int, limit: int) -> list[tuple[int, int]]:
    spans = []
    while b - a > limit:
        cut = text.rfind(" ", a + limit // 2, a + limit)
        cut = cut if cut > a else a + limit
        spans.append(_trim(text, a, cut))
        a = cut
    spans.append(_trim(text, a, b))
    return [s for s in spans if s[1] > s[0]]


def _blingfire_offsets(block: str) -> list[tuple[int, int]]:
    """blingfire's sentence offsets as character offsets. blingfire's own Python wrapper maps byte offsets to
    characters one byte at a time in Python (most of the chunking time); this does it with numpy."""
    from ctypes import byref, c_char_p, c_int, c_int32, create_string_buffer

    import blingfire
    import numpy as np

    raw = block.encode("utf-8")
    n = len(raw)
    size = n * 2 + 16
    out = create_string_buffer(size)
    starts = (c_int32 * size)()
    ends = (c_int32 * size)()
    got = blingfire.blingfire.TextToSentencesWithOffsets(  # the loaded C library
        c_char_p(raw), c_int(n), byref(out), byref(starts), byref(ends), c_int(size)
    )
    if got == -1 or got > size:
        return [(0, len(block))]
    k = out.value.count(b"\n") + 1
    s = np.frombuffer(starts, dtype=np.int32, count=k).astype(np.int64)
    e = np.frombuffer(ends, dtype=np.int32, count=k).astype(np.int64)  # byte of the sentence's last byte
    if n == len(block):  # ASCII: bytes are characters
        return list(zip(s.tolist(), (e + 1).tolist(), strict=True))
    lead = (np.frombuffer(raw, dtype=np.uint8) & 0xC0) != 0x80
    char_at = np.cumsum(lead) - 1
    return list(zip(char_at[s].tolist(), (char_at[e] + 1).tolist(), strict=True))


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Return ``(start, end)`` offsets of the sentences of ``text[start:end]``, in order, whitespace-trimmed."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for a, b in _blocks(text, start, end):
        a, b = _trim(text, a, b)
        if a >= b:
            continue
        block = text[a:b]
        try:
            offsets = _blingfire_offsets(block)
        except Exception:  # blingfire rejects some inputs (e.g. odd control characters): keep the block whole
            offsets = [(0, len(block))]
        if not offsets:
            offsets = [(0, len(block))]
        for s, e in offsets:
            s, e = _trim(text, a + s, a + e)
            if e > s:
                spans.extend(_cut_long(text, s, e, MAX_SENTENCE_CHARS))
    return spans
