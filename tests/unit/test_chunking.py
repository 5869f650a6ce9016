"""ingest.chunking.chunk_document with the model's real tokenizer: exact offsets, size limits, overlap, pages."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ingest.chunking import chunk_document, chunk_stream, default_count_tokens
from rag.sentences import split_sentences
from rag.types import Chunk, Document, PageSpan

PARAGRAPHS = [
    "China has sent more than 2,000 troops to Russia for the Vostok military exercises, its largest "
    "contingent yet. Some 50,000 soldiers from 14 nations – also including India, Belarus and Tajikistan – "
    "are taking part in the drills in Russia's far east, according to Moscow's defence ministry.",
    "The drills will involve deployment, planning and command exercises. This edition of the Vostok games "
    "takes on added significance given the war in Ukraine, analysts said. Dr. Lukin, an associate "
    "professor, said the U.S. was watching closely.",
    "## Background",
    "- 140 aircraft and 60 warships were listed.\n- The exercises run until September 7.\n- Seven training "
    "areas are in use.",
    "“China is definitely signalling that it’s ready to stand with Russia,” one analyst said. “They have "
    "not yet built up such a force, but the intent is clear.” The potential coalition would first and "
    "foremost be aimed at the United States and its allies in the Pacific.",
]


def article(repeat: int = 6) -> str:
    parts = []
    for r in range(repeat):
        parts.append(f"# Part {r + 1}")
        parts.extend(p.replace("Vostok", f"Vostok-{r}") for p in PARAGRAPHS)
    return "\n\n".join(parts) + "\n"


def make_doc(text: str, source: str = "/docs/article.txt", pages: tuple[PageSpan, ...] = ()) -> Document:
    return Document(source=source, text=text, content_hash=hashlib.sha256(text.encode()).hexdigest(), pages=pages)


def assert_exact(doc: Document, chunks: list[Chunk]) -> None:
    for i, c in enumerate(chunks):
        assert doc.text[c.start : c.end] == c.text
        assert c.text == c.text.strip() and c.text
        assert c.index == i and c.source == doc.source and c.doc_hash == doc.content_hash
        assert len(c.id) == 32 and int(c.id, 16) >= 0


def test_offsets_slice_back_and_everything_is_covered() -> None:
    doc = make_doc(article())
    chunks = chunk_document(doc, max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 10
    assert_exact(doc, chunks)
    # every sentence lies inside some chunk, so no text is lost between chunks
    for a, b in split_sentences(doc.text):
        assert any(c.start <= a and b <= c.end for c in chunks), doc.text[a:b]
    assert all(c.page is None for c in chunks)
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(200, 40), (128, 24), (48, 8), (16, 0)])
def test_no_chunk_exceeds_max_tokens(max_tokens: int, overlap: int) -> None:
    doc = make_doc(article())
    chunks = chunk_document(doc, max_tokens=max_tokens, overlap_tokens=overlap)
    counts = default_count_tokens([c.text for c in chunks])
    assert max(counts) <= max_tokens
    assert max(counts) >= max_tokens * 0.6  # and chunks are actually filled, not one sentence each


def test_neighbours_overlap_by_whole_sentences() -> None:
    doc = make_doc(article())
    chunks = chunk_document(doc, max_tokens=80, overlap_tokens=30)
    starts = {a for a, _ in split_sentences(doc.text)}
    overlapping = 0
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        assert nxt.start > prev.start and nxt.end > prev.end  # always progress
        assert nxt.start in starts  # a chunk starts at a sentence start
        if nxt.start < prev.end:
            overlapping += 1
            assert default_count_tokens([doc.text[nxt.start : prev.end]])[0] <= 30
    assert overlapping >= len(chunks) // 2


def test_no_overlap_when_zero() -> None:
    doc = make_doc(article())
    chunks = chunk_document(doc, max_tokens=80, overlap_tokens=0)
    assert all(n.start >= p.end for p, n in zip(chunks, chunks[1:], strict=False))


def test_overlap_never_just_repeats_the_previous_chunk() -> None:
    """Short sentences followed by one that fills a chunk: no chunk may be a mere subset of another."""
    short = " ".join(f"Short sentence number {i}." for i in range(12))
    long = "This sentence is long " + " ".join(f"word{i}" for i in range(60)) + "."
    doc = make_doc(short + " " + long + " " + short)
    chunks = chunk_document(doc, max_tokens=80, overlap_tokens=30)
    assert_exact(doc, chunks)
    for a in chunks:
        for b in chunks:
            assert a is b or not (b.start <= a.start and a.end <= b.end)


def test_giant_sentence_is_cut_at_word_boundaries() -> None:
    words = [f"token{i}" for i in range(3000)]
    text = "Intro sentence. " + " ".join(words) + ". Outro sentence."
    doc = make_doc(text)
    chunks = chunk_document(doc, max_tokens=100, overlap_tokens=20)
    assert_exact(doc, chunks)
    counts = default_count_tokens([c.text for c in chunks])
    assert max(counts) <= 100 and len(chunks) > 10
    pieces = set()
    for c in chunks:
        pieces.update(c.text.replace(".", " ").split())
    assert set(words) <= pieces  # every word survives whole: cuts fall between words


def test_giant_word_without_spaces_is_cut_anyway() -> None:
    text = "Start. " + "中文字符" * 500 + " End."
    doc = make_doc(text)
    chunks = chunk_document(doc, max_tokens=64, overlap_tokens=8)
    assert_exact(doc, chunks)
    assert max(default_count_tokens([c.text for c in chunks])) <= 64
    assert "".join(c.text for c in chunks if "中" in c.text).count("中") >= 500


def test_pages_are_chunked_separately() -> None:
    pages_text = [article(1), article(2), "A short last page."]
    text = "\n\n".join(pages_text)
    spans, pos = [], 0
    for i, t in enumerate(pages_text, start=1):
        spans.append(PageSpan(i, pos, pos + len(t)))
        pos += len(t) + 2
    doc = make_doc(text, source="/docs/report.pdf", pages=tuple(spans))
    chunks = chunk_document(doc, max_tokens=64, overlap_tokens=16)
    assert_exact(doc, chunks)
    assert {c.page for c in chunks} == {1, 2, 3}
    for c in chunks:
        span = spans[c.page - 1]  # type: ignore[operator]
        assert span.start <= c.start and c.end <= span.end  # never crosses a page
        assert doc.page_at(c.start) == c.page
    assert chunks[-1].text == "A short last page." and chunks[-1].page == 3
    assert [c.page for c in chunks] == sorted(c.page for c in chunks)  # type: ignore[type-var]


def test_empty_pages_and_empty_documents() -> None:
    doc = make_doc("Only page two has text.", pages=(PageSpan(1, 0, 0), PageSpan(2, 0, 23)))
    chunks = chunk_document(doc)
    assert [(c.page, c.text) for c in chunks] == [(2, "Only page two has text.")]
    assert chunk_document(make_doc("   \n\n  ")) == []


def test_ids_are_stable_and_distinct() -> None:
    text = article(2)
    first = chunk_document(make_doc(text))
    again = chunk_document(make_doc(text))
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first)
    other = chunk_document(make_doc(text, source="/docs/copy-of-article.txt"))
    assert not {c.id for c in first} & {c.id for c in other}
    changed = chunk_document(make_doc(text + "One more sentence at the end."))
    assert not {c.id for c in first} & {c.id for c in changed}  # a new content hash means new ids


def test_custom_counter_is_used_in_one_batch() -> None:
    calls: list[int] = []

    def words(texts: list[str]) -> list[int]:
        calls.append(len(texts))
        return [len(t.split()) for t in texts]

    doc = make_doc(article(3))
    chunks = chunk_document(doc, max_tokens=50, overlap_tokens=10, count_tokens=words)
    assert_exact(doc, chunks)
    assert len(calls) == 1  # no sentence is over 50 words: the whole document was counted at once
    assert max(len(c.text.split()) for c in chunks) <= 50


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_bad_sizes(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_document(make_doc("Text."), max_tokens=max_tokens, overlap_tokens=overlap)


def test_vostok_article(vostok_dir: Path) -> None:
    from ingest.loaders import load_document

    doc = load_document(vostok_dir / "vostok-2022.txt")
    chunks = chunk_document(doc)
    assert_exact(doc, chunks)
    assert len(chunks) >= 2
    assert max(default_count_tokens([c.text for c in chunks])) <= 200
    needle = "China has sent more than 2,000 troops"
    assert any(needle in c.text for c in chunks)
    assert doc.text[chunks[0].start :].startswith(doc.text.strip()[:20])


# ------------------------------------------------------------------------------------------------ streaming


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream(doc: Document, size: int, **kwargs: int) -> list[Chunk]:
    return list(chunk_stream(pieces(doc.text, size), doc.source, doc.content_hash, **kwargs))


@pytest.mark.parametrize("size", [1, 97, 1000, 6000, 10**6])
def test_stream_gives_exactly_the_chunks_of_the_whole_text(size: int) -> None:
    """Windows are cut where a blank line ends and packing carries over: same chunks, same ids, any window."""
    doc = make_doc(article(8))
    assert chunk_document(doc, 64, 16) == stream(doc, size, max_tokens=64, overlap_tokens=16)
    assert chunk_document(doc) == stream(doc, size)


def test_stream_matches_on_awkward_whitespace_and_markdown() -> None:
    words = lambda texts: [max(1, len(t.split())) for t in texts]  # noqa: E731
    seps = ["\n\n", "\n \t\n", "\n\n\n", "\n", " ", "\n# Head\n", "\n- a\n- b\n", "\n| x | y |\n", "\n> q\n"]
    parts = []
    for i in range(400):
        parts.append(" ".join(f"w{i}x{j}" for j in range(i % 37 + 1)) + (". Dr. Who? Yes!" if i % 3 else ""))
        parts.append(seps[i % len(seps)])
    doc = make_doc("  \n\n" + "".join(parts))
    whole = chunk_document(doc, 20, 5, count_tokens=words)
    for size in (3, 50, 777):
        assert stream(doc, size, max_tokens=20, overlap_tokens=5, count_tokens=words) == whole


def test_stream_of_text_without_blank_lines_keeps_offsets_exact() -> None:
    """A log (no blank line) and one huge line: windows are cut at a line break, else at a space, else inside
    a word; chunks may differ from the whole-text ones there, but they slice back and cover everything."""
    log = "\n".join(f"2024-05-01 12:{i % 60:02d} worker {i} finished job {i * 7} in {i % 13} ms" for i in range(800))
    line = " ".join(f"word{i}" for i in range(4000))
    blob = "Start. " + "x" * 9000 + " End."
    for text in (log, line, blob):
        doc = make_doc(text)
        chunks = stream(doc, 500, max_tokens=48, overlap_tokens=8, hold=1200)
        assert_exact(doc, chunks)
        assert max(default_count_tokens([c.text for c in chunks])) <= 48
        covered = [False] * len(text)
        for c in chunks:
            covered[c.start : c.end] = [True] * (c.end - c.start)
        assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())
        assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_stream_of_nothing() -> None:
    assert list(chunk_stream([], "/x.txt", "0" * 64)) == []
    assert list(chunk_stream(["  \n", "\n\n  "], "/x.txt", "0" * 64)) == []


def test_chunks_do_not_span_long_runs_of_whitespace() -> None:
    """Two sentences 1 MB of padding apart are two chunks, whole text or streamed: a chunk never carries (nor
    makes the stream hold) the padding."""
    doc = make_doc("First sentence here." + " \n" * 500_000 + "Second sentence there.")
    whole = chunk_document(doc)
    assert [c.text for c in whole] == ["First sentence here.", "Second sentence there."]
    assert stream(doc, 4096) == whole
    near = make_doc("First sentence here." + " " * 300 + "Second sentence there.")
    assert len(chunk_document(near)) == 1
    gaps = [3, 999, 1000, 1001, 5000, 2, 70_000]
    mixed = make_doc("".join(PARAGRAPHS[i % len(PARAGRAPHS)] + " " * g for i, g in enumerate(gaps * 3)))
    for size in (777, 10**6):
        assert stream(mixed, size, max_tokens=64, overlap_tokens=16) == chunk_document(mixed, 64, 16)
