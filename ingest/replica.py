"""A replica's view of a collection on a Chroma server (issue 16): the committed manifest and the BM25 index derived
from it, at the ledger's committed version, kept in memory and brought up to date before each question.

``sync`` costs one small read (the ledger's ``state``) when nothing changed. When the version moved, the file
records of the commits since are read (only those: each record carries the version that wrote it), the chunks
of the files that changed are fetched, and a new BM25 index is derived from the old one and swapped in; the
old one keeps answering the questions already running. Its chunks are always in one canonical order (sources
sorted, then each file's chunks in order), so every replica scores and breaks ties alike, whatever order it
saw the commits in.

``CommittedStore`` is the chunk store as questions see it: only chunks the view's manifest lists (and, when
others come up, only chunks of a generation at most the view's version), so nothing of an ingest still
running, or killed, is an answer. ``SharedTexts`` keeps extracted texts in the ledger, with a local cache by
content hash (a text under a hash never changes, so the cache is never stale).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingest.ledger import Ledger
from ingest.manifest import FileEntry
from ingest.texts import TextStore
from rag.bm25 import BM25Index
from rag.errors import StoreError
from rag.types import Chunk

SYNC_TRIES = 20  # a view is read again this many times while commits keep overwriting it (50 ms apart)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class View:
    """What one committed version of the collection is: its files, their chunk ids, the BM25 index over them."""

    version: int
    files: dict[str, FileEntry] = field(default_factory=dict)
    ids: frozenset[str] = frozenset()
    bm25: BM25Index | None = None


def canonical_ids(files: dict[str, FileEntry]) -> list[str]:
    return [cid for source in sorted(files) for cid in files[source].chunk_ids]


class Replica:
    """The in-memory view of one collection (implements the lexical side of ``HybridRetriever``: ``search``,
    ``linked``). ``scratch`` is a directory the derived BM25 index is named after; nothing is written there."""

    def __init__(self, ledger: Ledger, store: Any, scratch: Path) -> None:
        self.ledger = ledger
        self.store = store  # rag.store.ChromaStore
        self._scratch = scratch
        self._view = View(-1)
        self._mutex = threading.Lock()

    @property
    def view(self) -> View:
        """The view questions use: the last one synced (``Asker.ready`` syncs before each question), or a first
        one read now."""
        view = self._view
        return view if view.version >= 0 else self.sync()

    # -- keeping up ---------------------------------------------------------------------------------------
    def sync(self) -> View:
        """The view at the ledger's committed version (read again only when it moved)."""
        st = self.ledger.state()
        if st.version == self._view.version and not st.writing:
            return self._view
        with self._mutex:
            for _ in range(SYNC_TRIES):
                # a commit whose process died while writing it (``stale_write``) left records of a generation
                # past the version, which the read leaves out: the version itself can be read
                settled = not st.writing or st.stale_write
                if st.version == self._view.version and settled:
                    return self._view
                view = self._next(st) if settled else None
                if view is not None:
                    self._view = view
                    return view
                if self._view.version >= 0:  # a commit is writing: answer from the view we have
                    return self._view
                time.sleep(0.05)
                st = self.ledger.state()
        raise StoreError(f"collection '{self.ledger.collection}': the ledger kept changing while it was read: "
                         "ask again")

    def _next(self, st: Any) -> View | None:
        old = self._view if 0 <= self._view.version <= st.version else View(0)  # a restored backup: from scratch
        records = self.ledger.files_between(old.version, st.version)
        if self.ledger.state().seq != st.seq:  # a commit overwrote records while they were read
            return None
        files = dict(old.files)
        changed: set[str] = set()
        for rec in records:
            before = files.get(rec.source)
            if rec.entry is None:
                files.pop(rec.source, None)
            else:
                files[rec.source] = rec.entry
            if (before.chunk_ids if before else None) != (rec.entry.chunk_ids if rec.entry else None):
                changed.add(rec.source)
        fresh = [cid for s in sorted(changed) if s in files for cid in files[s].chunk_ids]
        chunks = self.store.get(fresh) if fresh else []
        if len(chunks) != len(fresh):  # a committed file whose chunks are gone: an outside change, say so
            log.warning("citeqa: warning: collection '%s': %d committed chunk(s) are missing from the store",
                        self.ledger.collection, len(fresh) - len(chunks))
        base = old.bm25 if old.bm25 is not None else BM25Index(self._scratch)
        bm25 = base.derived(drop_sources=changed, add=chunks, order=canonical_ids(files))
        bm25.prepare()  # built here, once: questions on many threads then only read it
        return View(st.version, files, frozenset(cid for e in files.values() for cid in e.chunk_ids), bm25)

    # -- the lexical side ------------------------------------------------------------------------------------
    def _bm25(self) -> BM25Index:
        bm25 = self.view.bm25
        return bm25 if bm25 is not None else BM25Index(self._scratch)

    def search(self, query: str, k: int, source: str | None = None) -> list[tuple[str, float]]:
        return self._bm25().search(query, k, source=source)

    def linked(self, text: str, k: int, exclude_sources: Iterable[str] = (), source: str | None = None) -> list[str]:
        return self._bm25().linked(text, k, exclude_sources=exclude_sources, source=source)

    def __len__(self) -> int:
        return len(self.view.ids)

    def ids(self) -> set[str]:
        return set(self.view.ids)

    def sources(self) -> set[str]:
        return set(self.view.files)

    damaged = None  # the view is read from Chroma, never from a file that can be torn


class CommittedStore:
    """The chunk store as a question sees it (``query``, ``get``, ``get_with_embeddings``, ``count``): chunks of the
    replica's committed view only."""

    def __init__(self, store: Any, replica: Replica) -> None:
        self._store = store
        self._replica = replica

    @property
    def name(self) -> str:
        return self._store.name

    def query(self, embedding: np.ndarray, k: int, source: str | None = None) -> list[tuple[Chunk, float]]:
        """Committed chunks only. Asked first without Chroma's generation filter (a filtered KNN query costs 6-7x an
        open one at 10k chunks, 25-30x at 50k: bench_replicas.py --scale), and again with it only when chunks the
        view does not list were among the answers (an ingest running, or this view one commit behind), so that
        ``k`` committed chunks still come back."""
        view = self._replica.view
        hits = self._store.query(embedding, k, source=source)
        kept = [(c, s) for c, s in hits if c.id in view.ids]
        if len(kept) < len(hits):
            hits = self._store.query(embedding, k, source=source, upto=view.version)
            kept = [(c, s) for c, s in hits if c.id in view.ids]
        return kept

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        view = self._replica.view
        return self._store.get([i for i in ids if i in view.ids])

    def get_with_embeddings(self, ids: Sequence[str]) -> tuple[list[Chunk], np.ndarray]:
        view = self._replica.view
        return self._store.get_with_embeddings([i for i in ids if i in view.ids])

    def count(self) -> int:
        return len(self._replica.view.ids)


class StampedWrites:
    """The chunk store as an ingest holding the ledger's lock writes to it: every chunk upserted carries the
    generation whose commit will make it visible (``generation()``, asked at each write)."""

    def __init__(self, store: Any, generation: Callable[[], int]) -> None:
        self._store = store
        self._generation = generation

    def upsert(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        from rag.store import GEN_KEY

        self._store.upsert(chunks, embeddings, extra={GEN_KEY: self._generation()})

    def __getattr__(self, name: str) -> Any:  # every other call (delete, get, counts) is the store's own
        return getattr(self._store, name)


class SharedTexts:
    """``ingest.texts.TextStore``'s interface over the ledger, with a local read cache."""

    def __init__(self, ledger: Ledger, cache: TextStore) -> None:
        self._ledger = ledger
        self._cache = cache

    def save(self, content_hash: str, text: str) -> None:
        self._ledger.save_text(content_hash, text)

    @contextmanager
    def writer(self, content_hash: str) -> Iterator[Callable[[str], object]]:
        """A text written in pieces (a big streamed file): held here until the block ends without an exception,
        then stored in parts."""
        pieces: list[str] = []
        yield pieces.append
        self._ledger.save_text(content_hash, "".join(pieces))

    def size(self, content_hash: str) -> int | None:
        local = self._cache.size(content_hash)
        return local if local is not None else self._ledger.text_size(content_hash)

    def load(self, content_hash: str) -> str | None:
        text = self._cache.load(content_hash)
        if text is None:
            text = self._ledger.load_text(content_hash)
            if text is not None:
                try:
                    self._cache.save(content_hash, text)
                except OSError as exc:  # a read-only data dir: still show it
                    log.warning("citeqa: warning: could not cache a text locally (%s)", exc)
        return text

    def discard_unused(self, keep: set[str]) -> None:
        self._ledger.delete_texts(self._ledger.text_hashes() - set(keep))
        self._cache.discard_unused(keep)
