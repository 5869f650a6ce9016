"""Reciprocal-rank fusion, MMR and the HybridRetriever's assembly of hits, on hand-computed examples with
in-memory stand-ins for the model, the store and the BM25 index (pure and fast)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.errors import ConfigError
from rag.interfaces import Retriever
from rag.retrieve import HybridRetriever, convex, mmr, rrf
from rag.types import Chunk


# -- rrf --------------------------------------------------------------------------------------------------
def test_rrf_hand_computed_scores_and_order() -> None:
    fused = rrf([["a", "b", "c"], ["b", "a", "d"]], k=60)
    assert fused == pytest.approx({"a": 1 / 61 + 1 / 62, "b": 1 / 62 + 1 / 61, "c": 1 / 63, "d": 1 / 63})
    # a and b tie exactly, as do c and d: each tie goes to the id whose best rank came from the earlier ranking.
    assert list(fused) == ["a", "b", "c", "d"]


def test_rrf_exact_tie_goes_to_the_earlier_ranking() -> None:
    tie = rrf([["x", "y"], ["y", "x"]], k=0)  # x: 1 + 1/2, y: 1/2 + 1
    assert tie == {"x": 1.5, "y": 1.5} and list(tie) == ["x", "y"]
    swapped = rrf([["y", "x"], ["x", "y"]], k=0)
    assert list(swapped) == ["y", "x"]


def test_rrf_better_single_rank_wins_an_exact_tie() -> None:
    # k=2: p at ranks 1 and 4 -> 1/3 + 1/6 = 1/2; q at ranks 2 and 2 -> 1/4 + 1/4 = 1/2. Equal scores, and
    # p's best single rank (1) beats q's (2).
    fused = rrf([["p", "q"], ["z", "q", "w", "p"]], k=2)
    assert fused["p"] == pytest.approx(0.5) and fused["q"] == pytest.approx(0.5)
    assert list(fused)[:2] == ["p", "q"]


def test_rrf_is_deterministic_whatever_the_input_order_of_equal_items() -> None:
    runs = {tuple(rrf([["m", "n", "o"], ["o", "n", "m"], ["n"]], k=60)) for _ in range(5)}
    assert runs == {("n", "m", "o")}


def test_rrf_empty_inputs() -> None:
    assert rrf([]) == {}
    assert rrf([[], []]) == {}
    assert rrf([["solo"], []]) == pytest.approx({"solo": 1 / 61})


def test_rrf_repeated_id_counts_once_per_ranking() -> None:
    assert rrf([["a", "a", "b"]], k=60) == pytest.approx({"a": 1 / 61, "b": 1 / 63})


def test_rrf_rejects_negative_k() -> None:
    with pytest.raises(ValueError):
        rrf([["a"]], k=-1)


# -- mmr --------------------------------------------------------------------------------------------------
def _unit(*v: float) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


# c0 and c1 are near-duplicates (cos ~0.9998), c2 is a little less relevant but points elsewhere.
QUERY = _unit(1, 0, 0)
CANDS = np.stack([_unit(0.9, 0.436, 0), _unit(0.89, 0.456, 0), _unit(0.85, -0.527, 0)])


def test_mmr_skips_the_near_duplicate() -> None:
    # step 2: c1 gains 0.7*0.89 - 0.3*1.0 ~ 0.32; c2 gains 0.7*0.85 - 0.3*0.53 ~ 0.44
    assert mmr(QUERY, CANDS, 2, lambda_=0.7) == [0, 2]


def test_mmr_lambda_one_is_relevance_order() -> None:
    assert mmr(QUERY, CANDS, 3, lambda_=1.0) == [0, 1, 2]


def test_mmr_edges() -> None:
    assert mmr(QUERY, CANDS, 10) == [0, 2, 1], "k larger than the pool returns every candidate once"
    assert mmr(QUERY, CANDS, 0) == []
    assert mmr(QUERY, np.zeros((0, 3), dtype=np.float32), 3) == []
    with pytest.raises(ValueError):
        mmr(QUERY, CANDS, 2, lambda_=1.5)


# -- HybridRetriever with stand-ins -------------------------------------------------------------------------
class FakeEmbedder:
    name = "fake"
    dim = 3

    def __init__(self, vec: np.ndarray) -> None:
        self.vec = vec

    def embed(self, texts):  # type: ignore[no-untyped-def]
        return np.stack([self.vec for _ in texts])


class FakeStore:
    """Just what the retriever uses: cosine top-k and chunk + embedding by id."""

    def __init__(self, items: dict[str, tuple[Chunk, np.ndarray]]) -> None:
        self.items = items

    def query(self, embedding, k, source=None):  # type: ignore[no-untyped-def]
        rows = [(c, float(v @ embedding)) for c, v in self.items.values() if source is None or c.source == source]
        return sorted(rows, key=lambda cs: -cs[1])[:k]

    def get(self, ids):  # type: ignore[no-untyped-def]
        return [self.items[i][0] for i in ids if i in self.items]

    def get_with_embeddings(self, ids):  # type: ignore[no-untyped-def]
        present = [i for i in ids if i in self.items]
        vecs = [self.items[i][1] for i in present]
        return [self.items[i][0] for i in present], np.stack(vecs) if vecs else np.zeros((0, 3), np.float32)


class FakeBM25:
    def __init__(self, results: list[tuple[str, float]], links: list[str] | None = None) -> None:
        self.results = results
        self.links = links or []
        self.queries: list[str] = []

    def search(self, query, k, source=None):  # type: ignore[no-untyped-def]
        self.queries.append(query)
        return self.results[:k]

    def linked(self, text, k, exclude_sources=(), source=None):  # type: ignore[no-untyped-def]
        return self.links[:k]


def _chunk(i: str, source: str = "/a.txt") -> Chunk:
    return Chunk(id=i, source=source, text=f"text {i}", start=0, end=6)


@pytest.fixture
def parts() -> tuple[FakeEmbedder, FakeStore]:
    vecs = {"d1": _unit(1, 0.1, 0), "d2": _unit(1, 0.5, 0), "d3": _unit(1, 1, 0), "b1": _unit(0, 1, 0.2)}
    store = FakeStore({i: (_chunk(i), v) for i, v in vecs.items()})
    return FakeEmbedder(QUERY), store


def test_hybrid_hits_carry_cosine_even_when_only_bm25_found_them(parts) -> None:  # type: ignore[no-untyped-def]
    embedder, store = parts
    # "ghost" is in the BM25 index but no longer in the store: it must be skipped, not crash.
    bm25 = FakeBM25([("ghost", 9.0), ("b1", 7.5), ("d3", 1.0)])
    r = HybridRetriever(embedder, store, bm25, candidates=4, fusion="rrf", expand=False)
    assert isinstance(r, Retriever)
    hits = r.retrieve("q", 4)
    ids = [h.chunk.id for h in hits]
    fused = rrf([["d1", "d2", "d3", "b1"], ["ghost", "b1", "d3"]])
    assert ids == [i for i in fused if i != "ghost"]
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    for h in hits:
        assert h.score == pytest.approx(fused[h.chunk.id])
        assert h.dense_score == pytest.approx(float(store.items[h.chunk.id][1] @ QUERY), abs=1e-6)
    by_id = {h.chunk.id: h for h in hits}
    assert by_id["d3"].bm25_score == pytest.approx(1.0) and by_id["d1"].bm25_score is None
    assert set(r.last_timings) >= {"embed", "dense", "bm25", "fuse"}


def test_dense_only_scores_are_cosine(parts) -> None:  # type: ignore[no-untyped-def]
    embedder, store = parts
    r = HybridRetriever(embedder, store, FakeBM25([("b1", 7.5)]), hybrid=False)
    hits = r.retrieve("q", 2)
    assert [h.chunk.id for h in hits] == ["d1", "d2"]
    assert all(h.score == h.dense_score and h.bm25_score is None for h in hits)
    assert "bm25" not in r.last_timings


def test_mmr_retriever_returns_k_distinct(parts) -> None:  # type: ignore[no-untyped-def]
    embedder, store = parts
    hits = HybridRetriever(embedder, store, FakeBM25([("b1", 7.5)]), mmr=True).retrieve("q", 3)
    assert len(hits) == 3 and len({h.chunk.id for h in hits}) == 3 and [h.rank for h in hits] == [1, 2, 3]


def test_convex_hand_computed() -> None:
    # dense scaled: a 1.0, b 0.0 (the floor); bm25 scaled by its top: b 1.0, c 0.5; missing -> 0
    got = convex([("a", 0.9), ("b", 0.5)], [("b", 10.0), ("c", 5.0)], dense_weight=0.4)
    assert got == pytest.approx({"b": 0.6, "a": 0.4, "c": 0.3})
    assert list(got) == ["b", "a", "c"]
    assert list(convex([("x", 0.5), ("y", 0.5)], [], 0.4)) == ["x", "y"]  # ties by id, never by set order
    assert convex([], [], 0.5) == {}
    with pytest.raises(ValueError):
        convex([], [], 1.5)


def test_expansion_keeps_the_first_round_best_and_adds_named_documents(parts) -> None:  # type: ignore[no-untyped-def]
    embedder, store = parts
    bm25 = FakeBM25([("d1", 3.0)], links=["b1"])
    r = HybridRetriever(embedder, store, bm25, expand_from=1)
    hits = r.retrieve("q", 3)
    ids = [h.chunk.id for h in hits]
    assert ids[0] == "d1"  # the first round's best keeps its place
    assert "b1" in ids  # named by the best passage: a candidate although neither round ranked it high
    assert bm25.queries[1] == "q text d1"  # the second BM25 query is the question plus the best passage
    assert "expand" in r.last_timings
    no_expand = HybridRetriever(embedder, store, FakeBM25([("d1", 3.0)], links=["b1"]), expand=False)
    assert "b1" not in [h.chunk.id for h in no_expand.retrieve("q", 3)]


def test_titles_link_documents(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rag.bm25 import BM25Index, document_title, title_key

    assert document_title("Maximum Overdrive\n\nMaximum Overdrive is a 1986 film.", "/x/mo.txt") == "Maximum Overdrive"
    assert document_title("# Getting started\nInstall it.", "/x/a.md") == "Getting started"
    assert document_title("This opens with a sentence.", "/x/q3_sales-report.txt") == "q3 sales report"
    assert title_key("The") is None and title_key("Leland, North Carolina") == ("leland", "north", "carolina")
    idx = BM25Index(tmp_path / "bm25")
    chunks = [
        Chunk(id="l0", source="/d/leland.txt", text="Leland, North Carolina\nLeland is a town.", start=0, end=40),
        Chunk(id="m0", source="/d/mo.txt", text="Maximum Overdrive\nA film shot in Leland, North Carolina.", start=0,
              end=55),
        Chunk(id="m1", source="/d/mo.txt", text="It was directed by Stephen King.", start=55, end=87, index=1),
    ]
    idx.add(chunks)
    idx.save()
    again = BM25Index(tmp_path / "bm25")  # titles are persisted with the index
    text = "In 1986 Maximum Overdrive was shot in leland, north carolina."
    assert again.linked(text, 5) == ["m0", "l0"]  # in order of first mention; only first chunks
    assert again.linked(text, 5, exclude_sources={"/d/mo.txt"}) == ["l0"]
    assert again.linked(text, 5, source="/d/leland.txt") == ["l0"]
    assert again.linked("nothing named here", 5) == []
    again.remove_source("/d/leland.txt")
    again.save()
    assert BM25Index(tmp_path / "bm25").linked(text, 5) == ["m0"]


@pytest.mark.parametrize(
    "kwargs",
    [{"rrf_k": -1}, {"rrf_k": 1.5}, {"candidates": 0}, {"candidates": True}, {"mmr_lambda": 2.0},
     {"fusion": "max"}, {"dense_weight": -0.1}, {"expand_from": 0}],
)
def test_bad_arguments_raise_config_error(parts, kwargs) -> None:  # type: ignore[no-untyped-def]
    embedder, store = parts
    with pytest.raises(ConfigError):
        HybridRetriever(embedder, store, None, **kwargs)


def test_bad_k_and_blank_query(parts) -> None:  # type: ignore[no-untyped-def]
    embedder, store = parts
    r = HybridRetriever(embedder, store)
    with pytest.raises(ConfigError):
        r.retrieve("q", 0)
    assert r.retrieve("   ", 3) == []


def test_a_heading_is_told_from_a_statement() -> None:
    from rag.titles import is_heading

    doc = "Kvit Plateau\n\nThe Kvit plateau is an ice plateau. It is high."
    assert is_heading(doc, 0, 12, opens_document=True), "the document's title"
    assert not is_heading(doc, 0, 12, opens_document=False), "a chunk in the middle of a document: a line of it"
    assert not is_heading(doc, 14, 47, opens_document=True), "a sentence"
    assert is_heading("# Install\n\nRun make demo.", 0, 9, opens_document=False), "a markdown heading"
    assert not is_heading("Meeting moved to Tuesday", 0, 24, opens_document=True), "a one-line note is its content"
    assert not is_heading("- port 7860\n\nMore.", 0, 11, opens_document=True), "a list item states something"
