"""Incremental ingest: files -> documents -> chunks -> embeddings -> Chroma + BM25, driven by the manifest.

Order of writes per file is chosen so that a crash at any point is repaired by the next run: an updated
file's new chunks go in before its old ones are deleted (so a crash leaves the old version whole, and the
journal names the new chunks to remove), and the manifest entry is written only after the store and the BM25
index hold the chunks.

A file up to ``window_bytes`` is read once: hashed, and extracted from the same bytes if it changed. A bigger
.txt/.md file is streamed: one pass hashes it and picks its encoding, a second (only if it changed) decodes,
chunks, embeds and stores it window by window (`_ingest_stream`), so memory does not grow with the file. A
bigger PDF/DOCX/HTML (which its parser needs whole) is hashed in blocks and read whole only if it changed.

Questions are not held up by an ingest: extracting, chunking and embedding happen outside ``commit_lock`` (the
UI's per-collection write lock), which is taken only for each short write to the store and the BM25 index, so
answers keep coming from the last committed state. What one file may cost is bounded (`Limits`: characters of
text, seconds), and a file past a limit is skipped with one line naming the setting.

While an ingest runs, its crash marker is also its journal (`Journal`): every chunk id it is about to write or
remove is recorded there first. A repair after a crash removes from the store only ids its own journal lists:
chunks it cannot prove it wrote (another data directory sharing a Chroma collection) are reported, never
deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingest.chunking import chunk_document, chunk_stream
from ingest.loaders import (
    NO_LIMITS,
    STREAM_WINDOW,
    TEXT_SUFFIXES,
    Limits,
    TextFile,
    check_file,
    document_from_bytes,
    hash_file,
    iter_input_files,
    iter_text,
    read_file,
    scan_text_file,
    text_chars,
)
from ingest.loaders.ocr import OcrOptions, PageProgress
from ingest.manifest import FileEntry, Manifest
from ingest.texts import TextStore
from rag.defaults import CHUNK_OVERLAP, CHUNK_SIZE
from rag.errors import FileError
from rag.interfaces import Embedder
from rag.types import Chunk, Document

EMBED_BATCH = 256  # chunks embedded per model call
CHECKPOINT_SECONDS = 20.0  # how often the BM25 index and manifest are saved during a long ingest

ProgressFn = Callable[[int, int, str], None]  # (files done, files total, current file)
CommitLock = Callable[[], AbstractContextManager[object]]  # e.g. ui.engine.ReadWriteLock.write
log = logging.getLogger(__name__)


class Journal:
    """A collection's crash marker, which is also the running ingest's journal: present while an ingest runs,
    it lists (one JSON line per write, flushed to disk before the store is touched) the chunk ids the ingest is
    about to write or remove. A crashed ingest leaves it behind; its ids are the only ones a repair may delete."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write(json.dumps({"pid": os.getpid()}) + "\n", "w")

    def record(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self._write(json.dumps({"ids": ids}) + "\n", "a")

    def _write(self, line: str, mode: str) -> None:
        with self.path.open(mode, encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def ids(self) -> set[str]:
        """The chunk ids a crashed ingest recorded (none when there is no journal; a torn last line is skipped:
        its write never reached the store)."""
        out: set[str] = set()
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return out
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("ids"), list):
                out.update(i for i in entry["ids"] if isinstance(i, str))
        return out

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class _Ready:
    """A file extracted and chunked, waiting to be embedded (``vectors`` None) and committed."""

    doc: Document
    chunks: list[Chunk]
    size: int
    is_update: bool
    vectors: object = None  # np.ndarray once embedded


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    chunks: int = 0  # chunks written by this run
    characters: int = 0  # characters of text embedded by this run
    seconds: float = 0.0
    collection: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return {
            "collection": self.collection,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "chunks": self.chunks,
            "characters": self.characters,
            "seconds": round(self.seconds, 3),
        }


def _tee(pieces: Iterable[str], write: Callable[[str], object]) -> Iterator[str]:
    for piece in pieces:
        write(piece)
        yield piece


def _under(source: str, roots: Sequence[Path]) -> bool:
    for root in roots:
        r = str(root)
        if source == r or source.startswith(r.rstrip(os.sep) + os.sep):
            return True
    return False


class Ingestor:
    """Config to the constructor (the parts), data to the call (the paths)."""

    def __init__(
        self,
        *,
        embedder: Embedder,
        store,  # rag.store.ChromaStore
        bm25,  # rag.bm25.BM25Index; None on a Chroma server, where each replica derives its own (ingest.replica)
        manifest_path: Path,
        texts: TextStore,  # or ingest.replica.SharedTexts
        chunk_size: int = CHUNK_SIZE,
        chunk_overlap: int = CHUNK_OVERLAP,
        max_bytes: int = 200 * 2**20,
        window_bytes: int = STREAM_WINDOW,
        max_text_chars: int | None = None,
        max_seconds: float | None = None,
        ocr: OcrOptions | None = None,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        publish: Callable[[Manifest], None] | None = None,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.bm25 = bm25
        self.manifest_path = manifest_path
        self.texts = texts
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.max_bytes = max_bytes
        self.window_bytes = window_bytes  # .txt/.md files bigger than this are streamed in windows of it
        self.max_text_chars = max_text_chars  # per file, see ingest.loaders.Limits
        self.max_seconds = max_seconds
        self.ocr = ocr or OcrOptions()  # images and scanned PDF pages (issue 17)
        self.checkpoint_seconds = checkpoint_seconds
        # called with the manifest after each checkpoint has saved it: on a Chroma server, the commit that makes
        # the files it lists visible to every replica (ingest.collection)
        self.publish = publish
        self._page_progress: PageProgress | None = None  # while ingest() runs: who hears of each OCR page
        self._lock: CommitLock = nullcontext  # while ingest() runs: the commit_lock it was given

    @property
    def marker(self) -> Path:
        """Present while an ingest runs; left behind by a crashed one, so the next user repairs first."""
        return self.manifest_path.parent / "ingest.incomplete"

    @property
    def journal(self) -> Journal:
        return Journal(self.marker)

    def repair(self) -> None:
        """Reconcile after a crashed ingest (call with the collection lock held)."""
        manifest = Manifest.load(self.manifest_path)
        self.reconcile(manifest, self.journal.ids())
        manifest.save()
        self.journal.finish()

    # -- consistency -----------------------------------------------------------------------------------
    def reconcile(self, manifest: Manifest, ours: Set[str] = frozenset()) -> bool:
        """Bring the manifest and the BM25 index (this data directory's own files) in line with the store, and
        take out of the store what a crashed ingest of this data directory left there: ``ours``, the ids its
        journal lists, unless the manifest holds them. Nothing else is deleted: chunks the manifest does not
        know may be another data directory's (one Chroma collection shared by several), so they are reported
        in one warning. A file whose chunks are not all in the store is dropped from the manifest (it is
        ingested again next time). Returns whether anything changed."""
        counts = self.store.source_counts()
        changed = False
        for _ in range(2):  # again after removing leftovers: a source's count can only have gone down
            for source, entry in list(manifest.files.items()):
                if counts.get(source, 0) < entry.chunks:
                    del manifest.files[source]
                    changed = True
            leftovers = sorted(set(ours) - manifest.chunk_ids())
            if not leftovers:
                break
            with self._lock():
                self.store.delete_ids(leftovers)
            ours, changed = frozenset(), True
            counts = self.store.source_counts()
        self._report_unknown(counts, manifest)
        wanted = manifest.chunk_ids()
        if self.bm25 is not None and self.bm25.ids() != wanted:
            with self._lock():
                for source in {s for s in self._bm25_sources()} - set(manifest.files):
                    self.bm25.remove_source(source)
                have = self.bm25.ids()
                stale = have - wanted
                if stale:
                    self.bm25.remove_ids(list(stale))
                missing = wanted - self.bm25.ids()
                if missing:
                    self.bm25.add(self.store.get(sorted(missing)))
                self.bm25.save()
            changed = True
        return changed

    def _report_unknown(self, counts: dict[str, int], manifest: Manifest) -> None:
        unknown = {s: n for s, n in counts.items() if s not in manifest.files}
        extra = {s: counts[s] - e.chunks for s, e in manifest.files.items() if counts.get(s, 0) > e.chunks}
        n = sum(unknown.values()) + sum(extra.values())
        if n:
            log.warning(
                "citeqa: warning: collection '%s' holds %d chunk(s) of %d file(s) that %s does not list (another "
                "data directory sharing this Chroma collection, or an outside change): left in place, not "
                "deleted; give each data directory its own collection, or ingest the files here",
                getattr(self.store, "name", "?"), n, len(unknown) + len(extra), self.manifest_path,
            )

    def _bm25_sources(self) -> set[str]:
        sources = getattr(self.bm25, "sources", None)
        return set(sources()) if callable(sources) else set()

    # -- the work ----------------------------------------------------------------------------------------
    def ingest(
        self,
        paths: Sequence[Path],
        *,
        prune: bool = False,
        progress: ProgressFn | None = None,
        commit_lock: CommitLock | None = None,
        page_progress: PageProgress | None = None,
    ) -> IngestReport:
        """Ingest ``paths``. ``commit_lock``: taken around each write to the store and the BM25 index (and only
        then), so that readers holding its other side see either the state before a write or after it.
        ``page_progress(done, total, file)``: called for each page read by OCR."""
        self._lock = commit_lock or nullcontext
        self._page_progress = page_progress
        try:
            return self._ingest(paths, prune, progress)
        finally:
            self._lock = nullcontext
            self._page_progress = None

    def _limits(self) -> Limits:
        ocr = replace(self.ocr, on_page=self._page_progress) if self._page_progress else self.ocr
        return Limits.start(self.max_text_chars, self.max_seconds, ocr)

    def _ingest(self, paths: Sequence[Path], prune: bool, progress: ProgressFn | None) -> IngestReport:
        t0 = time.perf_counter()
        report = IngestReport(collection=getattr(self.store, "name", ""))
        manifest = Manifest.load(self.manifest_path)
        # a crashed run's leftovers first (by its journal), saved before this run's journal replaces it
        if self.reconcile(manifest, self.journal.ids()):
            self._checkpoint(manifest)
        self.journal.start()

        files, errors = iter_input_files([Path(p) for p in paths])
        report.failed.extend((e.path, e.reason) for e in errors)
        roots = [Path(p).resolve() for p in paths if Path(p).exists()]

        pending: list[_Ready] = []
        pending_chunks = 0
        last_checkpoint = time.perf_counter()
        total = len(files)
        for i, path in enumerate(files):
            source = str(path)
            if progress:
                progress(i, total, source)
            limits = self._limits()
            try:
                size, digest, raw, big = self._read(path)
            except FileError as exc:
                report.failed.append((exc.path, exc.reason))
                continue
            entry = manifest.files.get(source)
            if entry and entry.content_hash == digest:
                report.unchanged.append(source)
                continue
            if big is not None:
                if pending:  # small files first: the big file's batches then belong to it alone
                    self._flush(pending, manifest, report)
                    pending, pending_chunks = [], 0
                self._ingest_stream(big, entry is not None, manifest, report, limits)
                self._checkpoint(manifest)
                last_checkpoint = time.perf_counter()
                continue
            try:
                ready = self._prepare(path, raw, digest, size, entry is not None, limits)
            except FileError as exc:
                report.failed.append((exc.path, exc.reason))
                continue
            raw = None
            pending.append(ready)
            pending_chunks += len(ready.chunks)
            if pending_chunks >= EMBED_BATCH:
                self._flush(pending, manifest, report)
                pending, pending_chunks = [], 0
                if time.perf_counter() - last_checkpoint > self.checkpoint_seconds:
                    self._checkpoint(manifest)
                    last_checkpoint = time.perf_counter()
        if pending:
            self._flush(pending, manifest, report)

        if prune:
            self._prune(manifest, {str(f) for f in files}, roots, report)
        self._checkpoint(manifest)
        with self._lock():
            self.texts.discard_unused({e.content_hash for e in manifest.files.values()})
        self.journal.finish()
        if progress:
            progress(total, total, "")
        report.seconds = time.perf_counter() - t0
        return report

    def _prepare(self, path: Path, raw: bytes | None, digest: str, size: int, replaces: bool,
                 limits: Limits) -> _Ready:
        """A small file parsed and chunked (embedded too when it has more than a batch of chunks); FileError when
        it cannot be read or holds no text."""
        if raw is None:  # the hash is taken again over exactly the bytes parsed
            raw = read_file(path, self.max_bytes)
            digest, size = hashlib.sha256(raw).hexdigest(), len(raw)
        doc = document_from_bytes(path, raw, digest, self.max_bytes, limits=limits)
        raw = None  # a big PDF's bytes (read here) are not held while it is chunked and embedded
        chunks = chunk_document(doc, self.chunk_size, self.chunk_overlap)
        if not chunks:
            raise FileError(str(path), "no text to index")
        ready = _Ready(doc, chunks, size, replaces)
        if len(chunks) > EMBED_BATCH:  # a big document is embedded alone, its time limit checked per batch
            ready.vectors = self._embed(chunks, limits, str(path))
        return ready

    def _prune(self, manifest: Manifest, seen: set[str], roots: Sequence[Path], report: IngestReport) -> None:
        """Files of the collection under the ingested folders that are gone from the disk are removed."""
        for source in sorted(manifest.files):
            if source not in seen and _under(source, roots) and not Path(source).exists():
                with self._lock():
                    self._remove(manifest, source)
                report.removed.append(source)

    def _read(self, path: Path) -> tuple[int, str, bytes | None, TextFile | None]:
        """(size, content hash, the bytes if read whole, the TextFile if to be streamed) of a file to ingest."""
        size = check_file(path, self.max_bytes)  # from stat: a file over the limit is never read
        if size <= self.window_bytes:  # read once: hashed, and parsed if it changed
            raw = read_file(path, self.max_bytes)
            return len(raw), hashlib.sha256(raw).hexdigest(), raw, None
        if path.suffix.lower() in TEXT_SUFFIXES:  # hashed here, then streamed if it changed
            big = scan_text_file(path, self.max_bytes)
            return big.size, big.content_hash, None, big
        return size, hash_file(path, self.max_bytes), None, None  # a big PDF/DOCX/HTML: parsed whole if changed

    def _embed(self, chunks: Sequence[Chunk], limits: Limits = NO_LIMITS, name: str = ""):  # -> np.ndarray
        """Vectors for ``chunks``, EMBED_BATCH at a time: the model's working memory stays that of one batch (and
        a file past its time limit is stopped between batches)."""
        import numpy as np

        if len(chunks) <= EMBED_BATCH:
            return self.embedder.embed([c.text for c in chunks])
        parts = []
        for k in range(0, len(chunks), EMBED_BATCH):
            limits.check_time(name)
            parts.append(self.embedder.embed([c.text for c in chunks[k : k + EMBED_BATCH]]))
        return np.concatenate(parts)

    def _flush(self, pending: list[_Ready], manifest: Manifest, report: IngestReport) -> None:
        import numpy as np

        todo = [r for r in pending if r.vectors is None]  # small files: embedded together, outside the lock
        if todo:
            vecs = self._embed([c for r in todo for c in r.chunks])
            k = 0
            for r in todo:
                r.vectors, k = vecs[k : k + len(r.chunks)], k + len(r.chunks)
        all_chunks = [c for r in pending for c in r.chunks]
        vectors = np.concatenate([r.vectors for r in pending])
        for r in pending:
            self.texts.save(r.doc.content_hash, r.doc.text)
        old = [cid for r in pending if r.is_update and r.doc.source in manifest.files
               for cid in manifest.files[r.doc.source].chunk_ids]
        self.journal.record([*old, *(c.id for c in all_chunks)])
        # One store write for the whole batch, then the old chunks of updated files go (a crash in between leaves
        # the old version whole: the new ids are in the journal, the old ones in the manifest). New files have
        # none: reconcile() removed whatever a crashed run of this data dir left.
        with self._lock():
            self.store.upsert(all_chunks, vectors)
            for r in pending:
                if r.is_update:
                    new = {c.id for c in r.chunks}
                    self.store.delete_ids([i for i in self.store.ids_for_source(r.doc.source) if i not in new])
                    if self.bm25 is not None:
                        self.bm25.remove_source(r.doc.source)
            if self.bm25 is not None:
                self.bm25.add(all_chunks)
        for r in pending:
            doc, chunks, size, is_update = r.doc, r.chunks, r.size, r.is_update
            manifest.files[doc.source] = FileEntry(
                source=doc.source,
                content_hash=doc.content_hash,
                size=size,
                chunk_ids=[c.id for c in chunks],
                ingested_at=time.time(),
                pages=[[p.page, p.start, p.end] for p in doc.pages],
                mime=doc.mime,
                chars=len(doc.text),
            )
            (report.updated if is_update else report.added).append(doc.source)
            report.chunks += len(chunks)
            report.characters += sum(len(c.text) for c in chunks)

    def _ingest_stream(self, tf: TextFile, is_update: bool, manifest: Manifest, report: IngestReport,
                       limits: Limits = NO_LIMITS) -> None:
        """Ingest a big text file window by window: its chunks are embedded and stored EMBED_BATCH at a time
        and its text is written to the TextStore as it is read; its manifest entry comes last.

        An updated file loses its old chunks and its manifest entry first (saved at once), so a crash at any
        later point leaves only chunks of a file the manifest does not know, which reconcile() removes. A
        FileError part way (the file changed while being read) removes what was stored of it."""
        source, name = tf.source, str(tf.path)
        if is_update:
            self.journal.record(manifest.files[source].chunk_ids if source in manifest.files else [])
            with self._lock():
                self._remove(manifest, source)
            self._checkpoint(manifest)
        ids: list[str] = []
        chars = counted = embedded = 0

        def store(batch: list[Chunk]) -> None:
            nonlocal embedded
            limits.check_time(name)
            vectors = self._embed(batch)
            self.journal.record(c.id for c in batch)
            with self._lock():
                self.store.upsert(batch, vectors)
                if self.bm25 is not None:
                    self.bm25.add(batch)
            ids.extend(c.id for c in batch)
            embedded += sum(len(c.text) for c in batch)

        def write_counted(piece: str) -> None:
            nonlocal chars, counted
            chars += len(piece)
            counted += text_chars(piece)  # not limited: a .txt/.md file's text is its size (max_file_mb)
            write(piece)

        try:
            with self.texts.writer(tf.content_hash) as write:
                pieces = _tee(iter_text(tf, self.window_bytes), write_counted)
                batch: list[Chunk] = []
                for chunk in chunk_stream(pieces, source, tf.content_hash, self.chunk_size, self.chunk_overlap):
                    batch.append(chunk)
                    if len(batch) >= EMBED_BATCH:
                        store(batch)
                        batch = []
                if batch:
                    store(batch)
                if not ids:
                    raise FileError(str(tf.path), "no text to index")
        except FileError as exc:
            if ids:
                with self._lock():
                    self.store.delete_ids(ids)
                    if self.bm25 is not None:
                        self.bm25.remove_source(source)
            report.failed.append((exc.path, exc.reason))
            return
        manifest.files[source] = FileEntry(
            source=source,
            content_hash=tf.content_hash,
            size=tf.size,
            chunk_ids=ids,
            ingested_at=time.time(),
            mime=tf.mime,
            chars=chars,
        )
        (report.updated if is_update else report.added).append(source)
        report.chunks += len(ids)
        report.characters += embedded

    def _checkpoint(self, manifest: Manifest) -> None:
        # BM25 first: a manifest entry must never claim chunks the index does not have.
        with self._lock():
            if self.bm25 is not None:
                self.bm25.save()
            manifest.save()
        if self.publish is not None:
            self.publish(manifest)

    def _remove(self, manifest: Manifest, source: str) -> int:
        n = self.store.delete_source(source)
        if self.bm25 is not None:
            self.bm25.remove_source(source)
        manifest.files.pop(source, None)
        return n

    def forget(self, source: str) -> int:
        """Remove one file's chunks; returns how many were removed (0 when it was not ingested)."""
        manifest = Manifest.load(self.manifest_path)
        if source not in manifest.files and self.store.source_counts().get(source, 0) == 0:
            return 0
        n = self._remove(manifest, source)
        self._checkpoint(manifest)
        self.texts.discard_unused({e.content_hash for e in manifest.files.values()})
        return n
