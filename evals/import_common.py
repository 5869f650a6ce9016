"""What the importers share (evals.import_squad, evals.import_hotpotqa, evals.import_beir, and evals.importers,
which dispatches to them): the :class:`Imported` record, safe file names, the source error, JSON reading."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.suite import Case
from rag.errors import CiteqaError

_UNSAFE = re.compile(r"[^\w.,()+-]+", re.UNICODE)
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


class ImportSourceError(CiteqaError):
    """An import source that cannot be read as the named kind."""

    exit_code = 2


@dataclass
class Imported:
    kind: str
    docs: dict[str, str] = field(default_factory=dict)  # file name (relative to docs/) -> text, in corpus order
    cases: list[Case] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Names:
    """Safe, unique (case-insensitively) file names for document titles or ids."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}
        self._used: set[str] = set()

    def __call__(self, key: str) -> str:
        if key in self._by_key:
            return self._by_key[key]
        base = _UNSAFE.sub("_", unicodedata.normalize("NFC", key)).strip("._-")[:100] or "untitled"
        if base.lower() in _RESERVED:
            base += "_"
        name, n = base, 2
        while name.lower() in self._used:
            name, n = f"{base}-{n}", n + 1
        self._used.add(name.lower())
        self._by_key[key] = name + ".txt"
        return self._by_key[key]


def dedupe(items: Sequence[str]) -> list[str]:
    """Stripped, non-blank items in first-seen order, without repeats."""
    out: list[str] = []
    for s in items:
        s = s.strip()
        if s and s not in out:
            out.append(s)
    return out


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ImportSourceError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImportSourceError(f"{path} is not valid JSON ({exc})") from None
