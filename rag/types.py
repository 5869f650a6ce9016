"""Plain records passed between the stages: ingest -> store -> retrieve -> answer -> evaluate.

Frozen dataclasses inside the system; JSON conversion happens at the edges (CLI, UI, eval files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class PageSpan:
    """Page ``page`` (1-based) covers ``text[start:end]`` of the extracted document text."""

    page: int
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """The extracted text of one file. Every offset elsewhere points into ``text``."""

    source: str  # absolute, resolved path of the file
    text: str
    content_hash: str  # sha256 of the raw file bytes
    pages: tuple[PageSpan, ...] = ()  # empty for formats without pages
    mime: str = "text/plain"

    def page_at(self, offset: int) -> int | None:
        for span in self.pages:
            if span.start <= offset < span.end:
                return span.page
        return self.pages[-1].page if self.pages and offset >= self.pages[-1].start else None


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: ``document.text[start:end] == text``."""

    id: str  # stable, derived from source, offsets and content
    source: str
    text: str
    start: int
    end: int
    page: int | None = None
    index: int = 0  # ordinal of the chunk inside its document
    doc_hash: str = ""  # content hash of the file the chunk came from

    def metadata(self) -> dict[str, Any]:
        """Flat metadata for the vector store (no None values: Chroma rejects them)."""
        meta: dict[str, Any] = {
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "index": self.index,
            "doc_hash": self.doc_hash,
        }
        if self.page is not None:
            meta["page"] = self.page
        return meta

    @classmethod
    def from_metadata(cls, id: str, text: str, meta: dict[str, Any]) -> Chunk:
        return cls(
            id=id,
            source=str(meta["source"]),
            text=text,
            start=int(meta["start"]),
            end=int(meta["end"]),
            page=int(meta["page"]) if meta.get("page") is not None else None,
            index=int(meta.get("index", 0)),
            doc_hash=str(meta.get("doc_hash", "")),
        )


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with the scores that ranked it (higher is better for all of them)."""

    chunk: Chunk
    score: float  # the score the final ranking used (RRF when hybrid, cosine similarity when dense only)
    dense_score: float | None = None  # cosine similarity
    bm25_score: float | None = None
    rank: int = 0  # 1-based position in the final ranking


@dataclass(frozen=True)
class Retrieval:
    """What the retrieve stage hands the answerer: the standalone ``query`` it searched with (the question, or
    the rewrite of a follow-up), that query's embedding ``vector`` (None when it was not embedded) and the
    ``hits``, best first. An answerer answers ``query`` and does not rewrite or embed it again."""

    query: str
    hits: tuple[Hit, ...] = ()
    vector: Any = field(default=None, compare=False, repr=False)  # a numpy array of the embedder's dimension

    @classmethod
    def of(cls, hits: Any, query: Callable[[], str]) -> Retrieval:
        """``hits`` as a Retrieval: the Asker's is kept as it is; plain hits (tests, tools) are wrapped with the
        query ``query()`` makes (the answerer completes a follow-up itself then; only called for plain hits)."""
        return hits if isinstance(hits, Retrieval) else cls(query(), tuple(hits))


@dataclass(frozen=True)
class Citation:
    """An inline marker ``[n]`` resolved to an exact span of a source document."""

    n: int
    source: str
    page: int | None
    start: int  # offsets into the extracted text of ``source``
    end: int
    text: str  # the cited span, verbatim
    score: float
    chunk_id: str = ""
    supported: bool | None = None  # result of the support check, None when not checked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Turn:
    """One exchange of a conversation, for history-aware follow-ups."""

    question: str
    answer: str


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str  # the full answer text with inline [n] markers
    short_answer: str | None
    abstained: bool
    citations: tuple[Citation, ...] = ()
    hits: tuple[Hit, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per stage
    unsupported_sentences: tuple[str, ...] = ()
    backend: str = "extractive"
    standalone_question: str | None = None  # the rewritten question, when history was used
    notes: tuple[str, ...] = ()  # e.g. "fell back to extractive evidence"

    def to_dict(self) -> dict[str, Any]:
        """The ``ask --json`` object."""
        return {
            "question": self.question,
            "answer": self.answer,
            "short_answer": self.short_answer,
            "abstained": self.abstained,
            "citations": [c.to_dict() for c in self.citations],
            "unsupported_sentences": list(self.unsupported_sentences),
            "backend": self.backend,
            "standalone_question": self.standalone_question,
            "notes": list(self.notes),
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
            "retrieved": [
                {
                    "rank": h.rank,
                    "source": h.chunk.source,
                    "page": h.chunk.page,
                    "start": h.chunk.start,
                    "end": h.chunk.end,
                    "score": h.score,
                    "dense_score": h.dense_score,
                    "bm25_score": h.bm25_score,
                    "chunk_id": h.chunk.id,
                }
                for h in self.hits
            ],
        }


ABSTAIN_TEXT = "I could not find this in the documents."
# How an answer opens when the sources state different values; citeqa's own framing, not a claim of the documents
# (the support check reads the sentence without it).
CONFLICT_LEAD = "The documents disagree:"
