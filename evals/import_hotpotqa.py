"""HotpotQA (distractor format) -> documents and cases.

SOURCE is ``questions.json`` (a list of ``_id, question, answer, supporting_facts, context``) and optionally
``corpus.json`` (title -> list of sentences), in any order, or a folder holding both. One document per title
(``<Title>.txt``: the title, a blank line, then the sentences separated by spaces). Supporting titles become
``sources``, the supporting sentences ``passages``, the answer ``answers`` (yes/no answers included). Without a
corpus the documents come from the questions' ``context``; with ``limit`` only the documents in the selected
questions' contexts are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.import_common import Imported, ImportSourceError, Names, dedupe, read_json
from evals.suite import Case


def doc_text(title: str, sentences: Sequence[str]) -> str:
    return f"{title}\n\n" + " ".join(s.strip() for s in sentences if s.strip())


def _load(paths: Sequence[Path]) -> tuple[list[dict[str, Any]], dict[str, list[str]] | None]:
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    questions: list[dict[str, Any]] | None = None
    corpus: dict[str, list[str]] | None = None
    for f in files:
        data = read_json(f)
        if isinstance(data, list):
            questions = (questions or []) + data
        elif isinstance(data, dict) and all(isinstance(v, list) for v in list(data.values())[:20]):
            corpus = {**(corpus or {}), **data}
        else:
            raise ImportSourceError(f"{f} is neither HotpotQA questions (a list) nor a corpus (title -> sentences)")
    if questions is None:
        raise ImportSourceError("no HotpotQA questions file (a JSON list) among " + ", ".join(map(str, paths)))
    return questions, corpus


def read_hotpotqa(paths: Sequence[Path], *, limit: int | None = None) -> Imported:
    questions, corpus = _load(paths)
    selected = questions[:limit] if limit else questions
    contexts: dict[str, list[str]] = {}
    for q in selected:
        for title, sentences in q.get("context") or []:
            contexts.setdefault(str(title), list(sentences))
    if corpus is not None and not limit:
        titles = dict(corpus)
    else:
        titles = {t: (corpus or {}).get(t, s) for t, s in contexts.items()}
    out = Imported("hotpotqa")
    names = Names()
    for title, sentences in titles.items():
        out.docs[names(title)] = doc_text(title, sentences)
    for q in selected:
        facts = [(str(t), int(i)) for t, i in q.get("supporting_facts") or []]
        sources, passages = [], []
        for title, idx in facts:
            sentences = titles.get(title)
            if sentences is None:
                out.notes.append(f"{q.get('_id')}: supporting title {title!r} is not in the corpus")
                continue
            sources.append(names(title))
            if 0 <= idx < len(sentences) and sentences[idx].strip():
                passages.append(sentences[idx].strip())
        answer = str(q.get("answer") or "").strip()
        extra = {k: q[k] for k in ("type", "level") if k in q}
        extra["dataset"] = "hotpotqa"
        question = str(q.get("question") or "").strip()
        if not question or not sources:
            continue
        out.cases.append(Case(str(q.get("_id")), question, (answer,) if answer else (), tuple(dedupe(sources)),
                              True, tuple(dedupe(passages)), extra))
    return out
