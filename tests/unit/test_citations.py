"""rag.citations: marker parsing never crashes, stripping, renumbering, citation offsets."""

from __future__ import annotations

import pytest

from rag.citations import (
    MARKER_RE,
    MarkedSentence,
    citation_for_span,
    cited_numbers,
    marker_numbers,
    parse_markers,
    renumber,
    resolve_markers,
    strip_markers,
)
from rag.types import Chunk, Citation, Hit

DOC = "Intro text. China has sent more than 2,000 troops. The drills run until September 7. The end."


def hit(start: int, end: int, n: int = 1, page: int | None = None) -> Hit:
    return Hit(Chunk(f"c{n}", "/docs/a.txt", DOC[start:end], start, end, page=page), score=0.5 + n, rank=n)


def cites(text: str, n: int = 5) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    return [(s.text, s.cited, s.dropped) for s in parse_markers(text, n)]


@pytest.mark.parametrize(
    ("marker", "numbers"),
    [("[1]", [1]), ("[1, 3]", [1, 3]), ("[2-4]", [2, 3, 4]), ("[4–2]", [2, 3, 4]), ("[ 7 ]", [7]), ("[[2]]", [2]),
     ("[1;2]", [1, 2]), ("[1, 3-4]", [1, 3, 4])],
)
def test_marker_forms(marker: str, numbers: list[int]) -> None:
    m = MARKER_RE.search(f"x {marker} y")
    assert m is not None and marker_numbers(m.group(1)) == numbers


@pytest.mark.parametrize("text", ["[a]", "[in the relationship]", "[2018]", "[]", "[1", "1]", "[-1]", "[1.5]"])
def test_non_markers_are_text(text: str) -> None:
    assert cited_numbers(f"Claim {text} here.") == []
    assert strip_markers(f"Claim {text} here.") == f"Claim {text} here."


def test_adjacent_markers_and_one_sentence_each() -> None:
    assert cites("Claim one [1]. Claim two [2, 3].") == [("Claim one.", (1,), ()), ("Claim two.", (2, 3), ())]
    assert cites("Claim one [1][3] and more [1].") == [("Claim one and more.", (1, 3), ())]
    assert cites("A claim [2-4].") == [("A claim.", (2, 3, 4), ())]


def test_markers_after_the_full_stop_belong_to_the_sentence_before() -> None:
    assert cites("Claim one. [1] Claim two.[2][3]") == [("Claim one.", (1,), ()), ("Claim two.", (2, 3), ())]
    assert cites("Only one sentence. [2]") == [("Only one sentence.", (2,), ())]


def test_markers_at_the_start() -> None:
    assert cites("[1] Start marker. Next one [2].") == [("Start marker.", (1,), ()), ("Next one.", (2,), ())]


def test_out_of_range_numbers_are_dropped_and_reported() -> None:
    assert cites("Zero [0] and big [99] and fine [2].", 3) == [("Zero and big and fine.", (2,), (0, 99))]
    assert cites("Range [2-5].", 3) == [("Range.", (2, 3), (4, 5))]
    assert cites("No passages at all [1].", 0) == [("No passages at all.", (), (1,))]


def test_no_markers_nested_brackets_and_junk() -> None:
    assert cites("No markers at all") == [("No markers at all", (), ())]
    assert cites("Nested [[1]] here.") == [("Nested here.", (1,), ())]
    assert cites("Weird [a] and [see [2]].")[0][1] == (2,)
    assert cites("Unclosed [1 and ] ][ [x, 2] done.") == [("Unclosed [1 and ] ][ [x, 2] done.", (), ())]


@pytest.mark.parametrize("text", ["", "   ", "[1]", "[1][2] [3]", ".", "[", "]]]", "[[[[", "\n\n[2]\n", "?!"])
def test_degenerate_inputs_never_crash(text: str) -> None:
    out = parse_markers(text, 3)
    assert all(isinstance(s, MarkedSentence) for s in out)
    assert all(any(ch.isalnum() for ch in s.text) for s in out)


def test_spans_point_into_the_answer_text() -> None:
    text = 'more than 2,000 — "China has sent more than 2,000 troops." [1]\n\n"The drills run." [2]'
    out = parse_markers(text, 2)
    assert [s.cited for s in out] == [(1,), (2,)]
    assert text[out[0].start : out[0].end].endswith("[1]")
    assert text[out[1].start : out[1].end] == '"The drills run." [2]'
    # the quote opening the second sentence is not left at the end of the first
    assert out[0].text == 'more than 2,000 — "China has sent more than 2,000 troops."'


def test_quoted_sentences_on_one_line() -> None:
    out = parse_markers('x — "First claim." [1] "Second claim." [2]', 2)
    assert [(s.text, s.cited) for s in out] == [('x — "First claim."', (1,)), ('"Second claim."', (2,))]


def test_strip_markers_tidies_space_before_punctuation() -> None:
    assert strip_markers("China sent troops [1]. Then [2, 3] more [4-5]!") == "China sent troops. Then more!"
    assert strip_markers("[1] Start.") == "Start."
    assert strip_markers("Line one [1].\nLine two [2].") == "Line one.\nLine two."
    assert strip_markers("no markers") == "no markers"


def test_citation_for_span_offsets_are_absolute() -> None:
    start = DOC.index("China")
    h = hit(start, len(DOC), page=3)
    local = h.chunk.text.index("The drills")
    end = local + len("The drills run until September 7.")
    c = citation_for_span(2, h, local, end, supported=True)
    assert (c.n, c.source, c.page, c.chunk_id, c.supported, c.score) == (2, "/docs/a.txt", 3, "c1", True, h.score)
    assert c.text == "The drills run until September 7." == DOC[c.start : c.end]
    assert citation_for_span(1, h, 0, 5, score=0.25).score == 0.25


@pytest.mark.parametrize(("a", "b"), [(-1, 3), (3, 2), (0, 10_000)])
def test_citation_for_span_rejects_bad_offsets(a: int, b: int) -> None:
    with pytest.raises(ValueError, match="outside chunk"):
        citation_for_span(1, hit(0, 20), a, b)


def _cit(n: int, text: str = "x") -> Citation:
    return Citation(n=n, source="/docs/a.txt", page=None, start=n, end=n + 1, text=text, score=0.1 * n)


def test_renumber_in_order_of_first_use() -> None:
    text, cits = renumber("A [3]. B [1][3]. C [2-3] [7].", [_cit(1, "one"), _cit(2, "two"), _cit(3, "three")])
    assert text == "A [1]. B [2][1]. C [3, 1]."
    assert [(c.n, c.text) for c in cits] == [(1, "three"), (2, "one"), (3, "two")]


def test_renumber_drops_unused_citations_and_unknown_markers() -> None:
    text, cits = renumber("A [4] b [9].", [_cit(1), _cit(4)])
    assert text == "A [1] b."
    assert [c.n for c in cits] == [1] and cits[0].start == 4
    assert renumber("No markers.", [_cit(1)]) == ("No markers.", ())


def test_resolve_markers_cites_whole_chunks() -> None:
    h1, h2 = hit(0, 11, 1), hit(12, 50, 2)
    text, cits = resolve_markers("Troops were sent [2]. Intro [1] [5].", [h1, h2])
    assert text == "Troops were sent [1]. Intro [2]."
    assert [(c.n, c.chunk_id, c.text) for c in cits] == [(1, "c2", DOC[12:50]), (2, "c1", DOC[0:11])]
