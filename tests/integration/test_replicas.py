"""Issue 16: replicas behind a load balancer. One real `chroma run`, two `citeqa serve` processes with separate data
directories (nothing shared but the Chroma server), driven through the REST API as a load balancer would route
it: what is uploaded through one is answered alike (answer, citations, hybrid scores) by the other, what is
forgotten through one is gone from the other's answers, and a conversation goes on on the other replica."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from evals.tools.cluster import Replica, chroma_run, citeqa_serve

pytestmark = pytest.mark.integration

KEY = "replica-test-key-0123456789"
COLLECTION = "replicated"
FERRY = ("The Corrib ferry leaves the harbour at 7:45 every morning. Tickets are sold on the pier.\n\n"
         "In winter the ferry does not run on Sundays, and the harbour office closes at noon.\n")
LIGHT = ("# The lighthouse\n\nThe Aran lighthouse was built in 1857 from granite quarried on the island. "
         "Its lamp can be seen 23 miles out to sea.\n")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Replica, Replica]]:
    root = tmp_path_factory.mktemp("replicas")
    settings = {"collection": COLLECTION, "api_keys": KEY, "embedder": "minilm-int8",
                "feedback_dir": str(root / "feedback")}
    with chroma_run(root / "chroma") as hostport, \
            citeqa_serve(root / "A", hostport, **settings) as a, citeqa_serve(root / "B", hostport, **settings) as b:
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
