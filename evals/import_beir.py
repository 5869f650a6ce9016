"""BEIR (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) -> documents and retrieval-only cases.

SOURCE is the data set folder, or the three files in any order. One document per corpus id (``<id>.txt``: the
title, a blank line, the text). Every query with at least one qrel of score > 0 in the split becomes a case:
``answers: []`` and ``answerable: true`` (retrieval only: answer metrics do not apply; retrieval, citation,
support and abstention metrics do), ``sources`` the judged documents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from evals.import_common import Imported, ImportSourceError, Names
from evals.suite import Case


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    try:
        fh = path.open(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImportSourceError(f"{path} does not exist") from None
    with fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ImportSourceError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
                if isinstance(obj, dict) and "_id" in obj:
                    yield obj


def read_qrels(path: Path) -> dict[str, list[str]]:
    """query id -> judged-relevant corpus ids (score > 0), in file order; a header line is skipped."""
    qrels: dict[str, list[str]] = {}
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise ImportSourceError(f"{path} does not exist") from None
    for line in lines:
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3:
            continue
        try:
            score = float(parts[2])
        except ValueError:
            continue  # header
        if score > 0 and parts[1] not in qrels.setdefault(parts[0], []):
            qrels[parts[0]].append(parts[1])
    return {q: ids for q, ids in qrels.items() if ids}


def _files(paths: Sequence[Path], split: str) -> tuple[Path, Path, Path]:
    corpus = queries = qrels = None
    for p in paths:
        if p.is_dir():
            corpus, queries, qrels = p / "corpus.jsonl", p / "queries.jsonl", p / "qrels" / f"{split}.tsv"
        elif p.name.startswith("corpus"):
            corpus = p
        elif p.name.startswith("queries"):
            queries = p
        elif p.suffix == ".tsv":
            qrels = p
        else:
            raise ImportSourceError(f"{p}: expected a BEIR folder, corpus.jsonl, queries.jsonl or qrels/*.tsv")
    if corpus is None or queries is None or qrels is None:
        raise ImportSourceError("BEIR needs corpus.jsonl, queries.jsonl and a qrels .tsv (or the folder with them)")
    return corpus, queries, qrels


def read_beir(paths: Sequence[Path], *, limit: int | None = None, split: str = "test") -> Imported:
    corpus_path, queries_path, qrels_path = _files(paths, split)
    qrels = read_qrels(qrels_path)
    out = Imported("beir")
    names = Names()
    ids: dict[str, str] = {}
    for doc in _jsonl(corpus_path):
        did = str(doc["_id"])
        title, text = str(doc.get("title") or "").strip(), str(doc.get("text") or "").strip()
        if not (title or text):
            continue
        ids[did] = names(did)
        out.docs[ids[did]] = f"{title}\n\n{text}" if title else text
    missing = 0
    for q in _jsonl(queries_path):
        qid, question = str(q["_id"]), str(q.get("text") or "").strip()
        if qid not in qrels or not question:
            continue
        sources = [ids[d] for d in qrels[qid] if d in ids]
        missing += len(qrels[qid]) - len(sources)
        if not sources:
            continue
        out.cases.append(Case(qid, question, (), tuple(sources), True, None, {"dataset": "beir"}))
        if limit and len(out.cases) >= limit:
            break
    if missing:
        out.notes.append(f"{missing} judged document id(s) are not in the corpus and were left out of sources")
    return out
