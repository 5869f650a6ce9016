"""Evaluation suites: JSONL, one case per line.

``{"id": "q1", "question": "...", "answers": ["2,000"], "sources": ["vostok-2022.txt"], "answerable": true}``

- ``answers``: acceptable short answers (any may match); empty for unanswerable cases, and for retrieval-only
  cases (answerable, but no gold answer: answer metrics do not apply to them).
- ``sources``: file names relative to the docs folder that hold the answer.
- ``passages`` (optional): gold evidence strings that appear verbatim in those files.
- ``answerable``: false when the documents do not answer the question (the right behaviour is to abstain);
  defaults to true.

Unknown fields are kept (and written back) but ignored. A malformed line is reported by its line number and
skipped; blank lines are ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from rag.errors import NotFoundError

KNOWN_FIELDS = ("id", "question", "answers", "sources", "passages", "answerable")


@dataclass(frozen=True)
class Case:
    id: str
    question: str
    answers: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    answerable: bool = True
    passages: tuple[str, ...] | None = None  # None: not given
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields, kept as they were
    line: int = 0  # 1-based line in the suite file (0 when built in code)

    @property
    def gold_answers(self) -> tuple[str, ...]:
        """The non-blank answers; empty for unanswerable and retrieval-only cases."""
        return tuple(a for a in self.answers if a.strip()) if self.answerable else ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "answers": list(self.answers),
            "sources": list(self.sources),
            "answerable": self.answerable,
        }
        if self.passages is not None:
            out["passages"] = list(self.passages)
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class SuiteProblem:
    line: int
    reason: str

    def format(self, path: str | Path) -> str:
        return f"{path}:{self.line}: skipped: {self.reason}"


@dataclass(frozen=True)
class Suite:
    path: str
    cases: tuple[Case, ...]
    problems: tuple[SuiteProblem, ...] = ()

    @property
    def hash(self) -> str:
        return suite_hash(self.cases)


def normalize_source(name: str) -> str:
    """A suite source as a clean relative POSIX path ("./a/b.txt" -> "a/b.txt", "a\\b.txt" -> "a/b.txt")."""
    parts = [p for p in PurePosixPath(name.strip().replace("\\", "/")).parts if p not in (".", "")]
    return "/".join(parts)


def _str_list(obj: dict[str, Any], key: str, *, required: bool = False) -> tuple[str, ...] | None:
    if key not in obj or obj[key] is None:
        if required:
            raise ValueError(f'"{key}" is missing')
        return None
    value = obj[key]
    if isinstance(value, str):
        raise ValueError(f'"{key}" must be a list of strings, not a string (write ["{value[:40]}"])')
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'"{key}" must be a list of strings')
    return tuple(value)


def parse_case(obj: Any, line: int = 0) -> Case:
    """One suite case from a decoded JSON value; raises ValueError naming what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"a case must be a JSON object, not {type(obj).__name__}")
    cid = obj.get("id")
    if isinstance(cid, bool) or not isinstance(cid, str | int) or str(cid).strip() == "":
        raise ValueError('"id" must be a non-empty string')
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError('"question" must be a non-empty string')
    answers = _str_list(obj, "answers") or ()
    sources = tuple(normalize_source(s) for s in (_str_list(obj, "sources") or ()) if s.strip())
    passages = _str_list(obj, "passages")
    if passages is not None:
        passages = tuple(p for p in passages if p.strip())
    answerable = obj.get("answerable", True)
    if not isinstance(answerable, bool):
        raise ValueError('"answerable" must be true or false')
    if not answerable and any(a.strip() for a in answers):
        raise ValueError('"answerable" is false but "answers" are given: empty the answers or set answerable')
    extra = {k: v for k, v in obj.items() if k not in KNOWN_FIELDS}
    return Case(str(cid), question.strip(), answers, sources, answerable, passages, extra, line)


def parse_suite(lines: Iterable[str], path: str = "<suite>") -> Suite:
    cases: list[Case] = []
    problems: list[SuiteProblem] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(SuiteProblem(n, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        try:
            case = parse_case(obj, n)
        except ValueError as exc:
            problems.append(SuiteProblem(n, str(exc)))
            continue
        if case.id in seen:
            problems.append(SuiteProblem(n, f'duplicate id "{case.id}" (first on line {seen[case.id]})'))
            continue
        seen[case.id] = n
        cases.append(case)
    return Suite(path, tuple(cases), tuple(problems))


def load_suite(path: str | Path) -> Suite:
    """Read a JSONL suite. Malformed lines are returned in ``problems`` (the caller reports them)."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"suite file {p} does not exist: give the path of a .jsonl suite")
    with p.open(encoding="utf-8-sig", errors="replace") as fh:
        return parse_suite(fh, str(p))


def suite_hash(cases: Sequence[Case]) -> str:
    """sha256 of the cases as canonical JSON lines (independent of whitespace, key order and bad lines)."""
    h = hashlib.sha256()
    for case in cases:
        h.update(json.dumps(case.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def dump_case(case: Case) -> str:
    return json.dumps(case.to_dict(), ensure_ascii=False)


def write_suite(path: str | Path, cases: Iterable[Case]) -> int:
    """Write cases as JSONL; returns how many were written."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for case in cases:
            fh.write(dump_case(case) + "\n")
            n += 1
    return n
