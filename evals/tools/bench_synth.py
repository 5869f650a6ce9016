"""The bench's synthetic corpus for latency at 1k, 10k and 100k chunks, without running the model 100k times.

Every sentence of the HotpotQA documents (real Wikipedia text, titles included; ~5k sentences) is embedded
once with the real model (``build_pool``). A seeded stream then walks randomly chosen documents sentence by
sentence and cuts chunks of each pipeline's own size: up to 1000 characters for the stock pipeline (its
splitter's chunk size), up to ``chunk_size`` word pieces for citeqa (its setting). A chunk's vector is the
length-weighted mean of its sentences' real vectors, L2-normalised. The stream is deterministic, so chunk
``i`` is the same in every run, and a collection grows from 1k to 100k by adding chunks ``[have, want)``.

What this keeps honest: the stores hold N real-text chunks of each pipeline's chunk size with unit vectors,
so HNSW search, BM25 postings, document fetches and the answerer (which embeds the retrieved sentences with
the real model) cost what they cost on N chunks; queries are real questions embedded by the real model.
What it does not claim: ranking quality (a mean of sentence vectors only approximates the model's embedding
of the joined text; each sentence recurs in about N/1000 chunks at 100k, which makes BM25 postings longer
than in a natural corpus: a pessimistic case for BM25). Quality is measured on the real HotpotQA collection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 20240611
CHUNKS_PER_FILE = 8  # synthetic chunks grouped into one synthetic source file, for realistic metadata


@dataclass(frozen=True)
class Pool:
    sentences: list[str]
    tokens: np.ndarray  # word pieces per sentence (the model's tokenizer)
    docs: list[tuple[int, int]]  # [first, end) sentence indices of each document
    vectors: np.ndarray  # (len(sentences), dim) unit vectors


@dataclass(frozen=True)
class SynthChunk:
    index: int
    id: str
    source: str
    text: str
    start: int
    end: int


def build_pool(texts: Sequence[str], out: Path) -> dict[str, int]:
    """Split documents into sentences, embed each sentence once (minilm-int8), save to ``out`` (.npz)."""
    from ingest.chunking import default_count_tokens
    from rag.embeddings import OnnxInt8Embedder
    from rag.sentences import split_sentences

    sentences: list[str] = []
    docs: list[tuple[int, int]] = []
    for text in texts:
        first = len(sentences)
        sentences.extend(text[a:b] for a, b in split_sentences(text))
        if len(sentences) > first:
            docs.append((first, len(sentences)))
    vectors = OnnxInt8Embedder().embed(sentences)
    tokens = np.asarray(default_count_tokens(sentences), dtype=np.int64)
    np.savez(out, vectors=vectors, tokens=tokens, docs=np.asarray(docs, dtype=np.int64),
             sentences=np.asarray(json.dumps(sentences)))
    return {"documents": len(docs), "sentences": len(sentences), "characters": sum(map(len, sentences))}


def load_pool(path: Path) -> Pool:
    with np.load(path, allow_pickle=False) as z:
        return Pool(sentences=json.loads(str(z["sentences"])), tokens=z["tokens"],
                    docs=[(int(a), int(b)) for a, b in z["docs"]], vectors=z["vectors"])


def _spans(pool: Pool, budget: int, unit: str) -> Iterator[list[int]]:
    """Sentence indices of chunk 0, 1, 2, ...: random documents walked in order, cut at ``budget``."""
    rng = np.random.default_rng(SEED)
    size = (lambda i: pool.tokens[i]) if unit == "tokens" else (lambda i: len(pool.sentences[i]) + 1)
    current: list[int] = []
    used = 0
    while True:
        for d in rng.integers(0, len(pool.docs), size=1024).tolist():
            first, end = pool.docs[d]
            for i in range(first, end):
                n = int(size(i))
                if current and used + n > budget:
                    yield current
                    current, used = [], 0
                current.append(i)
                used += n


def synthetic_chunks(pool: Pool, budget: int, unit: str, start: int, stop: int
                     ) -> tuple[list[SynthChunk], np.ndarray]:
    """Chunks ``[start, stop)`` of the synthetic stream for chunks of at most ``budget`` ``unit``s
    ("chars" or "tokens"), and their (stop - start, dim) unit vectors."""
    if unit not in ("chars", "tokens"):
        raise ValueError(f"unit must be chars or tokens, got {unit!r}")
    chunks: list[SynthChunk] = []
    rows: list[np.ndarray] = []
    lens = np.asarray([len(s) for s in pool.sentences], dtype=np.float32)
    offset = 0
    for i, idx in enumerate(_spans(pool, budget, unit)):
        if i >= stop:
            break
        text = " ".join(pool.sentences[j] for j in idx)
        if i % CHUNKS_PER_FILE == 0:
            offset = 0
        if i >= start:
            chunks.append(SynthChunk(index=i, id=f"synthetic-{i:07d}",
                                     source=f"/synthetic/doc-{i // CHUNKS_PER_FILE:06d}.txt",
                                     text=text, start=offset, end=offset + len(text)))
            rows.append(lens[idx] @ pool.vectors[idx])
        offset += len(text) + 1  # the chunks of a synthetic file, one after another
    vecs = np.asarray(rows, dtype=np.float32).reshape(len(rows), pool.vectors.shape[1])
    vecs /= np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
    return chunks, vecs
