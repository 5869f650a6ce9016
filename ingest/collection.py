"""``Collection``: the one owner of a collection's state — the Chroma store, the BM25 index, the extracted texts,
the manifest, the inter-process lock and the crash journal — and what is done to it: ingest, forget, list its
sources, give a document's text, repair it after a crash. Nothing else opens those files.

On a Chroma server (``CITEQA_CHROMA``) everything a question needs is on the server (issue 16): the chunks, and in
the collection's ledger (ingest/ledger.py) the manifest records, the texts, the committed version and the ingest
lock that every replica sees. Each process answers from its in-memory view at the committed version
(ingest/replica.py), brought up to date before each question; the data directory keeps only the working copy of
the manifest an ingest edits, uploads and caches. The embedded mode is what it always was.

Parts are built on first use, so a command that only lists sources never loads the embedding model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ingest.loaders.ocr import OcrOptions
from ingest.manifest import FileEntry, Manifest
from ingest.runner import Ingestor, IngestReport
from ingest.texts import TextStore
from rag.bm25 import BM25Index
from rag.errors import BusyError, NotFoundError
from rag.interfaces import Embedder
from rag.settings import Settings
from rag.store import ChromaStore


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


class Collection:
    """A collection's state and its operations. ``embedder`` is built on first need by ``make_embedder`` when not
    given (the composition root passes one shared embedder); ``client`` is the Chroma client to use (one per
    process and data directory), opened from the settings when not given."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None,
                 client: Any = None) -> None:
        self.settings = settings
        self.name = settings.collection
        self.dir = settings.collection_dir
        self._embedder = embedder
        self._client = client
        self._settled: tuple[int, int] | None = None  # (store count, BM25 size) after the last repair
        # server mode, while this process holds the ledger's lock: what the ledger has committed (source ->
        # entry), the lock, and the generation the chunks written now will be visible in
        self._published: dict[str, FileEntry] = {}
        self._held: Any = None
        self._next_gen = 0

    @property
    def shared(self) -> bool:
        """On a Chroma server: the collection's state is the server's, shared by every process using it."""
        return self.settings.chroma_host_port is not None

    # -- parts (built on first use) ----------------------------------------------------------------------
    @cached_property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from rag.embeddings import make_embedder

            return make_embedder(self.settings.embedder, cache_dir=self.settings.cache_dir)
        return self._embedder

    @cached_property
    def client(self) -> Any:
        if self._client is not None:
            return self._client
        from rag.store import open_chroma_client

        return open_chroma_client(self.settings)

    @cached_property
    def store(self) -> ChromaStore:
        return ChromaStore(self.client, self.name, self.settings.embedder, create=True)

    @cached_property
    def bm25(self) -> Any:  # BM25Index, or on a Chroma server the replica's view (same search/linked)
        return self.replica if self.shared else BM25Index(self.dir / "bm25")

    @cached_property
    def texts(self) -> Any:  # TextStore, or on a Chroma server the ledger's texts (same interface)
        local = TextStore(self.dir / "texts")
        if not self.shared:
            return local
        from ingest.replica import SharedTexts

        return SharedTexts(self.ledger, local)

    @cached_property
    def ledger(self) -> Any:  # ingest.ledger.Ledger: server mode only
        from ingest.ledger import Ledger

        return Ledger(self.client, self.name)

    @cached_property
    def replica(self) -> Any:  # ingest.replica.Replica: server mode only
        from ingest.replica import Replica

        return Replica(self.ledger, self.store, self.dir / "replica-bm25")

    @cached_property
    def searchable(self) -> Any:
        """The chunk store as questions see it: on a Chroma server, only what the replica's view has committed."""
        if not self.shared:
            return self.store
        from ingest.replica import CommittedStore

        return CommittedStore(self.store, self.replica)

    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    @property
    def marker(self) -> Path:
        return self.dir / "ingest.incomplete"

    @cached_property
    def ingestor(self) -> Ingestor:
        s = self.settings
        shared: dict[str, Any] = {}
        store: Any = self.store
        if self.shared:
            from ingest.replica import StampedWrites

            store = StampedWrites(self.store, lambda: self._next_gen)
            shared = {"checkpoint_seconds": 0.0, "publish": self._publish}  # each batch committed when stored
        return Ingestor(
            embedder=self.embedder,
            store=store,
            bm25=None if self.shared else self.bm25,
            manifest_path=self.manifest_path,
            texts=self.texts,
            chunk_size=s.chunk_size,
            chunk_overlap=s.chunk_overlap,
            max_bytes=int(s.max_file_mb * 2**20),
            max_text_chars=s.max_text_chars,
            max_seconds=s.max_ingest_seconds,
            ocr=OcrOptions(enabled=s.ocr, max_pages=s.ocr_max_pages),
            **shared,
        )

    def lock(self, timeout: float = 0) -> Any:
        """An inter-process lock on the collection's files, so two ingests never interleave."""
        from filelock import FileLock

        self.dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.dir / "ingest.lock"), timeout=timeout)

    # -- operations ------------------------------------------------------------------------------------
    def ingest(self, paths: Sequence[Path], *, prune: bool = False, progress: bool = True,
               on_progress: Callable[[int, int, str], None] | None = None, commit_lock: Any = None) -> IngestReport:
        """Ingest files/folders. Raises BusyError if another ingest of this collection is running.
        ``commit_lock`` (e.g. the UI's per-collection write lock) is held only for each short write to the store
        and BM25 index, never while files are read, chunked or embedded."""
        from filelock import Timeout

        try:
            with self.lock(timeout=0), self._writing(timeout=0):
                if on_progress is None and progress:
                    return self._ingest_with_bar(paths, prune, commit_lock)
                return self.ingestor.ingest(paths, prune=prune, progress=on_progress, commit_lock=commit_lock)
        except Timeout:
            raise BusyError(f"another ingest into collection '{self.name}' is running: wait for it to finish") from None

    def _ingest_with_bar(self, paths: Sequence[Path], prune: bool, commit_lock: Any = None) -> IngestReport:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("[bold]ingest[/]"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      TextColumn("{task.description}", style="dim"), transient=True) as bar:
            task = bar.add_task("", total=None)
            pages = None  # a second bar while a file's pages are read by OCR

            def on_progress(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, description=Path(name).name if name else "")

            def on_page(done: int, total: int, name: str) -> None:
                nonlocal pages
                if pages is None:
                    pages = bar.add_task("", total=total)
                bar.update(pages, completed=done, total=total, description=f"OCR {Path(name).name}")
                if done >= total:
                    bar.remove_task(pages)
                    pages = None

            return self.ingestor.ingest(paths, prune=prune, progress=on_progress, commit_lock=commit_lock,
                                        page_progress=on_page)

    def forget(self, path: str | Path) -> int:
        source = str(Path(path).expanduser().resolve())
        with self.lock(timeout=30), self._writing(timeout=30):
            n = self.ingestor.forget(source)
        if n == 0:
            raise NotFoundError(f"{source} is not in collection '{self.name}': see `citeqa sources`")
        return n

    # -- server mode: the ledger's lock and commits -----------------------------------------------------
    @contextmanager
    def _writing(self, timeout: float) -> Iterator[None]:
        """On a Chroma server, around an ingest or forget: the ledger's lock (BusyError when another process on
        any machine holds it); what a killed ingest left is deleted; the working manifest is made the committed
        one; chunks are written for the next version. A no-op in embedded mode (the file lock is enough)."""
        if not self.shared:
            yield
            return
        with self.ledger.hold(timeout=timeout) as held:
            st = self.ledger.discard_uncommitted(held)
            self.store.delete_newer(st.version)
            view = self.replica.sync()
            self._published = copy.deepcopy(view.files)
            Manifest(self.manifest_path, copy.deepcopy(view.files)).save()
            self.ingestor.journal.finish()  # this data dir's own crash journal: the ledger's generations replace it
            self._held, self._next_gen = held, st.version + 1
            try:
                yield
            finally:
                self._held = None
        self.replica.sync()  # this process's own writes are in its view at once

    def _publish(self, manifest: Manifest) -> None:
        """Commit what changed in the working manifest since the last commit (the Ingestor's checkpoint)."""
        if self._held is None:
            return
        changes: dict[str, FileEntry | None] = {
            s: e for s, e in manifest.files.items() if self._published.get(s) != e
        }
        changes.update({s: None for s in self._published if s not in manifest.files})
        if not changes:
            return
        version = self.ledger.commit(changes, self._held)
        self._published = copy.deepcopy(manifest.files)
        self._next_gen = version + 1

    def _files(self) -> dict[str, FileEntry]:
        """The collection's files: on a Chroma server the replica's committed view (brought up to date), else
        this data directory's manifest."""
        return self.replica.sync().files if self.shared else Manifest.load(self.manifest_path).files

    def sources(self) -> list[SourceInfo]:
        return [
            SourceInfo(e.source, e.chunks, e.content_hash, e.size, e.ingested_at, len(e.pages))
            for e in sorted(self._files().values(), key=lambda e: e.source)
        ]

    def document_text(self, source: str, max_bytes: int | None = None) -> str | None:
        """The extracted text of an ingested file (offsets of citations point into it). With ``max_bytes``, None
        when the stored text is bigger than that (a 200 MB log is not loaded to show 300 characters of it)."""
        entry = self._files().get(source)
        if entry and max_bytes is not None:
            size = self.texts.size(entry.content_hash)
            if size is not None and size > max_bytes:
                return None
        text = self.texts.load(entry.content_hash) if entry else None
        if text is None:
            raise NotFoundError(f"{source} is not in collection '{self.name}'")
        return text

    def ensure_repaired(self, count: int | None = None) -> bool:
        """A crashed ingest leaves its marker: repair store, BM25 index and manifest before answering
        (skipped while another process is ingesting: that one repairs and finishes). ``count`` is the
        store's chunk count when the caller has it. Returns whether a repair ran."""
        from filelock import Timeout

        if self.shared:  # nothing to repair here: readers see only committed versions, writers clean up first
            return False
        crashed = self.marker.exists()
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

    def ensure_ready(self) -> None:
        """Before a question: repair after a crash (on a Chroma server: bring the view up to the committed
        version), and refuse an empty collection with what to do."""
        if self.shared:
            count = len(self.replica.sync().ids)
        else:
            count = self.store.count()
            if self.ensure_repaired(count):
                count = self.store.count()
        if count == 0:
            raise NotFoundError(
                f"collection '{self.name}' is empty: run `citeqa ingest PATH"
                f"{'' if self.name == 'default' else ' --collection ' + self.name}` first"
            )
