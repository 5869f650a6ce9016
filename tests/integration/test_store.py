"""The ChromaStore contract, run twice: against embedded Chroma and against a real `chroma run` server on
loopback. Chroma's default embedding function is booby-trapped for the whole module, so any attempt to load
or download its ONNX model fails the test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ConfigError, NotFoundError, StoreError
from rag.interfaces import VectorStore
from rag.settings import load_settings
from rag.store import ChromaStore, drop_collection, open_chroma_client
from rag.types import Chunk
from tests.integration.chroma_server import chroma_server, free_port

pytestmark = pytest.mark.integration

DIM = 16


def list_collections(client) -> list[str]:  # type: ignore[no-untyped-def]
    """Names of the collections in this Chroma, sorted (the app itself never lists them)."""
    return sorted(c if isinstance(c, str) else c.name for c in client.list_collections())


@pytest.fixture(autouse=True)
def _no_chroma_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from chromadb.utils.embedding_functions import onnx_mini_lm_l6_v2 as onnx

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("Chroma tried to load or download its own embedding model")

    monkeypatch.setattr(onnx.ONNXMiniLM_L6_V2, "_download_model_if_not_exists", refuse)
    monkeypatch.setattr(onnx.ONNXMiniLM_L6_V2, "__call__", refuse)


@pytest.fixture(scope="module")
def chroma_hostport(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chroma_server(tmp_path_factory.mktemp("chroma") / "data") as hostport:
        yield hostport


@pytest.fixture(params=["embedded", "server"])
def client(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if request.param == "embedded":
        return open_chroma_client(load_settings())
    return open_chroma_client(load_settings(chroma=request.getfixturevalue("chroma_hostport")))


@pytest.fixture
def name() -> str:
    # The server outlives a test: a fresh name keeps tests from seeing each other's collections.
    return f"t-{uuid.uuid4().hex[:12]}"


def make_chunks(source: str, n: int, start_index: int = 0) -> list[Chunk]:
    return [
        Chunk(
            id=f"{Path(source).name}-{i}",
            source=source,
            text=f"chunk {i} of {source}",
            start=i * 100,
            end=i * 100 + 50,
            page=(i + 1) if i % 2 else None,  # None must round-trip (Chroma rejects None metadata values)
            index=i,
            doc_hash=f"hash-{source}",
        )
        for i in range(start_index, start_index + n)
    ]


def unit_vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_contract(client, name: str) -> None:  # type: ignore[no-untyped-def]
    store = ChromaStore(client, name, "minilm")
    assert isinstance(store, VectorStore) and store.name == name and store.count() == 0
    a, b = make_chunks("/docs/a.txt", 7), make_chunks("/docs/b.txt", 4)
    va, vb = unit_vectors(7, 1), unit_vectors(4, 2)
    store.upsert(a, va)
    store.upsert(b, vb)
    assert store.count() == 11
    assert store.source_counts() == {"/docs/a.txt": 7, "/docs/b.txt": 4}
    assert sorted(store.ids_for_source("/docs/b.txt")) == sorted(c.id for c in b)

    # query: the chunk's own vector finds it first with similarity ~1, best first, in range
    res = store.query(va[3], 5)
    assert res[0][0] == a[3] and res[0][1] == pytest.approx(1.0, abs=1e-4)
    sims = [s for _, s in res]
    assert sims == sorted(sims, reverse=True) and all(-1.0001 <= s <= 1.0001 for s in sims)
    only_b = store.query(va[3], 10, source="/docs/b.txt")
    assert len(only_b) == 4 and {c.source for c, _ in only_b} == {"/docs/b.txt"}
    assert store.query(va[3], 3, source="/docs/none.txt") == []

    # get: order of the ids asked for, missing ids skipped, chunks round-trip exactly
    assert store.get([b[2].id, "nope", a[0].id]) == [b[2], a[0]]
    emb = store.get_embeddings([b[1].id, a[5].id])
    assert emb.shape == (2, DIM) and np.allclose(emb, np.stack([vb[1], va[5]]), atol=1e-5)
    with pytest.raises(NotFoundError):
        store.get_embeddings([a[0].id, "nope"])
    chunks, vecs = store.get_with_embeddings(["nope", a[6].id])
    assert chunks == [a[6]] and np.allclose(vecs, va[6:7], atol=1e-5)

    # iter_chunks pages through everything
    assert sorted(c.id for c in store.iter_chunks(batch=3)) == sorted(c.id for c in a + b)

    # re-upsert of the same ids replaces, never duplicates
    changed = [Chunk(**{**c.__dict__, "text": c.text + " (edited)"}) for c in a[:3]]
    store.upsert(changed, va[:3])
    assert store.count() == 11 and store.get([a[0].id])[0].text.endswith("(edited)")

    # deletes
    assert store.delete_source("/docs/a.txt") == 7
    assert store.count() == 4 and store.source_counts() == {"/docs/b.txt": 4}
    assert store.delete_source("/docs/a.txt") == 0
    store.delete_ids([b[0].id, "nope"])
    assert store.count() == 3 and store.get([b[0].id]) == []


def test_cosine_similarity_range(client, name: str) -> None:  # type: ignore[no-untyped-def]
    store = ChromaStore(client, name, "minilm-int8")
    v = unit_vectors(1, 3)[0]
    ortho = unit_vectors(1, 4)[0]
    ortho = ortho - (ortho @ v) * v
    ortho /= np.linalg.norm(ortho)
    chunks = make_chunks("/docs/c.txt", 3)
    store.upsert(chunks, np.stack([v, -v, ortho]))
    sims = {c.id: s for c, s in store.query(v, 3)}
    assert sims[chunks[0].id] == pytest.approx(1.0, abs=1e-4)
    assert sims[chunks[1].id] == pytest.approx(-1.0, abs=1e-4)
    assert sims[chunks[2].id] == pytest.approx(0.0, abs=1e-4)


def test_batches_under_the_client_limit(client, name: str) -> None:  # type: ignore[no-untyped-def]
    store = ChromaStore(client, name, "minilm")
    assert store.max_batch >= 100
    store._max_batch = 3  # force several batches through every batched call
    chunks = make_chunks("/docs/d.txt", 10)
    store.upsert(chunks, unit_vectors(10, 5))
    assert store.count() == 10
    assert [c.id for c in store.get([c.id for c in reversed(chunks)])] == [c.id for c in reversed(chunks)]
    assert store.get_embeddings([c.id for c in chunks]).shape == (10, DIM)
    assert store.delete_source("/docs/d.txt") == 10 and store.count() == 0


def test_reopen_and_family_check(client, name: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    store = ChromaStore(client, name, "minilm")
    store.upsert(make_chunks("/docs/e.txt", 2), unit_vectors(2, 6))
    # the same model family through the other runtime opens the same vectors
    assert ChromaStore(client, name, "minilm-int8", create=False).count() == 2

    import rag.embeddings

    monkeypatch.setitem(rag.embeddings.FAMILY, "other", "some-other-model")
    with pytest.raises(ConfigError) as err:
        ChromaStore(client, name, "other")
    msg = str(err.value)
    assert name in msg and "other" in msg and "all-MiniLM-L6-v2" in msg and "\n" not in msg
    with pytest.raises(ConfigError):
        ChromaStore(client, name, "no-such-embedder")


def test_missing_collection_without_create(client, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFoundError) as err:
        ChromaStore(client, name, "minilm", create=False)
    assert str(err.value) == f"collection '{name}' does not exist: run `citeqa ingest PATH --collection {name}` first"
    assert name not in list_collections(client), "create=False must not create it"


def test_list_and_drop(client, name: str) -> None:  # type: ignore[no-untyped-def]
    ChromaStore(client, name, "minilm")
    assert name in list_collections(client)
    drop_collection(client, name)
    assert name not in list_collections(client)
    with pytest.raises(NotFoundError):
        drop_collection(client, name)


def test_foreign_collection_is_refused(client, name: str) -> None:  # type: ignore[no-untyped-def]
    client.create_collection(name, embedding_function=None)  # made by someone else: no family recorded
    with pytest.raises(ConfigError, match="not built by citeqa"):
        ChromaStore(client, name, "minilm")


def test_unreachable_server_is_one_line_store_error() -> None:
    port = free_port()  # nobody listens there
    with pytest.raises(StoreError) as err:
        open_chroma_client(load_settings(chroma=f"127.0.0.1:{port}"))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"cannot reach the Chroma server at 127.0.0.1:{port} (")
    assert msg.endswith(f"): start it with `chroma run --path DIR --port {port}` or unset CITEQA_CHROMA")
    assert "refused" in msg.lower()


def test_server_gone_mid_session_is_store_error(tmp_path: Path, name: str) -> None:
    with chroma_server(tmp_path / "short-lived") as hostport:
        store = ChromaStore(open_chroma_client(load_settings(chroma=hostport)), name, "minilm")
        store.upsert(make_chunks("/docs/f.txt", 2), unit_vectors(2, 7))
    with pytest.raises(StoreError) as err:
        store.query(unit_vectors(1, 8)[0], 2)
    assert f"collection '{name}'" in str(err.value) and "\n" not in str(err.value)
