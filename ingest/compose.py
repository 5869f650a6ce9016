"""The composition root: ``Citeqa`` builds a :class:`~ingest.collection.Collection` and a
:class:`~rag.asker.Asker` from :class:`~rag.settings.Settings`, for the CLI, the Gradio app and ``citeqa eval``
alike. It is the one place that knows which implementation of each part goes with which setting.

    file -> loaders -> chunks -> embedder -> Chroma store + BM25 index     (Collection.ingest)
    question -> rewriter -> retriever (dense + BM25) -> hits -> answerer -> Answer with citations   (Asker)

Parts are built on first use (``citeqa --help`` loads nothing). A session variant (another backend, hybrid off)
is a new ``Citeqa`` over the same ``Collection``: ``Citeqa(variant_settings, collection=base.collection)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from ingest.collection import Collection, SourceInfo
from ingest.runner import IngestReport
from rag.asker import Asker, ElidedFollowUps
from rag.interfaces import Answerer, Embedder, Retriever, Rewriter
from rag.settings import Settings
from rag.types import Answer, Hit, Turn

__all__ = ["Citeqa", "SourceInfo", "make_rewriter_for"]


def make_rewriter_for(answerer: Answerer) -> Rewriter:
    """A generative answerer rewrites follow-ups with its model (and remembers the rewrite for its own answer);
    without a model, elliptic follow-ups are joined to the question they follow."""
    from rag.generative import GenerativeAnswerer

    return answerer if isinstance(answerer, GenerativeAnswerer) else ElidedFollowUps()


class Citeqa:
    """One collection and the question path over it, built from ``settings``. ``embedder``: a shared embedder
    (else built on first use); ``collection``: an existing Collection to answer over (a session variant)."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None,
                 collection: Collection | None = None) -> None:
        self.settings = settings
        self.collection = collection or Collection(settings, embedder=embedder)
        if embedder is not None:
            self.__dict__["embedder"] = embedder

    # -- parts ---------------------------------------------------------------------------------------------
    @cached_property
    def embedder(self) -> Embedder:
        return self.collection.embedder

    @cached_property
    def query_embedder(self) -> Embedder:
        """The embedder behind a small cache, for the question path: a sentence quoted again in a conversation, or
        a question asked again, is not embedded twice (the question's vector reaches the answerer in its
        Retrieval)."""
        from rag.embeddings import CachedEmbedder

        return CachedEmbedder(self.embedder)

    @cached_property
    def retriever(self) -> Retriever:
        from rag.retrieve import HybridRetriever

        s = self.settings
        c = self.collection
        return HybridRetriever(self.query_embedder, c.searchable, c.bm25 if s.hybrid else None,
                               hybrid=s.hybrid, expand=s.expand, mmr=s.mmr)

    @cached_property
    def answerer(self) -> Answerer:
        from rag.llm import make_answerer  # the extractive one, or a generative one over its chat model

        # a generative answerer searches once more for what its model names as missing (the second hop)
        return make_answerer(self.settings, self.query_embedder, retrieve=self.retriever.retrieve)

    @cached_property
    def asker(self) -> Asker:
        return Asker(make_rewriter_for(self.answerer), self.retriever, self.answerer, k=self.settings.k,
                     ready=self.collection.ensure_ready)

    # the collection's parts, for callers that need them (tests, the UI's library)
    @property
    def store(self) -> Any:
        return self.collection.store

    @property
    def bm25(self) -> Any:
        return self.collection.bm25

    @property
    def texts(self) -> Any:
        return self.collection.texts

    # -- the collection's operations ----------------------------------------------------------------------
    def ingest(self, paths: Sequence[Path], *, prune: bool = False, progress: bool = True,
               on_progress: Callable[[int, int, str], None] | None = None, commit_lock: Any = None) -> IngestReport:
        return self.collection.ingest(paths, prune=prune, progress=progress, on_progress=on_progress,
                                      commit_lock=commit_lock)

    def forget(self, path: str | Path) -> int:
        return self.collection.forget(path)

    def sources(self) -> list[SourceInfo]:
        return self.collection.sources()

    def document_text(self, source: str, max_bytes: int | None = None) -> str | None:
        return self.collection.document_text(source, max_bytes=max_bytes)

    # -- the question path ---------------------------------------------------------------------------------
    def retrieve(self, query: str, k: int | None = None, source: str | None = None) -> list[Hit]:
        return self.asker.retrieve(query, k, source)

    def chain(self) -> Any:
        return self.asker.chain()

    def ask(self, question: Any, k: int | None = None, history: Sequence[Turn] = (),
            source: str | None = None) -> Answer:
        return self.asker.ask(question, k=k, history=history, source=source)

    def stream(self, question: Any, k: int | None = None, history: Sequence[Turn] = (),
               source: str | None = None) -> Iterator[str | Answer]:
        return self.asker.stream(question, k=k, history=history, source=source)
