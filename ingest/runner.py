"""Incremental ingest: files -> documents -> chunks -> embeddings -> Chroma + BM25, driven by the manifest.

Order of writes per file is chosen so that a crash at any point is repaired by the next run: chunks of a
file are always deleted by source before its new chunks go in (so half-written files are replaced, never
duplicated), and the manifest entry is written only after the store and the BM25 index hold the chunks.

A file up to ``window_bytes`` is read once: hashed, and extracted from the same bytes if it changed. A bigger
.txt/.md file is streamed: one pass hashes it and picks its encoding, a second (only if it changed) decodes,
chunks, embeds and stores it window by window (`_ingest_stream`), so memory does not grow with the file. A
bigger PDF/DOCX/HTML (which its parser needs whole) is hashed in blocks and read whole only if it changed.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.chunking import chunk_document, chunk_stream
from ingest.loaders import (
    STREAM_WINDOW,
    TEXT_SUFFIXES,
    TextFile,
    check_file,
    document_from_bytes,
    hash_file,
    iter_input_files,
    iter_text,
    read_file,
    scan_text_file,
)
from ingest.manifest import FileEntry, Manifest
from ingest.texts import TextStore
from rag.errors import FileError
from rag.interfaces import Embedder
from rag.types import Chunk, Document

EMBED_BATCH = 256  # chunks embedded per model call
CHECKPOINT_SECONDS = 20.0  # how often the BM25 index and manifest are saved during a long ingest

ProgressFn = Callable[[int, int, str], None]  # (files done, files total, current file)


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
        bm25,  # rag.bm25.BM25Index
        manifest_path: Path,
        texts: TextStore,
        chunk_size: int = 200,
        chunk_overlap: int = 40,
        max_bytes: int = 200 * 2**20,
        window_bytes: int = STREAM_WINDOW,
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

    @property
    def marker(self) -> Path:
        """Present while an ingest runs; left behind by a crashed one, so the next user repairs first."""
        return self.manifest_path.parent / "ingest.incomplete"

    def repair(self) -> None:
        """Reconcile after a crashed ingest (call with the collection lock held)."""
        manifest = Manifest.load(self.manifest_path)
        self.reconcile(manifest)
        manifest.save()
        self.marker.unlink(missing_ok=True)

    # -- consistency -----------------------------------------------------------------------------------
    def reconcile(self, manifest: Manifest) -> None:
        """Bring store and BM25 index in line with the manifest after a crash or an outside change:
        chunks of files the manifest does not know are removed; files whose chunks are not all present are
        dropped from the manifest (so they are re-ingested); the BM25 index is rebuilt when it disagrees."""
        counts = self.store.source_counts()
        for source in set(counts) - set(manifest.files):
            self.store.delete_source(source)
        for source, entry in list(manifest.files.items()):
            if counts.get(source, 0) != entry.chunks:
                self.store.delete_source(source)
                del manifest.files[source]
        wanted = manifest.chunk_ids()
        if self.bm25.ids() != wanted:
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
    ) -> IngestReport:
        t0 = time.perf_counter()
        report = IngestReport(collection=getattr(self.store, "name", ""))
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        self.marker.write_text(str(os.getpid()), encoding="utf-8")
        manifest = Manifest.load(self.manifest_path)
        self.reconcile(manifest)

        files, errors = iter_input_files([Path(p) for p in paths])
        report.failed.extend((e.path, e.reason) for e in errors)
        roots = [Path(p).resolve() for p in paths if Path(p).exists()]

        pending: list[tuple[Document, list[Chunk], int, bool]] = []  # (doc, chunks, size, is_update)
        pending_chunks = 0
        last_checkpoint = time.perf_counter()
        total = len(files)
        for i, path in enumerate(files):
            source = str(path)
            if progress:
                progress(i, total, source)
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
                self._ingest_stream(big, entry is not None, manifest, report)
                self._checkpoint(manifest)
                last_checkpoint = time.perf_counter()
                continue
            try:
                if raw is None:  # the hash is taken again over exactly the bytes parsed
                    raw = read_file(path, self.max_bytes)
                    digest, size = hashlib.sha256(raw).hexdigest(), len(raw)
                doc = document_from_bytes(path, raw, digest, self.max_bytes)
                raw = None
                chunks = chunk_document(doc, self.chunk_size, self.chunk_overlap)
                if not chunks:
                    raise FileError(source, "no text to index")
            except FileError as exc:
                report.failed.append((exc.path, exc.reason))
                continue
            pending.append((doc, chunks, size, entry is not None))
            pending_chunks += len(chunks)
            if pending_chunks >= EMBED_BATCH:
                self._flush(pending, manifest, report)
                pending, pending_chunks = [], 0
                if time.perf_counter() - last_checkpoint > CHECKPOINT_SECONDS:
                    self._checkpoint(manifest)
                    last_checkpoint = time.perf_counter()
        if pending:
            self._flush(pending, manifest, report)

        if prune:
            seen = {str(f) for f in files}
            for source in sorted(manifest.files):
                if source not in seen and _under(source, roots) and not Path(source).exists():
                    self._remove(manifest, source)
                    report.removed.append(source)
        self._checkpoint(manifest)
        self.texts.discard_unused({e.content_hash for e in manifest.files.values()})
        self.marker.unlink(missing_ok=True)
        if progress:
            progress(total, total, "")
        report.seconds = time.perf_counter() - t0
        return report

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

    def _embed(self, chunks: Sequence[Chunk]):  # -> np.ndarray
        """Vectors for ``chunks``, EMBED_BATCH at a time: the model's working memory stays that of one batch."""
        import numpy as np

        if len(chunks) <= EMBED_BATCH:
            return self.embedder.embed([c.text for c in chunks])
        return np.concatenate([self.embedder.embed([c.text for c in chunks[k : k + EMBED_BATCH]])
                               for k in range(0, len(chunks), EMBED_BATCH)])

    def _flush(self, pending: list[tuple[Document, list[Chunk], int, bool]], manifest: Manifest,
               report: IngestReport) -> None:
        all_chunks = [c for _, chunks, _, _ in pending for c in chunks]
        vectors = self._embed(all_chunks)
        # Old chunks of updated files go first. New files have none: reconcile() removed whatever a crashed
        # run left of files the manifest does not know. Then one store write for the whole batch.
        for doc, _, _, is_update in pending:
            self.texts.save(doc.content_hash, doc.text)
            if is_update:
                self.store.delete_source(doc.source)
                self.bm25.remove_source(doc.source)
        self.store.upsert(all_chunks, vectors)
        self.bm25.add(all_chunks)
        for doc, chunks, size, is_update in pending:
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

    def _ingest_stream(self, tf: TextFile, is_update: bool, manifest: Manifest, report: IngestReport) -> None:
        """Ingest a big text file window by window: its chunks are embedded and stored EMBED_BATCH at a time
        and its text is written to the TextStore as it is read; its manifest entry comes last.

        An updated file loses its old chunks and its manifest entry first (saved at once), so a crash at any
        later point leaves only chunks of a file the manifest does not know, which reconcile() removes. A
        FileError part way (the file changed while being read) removes what was stored of it."""
        source = tf.source
        if is_update:
            self._remove(manifest, source)
            self._checkpoint(manifest)
        ids: list[str] = []
        chars = embedded = 0

        def store(batch: list[Chunk]) -> None:
            nonlocal embedded
            self.store.upsert(batch, self._embed(batch))
            self.bm25.add(batch)
            ids.extend(c.id for c in batch)
            embedded += sum(len(c.text) for c in batch)

        def write_counted(piece: str) -> None:
            nonlocal chars
            chars += len(piece)
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
                self.store.delete_source(source)
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
        self.bm25.save()
        manifest.save()

    def _remove(self, manifest: Manifest, source: str) -> int:
        n = self.store.delete_source(source)
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
