"""Hybrid retrieval: dense (Chroma, cosine) and BM25 candidates fused by reciprocal-rank fusion, optionally
diversified with maximal marginal relevance, optionally restricted to one source.

Every hit carries its cosine similarity to the query (``dense_score``), also the ones only BM25 found: the
answerer decides whether to abstain from it, so it must mean the same thing whichever retriever found a hit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.errors import ConfigError
from rag.interfaces import Embedder
from rag.types import Chunk, Hit, Retrieval

FUSIONS = ("convex", "rrf")
# Chosen on HotpotQA-100 (the bench's quality set; no held-out split, see README), top-5 / top-10 retrieved, recall@5 /
# MRR@10: RRF k=60 without the second round 0.80 / 0.913; convex + second round from 3 passages with dense weight
# 0.35: 0.935 / 0.924, 0.4: 0.93 / 0.929, 0.45: 0.93 / 0.929, 0.5: 0.915 / 0.933 (one question's rank apart).
# On SQuAD 2.0 small (held out) 0.4 and 0.5 are alike: hit@5 0.980 / 0.969, MRR@10 0.883 / 0.886 (RRF: 0.973 / 0.855).
DENSE_WEIGHT = 0.5
EXPAND_FROM = 3

if TYPE_CHECKING:
    from rag.bm25 import BM25Index
    from rag.store import ChromaStore


def rrf(rankings: Sequence[Sequence[str]], k: int = 60) -> dict[str, float]:
    """Reciprocal-rank fusion: ``score(d) = sum over rankings of 1 / (k + rank of d)``, ranks from 1.

    Returns id -> score ordered best first. A repeated id within one ranking counts at its first position
    only. Ties are broken by the best single rank the id reached, then by the earlier ranking in which it
    reached it (so dense, passed first, wins a tie against BM25), then by id, so the order never depends on
    set or hash order.
    """
    if k < 0:
        raise ValueError(f"rrf k must be >= 0, got {k}")
    scores: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}  # id -> (best rank, index of the ranking that gave it)
    for which, ranking in enumerate(rankings):
        seen: set[str] = set()
        for rank, doc in enumerate(ranking, start=1):
            if doc in seen:
                continue
            seen.add(doc)
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
            if doc not in best or (rank, which) < best[doc]:
                best[doc] = (rank, which)
    order = sorted(scores, key=lambda d: (-scores[d], best[d][0], best[d][1], d))
    return {d: scores[d] for d in order}


def convex(
    dense: Sequence[tuple[str, float]], lexical: Sequence[tuple[str, float]], dense_weight: float
) -> dict[str, float]:
    """Score fusion: ``dense_weight * cosine + (1 - dense_weight) * bm25``, each min-max scaled over its own
    candidates (BM25 from 0, its floor), a candidate missing from one list taking that list's floor. Returns
    id -> score, best first; ties by id. Unlike RRF it keeps how far ahead a candidate is: a passage BM25 scores
    far above the rest stays first."""
    if not 0.0 <= dense_weight <= 1.0:
        raise ValueError(f"dense_weight must be between 0 and 1, got {dense_weight}")
    d = dict(dense)
    b = dict(lexical)
    lo = min(d.values()) if d else 0.0
    span_d = (max(d.values()) - lo) if d else 0.0
    top_b = max(b.values()) if b else 0.0
    scores: dict[str, float] = {}
    for i in dict.fromkeys([*d, *b]):
        dv = ((d[i] - lo) / span_d if span_d > 0 else 1.0) if i in d else 0.0
        bv = b[i] / top_b if i in b and top_b > 0 else 0.0
        scores[i] = dense_weight * dv + (1.0 - dense_weight) * bv
    return {i: scores[i] for i in sorted(scores, key=lambda i: (-scores[i], i))}


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.clip(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12, None)


def mmr(query_vec: np.ndarray, cand_vecs: np.ndarray, k: int, lambda_: float = 0.7) -> list[int]:
    """Maximal marginal relevance: pick ``k`` candidate indices, each maximising
    ``lambda_ * cos(query, c) - (1 - lambda_) * max cos(c, already picked)``. ``lambda_=1`` is plain
    relevance order, lower values trade relevance for diversity. Ties go to the lower index."""
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"mmr lambda_ must be between 0 and 1, got {lambda_}")
    cands = _unit_rows(np.atleast_2d(cand_vecs)) if len(cand_vecs) else np.zeros((0, 0), np.float32)
    n = cands.shape[0]
    k = min(k, n)
    if k <= 0:
        return []
    relevance = cands @ _unit_rows(np.asarray(query_vec).reshape(-1))
    sim = cands @ cands.T
    picked: list[int] = []
    redundancy = np.full(n, -np.inf, dtype=np.float32)  # max similarity to anything picked so far
    available = np.ones(n, dtype=bool)
    for _ in range(k):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        gain = lambda_ * relevance - (1.0 - lambda_) * penalty
        gain[~available] = -np.inf
        best = int(np.argmax(gain))  # argmax returns the first maximum: the lower index wins ties
        picked.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, sim[best])
    return picked


class HybridRetriever:
    """Dense + BM25 retrieval fused with RRF (implements ``Retriever``). After each call ``last_timings`` holds
    milliseconds for embed, dense, bm25, fuse, fetch (chunks/embeddings of BM25-only candidates) and mmr.

    ``candidates`` is how many each retriever contributes (default ``max(4 * k, 20)``). With ``mmr`` the
    final ``k`` are chosen by MMR from the best ``max(2 * k, 10)`` fused candidates: the fused ranking decides
    what is relevant, MMR only removes near-duplicates among those.

    ``fusion``: ``"convex"`` (default; ``dense_weight`` x scaled cosine + the rest x scaled BM25) or ``"rrf"``.
    ``expand`` (with BM25): a second, cheap round for questions that need two passages ("the city where X was
    born" needs X's page, then the city's): the text of the ``expand_from`` best passages is added to the
    question for a second BM25 query, and the documents those passages name by title are candidates too;
    both rankings are fused (RRF) with the first round's below its ``expand_from`` best, which keep their
    places. No second embedding: it costs two sparse lookups. On HotpotQA-100 it took recall@5 from 0.80 to
    0.93 (see README, Performance: chosen on that set, no held-out split).
    """

    def __init__(
        self,
        embedder: Embedder,
        store: ChromaStore,
        bm25: BM25Index | None = None,
        *,
        hybrid: bool = True,
        mmr: bool = False,
        rrf_k: int = 60,
        candidates: int | None = None,
        mmr_lambda: float = 0.7,
        fusion: str = "convex",
        dense_weight: float = DENSE_WEIGHT,
        expand: bool = True,
        expand_from: int = EXPAND_FROM,
    ) -> None:
        if embedder is None or not callable(getattr(embedder, "embed", None)):
            raise ConfigError("HybridRetriever needs an embedder with an embed(texts) method")
        if store is None:
            raise ConfigError("HybridRetriever needs a vector store")
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or rrf_k < 0:
            raise ConfigError(f"rrf_k must be an integer >= 0, got {rrf_k!r}")
        if candidates is not None and (
            isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1
        ):
            raise ConfigError(f"candidates must be an integer >= 1 or None, got {candidates!r}")
        if not 0.0 <= float(mmr_lambda) <= 1.0:
            raise ConfigError(f"mmr_lambda must be between 0 and 1, got {mmr_lambda!r}")
        if fusion not in FUSIONS:
            raise ConfigError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        if not 0.0 <= float(dense_weight) <= 1.0:
            raise ConfigError(f"dense_weight must be between 0 and 1, got {dense_weight!r}")
        if isinstance(expand_from, bool) or not isinstance(expand_from, int) or expand_from < 1:
            raise ConfigError(f"expand_from must be an integer >= 1, got {expand_from!r}")
        self.fusion = fusion
        self.dense_weight = float(dense_weight)
        self.expand = bool(expand)
        self.expand_from = expand_from
        self.embedder = embedder
        self.store = store
        self.bm25 = bm25
        self.hybrid = bool(hybrid)
        self.use_mmr = bool(mmr)
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.mmr_lambda = float(mmr_lambda)
        self.last_timings: dict[str, float] = {}

    @property
    def uses_bm25(self) -> bool:
        return self.hybrid and self.bm25 is not None

    def retrieve(self, query: str, k: int, source: str | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``query`` (optionally only from ``source``), ranks 1..k."""
        return list(self.search(query, k, source).hits)

    def search(self, query: str, k: int, source: str | None = None) -> Retrieval:
        """``retrieve`` as the record the answerer gets: the query, its embedding and the hits."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {k!r}")
        timings: dict[str, float] = {}
        self.last_timings = timings
        if not query.strip():
            return Retrieval(query)
        n_cand = max(k, self.candidates if self.candidates is not None else max(4 * k, 20))
        with _timed(timings, "embed"):
            qvec = np.asarray(self.embedder.embed([query]), dtype=np.float32).reshape(-1)
        with _timed(timings, "dense"):
            dense = self.store.query(qvec, n_cand, source=source)
        known = _Known({c.id: c for c, _ in dense}, {c.id: s for c, s in dense}, {})
        bm25_scores: dict[str, float] = {}
        if self.uses_bm25:
            with _timed(timings, "bm25"):
                bm25_scores = dict(self.bm25.search(query, n_cand, source=source))
        with _timed(timings, "fuse"):
            fused = self._fuse(dense, bm25_scores)
        if self.uses_bm25 and self.expand and fused:
            with _timed(timings, "expand"):
                fused, known = self._expand(query, fused, known, qvec, n_cand, source)
        with _timed(timings, "fetch"):
            pool, known = self._pool(list(fused), known, qvec, k)
        if self.use_mmr and pool:
            with _timed(timings, "mmr"):
                order = mmr(qvec, np.stack([known.vecs[i] for i in pool]), k, lambda_=self.mmr_lambda)
                pool = [pool[j] for j in order]
        hits = tuple(
            Hit(
                chunk=known.chunks[i],
                score=float(fused[i]),
                dense_score=float(known.cosine[i]),
                bm25_score=float(bm25_scores[i]) if i in bm25_scores else None,
                rank=r,
            )
            for r, i in enumerate(pool, start=1)
        )
        return Retrieval(query, hits, qvec)

    def _fuse(self, dense: list[tuple[Chunk, float]], bm25_scores: dict[str, float]) -> dict[str, float]:
        """The first round: id -> fused score, best first (cosine order without BM25)."""
        if self.uses_bm25 and self.fusion == "convex":
            return convex([(c.id, s) for c, s in dense], list(bm25_scores.items()), self.dense_weight)
        if self.uses_bm25:
            return rrf([[c.id for c, _ in dense], list(bm25_scores)], k=self.rrf_k)
        cosine = {c.id: s for c, s in dense}
        return dict(sorted(cosine.items(), key=lambda kv: -kv[1]))  # already best first; be explicit

    def _fetch(self, known: _Known, ids: list[str], qvec: np.ndarray) -> _Known:
        """``known`` plus the chunk, embedding and cosine of ``ids``, from the store in one round trip."""
        got_chunks, got_vecs = self.store.get_with_embeddings(ids)
        return known.with_fetched(got_chunks, got_vecs, qvec)

    def _pool(self, ranked: list[str], known: _Known, qvec: np.ndarray, k: int) -> tuple[list[str], _Known]:
        """The ids the hits are chosen from, in ``ranked`` order: ``k``, or MMR's ``max(2 * k, 10)``.

        BM25-only candidates have no chunk or cosine yet: fetch both from the store in one round trip. MMR
        needs the embeddings of its whole pool. An id BM25 knows but the store does not (an index lagging
        behind a deletion) is skipped and the next candidate moves up, so k hits come back when possible."""
        target = max(2 * k, 10) if self.use_mmr else k
        pool: list[str] = []
        pos = 0
        while len(pool) < target and pos < len(ranked):
            batch = ranked[pos : pos + target - len(pool)]
            pos += len(batch)
            need = [i for i in batch if i not in known.chunks or (self.use_mmr and i not in known.vecs)]
            if need:
                known = self._fetch(known, need, qvec)
            pool.extend(i for i in batch if i in known.chunks and (not self.use_mmr or i in known.vecs))
        return pool, known

    def _expand(self, query: str, fused: dict[str, float], known: _Known, qvec: np.ndarray, n_cand: int,
                source: str | None) -> tuple[dict[str, float], _Known]:
        """The second round (see the class doc): returns the new id -> score order, and ``known`` with the best
        passages BM25 alone found (fetched with their embedding and cosine, so they are not fetched again)."""
        ranked = list(fused)
        missing = [i for i in ranked[: self.expand_from] if i not in known.chunks]
        if missing:
            known = self._fetch(known, missing, qvec)
        head = [i for i in ranked[: self.expand_from] if i in known.chunks]
        if not head:
            return fused, known
        text = " ".join(known.chunks[i].text for i in head)
        assert self.bm25 is not None
        again = [i for i, _ in self.bm25.search(f"{query} {text}", n_cand, source=source)]
        named = self.bm25.linked(text, n_cand, exclude_sources={known.chunks[i].source for i in head}, source=source)
        second = rrf([ranked, again, named], k=self.rrf_k)
        out = {i: fused.get(i, 0.0) + 1.0 for i in head}  # the first round's best keep their places
        out.update((i, sc) for i, sc in second.items() if i not in out)
        return out, known


@dataclass(frozen=True)
class _Known:
    """What is known of the candidates so far, by id: the chunk, its cosine similarity to the query, and the
    stored embedding of those fetched from the store (BM25-only candidates, and MMR's pool)."""

    chunks: Mapping[str, Chunk]
    cosine: Mapping[str, float]
    vecs: Mapping[str, np.ndarray]

    def with_fetched(self, chunks: Sequence[Chunk], vecs: np.ndarray, qvec: np.ndarray) -> _Known:
        """A copy with these chunks and their embeddings added (a chunk or cosine already known is kept)."""
        known_chunks, cosine, known_vecs = dict(self.chunks), dict(self.cosine), dict(self.vecs)
        for chunk, vec in zip(chunks, vecs, strict=True):
            known_chunks.setdefault(chunk.id, chunk)
            known_vecs[chunk.id] = vec
            cosine.setdefault(chunk.id, float(np.dot(vec, qvec)))
        return _Known(known_chunks, cosine, known_vecs)


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Milliseconds the block took, into ``timings[name]`` (when it does not raise)."""
    t = time.perf_counter()
    yield
    timings[name] = _ms(t)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
