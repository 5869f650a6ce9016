"""``citeqa eval import squad|hotpotqa|beir SOURCE... --out DIR``: public QA sets -> DIR/docs/ + DIR/suite.jsonl.

Each importer reads its files and returns an :class:`Imported` (documents by file name, and suite cases whose
``sources`` are those file names); :func:`write_import` writes them. The readers live in ``evals.import_squad``,
``evals.import_hotpotqa`` and ``evals.import_beir``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.import_common import Imported, ImportSourceError, Names, dedupe, read_json
from evals.suite import Case, write_suite
from rag.errors import ConfigError

__all__ = ["KINDS", "Imported", "ImportSourceError", "Names", "dedupe", "read_json", "read_import", "write_import",
           "run_import"]

KINDS = ("squad", "hotpotqa", "beir")


def cap_docs(imported: Imported, max_docs: int | None) -> Imported:
    """Keep every document a case names, then others in corpus order, up to ``max_docs`` in all."""
    if max_docs is None or len(imported.docs) <= max_docs:
        return imported
    gold = {s for c in imported.cases for s in c.sources}
    extra = {c.extra.get("asked_about") for c in imported.cases}
    keep = [n for n in imported.docs if n in gold or n in extra]
    room = max(0, max_docs - len(keep))
    keep_set = set(keep) | set([n for n in imported.docs if n not in gold and n not in extra][:room])
    imported.docs = {n: t for n, t in imported.docs.items() if n in keep_set}
    return imported


def check_passages(imported: Imported) -> Imported:
    """Drop gold passages that are not verbatim in the case's sources (and say how many)."""
    dropped = 0
    for i, c in enumerate(imported.cases):
        if not c.passages:
            continue
        kept = tuple(p for p in c.passages if any(p in imported.docs.get(s, "") for s in c.sources))
        dropped += len(c.passages) - len(kept)
        if len(kept) != len(c.passages):
            imported.cases[i] = Case(c.id, c.question, c.answers, c.sources, c.answerable, kept, c.extra, c.line)
    if dropped:
        imported.notes.append(f"{dropped} gold passage(s) were not verbatim in their documents and were dropped")
    return imported


def read_import(kind: str, sources: Sequence[Path], *, limit: int | None = None, **options: Any) -> Imported:
    if kind == "squad":
        from evals.import_squad import read_squad

        return read_squad(sources, limit=limit, per=options.get("per") or "paragraph")
    if kind == "hotpotqa":
        from evals.import_hotpotqa import read_hotpotqa

        return read_hotpotqa(sources, limit=limit)
    if kind == "beir":
        from evals.import_beir import read_beir

        return read_beir(sources, limit=limit, split=options.get("split") or "test")
    raise ConfigError(f"unknown import kind '{kind}': use one of {', '.join(KINDS)}")


def write_import(imported: Imported, out: Path, *, force: bool = False) -> dict[str, Any]:
    """Write ``out/docs/<name>`` and ``out/suite.jsonl``; returns a summary (also written as out/import.json)."""
    docs_dir = out / "docs"
    if docs_dir.exists() and any(docs_dir.iterdir()):
        if not force:
            raise ConfigError(f"{docs_dir} already has files: pass --force to replace them, or choose another --out")
        shutil.rmtree(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    for name, text in imported.docs.items():
        (docs_dir / name).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    n = write_suite(out / "suite.jsonl", imported.cases)
    summary = {
        "kind": imported.kind,
        "docs": len(imported.docs),
        "cases": n,
        "answerable": sum(c.answerable for c in imported.cases),
        "unanswerable": sum(not c.answerable for c in imported.cases),
        "retrieval_only": sum(c.answerable and not c.gold_answers for c in imported.cases),
        "with_passages": sum(bool(c.passages) for c in imported.cases),
        "notes": imported.notes,
        "docs_dir": str(docs_dir),
        "suite": str(out / "suite.jsonl"),
    }
    (out / "import.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def run_import(kind: str, sources: Sequence[Path], out: Path, *, limit: int | None = None,
               max_docs: int | None = None, force: bool = False, **options: Any) -> dict[str, Any]:
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be at least 1")
    if max_docs is not None and max_docs < 1:
        raise ConfigError("--max-docs must be at least 1")
    imported = read_import(kind, sources, limit=limit, **options)
    if not imported.cases:
        raise ImportSourceError(f"no questions found in {', '.join(map(str, sources))} for kind '{kind}'")
    imported = check_passages(cap_docs(imported, max_docs))
    return write_import(imported, out, force=force)
