"""ingest/replica.py against a fake ledger and store (real code, deterministic): a replica's view follows the
committed version, never a commit half written, and its BM25 index scores alike whatever order the commits
came in (the Chroma side of it: tests/integration/test_replicas.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ingest.ledger import FileRecord, LedgerState
from ingest.manifest import FileEntry
from ingest.replica import CommittedStore, Replica, canonical_ids
from rag.bm25 import BM25Index
from rag.settings import load_settings
from rag.types import Chunk

TEXTS = {
    "/d/ferry.txt": ["The Corrib ferry leaves the harbour at 7:45.", "Tickets for the ferry are sold on the pier."],
    "/d/light.txt": ["The Aran lighthouse was built in 1857.", "Its lamp is seen 23 miles out to sea."],
    "/d/buoy.txt": ["The harbour bell buoy was painted green.", "The buoy rings in the harbour fog."],
    "/d/echo.txt": ["The Corrib ferry leaves the harbour at 7:45.", "The buoy rings in the harbour fog."],  # ties
}


def chunks_of(source: str) -> list[Chunk]:
    out, pos = [], 0
    for i, t in enumerate(TEXTS[source]):
        out.append(Chunk(f"{Path(source).stem}-{i}", source, t, pos, pos + len(t), index=i))
        pos += len(t) + 1
    return out


def entry(source: str) -> FileEntry:
    return FileEntry(source, "0" * 64, 10, [c.id for c in chunks_of(source)], 0.0)


class FakeLedger:
    """The ledger's reading side: commits are lists of (source, entry or None); ``writing`` and ``bump_seq`` stand
    for a commit in flight."""

    collection = "fake"

    def __init__(self) -> None:
        self.commits: list[dict[str, FileEntry | None]] = []
        self.writing = False
        self.stale = False
        self.seq = 0
        self.reads = 0
        self.bump_seq_on_read = False

    def commit(self, changes: dict[str, FileEntry | None]) -> None:
        self.commits.append(changes)
        self.seq += 2

    def state(self) -> LedgerState:
        return LedgerState(len(self.commits), self.seq, self.writing, self.writing and self.stale)

    def files_between(self, after: int, upto: int) -> list[FileRecord]:
        self.reads += 1
        if self.bump_seq_on_read:
            self.seq += 1
        latest: dict[str, FileRecord] = {}
        for gen, changes in enumerate(self.commits[after:upto], start=after + 1):
            for source, e in changes.items():
                latest[source] = FileRecord(source, e, gen)
        return sorted(latest.values(), key=lambda r: r.source)


class FakeStore:
    name = "fake"

    def __init__(self) -> None:
        self.chunks = {c.id: c for s in TEXTS for c in chunks_of(s)}
        self.filtered: list[int | None] = []  # the generation filter of each query

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        return [self.chunks[i] for i in ids if i in self.chunks]

    def query(self, embedding: np.ndarray, k: int, source: str | None = None,
              upto: int | None = None) -> list[tuple[Chunk, float]]:
        self.filtered.append(upto)
        return [(c, 0.5) for c in list(self.chunks.values())[:k]]


def replica(tmp_path: Path) -> tuple[FakeLedger, Replica]:
    ledger = FakeLedger()
    return ledger, Replica(ledger, FakeStore(), tmp_path / "scratch")  # type: ignore[arg-type]


def test_the_view_follows_commits_and_reads_nothing_when_nothing_changed(tmp_path: Path) -> None:
    ledger, rep = replica(tmp_path)
    assert rep.sync().version == 0 and len(rep) == 0
    ledger.commit({"/d/ferry.txt": entry("/d/ferry.txt")})
    ledger.commit({"/d/light.txt": entry("/d/light.txt")})
    view = rep.sync()
    assert view.version == 2 and sorted(view.files) == ["/d/ferry.txt", "/d/light.txt"]
    assert [i for i, _ in rep.search("ferry harbour", 5)][0] == "ferry-0"
    reads = ledger.reads
    rep.sync()
    assert ledger.reads == reads, "an unchanged version costs one state read, no file records"
    ledger.commit({"/d/ferry.txt": None})  # forgotten
    assert sorted(rep.sync().files) == ["/d/light.txt"]
    assert rep.search("ferry", 5) == [] and "ferry-0" not in rep.ids()


def test_a_commit_in_flight_is_never_half_seen(tmp_path: Path) -> None:
    ledger, rep = replica(tmp_path)
    ledger.commit({"/d/ferry.txt": entry("/d/ferry.txt")})
    assert rep.sync().version == 1
    ledger.commit({"/d/light.txt": entry("/d/light.txt")})
    ledger.writing = True  # the next commit is writing its records: keep answering from version 1
    assert rep.sync().version == 1
    ledger.writing = False
    ledger.bump_seq_on_read = True  # a commit overwrote records while they were read: keep version 1 too
    assert rep.sync().version == 1
    ledger.bump_seq_on_read = False
    assert rep.sync().version == 2


def test_bm25_scores_and_ties_are_the_same_whatever_order_the_commits_came_in(tmp_path: Path) -> None:
    one_by_one, rep1 = replica(tmp_path / "a")
    all_at_once, rep2 = replica(tmp_path / "b")
    for source in ("/d/echo.txt", "/d/light.txt", "/d/buoy.txt", "/d/ferry.txt"):
        one_by_one.commit({source: entry(source)})
        rep1.sync()
    all_at_once.commit({s: entry(s) for s in ("/d/ferry.txt", "/d/buoy.txt", "/d/light.txt", "/d/echo.txt")})
    rep2.sync()
    for q in ("harbour", "the buoy in the harbour", "lighthouse lamp sea", "ferry tickets pier", "Corrib ferry"):
        assert rep1.search(q, 10) == rep2.search(q, 10), q
    tied = rep1.search("Corrib ferry 7:45", 2)
    assert tied[0][1] == tied[1][1] and [i for i, _ in tied] == ["echo-0", "ferry-0"], "a tie: canonical order"
    assert canonical_ids(rep1.view.files)[:2] == ["buoy-0", "buoy-1"]


def test_derived_leaves_the_index_it_came_from_as_it_was(tmp_path: Path) -> None:
    base = BM25Index(tmp_path / "x")
    first = base.derived(drop_sources=set(), add=chunks_of("/d/ferry.txt"), order=["ferry-0", "ferry-1"])
    before = first.search("ferry", 5)
    second = first.derived(drop_sources={"/d/ferry.txt"}, add=chunks_of("/d/buoy.txt"), order=["buoy-0", "buoy-1"])
    assert first.search("ferry", 5) == before and second.search("ferry", 5) == []
    assert not (tmp_path / "x").exists(), "held in memory, nothing written"


def test_the_committed_store_shows_only_the_views_chunks(tmp_path: Path) -> None:
    ledger, rep = replica(tmp_path)
    ledger.commit({"/d/ferry.txt": entry("/d/ferry.txt")})
    rep.sync()
    store = CommittedStore(rep.store, rep)
    assert [c.source for c, _ in store.query(np.zeros(3), 2)] == ["/d/ferry.txt"] * 2
    assert rep.store.filtered == [None], "only committed chunks came back: no second, filtered query"
    assert {c.source for c, _ in store.query(np.zeros(3), 10)} == {"/d/ferry.txt"}
    assert rep.store.filtered[1:] == [None, 1], "others came back: asked again with the generation filter"
    assert [c.id for c in store.get(["ferry-1", "buoy-0"])] == ["ferry-1"] and store.count() == 2


def test_feedback_goes_to_the_configured_folder(tmp_path: Path) -> None:
    from ui.engine import Engine

    assert Engine(load_settings()).feedback_path("docs").parent.name == "feedback"
    shared = tmp_path / "all-replicas"
    assert Engine(load_settings(feedback_dir=str(shared))).feedback_path("docs") == shared / "docs.jsonl"


def test_a_commit_whose_process_died_mid_write_does_not_stop_a_new_replica(tmp_path: Path) -> None:
    ledger, rep = replica(tmp_path)
    ledger.commit({"/d/ferry.txt": entry("/d/ferry.txt")})
    ledger.writing = ledger.stale = True  # `writing` for longer than a lock lives
    assert rep.sync().version == 1 and sorted(rep.view.files) == ["/d/ferry.txt"]
