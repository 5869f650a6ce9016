"""Extracted document texts, kept per collection by content hash, so a citation's span can always be shown
in its surrounding text (and the UI serves text only from here, never from an arbitrary path)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_HASH = re.compile(r"^[0-9a-f]{64}$")


class TextStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, content_hash: str) -> Path:
        if not _HASH.match(content_hash):
            raise ValueError(f"not a content hash: {content_hash!r}")
        return self.directory / f"{content_hash}.txt"

    def save(self, content_hash: str, text: str) -> None:
        path = self._path(content_hash)
        if path.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".text-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, content_hash: str) -> str | None:
        path = self._path(content_hash)
        if not path.exists():
            return None
        return path.read_text(encoding="utf-8")

    def discard_unused(self, keep: set[str]) -> None:
        if not self.directory.exists():
            return
        for p in self.directory.glob("*.txt"):
            if p.stem not in keep:
                p.unlink(missing_ok=True)
