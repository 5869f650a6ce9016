"""The ledger of a collection on a Chroma server (issue 16): what every replica needs besides the chunks, kept in a
side collection ``<name>--citeqa-ledger`` beside the chunk collection, so that any number of citeqa processes on
any machines share one collection through one ``chroma run`` and nothing else.

Records (each with a dummy one-number embedding: Chroma stores records, the vector is never queried):

- ``state``: the committed ``version`` (a counter bumped by each commit), ``seq`` (bumped by every write of this
  record) and ``writing`` (a commit is writing file records right now);
- ``lock``: the ingest lock, with its owner, a random token and an expiry; taken with ``add`` (Chroma ignores an
  add of an id that exists, so of two takers exactly one finds its own token), renewed by a heartbeat while
  held, broken only when expired, and then only by a delete conditioned on the stale token;
- ``file:<sha1 of source>``: one manifest record (``ingest.manifest.FileEntry`` as JSON), or a tombstone for a
  forgotten file, with ``gen``: the version whose commit wrote it;
- ``text:<content hash>:<n>``: the extracted text of a file (what citations are shown in), in parts.

Chunks get their generation too (``rag.store.GEN_KEY``): an ingest writes them for ``version + 1`` and a reader
at ``version`` queries only ``gen <= version``, so they appear with the commit that lists them, all at once.
A killed ingest leaves chunks and records of a generation no commit reached; the next lock holder deletes
everything newer than the committed version before it starts (``discard_uncommitted``).

Only the holder of the lock writes ``state`` and file records; readers need no lock (see ``ingest.replica``).
chromadb is not imported here: the client comes in."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from ingest.manifest import FileEntry
from rag.errors import BusyError, StoreError

LEDGER_SUFFIX = "--citeqa-ledger"
STATE_ID = "state"
LOCK_ID = "lock"
LOCK_TTL_S = 60.0  # a lock not renewed for this long belongs to a dead process and may be broken
TEXT_PART_CHARS = 1_000_000  # characters of a file's text per record (one record stays well under request limits)
_DUMMY = [0.0]
log = logging.getLogger(__name__)


def ledger_name(collection: str) -> str:
    return f"{collection}{LEDGER_SUFFIX}"


def _file_id(source: str) -> str:
    return "file:" + hashlib.sha1(source.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LedgerState:
    version: int = 0
    seq: int = 0
    writing: bool = False
    stale_write: bool = False  # ``writing`` for longer than a lock lives: its process died mid-commit


@dataclass(frozen=True)
class FileRecord:
    """A manifest record as of generation ``gen``; ``entry`` None: the file was forgotten."""

    source: str
    entry: FileEntry | None
    gen: int


@dataclass(frozen=True)
class Held:
    """A taken lock: its token (what proves it is ours) and the heartbeat that keeps it."""

    token: str
    owner: str
    stop: threading.Event


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Ledger:
    """The side collection of one citeqa collection on a Chroma server."""

    def __init__(self, client: Any, collection: str, *, ttl: float = LOCK_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0, got {ttl}")
        self.collection = collection
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._col_cache: Any = None

    # -- plumbing ----------------------------------------------------------------------------------------
    @property
    def _col(self) -> Any:
        if self._col_cache is None:
            with self._errors("open"):
                self._col_cache = self._client.get_or_create_collection(
                    ledger_name(self.collection), metadata={"citeqa_ledger_of": self.collection},
                    embedding_function=None)
        return self._col_cache

    def _errors(self, action: str) -> AbstractContextManager[None]:
        from rag.store import chroma_errors

        return chroma_errors(f"Chroma {action} on the ledger of collection '{self.collection}'")

    def _get(self, ids: list[str], include: list[str]) -> dict[str, Any]:
        with self._errors("get"):
            return self._col.get(ids=ids, include=include)

    def _upsert(self, ids: list[str], documents: list[str], metadatas: list[dict[str, Any]]) -> None:
        step = max(1, int(self._client.get_max_batch_size()))
        with self._errors("upsert"):
            for lo in range(0, len(ids), step):
                n = len(ids[lo : lo + step])
                self._col.upsert(ids=ids[lo : lo + step], embeddings=[_DUMMY] * n,
                                 documents=documents[lo : lo + step], metadatas=metadatas[lo : lo + step])

    def _pages(self, where: dict[str, Any], include: list[str]) -> Iterator[dict[str, Any]]:
        from rag.store import chroma_pages

        page = max(1, min(5000, int(self._client.get_max_batch_size())))
        return chroma_pages(self._col, page, include, where, self._errors)

    # -- the committed version -----------------------------------------------------------------------------
    def state(self) -> LedgerState:
        got = self._get([STATE_ID], ["metadatas"])
        if not got["ids"]:
            return LedgerState()
        m = got["metadatas"][0] or {}
        writing = bool(m.get("writing", False))
        stale = writing and self._clock() - float(m.get("at", 0.0)) > self._ttl
        return LedgerState(int(m.get("version", 0)), int(m.get("seq", 0)), writing, stale)

    def _put_state(self, state: LedgerState) -> None:
        self._upsert([STATE_ID], [""], [{"kind": "state", "version": state.version, "seq": state.seq,
                                         "writing": state.writing, "at": self._clock()}])

    def files_between(self, after: int, upto: int) -> list[FileRecord]:
        """The file records written by the commits after version ``after`` up to ``upto``, the latest per file."""
        where = {"$and": [{"kind": "file"}, {"gen": {"$gt": int(after)}}, {"gen": {"$lte": int(upto)}}]}
        out: dict[str, FileRecord] = {}
        for res in self._pages(where, ["documents", "metadatas"]):
            for doc, meta in zip(res["documents"], res["metadatas"], strict=True):
                meta = meta or {}
                source, gen = str(meta.get("source", "")), int(meta.get("gen", 0))
                entry = FileEntry(**json.loads(doc)) if doc and not meta.get("deleted") else None
                if source not in out or out[source].gen < gen:
                    out[source] = FileRecord(source, entry, gen)
        return sorted(out.values(), key=lambda r: r.source)

    def commit(self, changes: Mapping[str, FileEntry | None], held: Held) -> int:
        """Write the file records of one commit (``None``: the file was forgotten) and make them the committed
        version; returns it. Only the lock's holder commits: a lost lock is an error, and nothing is written."""
        self.check(held)
        st = self.state()
        gen = st.version + 1
        self._put_state(LedgerState(st.version, st.seq + 1, True))
        ids, docs, metas = [], [], []
        for source, entry in sorted(changes.items()):
            ids.append(_file_id(source))
            docs.append(json.dumps(asdict(entry)) if entry is not None else "")
            metas.append({"kind": "file", "source": source, "gen": gen, "deleted": entry is None})
        self._upsert(ids, docs, metas)
        self._put_state(LedgerState(gen, st.seq + 2, False))
        return gen

    def discard_uncommitted(self, held: Held) -> LedgerState:
        """Before an ingest: delete the file records a killed commit wrote (newer than the committed version)
        and clear its ``writing`` flag. Returns the state to build on."""
        self.check(held)
        st = self.state()
        with self._errors("delete"):
            self._col.delete(where={"$and": [{"kind": "file"}, {"gen": {"$gt": st.version}}]})
        if st.writing:
            log.warning("citeqa: warning: collection '%s': a commit was cut off (its process died); it is undone",
                        self.collection)
            st = LedgerState(st.version, st.seq + 1, False)
            self._put_state(st)
        return st

    # -- texts ------------------------------------------------------------------------------------------------
    def save_text(self, content_hash: str, text: str) -> None:
        parts = [text[i : i + TEXT_PART_CHARS] for i in range(0, len(text), TEXT_PART_CHARS)] or [""]
        size = len(text.encode("utf-8"))
        self._upsert([f"text:{content_hash}:{i}" for i in range(len(parts))], parts,
                     [{"kind": "text", "hash": content_hash, "part": i, "parts": len(parts), "bytes": size}
                      for i in range(len(parts))])

    def text_size(self, content_hash: str) -> int | None:
        got = self._get([f"text:{content_hash}:0"], ["metadatas"])
        return int((got["metadatas"][0] or {}).get("bytes", 0)) if got["ids"] else None

    def load_text(self, content_hash: str) -> str | None:
        first = self._get([f"text:{content_hash}:0"], ["documents", "metadatas"])
        if not first["ids"]:
            return None
        n = int((first["metadatas"][0] or {}).get("parts", 1))
        if n == 1:
            return first["documents"][0] or ""
        ids = [f"text:{content_hash}:{i}" for i in range(n)]
        got = self._get(ids, ["documents"])
        by_id = dict(zip(got["ids"], got["documents"], strict=True))
        if any(i not in by_id for i in ids):
            return None
        return "".join(by_id[i] or "" for i in ids)

    def text_hashes(self) -> set[str]:
        return {str((m or {}).get("hash", "")) for res in self._pages({"kind": "text"}, ["metadatas"])
                for m in res["metadatas"]}

    def delete_texts(self, hashes: set[str]) -> None:
        for h in sorted(hashes):
            with self._errors("delete"):
                self._col.delete(where={"hash": h})

    # -- the ingest lock ----------------------------------------------------------------------------------------
    def _lock_record(self) -> dict[str, Any] | None:
        got = self._get([LOCK_ID], ["metadatas"])
        return (got["metadatas"][0] or {}) if got["ids"] else None

    def _try_take(self, owner: str) -> str | None:
        """Our token when the lock is now ours, else None (held by someone alive)."""
        rec = self._lock_record()
        now = self._clock()
        if rec is not None:
            if float(rec.get("expires", 0)) > now:
                return None
            with self._errors("delete"):  # expired: break it, but only if it is still that stale holder's
                self._col.delete(ids=[LOCK_ID], where={"token": str(rec.get("token", ""))})
            log.warning("citeqa: warning: collection '%s': the ingest lock of %s expired (its process died?): "
                        "taking it over", self.collection, rec.get("owner", "?"))
        token = uuid.uuid4().hex
        with self._errors("add"):
            self._col.add(ids=[LOCK_ID], embeddings=[_DUMMY], documents=[""],
                          metadatas=[{"kind": "lock", "owner": owner, "token": token, "expires": now + self._ttl}])
        rec = self._lock_record()
        return token if rec is not None and rec.get("token") == token else None

    def _renew(self, held: Held) -> None:
        while not held.stop.wait(self._ttl / 4):
            try:
                rec = self._lock_record()
                if rec is None or rec.get("token") != held.token:
                    log.warning("citeqa: warning: collection '%s': the ingest lock was lost", self.collection)
                    return
                with self._errors("update"):
                    self._col.update(ids=[LOCK_ID], metadatas=[{**rec, "expires": self._clock() + self._ttl}])
            except StoreError as exc:  # the server is away: try again at the next beat, the lock may still hold
                log.warning("citeqa: warning: %s", exc)

    def check(self, held: Held) -> None:
        rec = self._lock_record()
        if rec is None or rec.get("token") != held.token:
            raise BusyError(f"the ingest lock of collection '{self.collection}' was lost (this process stalled for "
                            f"over {self._ttl:g} s and another took it over): nothing more was committed; ingest again")

    @contextmanager
    def hold(self, owner: str | None = None, timeout: float = 0) -> Iterator[Held]:
        """The ingest lock of the collection, for every process on every machine; BusyError when another holds
        it for longer than ``timeout`` seconds."""
        owner = owner or default_owner()
        deadline = time.monotonic() + timeout
        while (token := self._try_take(owner)) is None:
            if time.monotonic() >= deadline:
                rec = self._lock_record() or {}
                raise BusyError(f"another ingest into collection '{self.collection}' is running (by "
                                f"{rec.get('owner', '?')}): wait for it to finish")
            time.sleep(0.2)
        held = Held(token, owner, threading.Event())
        beat = threading.Thread(target=self._renew, args=(held,), name="citeqa-ledger-lock", daemon=True)
        beat.start()
        try:
            yield held
        finally:
            held.stop.set()
            beat.join(timeout=5)
            try:
                with self._errors("delete"):
                    self._col.delete(ids=[LOCK_ID], where={"token": held.token})
            except StoreError as exc:  # it expires by itself
                log.warning("citeqa: warning: %s", exc)
