"""One small interface per swappable part. Implementations live beside them (embeddings.py, store.py,
retrieve.py, answer_*.py); convenience is built on top, never inside these."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.types import Answer, Chunk, Hit, Retrieval, Turn


@runtime_checkable
class Embedder(Protocol):
    name: str  # e.g. "minilm"; stored with the collection so queries use a compatible model
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, dim) float32 array of L2-normalised embeddings."""
        ...


@runtime_checkable
class VectorStore(Protocol):
    def upsert(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None: ...

    def delete_source(self, source: str) -> int:
        """Remove every chunk of ``source``; return how many were removed."""
        ...

    def query(self, embedding: np.ndarray, k: int, source: str | None = None) -> list[tuple[Chunk, float]]:
        """Top-k chunks by cosine similarity (higher is better), optionally only from ``source``."""
        ...

    def count(self) -> int: ...

    def iter_chunks(self) -> Iterator[Chunk]: ...

    def get(self, ids: Sequence[str]) -> list[Chunk]: ...


@runtime_checkable
class Retriever(Protocol):
    def retrieve(self, query: str, k: int, source: str | None = None) -> list[Hit]: ...

    def search(self, query: str, k: int, source: str | None = None) -> Retrieval:
        """``retrieve`` as the record an answerer gets: the query, its embedding (or None) and the hits."""
        ...


@runtime_checkable
class Rewriter(Protocol):
    def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        """The standalone question to retrieve with, given the conversation so far (only called with history)."""
        ...


@runtime_checkable
class Answerer(Protocol):
    """Answers ``question`` from what retrieval found. The Asker passes a :class:`~rag.types.Retrieval` (the
    standalone query, already rewritten, and its vector): the answerer neither rewrites nor embeds it again.
    Plain hits are accepted too (tests, calibration tools); the answerer then completes a follow-up itself."""

    name: str

    def answer(self, question: str, hits: Retrieval | Sequence[Hit], history: Sequence[Turn] = ()) -> Answer: ...

    def stream(self, question: str, hits: Retrieval | Sequence[Hit],
               history: Sequence[Turn] = ()) -> Iterator[str | Answer]:
        """Yield the answer text as it is produced, then the final Answer."""
        ...


@runtime_checkable
class Verifier(Protocol):
    name: str

    def judge(self, question: str, passages: Sequence[str]) -> Any:
        """A ``rag.verify.Judgement``: the probability (``p_yes``) that ``passages`` state the answer to
        ``question``, and what the judgement cost."""
        ...
