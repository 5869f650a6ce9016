"""Thumbs up/down on an answer -> one eval case appended to the collection's feedback suite (JSONL), so
``citeqa eval --suite <that file>`` measures whether later versions still get it right."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from rag.types import Answer

_MARKER = re.compile(r"\s*\[\d+\]")


def docs_root(cited: list[str], uploads: Path, all_sources: list[str]) -> Path | None:
    """The folder a feedback suite's sources are relative to (what ``citeqa eval run --docs`` needs): the
    collection's upload folder when the cited files are uploads, else the common folder of its documents."""
    up = str(uploads.resolve())
    if cited and all(str(Path(c).parent) == up for c in cited):
        return Path(up)
    parents = [str(Path(s).parent) for s in all_sources or cited]
    if not parents:
        return None
    return Path(os.path.commonpath(parents))


def case_for(answer: Answer, vote: str, correct: str | None = None, root: Path | None = None) -> dict[str, Any]:
    """The eval-suite case for a vote ("up" or "down") on ``answer``; ``correct`` is the user's answer.
    Sources are the cited files relative to ``root`` (their file names when it is not given)."""
    if vote not in ("up", "down"):
        raise ValueError(f"vote must be 'up' or 'down', not {vote!r}")
    correct = (correct or "").strip()
    sources = sorted({_rel(c.source, root) for c in answer.citations})
    answerable = True
    if correct:
        answers = [correct]
    elif vote == "up" and answer.abstained:
        answers, answerable = [], False  # "right not to answer": the case checks that it still abstains
    elif vote == "up":
        answers = [answer.short_answer or _MARKER.sub("", answer.answer).strip()]
    else:
        answers = []  # wrong, and the right answer is not known yet: kept so the user can fill it in
    stamp = f"{time.time_ns()}:{answer.question}"
    case: dict[str, Any] = {
        "id": "fb-" + hashlib.sha1(stamp.encode("utf-8")).hexdigest()[:12],
        "question": answer.question,
        "answers": answers,
        "sources": sources,
        "answerable": answerable,
        "feedback": vote,
        "docs": str(root) if root is not None else None,
        "given_answer": answer.answer,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return case


def _rel(source: str, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(source).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(source).name


def append(path: Path, case: dict[str, Any]) -> None:
    """Append one case as one JSON line (a single write, so concurrent sessions never interleave lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(case, ensure_ascii=False) + "\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line)


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
