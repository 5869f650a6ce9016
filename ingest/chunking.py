"""Sentence-aware chunking sized in the embedder's word pieces. A pure function: Document -> list[Chunk], and
for every chunk ``doc.text[chunk.start:chunk.end] == chunk.text``.

Sizes are the sums of per-sentence counts. With the model's BERT word-piece tokenizer that sum is exactly
the count of the joined text, because sentences are separated by whitespace and word pieces never span
whitespace. The one exception is a sentence cut inside a word (no whitespace to cut at): such a piece is
never packed together with the piece before it.

`chunk_stream` does the same for a text too big to hold, given as consecutive pieces: it cuts the stream into
windows where a blank line ends (sentence splitting never joins text across a blank line, and packing carries
its unfinished chunk into the next window), so its chunks are those `chunk_document` makes of the whole text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import groupby
from typing import NamedTuple

from rag.defaults import CHUNK_OVERLAP, CHUNK_SIZE
from rag.sentences import split_sentences
from rag.types import Chunk, Document

CountFn = Callable[[list[str]], list[int]]
_CUT_MARGIN = 0.9  # aim a little under max_tokens when cutting by characters, so few pieces need a second cut
MAX_GAP = 1000  # characters of whitespace a chunk may span between two units; past that (padding) it ends there
COUNT_BATCH = 4096  # sentences per tokenizer call when streaming (bounds the tokenizer's output in memory)
HOLD_CHARS = 2**20  # streaming: text without a blank line is held up to this long before a window is cut inside it


class _Unit(NamedTuple):
    """A sentence (or a piece of an over-long one): ``text[start:end]`` with ``tokens`` word pieces."""

    start: int
    end: int
    tokens: int
    region: int = 0  # which page span (or the whole text) the unit lies in
    joinable: bool = True  # False when cut from the previous unit mid-word: never share a chunk with it


def default_count_tokens(texts: list[str]) -> list[int]:
    """Word pieces per text with the model's own tokenizer ([CLS]/[SEP] not counted), in one batch."""
    from rag.embeddings import load_tokenizer

    if not texts:
        return []
    tok = load_tokenizer()
    # the fast variant skips character offsets, which counting does not need (tokenizers >= 0.21)
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    return [len(e) for e in encode(texts, add_special_tokens=False)]


def chunk_id(doc: Document, start: int, end: int) -> str:
    """Stable across runs for identical content; the source in the key keeps copies of a file apart."""
    return _chunk_id(doc.source, doc.content_hash, start, end)


def _chunk_id(source: str, content_hash: str, start: int, end: int) -> str:
    key = f"{source}\x00{content_hash}\x00{start}\x00{end}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


# ------------------------------------------------------------------------------------ cutting long sentences


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _last_space(text: str, lo: int, hi: int) -> int:
    return max(text.rfind(" ", lo, hi), text.rfind("\n", lo, hi), text.rfind("\t", lo, hi))


def _cut(text: str, unit: _Unit, max_tokens: int) -> list[_Unit]:
    """Cut an over-long unit at whitespace into pieces of about max_tokens, sized by the unit's average
    characters per token; the caller re-counts the pieces and cuts again any that still do not fit."""
    step = max(1, int((unit.end - unit.start) * max_tokens * _CUT_MARGIN / unit.tokens))
    pieces: list[_Unit] = []
    a, joinable = unit.start, unit.joinable
    while a < unit.end:
        b = min(unit.end, a + step)
        space = _last_space(text, a + step // 2, b) if b < unit.end else -1
        s, e = _trim(text, a, space if space > a else b)
        if e > s:
            pieces.append(_Unit(s, e, -1, unit.region, joinable))
        # a cut with no whitespace to use splits a word: the next piece must not rejoin this one
        joinable = space > a or b >= unit.end
        a = space if space > a else b
    return pieces


def _fit(text: str, units: list[_Unit], count: CountFn, max_tokens: int) -> list[_Unit]:
    """Cut every unit over max_tokens until all fit; all pieces of one round are counted in one batch.

    Every round makes each long unit strictly shorter and single characters are never cut, so it ends."""
    while True:
        long = {i for i, u in enumerate(units) if u.tokens > max_tokens and u.end - u.start > 1}
        if not long:
            return units
        out: list[_Unit] = []
        fresh: list[int] = []  # positions in ``out`` still to count
        for i, u in enumerate(units):
            if i in long:
                fresh.extend(range(len(out), len(out) + len(pieces := _cut(text, u, max_tokens))))
                out.extend(pieces)
            else:
                out.append(u)
        counts = count([text[out[k].start : out[k].end] for k in fresh])
        for k, c in zip(fresh, counts, strict=True):
            out[k] = out[k]._replace(tokens=c)
        units = out


# ------------------------------------------------------------------------------------------------- packing


def _joins(units: Sequence[_Unit], j: int) -> bool:
    """Whether ``units[j]`` may share a chunk with ``units[j - 1]``: not after a cut inside a word, nor across
    a long run of whitespace (a chunk's text must not be mostly padding, and must stay small to hold)."""
    return units[j].joinable and units[j].start - units[j - 1].end <= MAX_GAP


def _overlap_start(units: Sequence[_Unit], i: int, j: int, max_tokens: int, overlap: int) -> int:
    """First unit of the chunk after ``units[i:j]``: trailing whole sentences of that chunk totalling at most
    ``overlap`` tokens, and only as many as still leave room for ``units[j]`` (an overlap that crowded it out
    would just repeat part of the previous chunk)."""
    if not _joins(units, j):
        return j
    budget = min(overlap, max_tokens - units[j].tokens)
    k, kept = j, 0
    while k - 1 > i and kept + units[k - 1].tokens <= budget:
        k -= 1
        kept += units[k].tokens
    return k


def _pack(
    units: Sequence[_Unit], max_tokens: int, overlap: int, final: bool = True
) -> tuple[list[tuple[int, int]], int]:
    """Greedy packing of whole units into (start, end) spans of at most max_tokens. Returns the spans and the
    index of the first unit not yet packed: with ``final`` False (more units may follow) a chunk that reaches
    the last unit is not emitted, since later units could still join it; packing resumes there."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(units)
    while i < n:
        j, total = i + 1, units[i].tokens
        while j < n and _joins(units, j) and total + units[j].tokens <= max_tokens:
            total += units[j].tokens
            j += 1
        if j >= n and not final:
            return spans, i
        spans.append((units[i].start, units[j - 1].end))
        if j >= n:
            break
        i = _overlap_start(units, i, j, max_tokens, overlap)
    return spans, n


# ------------------------------------------------------------------------------------------------ chunking


def _regions(doc: Document) -> list[tuple[int, int, int | None]]:
    """Chunks never cross a page: each page span is chunked on its own."""
    if doc.pages:
        return [(p.start, p.end, p.page) for p in doc.pages]
    return [(0, len(doc.text), None)]


def _check_sizes(max_tokens: int, overlap_tokens: int) -> None:
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens must be >= 0 and < max_tokens ({max_tokens}), got {overlap_tokens}")


def chunk_document(
    doc: Document,
    max_tokens: int = CHUNK_SIZE,
    overlap_tokens: int = CHUNK_OVERLAP,
    count_tokens: CountFn | None = None,
) -> list[Chunk]:
    """Pack whole sentences into chunks of at most ``max_tokens`` word pieces (``count_tokens``, default the
    embedder's tokenizer), neighbours overlapping by trailing sentences of at most ``overlap_tokens``.

    A sentence longer than ``max_tokens`` is cut at whitespace. Chunks never cross PDF pages; ``index`` is
    the chunk's ordinal in the document and ``id`` is stable for identical source, content and offsets.
    """
    _check_sizes(max_tokens, overlap_tokens)
    count = count_tokens or default_count_tokens
    regions = _regions(doc)
    spans = [(r, a, b) for r, (start, end, _) in enumerate(regions) for a, b in split_sentences(doc.text, start, end)]
    if not spans:
        return []
    counts = count([doc.text[a:b] for _, a, b in spans])  # one tokenizer batch for the whole document
    units = [_Unit(a, b, c, r) for (r, a, b), c in zip(spans, counts, strict=True)]
    units = _fit(doc.text, units, count, max_tokens)
    chunks: list[Chunk] = []
    for r, group in groupby(units, key=lambda u: u.region):
        for start, end in _pack(list(group), max_tokens, overlap_tokens)[0]:
            chunks.append(_make_chunk(doc.source, doc.content_hash, doc.text[start:end], start, end, regions[r][2],
                                      len(chunks)))
    return chunks


def _make_chunk(source: str, content_hash: str, text: str, start: int, end: int, page: int | None,
                index: int) -> Chunk:
    return Chunk(
        id=_chunk_id(source, content_hash, start, end),
        source=source,
        text=text,
        start=start,
        end=end,
        page=page,
        index=index,
        doc_hash=content_hash,
    )


# ------------------------------------------------------------------------------------------------ streaming


def _window_cut(text: str, lo: int, hold: int) -> tuple[int, bool]:
    """Where the text split so far (``text[lo:]``, more to come) may end a window: right after its last blank
    line (``\\n[ \\t]*\\n``), which no sentence crosses, so windows split exactly like the whole text. Without
    one, wait for more text (returns ``lo``) until ``hold`` characters have piled up; then (a log, one huge
    line) cut at the last line break, else the last whitespace, where a sentence may be split in two, offsets
    still exact; failing all, at the end. Returns (cut, whether the cut is at whitespace)."""
    end = len(text)
    nl = last_nl = text.rfind("\n", lo, end)
    while nl > lo:
        prev = text.rfind("\n", lo, nl)
        if prev < 0:
            break
        if not text[prev + 1 : nl].strip(" \t"):
            return nl + 1, True
        nl = prev
    if end - lo < hold:
        return lo, True
    if last_nl > lo:
        return last_nl + 1, True
    space = _last_space(text, lo, end)
    if space > lo:
        return space + 1, True
    return end, False


def _stream_units(text: str, lo: int, hi: int, count: CountFn, max_tokens: int, base: int) -> list[_Unit]:
    """The units of ``text[lo:hi]`` (sentences, long ones cut), offsets shifted by ``base``."""
    spans = split_sentences(text, lo, hi)
    counts: list[int] = []
    for k in range(0, len(spans), COUNT_BATCH):
        counts.extend(count([text[a:b] for a, b in spans[k : k + COUNT_BATCH]]))
    units = _fit(text, [_Unit(a, b, c) for (a, b), c in zip(spans, counts, strict=True)], count, max_tokens)
    return [u._replace(start=u.start + base, end=u.end + base) for u in units]


def chunk_stream(
    pieces: Iterable[str],
    source: str,
    content_hash: str,
    max_tokens: int = CHUNK_SIZE,
    overlap_tokens: int = CHUNK_OVERLAP,
    count_tokens: CountFn | None = None,
    hold: int = HOLD_CHARS,
) -> Iterator[Chunk]:
    """`chunk_document` for a text without pages given as consecutive ``pieces`` (any sizes): yields each
    chunk as soon as no later text can change it, with offsets into the whole text. Memory holds about one
    piece plus ``hold`` characters. When no ``hold`` characters in a row lack a blank line, the chunks (and
    their ids) are exactly ``chunk_document``'s; otherwise they may differ where a window had to be cut."""
    _check_sizes(max_tokens, overlap_tokens)
    count = count_tokens or default_count_tokens
    buf, base, done = "", 0, 0  # buf holds text[base : base + len(buf)]; text[:done] is split into units
    units: list[_Unit] = []  # units not yet in a chunk that is final
    index = 0
    joinable = True  # False after a cut inside a word
    it = iter(pieces)
    final = False
    while not final:
        piece = next(it, None)
        final = piece is None
        if piece:
            buf += piece
        lo = done - base
        cut, at_space = (len(buf), True) if final else _window_cut(buf, lo, hold)
        if cut > lo:
            new = _stream_units(buf, lo, cut, count, max_tokens, base)
            if new and not joinable:
                new[0] = new[0]._replace(joinable=False)
            joinable = at_space
            units.extend(new)
            done = base + cut
        elif not final:
            continue
        # past MAX_GAP of whitespace nothing can join the pending units: their chunks are final (and the text
        # they would otherwise keep in ``buf`` is let go)
        settled = final or bool(units) and done - units[-1].end > MAX_GAP
        spans, rest = _pack(units, max_tokens, overlap_tokens, settled)
        for start, end in spans:
            yield _make_chunk(source, content_hash, buf[start - base : end - base], start, end, None, index)
            index += 1
        units = units[rest:]
        keep = min(units[0].start, done) if units else done
        buf, base = buf[keep - base :], keep
