"""Issue 16: replicas behind a load balancer. One real `chroma run`, two `citeqa serve` processes with separate data
directories (nothing shared but the Chroma server), driven through the REST API as a load balancer would route
it: what is uploaded through one is answered alike (answer, citations, hybrid scores) by the other, what is
forgotten through one is gone from the other's answers, and a conversation goes on on the other replica."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from evals.tools.cluster import Replica, chroma_run, citeqa_serve
from ingest.compose import Citeqa
from ingest.ledger import Ledger
from rag.errors import BusyError, NotFoundError
from rag.settings import load_settings

pytestmark = pytest.mark.integration

KEY = "replica-test-key-0123456789"
COLLECTION = "replicated"
FERRY = ("The Corrib ferry leaves the harbour at 7:45 every morning. Tickets are sold on the pier.\n\n"
         "In winter the ferry does not run on Sundays, and the harbour office closes at noon.\n")
LIGHT = ("# The lighthouse\n\nThe Aran lighthouse was built in 1857 from granite quarried on the island. "
         "Its lamp can be seen 23 miles out to sea.\n")


@pytest.fixture(scope="module")
def hostport(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chroma_run(tmp_path_factory.mktemp("chroma") / "data") as hp:
        yield hp


@pytest.fixture(scope="module")
def replicas(hostport: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Replica, Replica]]:
    root = tmp_path_factory.mktemp("replicas")
    settings = {"collection": COLLECTION, "api_keys": KEY, "embedder": "minilm-int8"}
    with citeqa_serve(root / "A", hostport, **settings) as a, citeqa_serve(root / "B", hostport, **settings) as b:
        yield a, b


def call(replica: Replica, method: str, path: str, **kw: Any) -> Any:
    r = httpx.request(method, f"{replica.url}api/{path}", headers={"Authorization": f"Bearer {KEY}"}, timeout=300,
                      **kw)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def ask(replica: Replica, question: str, history: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return call(replica, "POST", "ask", json={"question": question, "collection": COLLECTION,
                                              "history": history or []})


def upload(replica: Replica, name: str, text: str) -> dict[str, Any]:
    return call(replica, "POST", f"collections/{COLLECTION}/documents",
                files=[("files", (name, text.encode("utf-8"), "text/plain"))])


def seen(answer: dict[str, Any]) -> dict[str, Any]:
    """All of an answer but its timings: text, citations, and every hit with its fused, dense and BM25 score."""
    return {k: v for k, v in answer.items() if k != "timings"}


def test_an_upload_through_one_replica_is_answered_alike_by_the_other(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    assert upload(a, "ferry.txt", FERRY)["added"] == ["ferry.txt"]
    assert upload(a, "lighthouse.md", LIGHT)["added"] == ["lighthouse.md"]
    assert not (b.data_dir / "uploads").exists(), "B was not sent the files"
    question = "When does the Corrib ferry leave the harbour?"
    on_b, on_a = ask(b, question), ask(a, question)
    assert "7:45" in on_b["answer"] and on_b["citations"], on_b
    assert seen(on_b) == seen(on_a)
    assert [h["bm25_score"] is not None for h in on_b["retrieved"]][0], "hybrid: BM25 found it on B too"
    names = sorted(Path(s["source"]).name for s in call(b, "GET", f"collections/{COLLECTION}/sources"))
    assert names == ["ferry.txt", "lighthouse.md"]


def test_a_conversation_started_on_one_replica_goes_on_on_the_other(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    first = ask(a, "When was the Aran lighthouse built?")
    assert "1857" in first["answer"], first
    history = [{"question": first["question"], "answer": first["answer"]}]
    follow = "How far out to sea can its lamp be seen?"
    on_b, on_a = ask(b, follow, history), ask(a, follow, history)
    assert "23 miles" in on_b["answer"], on_b
    assert seen(on_b) == seen(on_a)


def test_a_file_forgotten_through_one_replica_is_gone_from_the_others_answers(
    replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    upload(a, "buoy.txt", "The harbour bell buoy was painted green in 1990.\n")
    question = "What colour was the harbour bell buoy painted?"
    assert any(Path(c["source"]).name == "buoy.txt" for c in ask(a, question)["citations"])
    source = next(s["source"] for s in call(b, "GET", f"collections/{COLLECTION}/sources")
                  if Path(s["source"]).name == "buoy.txt")
    assert call(b, "DELETE", f"collections/{COLLECTION}/documents", params={"source": source})["removed_chunks"] == 1
    after = ask(a, question)
    assert all(Path(h["source"]).name != "buoy.txt" for h in after["retrieved"]), after
    assert sorted(Path(s["source"]).name for s in call(a, "GET", f"collections/{COLLECTION}/sources")) == [
        "ferry.txt", "lighthouse.md"]
    assert seen(ask(b, question)) == seen(after)


# -- in process: the lock, a killed ingest -----------------------------------------------------------------------
def two(hostport: str, tmp_path: Path, embedder: Any, collection: str) -> tuple[Citeqa, Citeqa]:
    return tuple(Citeqa(load_settings(data_dir=tmp_path / n, collection=collection, chroma=hostport,
                                      embedder="minilm-int8"), embedder=embedder) for n in "AB")  # type: ignore[return-value]


def test_the_ingest_lock_is_one_for_every_process_and_a_dead_holders_expires(
    hostport: str, tmp_path: Path, embedder: Any
) -> None:
    a, b = two(hostport, tmp_path, embedder, "locked")
    doc = tmp_path / "ferry.txt"
    doc.write_text(FERRY, encoding="utf-8")
    with a.collection.ledger.hold(owner="machine-a:1"):
        with pytest.raises(BusyError, match=r"another ingest into collection 'locked' is running \(by machine-a:1\)"):
            b.ingest([doc], progress=False)
    assert b.ingest([doc], progress=False).added == [str(doc.resolve())]

    # a live holder renews its lock (every quarter of its life): held three lives long, it is still its own
    alive, other = (Ledger(a.collection.client, "locked", ttl=0.4) for _ in range(2))
    with alive.hold(owner="alive") as held:
        time.sleep(1.2)
        with pytest.raises(BusyError, match=r"\(by alive\)"):
            with other.hold(owner="other"):
                pass
        alive.check(held)

    # a holder that died: its lock is not renewed, and is broken once expired (here after 0.5 s)
    clock = [1000.0]
    dead = Ledger(a.collection.client, "locked", ttl=0.5, clock=lambda: clock[0])
    taker = Ledger(a.collection.client, "locked", ttl=0.5, clock=lambda: clock[0])
    with dead.hold(owner="dead") as dead_held:
        dead_held.stop.set()  # its heartbeat stops, as the process's would
        with pytest.raises(BusyError):
            with taker.hold(owner="taker"):
                pass
        clock[0] += 1.0
        with taker.hold(owner="taker"):
            with pytest.raises(BusyError, match="lock of collection 'locked' was lost"):
                dead.commit({}, dead_held)  # the dead one, come back, commits nothing


def _ferry_and_buoy(tmp_path: Path) -> tuple[Path, Path]:
    ferry, buoy = tmp_path / "ferry.txt", tmp_path / "buoy.txt"
    ferry.write_text(FERRY, encoding="utf-8")
    buoy.write_text("The harbour bell buoy was painted green in 1990.\n", encoding="utf-8")
    return ferry, buoy


def test_a_replica_killed_mid_ingest_leaves_nothing_the_other_answers_from(
    hostport: str, tmp_path: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two(hostport, tmp_path, embedder, "killed")
    ferry, buoy = _ferry_and_buoy(tmp_path)
    a.ingest([ferry], progress=False)
    before = b.ask("What colour was the harbour bell buoy painted?").to_dict()

    def killed(changes: Any, held: Any) -> int:  # the process dies after its chunks are stored, before the commit
        raise KeyboardInterrupt

    monkeypatch.setattr(a.collection.ledger, "commit", killed)
    with pytest.raises(KeyboardInterrupt):
        a.ingest([buoy], progress=False)
    monkeypatch.undo()
    assert str(buoy.resolve()) in a.store.source_counts(), "its chunks are in the store"
    after = b.ask("What colour was the harbour bell buoy painted?").to_dict()
    assert all(Path(h["source"]).name != "buoy.txt" for h in after["retrieved"]), after
    assert {k: v for k, v in after.items() if k != "timings"} == {k: v for k, v in before.items() if k != "timings"}
    assert [Path(s.source).name for s in b.sources()] == ["ferry.txt"]

    # the next ingest (any replica) deletes what the killed one left, then does its own work
    b.ingest([ferry], progress=False)
    assert str(buoy.resolve()) not in b.store.source_counts()
    assert b.ingest([buoy], progress=False).added == [str(buoy.resolve())]
    assert "green" in a.ask("What colour was the harbour bell buoy painted?").answer


def test_forgetting_the_last_file_empties_the_collection_for_every_replica(
    hostport: str, tmp_path: Path, embedder: Any
) -> None:
    a, b = two(hostport, tmp_path, embedder, "emptied")
    doc = tmp_path / "ferry.txt"
    doc.write_text(FERRY, encoding="utf-8")
    a.ingest([doc], progress=False)
    assert "7:45" in b.ask("When does the Corrib ferry leave?").answer
    assert b.forget(doc) > 0
    with pytest.raises(NotFoundError, match="is empty"):
        a.ask("When does the Corrib ferry leave?")
    assert a.sources() == []


def test_the_replica_load_tool_at_tiny_scale_has_no_errors_and_no_half_ingested_answers(tmp_path: Path) -> None:
    """evals/tools/bench_replicas.py (40 users, 50 documents in the note): 2 replicas, 3 users, 3 documents
    ingested by a third process while they ask. The figures are printed, not asserted."""
    from evals.tools.bench_replicas import run

    got = run(replicas=2, users=3, docs=3, seed_docs=2, work=tmp_path)
    print(got)
    assert got["errors"] == 0, got["error_examples"]
    assert got["half_ingested_answers"] == 0
    assert got["docs_ingested"] == 3 and got["answers"] > 0


def test_a_commit_cut_off_half_way_is_never_half_seen_and_the_next_ingest_undoes_it(
    hostport: str, tmp_path: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two(hostport, tmp_path, embedder, "cut-commit")
    ferry, buoy = _ferry_and_buoy(tmp_path)
    a.ingest([ferry], progress=False)
    question = "What colour was the harbour bell buoy painted?"
    before = b.ask(question).to_dict()
    ledger = a.collection.ledger
    put_state = ledger._put_state

    def dies_before_the_version_moves(state: Any) -> None:  # the file records are written, the version is not
        if not state.writing:
            raise KeyboardInterrupt
        put_state(state)

    monkeypatch.setattr(ledger, "_put_state", dies_before_the_version_moves)
    with pytest.raises(KeyboardInterrupt):
        a.ingest([buoy], progress=False)
    monkeypatch.undo()
    assert ledger.state().writing, "the commit was cut off while writing"
    after = b.ask(question).to_dict()
    assert {k: v for k, v in after.items() if k != "timings"} == {k: v for k, v in before.items() if k != "timings"}

    assert b.ingest([buoy], progress=False).added == [str(buoy.resolve())]  # undoes the cut commit, then ingests
    assert not ledger.state().writing
    fresh = two(hostport, tmp_path / "C", embedder, "cut-commit")[0]  # a replica started now
    assert "green" in fresh.ask(question).answer
    assert sorted(Path(s.source).name for s in fresh.sources()) == ["buoy.txt", "ferry.txt"]


# -- the browser UI: the conversation travels with the page --------------------------------------------------------
def test_a_browser_conversation_goes_on_on_a_replica_that_never_saw_the_tab(
    hostport: str, tmp_path: Path, embedder: Any
) -> None:
    """The tab's replica goes away between two questions; the page's next question reaches another replica (its
    Gradio session is new there) carrying the chat and the conversation as the page holds them, and is
    answered as a follow-up, exactly as the first replica answers it."""
    from tests.integration.chroma_server import free_port
    from tests.integration.gradio_events import Events, text_of
    from ui.app import start

    def factory(s: Any, **kw: Any) -> Citeqa:
        return Citeqa(s, **{"embedder": embedder, **kw})

    doc = tmp_path / "lighthouse.md"
    doc.write_text(LIGHT, encoding="utf-8")
    a_qa, _ = two(hostport, tmp_path, embedder, "ui-replicas")
    a_qa.ingest([doc], progress=False)
    apps = [start(load_settings(data_dir=tmp_path / n, collection="ui-replicas", chroma=hostport,
                                embedder="minilm-int8"), "127.0.0.1", free_port(), factory=factory) for n in "AB"]
    try:
        (_, url_a), (_, url_b) = apps
        with Events(url_a) as on_a, Events(url_b) as on_b:
            tab = on_a.new_session()
            first = on_a.call("cq-send", "click", ["When was the Aran lighthouse built?", [], [], None], tab)
            assert first.success and "1857" in text_of(first.data[0]), first
            shown, carried = first.data[0], first.data[4]
            assert [t["question"] for t in carried] == ["When was the Aran lighthouse built?"]
            follow = "How far out to sea can its lamp be seen?"
            moved = on_b.call("cq-send", "click", [follow, shown, carried, None], on_b.new_session())
            stayed = on_a.call("cq-send", "click", [follow, shown, carried, None], tab)
            assert moved.success and "23 miles" in text_of(moved.data[0][-1]), moved
            assert moved.data[0] == stayed.data[0], "the same chat, both turns, on either replica"
            assert len(moved.data[0]) == 4 and [t["question"] for t in moved.data[4]] == [
                "When was the Aran lighthouse built?", follow]
            # the collection the page was asking travels with it (a name that is none is ignored)
            other = [{**t, "collection": "no such/name"} for t in carried]
            named = on_b.call("cq-send", "click", [follow, shown, other, None], on_b.new_session())
            assert named.success and [t["collection"] for t in named.data[4]] == ["no such/name", "ui-replicas"]
            # what the browser sends is checked: a malformed carry starts a fresh conversation, it is not an error
            odd = on_b.call("cq-send", "click", [follow, shown, [{"question": 3}], None], on_b.new_session())
            assert odd.success and len(odd.data[0]) == 2 and len(odd.data[4]) == 1
    finally:
        for app, _ in apps:
            app.close()
