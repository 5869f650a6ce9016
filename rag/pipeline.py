"""`Citeqa`: the parts built once from `Settings` (lazily: `citeqa --help` loads nothing), and the
operations the CLI, the UI and the evaluator share. Answering is a LangChain runnable
(retrieve -> answer) so generative backends slot in beside the extractive one."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from rag.errors import CiteqaError, NotFoundError
from rag.settings import Settings
from rag.types import Answer, Hit, Turn

MAX_QUESTION_CHARS = 4000


class QuestionError(CiteqaError):
    """A question that cannot be asked as it is (empty, too long, no words)."""

    exit_code = 2


def check_question(question: str) -> str:
    """Return the question stripped, or raise QuestionError with what to do."""
    if question is not None and not isinstance(question, str):  # e.g. a number or a list sent through the API
        raise QuestionError(
            f"the question must be text, not {type(question).__name__}: send the question as a string"
        )
    q = (question or "").strip()
    if not q:
        raise QuestionError("the question is empty: type a question about your documents")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(q):,} characters long; the limit is {MAX_QUESTION_CHARS:,}: ask a shorter question"
        )
    if not any(ch.isalnum() for ch in q):
        raise QuestionError("the question has no words in it: type a question about your documents")
    return q


@dataclass(frozen=True)
class SourceInfo:
    source: str
    chunks: int
    content_hash: str
    size: int
    ingested_at: float
    pages: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "chunks": self.chunks,
            "content_hash": self.content_hash,
            "size": self.size,
            "ingested_at": self.ingested_at,
            "pages": self.pages,
        }


class Citeqa:
    def __init__(self, settings: Settings, *, embedder: Any = None) -> None:
        self.settings = settings
        self._settled: tuple[int, int] | None = None  # (store count, BM25 size) after the last repair
        if embedder is not None:
            self.__dict__["embedder"] = embedder

    # -- parts (built on first use) ----------------------------------------------------------------------
    @cached_property
    def embedder(self):  # -> rag.interfaces.Embedder
        from rag.embeddings import make_embedder

        return make_embedder(self.settings.embedder)

    @cached_property
    def query_embedder(self):  # -> rag.interfaces.Embedder
        """The embedder behind a small cache, for the question path (retrieval embeds the question, the answerer
        reuses its vector)."""
        from rag.embeddings import CachedEmbedder

        return CachedEmbedder(self.embedder)

    @cached_property
    def client(self):
        from rag.store import open_chroma_client

        return open_chroma_client(self.settings)

    @cached_property
    def store(self):
        from rag.store import ChromaStore

        return ChromaStore(self.client, self.settings.collection, self.settings.embedder, create=True)

    @cached_property
    def bm25(self):
        from rag.bm25 import BM25Index

        return BM25Index(self.settings.collection_dir / "bm25")

    @cached_property
    def texts(self):
        from ingest.texts import TextStore

        return TextStore(self.settings.collection_dir / "texts")

    @property
    def manifest_path(self) -> Path:
        return self.settings.collection_dir / "manifest.json"

    @cached_property
    def retriever(self):
        from rag.retrieve import HybridRetriever

        return HybridRetriever(
            self.query_embedder,
            self.store,
            self.bm25 if self.settings.hybrid else None,
            hybrid=self.settings.hybrid,
            expand=self.settings.expand,
            mmr=self.settings.mmr,
        )

    @cached_property
    def answerer(self):  # -> rag.interfaces.Answerer
        if self.settings.llm == "extractive":
            from rag.extractive import ExtractiveAnswerer

            return ExtractiveAnswerer(self.query_embedder, min_relevance=self.settings.min_relevance)
        from rag.llm import make_answerer

        return make_answerer(self.settings, self.query_embedder)

    @cached_property
    def ingestor(self):
        from ingest.runner import Ingestor

        return Ingestor(
            embedder=self.embedder,
            store=self.store,
            bm25=self.bm25,
            manifest_path=self.manifest_path,
            texts=self.texts,
            chunk_size=self.settings.chunk_size,
            chunk_overlap=self.settings.chunk_overlap,
            max_bytes=int(self.settings.max_file_mb * 2**20),
            max_text_chars=self.settings.max_text_chars,
            max_seconds=self.settings.max_ingest_seconds,
        )

    def lock(self, timeout: float = 0):
        """An inter-process lock on the collection's files, so two ingests never interleave."""
        from filelock import FileLock

        self.settings.collection_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.settings.collection_dir / "ingest.lock"), timeout=timeout)

    # -- operations ------------------------------------------------------------------------------------
    def ingest(self, paths: Sequence[Path], *, prune: bool = False, progress: bool = True, on_progress=None,
               commit_lock=None):
        """Ingest files/folders; returns ingest.runner.IngestReport. Raises BusyError if another ingest of
        this collection is running. ``commit_lock`` (e.g. the UI's per-collection write lock) is held only for
        each short write to the store and BM25 index, never while files are read, chunked or embedded."""
        from filelock import Timeout

        from rag.errors import BusyError

        try:
            with self.lock(timeout=0):
                if on_progress is None and progress:
                    return self._ingest_with_bar(paths, prune, commit_lock)
                return self.ingestor.ingest(paths, prune=prune, progress=on_progress, commit_lock=commit_lock)
        except Timeout:
            raise BusyError(
                f"another ingest into collection '{self.settings.collection}' is running: wait for it to finish"
            ) from None

    def _ingest_with_bar(self, paths: Sequence[Path], prune: bool, commit_lock=None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("[bold]ingest[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}", style="dim"),
            transient=True,
        ) as bar:
            task = bar.add_task("", total=None)

            def on_progress(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, description=Path(name).name if name else "")

            return self.ingestor.ingest(paths, prune=prune, progress=on_progress, commit_lock=commit_lock)

    def forget(self, path: str | Path) -> int:
        source = str(Path(path).expanduser().resolve())
        with self.lock(timeout=30):
            n = self.ingestor.forget(source)
        if n == 0:
            raise NotFoundError(f"{source} is not in collection '{self.settings.collection}': see `citeqa sources`")
        return n

    def sources(self) -> list[SourceInfo]:
        from ingest.manifest import Manifest

        manifest = Manifest.load(self.manifest_path)
        return [
            SourceInfo(e.source, e.chunks, e.content_hash, e.size, e.ingested_at, len(e.pages))
            for e in sorted(manifest.files.values(), key=lambda e: e.source)
        ]

    def document_text(self, source: str, max_bytes: int | None = None) -> str | None:
        """The extracted text of an ingested file (offsets of citations point into it). With ``max_bytes``, None
        when the stored text is bigger than that (a 200 MB log is not loaded to show 300 characters of it)."""
        from ingest.manifest import Manifest

        entry = Manifest.load(self.manifest_path).files.get(source)
        if entry and max_bytes is not None:
            size = self.texts.size(entry.content_hash)
            if size is not None and size > max_bytes:
                return None
        text = self.texts.load(entry.content_hash) if entry else None
        if text is None:
            raise NotFoundError(f"{source} is not in collection '{self.settings.collection}'")
        return text

    def _repair_if_crashed(self, count: int | None = None) -> bool:
        """A crashed ingest leaves its marker: repair store, BM25 index and manifest before answering
        (skipped while another process is ingesting: that one repairs and finishes). ``count`` is the
        store's chunk count when the caller has it. Returns whether a repair ran."""
        from filelock import Timeout

        crashed = (self.settings.collection_dir / "ingest.incomplete").exists()
        count = self.store.count() if count is None else count
        # a store holding chunks this data dir does not list (a shared Chroma collection) keeps disagreeing with
        # the BM25 index: one repair (and its one warning) per change of the two, not one per question
        settled = self._settled == (count, len(self.bm25))
        bm25_off = self.settings.hybrid and not settled and (
            getattr(self.bm25, "damaged", False) or len(self.bm25) != count
        )
        if not (crashed or bm25_off):
            return False
        try:
            with self.lock(timeout=0):
                self.ingestor.repair()  # mends the same BM25 object the retriever holds
                self._settled = (self.store.count(), len(self.bm25))
                return True
        except Timeout:
            return False

    def _check_ready(self) -> None:
        count = self.store.count()
        if self._repair_if_crashed(count):
            count = self.store.count()
        if count == 0:
            raise NotFoundError(
                f"collection '{self.settings.collection}' is empty: run `citeqa ingest PATH"
                f"{'' if self.settings.collection == 'default' else ' --collection ' + self.settings.collection}`"
                " first"
            )

    def retrieve(self, query: str, k: int | None = None, source: str | None = None) -> list[Hit]:
        return self.retriever.retrieve(query, k or self.settings.k, source=source)

    def query_for(self, question: str, history: Sequence[Turn]) -> str:
        """The standalone query to retrieve with, given the conversation so far."""
        if not history:
            return question
        rewrite = getattr(self.answerer, "rewrite", None)
        if callable(rewrite):
            return rewrite(question, history)
        from rag.extractive import contextualize

        return contextualize(question, history)

    def _retrieve_for(
        self, question: str, history: Sequence[Turn], k: int | None, source: str | None
    ) -> tuple[str, list[Hit], float]:
        """(standalone query, hits, milliseconds): the retrieve stage shared by ask's chain and stream."""
        t0 = time.perf_counter()
        query = self.query_for(question, history)
        hits = self.retrieve(query, k, source)
        return query, hits, (time.perf_counter() - t0) * 1000

    def chain(self):
        """The answering chain as a LangChain runnable: {question, history, k, source} -> Answer."""
        from langchain_core.runnables import RunnableLambda

        def retrieve_step(inp: dict[str, Any]) -> dict[str, Any]:
            query, hits, ms = self._retrieve_for(inp["question"], inp.get("history", ()), inp.get("k"),
                                                 inp.get("source"))
            return {**inp, "query": query, "hits": hits, "retrieve_ms": ms}

        def answer_step(inp: dict[str, Any]) -> Answer:
            t0 = time.perf_counter()
            ans = self.answerer.answer(inp["question"], inp["hits"], tuple(inp.get("history", ())))
            timings = dict(ans.timings)
            timings["retrieve"] = inp["retrieve_ms"]
            timings["answer"] = (time.perf_counter() - t0) * 1000
            return _with(ans, timings=timings, query=inp["query"], question=inp["question"])

        return RunnableLambda(retrieve_step, name="retrieve") | RunnableLambda(answer_step, name="answer")

    def ask(
        self, question: str, k: int | None = None, history: Sequence[Turn] = (), source: str | None = None
    ) -> Answer:
        q = check_question(question)
        t0 = time.perf_counter()
        self._check_ready()
        ans = self.chain().invoke({"question": q, "history": tuple(history), "k": k, "source": source})
        timings = dict(ans.timings)
        timings["total"] = (time.perf_counter() - t0) * 1000
        return _with(ans, timings=timings)

    def stream(
        self, question: str, k: int | None = None, history: Sequence[Turn] = (), source: str | None = None
    ) -> Iterator[str | Answer]:
        """Yield answer text as it is produced, then the final Answer. Backends without streaming yield
        the whole answer text once."""
        q = check_question(question)
        t0 = time.perf_counter()
        self._check_ready()
        query, hits, retrieve_ms = self._retrieve_for(q, history, k, source)
        t1 = time.perf_counter()
        stream = getattr(self.answerer, "stream", None)
        final: Answer | None = None
        if callable(stream):
            for part in stream(q, hits, tuple(history)):
                if isinstance(part, Answer):
                    final = part
                else:
                    yield part
        else:
            final = self.answerer.answer(q, hits, tuple(history))
            yield final.answer
        assert final is not None
        timings = dict(final.timings)
        timings.update(retrieve=retrieve_ms, answer=(time.perf_counter() - t1) * 1000,
                       total=(time.perf_counter() - t0) * 1000)
        yield _with(final, timings=timings, query=query, question=q)


def _with(ans: Answer, *, timings: dict[str, float], query: str | None = None, question: str | None = None) -> Answer:
    from dataclasses import replace

    changes: dict[str, Any] = {"timings": timings}
    if query is not None and question is not None and query != question:
        changes["standalone_question"] = query
    return replace(ans, **changes)
