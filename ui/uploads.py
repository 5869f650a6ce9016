"""Uploaded files -> the collection's upload folder, checked on the server before anything is written.

A file is placed only after its type, size and emptiness pass; a file that then fails to ingest (corrupt,
no text) is taken out again and any earlier file of the same name put back, so a bad upload leaves the
library exactly as it was."""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
MAX_NAME = 120
_UNSAFE = re.compile(r"[^\w.\- ()+,=@]+", re.UNICODE)


def safe_name(name: str) -> str:
    """A file name that stays inside the folder it is joined to: the last path part only, no NUL or control
    characters, no leading dots (hidden files, '..'), at most MAX_NAME characters, extension kept."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\x00", "").replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = ext[:16]
    stem = stem[: MAX_NAME - len(ext) - 1].strip(" .") or "upload"
    return f"{stem}.{ext}" if ext else stem


def accepted_types() -> str:
    return " ".join(SUFFIXES)


def human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def check(path: Path, name: str, limit_mb: float) -> str | None:
    """Why ``path`` (uploaded as ``name``) cannot be added, or None."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        what = f"'{suffix}'" if suffix else "without an extension"
        return f"unsupported file type {what}: use one of {accepted_types()}"
    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"the upload could not be read ({exc.strerror or exc}): try again"
    if size == 0:
        return "the file is empty (0 bytes): nothing to add"
    if size > limit_mb * 2**20:
        return (
            f"the file is {human_size(size)}, over the {human_size(limit_mb * 2**20)} limit per file "
            "(CITEQA_MAX_FILE_MB): split it or raise the limit"
        )
    return None


@dataclass
class Placed:
    name: str  # the name the user gave
    dest: Path
    backup: Path | None  # the file of the same name that was there before, moved aside

    def commit(self) -> None:
        if self.backup is not None:
            self.backup.unlink(missing_ok=True)

    def rollback(self) -> None:
        self.dest.unlink(missing_ok=True)
        if self.backup is not None:
            os.replace(self.backup, self.dest)


def place(src: Path, name: str, folder: Path, taken: set[str]) -> Placed:
    """Copy an upload into ``folder`` under its sanitised name (unique within this batch)."""
    folder.mkdir(parents=True, exist_ok=True)
    clean = safe_name(name)
    stem, ext = os.path.splitext(clean)
    i = 2
    while clean.lower() in taken:
        clean = f"{stem}-{i}{ext}"
        i += 1
    taken.add(clean.lower())
    dest = folder / clean
    if dest.resolve().parent != folder.resolve():  # belt and braces: safe_name already prevents this
        raise ValueError(f"refusing to write outside {folder}: {name!r}")
    backup = None
    if dest.exists():
        backup = folder / f".replaced-{uuid.uuid4().hex}{ext}"
        os.replace(dest, backup)
    try:
        shutil.copyfile(src, dest)
    except BaseException:
        Placed(name, dest, backup).rollback()
        raise
    return Placed(name, dest.resolve(), backup)
