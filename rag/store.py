"""Chroma as the vector store: embedded (``PersistentClient`` under the data directory) or a ``chroma run``
server (``CITEQA_CHROMA=host:port``). Collections use cosine distance and record the embedding family they
were built with; we always pass our own embeddings, so Chroma never loads (or downloads) a model of its own.

chromadb is imported inside functions: importing it costs most of a second."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import CiteqaError, ConfigError, NotFoundError, StoreError
from rag.settings import Settings
from rag.types import Chunk

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

FAMILY_KEY = "citeqa_embedding_family"
EMBEDDER_KEY = "citeqa_embedder"
# Server mode (issue 16): the ledger generation whose commit makes a chunk visible (ingest/ledger.py). A reader at
# committed version V queries only chunks with GEN_KEY <= V, so what an ingest has written but not yet committed
# (or what a killed ingest left) is never an answer.
GEN_KEY = "citeqa_gen"
CONNECT_TIMEOUT_S = 5.0  # the Chroma HTTP client itself waits forever (timeout=None) on a silent host


def _root_reason(exc: BaseException) -> str:
    """The innermost cause of an exception chain, as one short line (e.g. "[Errno 111] Connection refused")."""
    seen: set[int] = set()
    while (exc.__cause__ or exc.__context__) is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _chroma_settings():  # -> chromadb.config.Settings
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False)


def open_chroma_client(settings: Settings) -> ClientAPI:
    """An embedded client under ``settings.chroma_dir``, or an HTTP client for ``settings.chroma``; checked
    with a heartbeat so an unreachable server is reported here, in one line, rather than mid-query."""
    hp = settings.chroma_host_port
    if hp is None:
        path = settings.chroma_dir
        try:
            import chromadb

            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
            client.heartbeat()
        except CiteqaError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open the embedded Chroma store at {path} ({_root_reason(exc)})") from exc
        return client

    host, port = hp
    fix = f"start it with `chroma run --path DIR --port {port}` or unset CITEQA_CHROMA"
    try:
        # A plain TCP connect first: it fails fast and bounded, where the HTTP client would hang on a host
        # that drops packets.
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
        import chromadb

        client = chromadb.HttpClient(host=host, port=port, settings=_chroma_settings())
        client.heartbeat()
    except Exception as exc:
        raise StoreError(f"cannot reach the Chroma server at {host}:{port} ({_root_reason(exc)}): {fix}") from exc
    return client


def _store_exceptions() -> tuple[type[BaseException], ...]:
    """Failures of the store itself (server gone, disk full, Chroma refusing a request), as opposed to bugs."""
    import httpx
    from chromadb.errors import ChromaError

    return (ChromaError, httpx.HTTPError, OSError, ValueError, RuntimeError)


@contextmanager
def chroma_errors(what: str) -> Iterator[None]:
    """Chroma and transport failures as one-line StoreErrors, "WHAT failed (reason)"; citeqa's own errors pass
    through. ``what`` names the call and the collection ("Chroma get on collection 'docs'")."""
    try:
        yield
    except CiteqaError:
        raise
    except _store_exceptions() as exc:
        raise StoreError(f"{what} failed ({_root_reason(exc)})") from exc


def chroma_pages(col: Any, page: int, include: list[str], where: dict[str, Any] | None,
                 errors: Callable[[str], AbstractContextManager[None]]) -> Iterator[dict[str, Any]]:
    """``col.get`` of the records matching ``where``, ``page`` at a time, each call inside ``errors("get")``."""
    offset = 0
    while True:
        with errors("get"):
            res = col.get(where=where, limit=page, offset=offset, include=include)
        yield res
        if len(res["ids"]) < page:
            return
        offset += page


class ChromaStore:
    """One Chroma collection holding the chunks of a citeqa collection (implements ``VectorStore``)."""

    def __init__(self, client: ClientAPI, collection: str, embedder_name: str, create: bool = True) -> None:
        from rag.embeddings import FAMILY

        if embedder_name not in FAMILY:
            raise ConfigError.bad_value(
                "embedder", "--embedder / CITEQA_EMBEDDER", embedder_name, f"use one of {', '.join(FAMILY)}"
            )
        self._client = client
        self._name = collection
        self._family = FAMILY[embedder_name]
        self._embedder = embedder_name
        self._max_batch: int | None = None
        self._col = self._open(create)

    # -- opening ---------------------------------------------------------------------------------------
    def _open(self, create: bool):  # -> chromadb Collection
        from chromadb.errors import NotFoundError as ChromaNotFound

        missing = NotFoundError(
            f"collection '{self._name}' does not exist: run `citeqa ingest PATH --collection {self._name}` first"
        )
        with self._errors("open"):
            try:
                # embedding_function=None: we always pass vectors, and the default (an ONNX model fetched
                # from the internet on first use) must never be touched.
                col = self._client.get_collection(self._name, embedding_function=None)
            except ChromaNotFound:
                if not create:
                    raise missing from None
                col = self._client.get_or_create_collection(
                    self._name,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={FAMILY_KEY: self._family, EMBEDDER_KEY: self._embedder},
                    embedding_function=None,
                )
        self._check_compatible(col)
        return col

    def _check_compatible(self, col: Any) -> None:
        family = (col.metadata or {}).get(FAMILY_KEY)
        if family is None:
            raise ConfigError(
                f"collection '{self._name}' was not built by citeqa (no embedding family recorded): "
                "choose another --collection"
            )
        if family != self._family:
            raise ConfigError(
                f"collection '{self._name}' was built with {family} embeddings but embedder '{self._embedder}' "
                f"makes {self._family} embeddings: use a matching --embedder or another --collection"
            )
        space = ((getattr(col, "configuration_json", None) or {}).get("hnsw") or {}).get("space", "cosine")
        if space != "cosine":
            raise ConfigError(
                f"collection '{self._name}' uses {space} distance, citeqa needs cosine: choose another --collection"
            )

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return chroma_errors(f"Chroma {action} on collection '{self._name}'")

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_batch(self) -> int:
        """The most records one call may carry (the client's limit; asked once)."""
        if self._max_batch is None:
            with self._errors("get_max_batch_size"):
                self._max_batch = max(1, int(self._client.get_max_batch_size()))
        return self._max_batch

    # -- writing ---------------------------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], embeddings: np.ndarray, extra: Mapping[str, Any] | None = None) -> None:
        """Insert or replace ``chunks`` (by id) with their embeddings, in batches under the client's limit.
        ``extra``: metadata written with every chunk besides its own (the generation, in server mode)."""
        vecs = np.asarray(embeddings, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(chunks):
            raise ValueError(f"upsert needs one embedding row per chunk: {len(chunks)} chunks, shape {vecs.shape}")
        if not chunks:
            return
        # A repeated id in one call is rejected by Chroma; upsert semantics say the last one wins.
        last = {c.id: i for i, c in enumerate(chunks)}
        keep = sorted(last.values())
        step = self.max_batch
        with self._errors("upsert"):
            for lo in range(0, len(keep), step):
                rows = keep[lo : lo + step]
                batch = [chunks[i] for i in rows]
                self._col.upsert(
                    ids=[c.id for c in batch],
                    embeddings=vecs[rows],
                    documents=[c.text for c in batch],
                    metadatas=[{**c.metadata(), **(extra or {})} for c in batch],
                )

    def delete_ids(self, ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(ids))
        step = self.max_batch
        with self._errors("delete"):
            for lo in range(0, len(ids), step):
                self._col.delete(ids=ids[lo : lo + step])

    def delete_newer(self, generation: int) -> None:
        """Remove every chunk written for a generation after ``generation`` (what a killed ingest left)."""
        with self._errors("delete"):
            self._col.delete(where={GEN_KEY: {"$gt": int(generation)}})

    def delete_source(self, source: str) -> int:
        """Remove every chunk of ``source``; return how many were removed."""
        ids = self.ids_for_source(source)
        self.delete_ids(ids)
        return len(ids)

    # -- reading ---------------------------------------------------------------------------------------
    def query(self, embedding: np.ndarray, k: int, source: str | None = None,
              upto: int | None = None) -> list[tuple[Chunk, float]]:
        """Top-``k`` chunks by cosine similarity (1 - cosine distance), best first. ``upto``: only chunks of
        that generation or earlier (server mode; chunks without one never match)."""
        if k <= 0:
            return []
        vec = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
        terms: list[dict[str, Any]] = [{"source": source}] if source is not None else []
        if upto is not None:
            terms.append({GEN_KEY: {"$lte": int(upto)}})
        where = terms[0] if len(terms) == 1 else ({"$and": terms} if terms else None)
        with self._errors("query"):
            res = self._col.query(
                query_embeddings=vec,
                n_results=k,
                where=where,
                include=["documents", "metadatas", "distances"],
            )
        ids, docs, metas, dists = res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0]
        out = [
            (Chunk.from_metadata(i, d or "", m or {}), 1.0 - float(dist))
            for i, d, m, dist in zip(ids, docs, metas, dists, strict=True)
        ]
        out.sort(key=lambda cs: -cs[1])  # HNSW returns them sorted already; be explicit about "best first"
        return out

    def count(self) -> int:
        with self._errors("count"):
            return int(self._col.count())

    def iter_chunks(self, batch: int = 5000) -> Iterator[Chunk]:
        """Every chunk, fetched a page at a time (so 100k chunks never sit in one response)."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        for res in self._pages(batch, ["documents", "metadatas"]):
            for i, d, m in zip(res["ids"], res["documents"], res["metadatas"], strict=True):
                yield Chunk.from_metadata(i, d or "", m or {})

    def _pages(self, page: int, include: list[str], where: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The records matching ``where`` (all without it), ``page`` at a time: at most ``max_batch``, embedded
        Chroma fails a larger page ("too many SQL variables")."""
        return chroma_pages(self._col, min(page, self.max_batch), include, where, self._errors)

    def _get_by_ids(self, ids: Sequence[str], include: list[str]) -> dict[str, tuple[Any, ...]]:
        """id -> (document, metadata[, embedding]) for the ids that exist, in batches."""
        found: dict[str, tuple[Any, ...]] = {}
        unique = list(dict.fromkeys(ids))
        step = self.max_batch
        with self._errors("get"):
            for lo in range(0, len(unique), step):
                res = self._col.get(ids=unique[lo : lo + step], include=include)
                cols = [res[name] for name in include]
                for n, i in enumerate(res["ids"]):
                    found[i] = tuple(col[n] for col in cols)
        return found

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the order given; ids not in the collection are skipped."""
        found = self._get_by_ids(ids, ["documents", "metadatas"])
        return [Chunk.from_metadata(i, found[i][0] or "", found[i][1] or {}) for i in ids if i in found]

    def get_with_embeddings(self, ids: Sequence[str]) -> tuple[list[Chunk], np.ndarray]:
        """Chunks and their stored embeddings in one round trip; ids not in the collection are skipped."""
        found = self._get_by_ids(ids, ["documents", "metadatas", "embeddings"])
        present = [i for i in ids if i in found]
        chunks = [Chunk.from_metadata(i, found[i][0] or "", found[i][1] or {}) for i in present]
        vecs = np.asarray([found[i][2] for i in present], dtype=np.float32)
        return chunks, vecs.reshape(len(present), -1) if present else np.zeros((0, 0), dtype=np.float32)

    def get_embeddings(self, ids: Sequence[str]) -> np.ndarray:
        """The stored embeddings of ``ids``, one row per id in the order given; a missing id is an error."""
        found = self._get_by_ids(ids, ["embeddings"])
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(
                f"{len(missing)} chunk id(s) not in collection '{self._name}' (e.g. {missing[0]!r}): "
                "re-run `citeqa ingest`"
            )
        if not ids:
            return np.zeros((0, 0), dtype=np.float32)
        return np.asarray([found[i][0] for i in ids], dtype=np.float32)

    def _metadatas(self, where: dict[str, Any] | None = None, page: int = 5000) -> Iterator[tuple[str, dict]]:
        for res in self._pages(page, ["metadatas"], where):
            yield from zip(res["ids"], (m or {} for m in res["metadatas"]), strict=True)

    def source_counts(self) -> dict[str, int]:
        """Chunks per source, for every source in the collection."""
        counts: dict[str, int] = {}
        for _, meta in self._metadatas():
            src = str(meta.get("source", ""))
            counts[src] = counts.get(src, 0) + 1
        return counts

    def ids_for_source(self, source: str) -> list[str]:
        return [i for res in self._pages(5000, [], {"source": source}) for i in res["ids"]]


def citeqa_collections(client: ClientAPI) -> list[str]:
    """The collections of a Chroma client (a `chroma run` server) that citeqa built: an embedding family is
    recorded in their metadata (others belong to other programs)."""
    try:
        cols = client.list_collections()
    except Exception as exc:
        raise StoreError(f"cannot list the Chroma server's collections ({_root_reason(exc)})") from exc
    return sorted(c.name for c in cols if FAMILY_KEY in (c.metadata or {}))


def drop_collection(client: ClientAPI, name: str) -> None:
    """Delete a collection and its vectors; NotFoundError when there is none of that name."""
    from chromadb.errors import NotFoundError as ChromaNotFound

    try:
        client.delete_collection(name)
    except ChromaNotFound:
        raise NotFoundError(f"collection '{name}' does not exist") from None
    except _store_exceptions() as exc:
        if "does not exist" in str(exc):
            raise NotFoundError(f"collection '{name}' does not exist") from None
        raise StoreError(f"cannot delete Chroma collection '{name}' ({_root_reason(exc)})") from exc
