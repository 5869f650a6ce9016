"""``[n]`` markers <-> citations.

Answer text carries inline markers that refer to numbered passages (1-based): ``[1]``, ``[1, 3]``, ``[1][3]``,
``[2-4]``. Generative models write them loosely, so parsing is lenient and never raises: anything that is not a
well-formed numeric marker (``[a]``, ``[in the relationship]``) is left as text, numbers outside ``1..n`` are
reported as dropped, and markers that the sentence splitter pushes past a sentence end ("... end. [2]") belong
to the sentence before them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.types import Citation, Hit

# One marker: numbers separated by commas / semicolons, or ranges with a hyphen or en dash. Doubled brackets
# ("[[1]]", a common model slip) are swallowed whole so no stray bracket is left behind. At most three digits:
# k is at most 100, and "[2018]" in an answer is a year, not a marker.
MARKER_RE = re.compile(r"\[{1,2}\s*(\d{1,3}(?:\s*[-–,;]\s*\d{1,3})*)\s*\]{1,2}")
# A run of markers with the blanks in front of it ("claim [1] [2]."), for stripping.
_MARKER_RUN = re.compile(r"[ \t]*" + MARKER_RE.pattern)
_OPEN_QUOTE_AT_END = re.compile(r"\s+[\"“‘]$")
_RANGE_RE = re.compile(r"(\d+)\s*[-–]\s*(\d+)")
# A range wider than this is a typo or a year span ("[1990-2000]"), not a list of passages: keep only its ends.
_MAX_RANGE = 50


@dataclass(frozen=True)
class MarkedSentence:
    """One sentence of an answer with the passage numbers its markers cite."""

    text: str  # the sentence without its markers, whitespace tidied
    start: int  # span of the sentence (markers included) in the answer text
    end: int
    cited: tuple[int, ...]  # cited passage numbers within 1..n_passages, order of first appearance, no repeats
    dropped: tuple[int, ...] = ()  # numbers outside 1..n_passages (e.g. [0], [99]), order of appearance


def marker_numbers(marker_body: str) -> list[int]:
    """The numbers of one marker body (``"1, 3-5"`` -> ``[1, 3, 4, 5]``), in order, repeats kept."""
    out: list[int] = []
    for part in re.split(r"\s*[,;]\s*", marker_body.strip()):
        m = _RANGE_RE.fullmatch(part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            lo, hi = min(a, b), max(a, b)
            out.extend(range(lo, hi + 1) if hi - lo <= _MAX_RANGE else (lo, hi))
        elif part.isdigit():
            out.append(int(part))
    return out


def cited_numbers(text: str) -> list[int]:
    """Every number cited anywhere in ``text``, in order of first appearance, without repeats."""
    seen: list[int] = []
    for m in MARKER_RE.finditer(text):
        for n in marker_numbers(m.group(1)):
            if n not in seen:
                seen.append(n)
    return seen


def strip_markers(text: str) -> str:
    """``text`` without its ``[n]`` markers; no blank is left before punctuation and runs of blanks collapse
    (newlines are kept, so paragraphs survive)."""
    s = _MARKER_RUN.sub("", text)
    s = re.sub(r"[ \t]+([.,;:!?])", r"\1", s)
    s = re.sub(r"[ \t]{2,}", " ", s)
    return "\n".join(line.strip() for line in s.strip().split("\n"))


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """split_sentences, with an opening quote that the splitter left at the end of a sentence ('... [1] "')
    moved to the start of the next one, where it belongs."""
    from rag.sentences import split_sentences

    spans = split_sentences(text)
    out: list[tuple[int, int]] = []
    carry: int | None = None
    for a, b in spans:
        if carry is not None:
            a, carry = carry, None
        m = _OPEN_QUOTE_AT_END.search(text, a, b)
        if m and m.start() > a and len(out) + 1 < len(spans):
            carry = m.end() - 1
            b = m.start()
        out.append((a, b))
    return out


def _has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in MARKER_RE.sub("", text))


def parse_markers(text: str, n_passages: int) -> list[MarkedSentence]:
    """Split ``text`` into sentences and collect the passage numbers each one cites.

    Markers at the start of a sentence (after the previous sentence's full stop) and pieces made only of
    markers or punctuation belong to the sentence before; before the first sentence they belong to the first.
    Numbers outside ``1..n_passages`` go to ``dropped``. Never raises on malformed input.
    """
    spans: list[list[int]] = []  # [start, end] of merged pieces
    pending_start: int | None = None  # a leading piece with no words, waiting for the first sentence
    for a, b in _sentence_spans(text):
        piece = text[a:b]
        if not _has_words(piece):
            if spans:
                spans[-1][1] = b
            elif pending_start is None:
                pending_start = a
            continue
        lead = re.match(r"(?:\s*" + MARKER_RE.pattern + r")+", piece)
        if lead and spans:
            # "[2]" pushed to the start of the next sentence by the splitter: it closes the previous one
            spans[-1][1] = a + lead.end()
            a = a + lead.end()
            while a < b and text[a].isspace():
                a += 1
        spans.append([pending_start if pending_start is not None and not spans else a, b])
        pending_start = None
    if pending_start is not None and not spans:  # only markers or punctuation: no sentence to report
        return []

    out: list[MarkedSentence] = []
    for a, b in spans:
        chunk = text[a:b]
        cites: list[int] = []
        dropped: list[int] = []
        for n in cited_numbers(chunk):
            (cites if 1 <= n <= n_passages else dropped).append(n)
        out.append(MarkedSentence(strip_markers(chunk), a, b, tuple(cites), tuple(dropped)))
    return out


def citation_for_span(
    n: int, hit: Hit, start: int, end: int, supported: bool | None = None, score: float | None = None
) -> Citation:
    """Citation ``n`` for ``hit.chunk.text[start:end]``; the citation's offsets point into the source document.

    ``start``/``end`` are local to the chunk; bad offsets raise ``ValueError`` (a bug in the caller, not in the
    data). ``score`` defaults to the hit's ranking score.
    """
    c = hit.chunk
    if not 0 <= start <= end <= len(c.text):
        raise ValueError(f"span {start}:{end} is outside chunk {c.id!r} of length {len(c.text)}")
    return Citation(
        n=n,
        source=c.source,
        page=c.page,
        start=c.start + start,
        end=c.start + end,
        text=c.text[start:end],
        score=float(hit.score if score is None else score),
        chunk_id=c.id,
        supported=supported,
    )


def renumber(text: str, citations: Sequence[Citation]) -> tuple[str, tuple[Citation, ...]]:
    """Renumber the markers of ``text`` and their citations to 1..m in order of first use.

    Markers naming no known citation are removed, citations no marker uses are dropped, and several citations
    sharing one number keep that number's new value. Ranges are rewritten as lists (``[3-4]`` -> ``[1, 2]``).
    """
    known = {c.n for c in citations}
    new_of: dict[int, int] = {}
    for n in cited_numbers(text):
        if n in known and n not in new_of:
            new_of[n] = len(new_of) + 1

    def sub(m: re.Match[str]) -> str:
        nums: list[int] = []
        for n in marker_numbers(m.group(1)):
            if n in new_of and new_of[n] not in nums:
                nums.append(new_of[n])
        return "[" + ", ".join(map(str, nums)) + "]" if nums else ""

    def sub_run(m: re.Match[str]) -> str:
        inner = MARKER_RE.search(m.group(0))
        assert inner is not None  # the run pattern contains the marker pattern
        new = sub(inner)
        return m.group(0)[: inner.start()] + new if new else ""

    out_text = _MARKER_RUN.sub(sub_run, text)
    kept = sorted((c for c in citations if c.n in new_of), key=lambda c: new_of[c.n])
    return out_text, tuple(_with_n(c, new_of[c.n]) for c in kept)


def _with_n(c: Citation, n: int) -> Citation:
    from dataclasses import replace

    return replace(c, n=n)


def resolve_markers(text: str, hits: Sequence[Hit]) -> tuple[str, tuple[Citation, ...]]:
    """For generative answers that cite numbered passages: ``[n]`` refers to ``hits[n-1]``.

    Each cited passage becomes one citation covering its whole chunk; markers out of range are removed and the
    rest renumbered 1..m in order of first use.
    """
    cits = [citation_for_span(n, hits[n - 1], 0, len(hits[n - 1].chunk.text)) for n in range(1, len(hits) + 1)]
    return renumber(text, cits)
