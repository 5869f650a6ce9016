"""The stock pipeline the bench measures citeqa against: what a user builds from the LangChain RAG tutorial.

``RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)`` +
``HuggingFaceEmbeddings`` on the bundled all-MiniLM-L6-v2 (loaded from its package, never downloaded) +
``Chroma.from_documents`` (persistent, the default collection settings), dense top-k with
``similarity_search``. It has no answerer of its own; where the bench times a "full answer" for it, the stock
retrieval feeds citeqa's extractive answerer running on the same float model (what a user would bolt on).

``python -m evals.tools.bench_stock ask --persist DIR QUESTION`` is its "ask" command, for the cold-start figure.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CHUNK_SIZE = 1000
CHUNK_OVERLAP = 200
COLLECTION = "langchain"  # langchain_chroma's default collection name


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def embeddings():  # -> langchain_huggingface.HuggingFaceEmbeddings
    """The tutorial's embeddings, pointed at the bundled model directory (no hub access)."""
    _offline()
    from langchain_huggingface import HuggingFaceEmbeddings

    from rag.embeddings import minilm_dir

    return HuggingFaceEmbeddings(model_name=str(minilm_dir()))


def load_documents(docs_dir: Path) -> list[Any]:  # -> list[langchain_core.documents.Document]
    """One Document per text file, ``metadata["source"]`` = the file name relative to ``docs_dir``."""
    from langchain_core.documents import Document

    return [
        Document(page_content=p.read_text(encoding="utf-8"), metadata={"source": p.relative_to(docs_dir).as_posix()})
        for p in sorted(docs_dir.rglob("*.txt"))
    ]


def split(documents: Sequence[Any]) -> list[Any]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP, add_start_index=True
    )
    return splitter.split_documents(list(documents))


def build(splits: Sequence[Any], emb: Any, persist_dir: Path):  # -> langchain_chroma.Chroma
    from langchain_chroma import Chroma

    return Chroma.from_documents(
        documents=list(splits), embedding=emb, persist_directory=str(persist_dir), collection_name=COLLECTION
    )


def open_store(persist_dir: Path, emb: Any):  # -> langchain_chroma.Chroma
    from langchain_chroma import Chroma

    return Chroma(collection_name=COLLECTION, embedding_function=emb, persist_directory=str(persist_dir))


class Precomputed:
    """A LangChain ``Embeddings`` that returns vectors computed beforehand (text -> vector), so the bench can
    fill the stock store with a synthetic corpus through the stock ``add_texts`` path without running the
    model on 100k chunks. Queries never go through it."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.table[t].tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        raise RuntimeError("the precomputed embeddings only fill the store; queries use the real model")


class AsEmbedder:
    """The stock LangChain embeddings behind citeqa's ``Embedder`` protocol (for the bolted-on answerer)."""

    name = "minilm"
    dim = 384

    def __init__(self, emb: Any) -> None:
        self.emb = emb

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self.emb.embed_documents(list(texts)), dtype=np.float32)


def hits(store: Any, question: str, k: int) -> list[Any]:  # -> list[rag.types.Hit]
    """Stock dense top-k as citeqa ``Hit`` records (Chroma's default space is squared L2: for the model's unit
    vectors cosine = 1 - d/2)."""
    from rag.types import Chunk, Hit

    out = []
    for rank, (doc, dist) in enumerate(store.similarity_search_with_score(question, k=k), start=1):
        start = int(doc.metadata.get("start_index", 0))
        chunk = Chunk(
            id=str(doc.id or f"{doc.metadata.get('source')}:{start}"),
            source=str(doc.metadata.get("source", "")),
            text=doc.page_content,
            start=start,
            end=start + len(doc.page_content),
        )
        cos = 1.0 - float(dist) / 2.0
        out.append(Hit(chunk=chunk, score=cos, dense_score=cos, rank=rank))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.tools.bench_stock", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    ask = sub.add_parser("ask", help="retrieve and print the top passages for a question (the stock 'answer')")
    ask.add_argument("question")
    ask.add_argument("--persist", type=Path, required=True, help="the stock Chroma directory")
    ask.add_argument("-k", type=int, default=4, help="passages (the tutorial's default: 4)")
    args = parser.parse_args(argv)
    store = open_store(args.persist, embeddings())
    docs = store.similarity_search(args.question, k=args.k)
    for i, doc in enumerate(docs, start=1):
        print(f"[{i}] {doc.metadata.get('source')}: {doc.page_content}")
    return 0 if docs else 1


if __name__ == "__main__":
    sys.exit(main())
