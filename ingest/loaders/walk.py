"""Files and folders given on the command line -> the files to ingest, plus one error per path that cannot be."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ingest.loaders.common import SUPPORTED_SUFFIXES, unsupported_reason
from rag.errors import FileError


class _Collector:
    """Walks the given paths into files to ingest plus the errors for what cannot be ingested."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.errors: list[FileError] = []
        self._seen_files: set[Path] = set()
        self._seen_dirs: set[Path] = set()

    def add_file(self, p: Path) -> None:
        rp = p.resolve()
        if rp in self._seen_files:
            return
        self._seen_files.add(rp)
        if p.suffix.lower() in SUPPORTED_SUFFIXES:
            self.files.append(rp)
        else:
            self.errors.append(FileError(str(rp), unsupported_reason(p.suffix.lower())))

    def visit(self, p: Path) -> list[Path]:
        """Handle one path; return the children of a folder (sorted) still to visit."""
        try:
            if p.is_dir():
                return self._children(p)
            if p.is_file():
                self.add_file(p)
            elif p.is_symlink():
                self.errors.append(FileError(str(p), "broken symbolic link"))
            elif p.exists():
                self.errors.append(FileError(str(p), "not a regular file or folder"))
            else:
                self.errors.append(FileError(str(p), "no such file or folder"))
        except OSError as exc:
            self.errors.append(FileError(str(p), f"cannot read ({exc.strerror or exc})"))
        return []

    def _children(self, d: Path) -> list[Path]:
        rd = d.resolve()
        if rd in self._seen_dirs:  # a symlink loop, or a folder reached twice
            return []
        self._seen_dirs.add(rd)
        try:
            entries = _scandir(d)
        except OSError as exc:
            self.errors.append(FileError(str(d), f"cannot read folder ({exc.strerror or exc})"))
            return []
        return [Path(e.path) for e in sorted(entries, key=lambda e: e.name) if not e.name.startswith(".")]


def _scandir(d: Path) -> list[os.DirEntry[str]]:
    with os.scandir(d) as it:
        return list(it)


def iter_input_files(paths: Sequence[Path]) -> tuple[list[Path], list[FileError]]:
    """Expand files and folders (recursive, sorted, hidden entries skipped, symlinks followed without looping,
    duplicates dropped) into resolved absolute paths to ingest, and the errors for what cannot be ingested:
    missing paths, unreadable folders, broken links, unsupported types found in folders."""
    walker = _Collector()
    for raw in paths:
        # explicit stack instead of recursion: arbitrarily deep trees, same order as a sorted recursive walk
        stack = [Path(raw).expanduser()]
        while stack:
            stack.extend(reversed(walker.visit(stack.pop())))
    return walker.files, walker.errors
