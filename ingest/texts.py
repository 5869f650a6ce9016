"""Extracted document texts, kept per collection by content hash, so a citation's span can always be shown
in its surrounding text (and the UI serves text only from here, never from an arbitrary path)."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_HASH = re.compile(r"^[0-9a-f]{64}$")


def _discard(_: str) -> None:
    return None


class TextStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, content_hash: str) -> Path:
        if not _HASH.match(content_hash):
            raise ValueError(f"not a content hash: {content_hash!r}")
        return self.directory / f"{content_hash}.txt"

    def save(self, content_hash: str, text: str) -> None:
        with self.writer(content_hash) as write:
            write(text)

    @contextmanager
    def writer(self, content_hash: str) -> Iterator[Callable[[str], object]]:
        """Write a text in pieces (a big file's text is never held whole): yields a ``write(piece)`` function.
        The text appears under its hash only when the block ends without an exception; until then it is a
        temp file, removed on failure. A text already stored is not written again."""
        path = self._path(content_hash)
        if path.exists():
            yield _discard
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".text-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                yield fh.write
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def size(self, content_hash: str) -> int | None:
        """Bytes of a stored text on disk, or None when it is not stored."""
        try:
            return self._path(content_hash).stat().st_size
        except FileNotFoundError:
            return None

    def load(self, content_hash: str) -> str | None:
        path = self._path(content_hash)
        try:
            with path.open(encoding="utf-8", newline="") as fh:  # newline="": a "\r" in the text stays one
                return fh.read()
        except FileNotFoundError:
            return None

    def discard_unused(self, keep: set[str]) -> None:
        if not self.directory.exists():
            return
        for p in self.directory.glob("*.txt"):
            if p.stem not in keep:
                p.unlink(missing_ok=True)
        for p in self.directory.glob(".text-*"):  # temp files of a crashed write
            p.unlink(missing_ok=True)
