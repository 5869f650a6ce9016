"""Uploaded files -> the collection's upload folder, checked on the server before anything is written.

A file is placed only after its type, size and emptiness pass; a file that then fails to ingest (corrupt,
no text) is taken out again and any earlier file of the same name put back, so a bad upload leaves the
library exactly as it was. A file is copied in under a hidden temporary name and renamed into place; what a
killed server leaves (a file moved aside, a half copy, an upload never ingested) is undone at the next start
(`clean_leftovers`)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

from ingest.loaders.common import SUPPORTED_SUFFIXES

SUFFIXES = SUPPORTED_SUFFIXES  # what the loaders read: one list
MAX_NAME = 120
_UNSAFE = re.compile(r"[^\w.\- ()+,=@]+", re.UNICODE)
BACKUP_PREFIX = ".replaced-"  # an earlier file of the same name, moved aside until the new one is ingested
INCOMING_PREFIX = ".incoming-"  # an upload being copied in


def safe_name(name: str) -> str:
    """A file name that stays inside the folder it is joined to: the last path part only, no NUL or control
    characters, no leading dots (hidden files, '..'), at most MAX_NAME characters, extension kept."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\x00", "").replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" ")
    stem, dot, ext = name.rpartition(".")  # the extension first, so "..txt" keeps it ("upload.txt")
    if not dot:
        stem, ext = name, ""
    ext = ext.strip(" ")[:16]
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
    suffix = Path(safe_name(name)).suffix.lower()  # the type of the name it will be stored under
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
        backup = folder / f"{BACKUP_PREFIX}{uuid.uuid4().hex}-{clean}"  # the name says where it goes back to
        os.replace(dest, backup)
    tmp = folder / f"{INCOMING_PREFIX}{uuid.uuid4().hex}-{clean}"
    try:
        shutil.copyfile(src, tmp)  # copied aside, then renamed: a crash never leaves half a file at dest
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        Placed(name, dest, backup).rollback()
        raise
    return Placed(name, dest.resolve(), backup)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def clean_leftovers(folder: Path, held: dict[str, str]) -> list[str]:
    """Undo what an upload stopped part way (the server killed) left in ``folder``. ``held``: the collection's
    files (absolute path -> content hash). A file moved aside for a replacement goes back in place unless the
    replacement is what the collection holds; a half-copied upload is removed, and so is any upload the
    collection does not hold (its ingest never finished). Returns the names it removed or restored."""
    if not folder.is_dir():
        return []
    done: list[str] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(INCOMING_PREFIX) and p.is_file():
            p.unlink(missing_ok=True)
            done.append(p.name)
        elif p.name.startswith(BACKUP_PREFIX) and p.is_file():
            tag, sep, target = p.name[len(BACKUP_PREFIX) :].partition("-")  # "<32 hex>-<name>"
            dest = folder / target
            if not sep or len(tag) != 32 or safe_name(target) != target:
                p.unlink(missing_ok=True)  # not one of ours to put back
            elif dest.is_file() and held.get(str(dest.resolve())) == _sha256(dest):
                p.unlink(missing_ok=True)  # the replacement was ingested: the old copy is not needed
            else:
                os.replace(p, dest)  # the replacement never made it: the old file goes back
            done.append(p.name)
    for p in sorted(folder.iterdir()):
        if not p.name.startswith(".") and p.is_file() and str(p.resolve()) not in held:
            p.unlink(missing_ok=True)
            done.append(p.name)
    return done


def discard_cached(paths: list[Path]) -> None:
    """Delete Gradio's cached copies of uploaded files once they have been placed (or refused), so nothing sent
    through /gradio_api/upload stays in its temp folder (the rest is swept by the app's ``delete_cache``)."""
    from gradio.utils import get_upload_folder

    root = Path(get_upload_folder()).resolve()
    for p in paths:
        rp = Path(p).resolve()
        if root not in rp.parents:
            continue  # not Gradio's copy: never delete a file we were merely pointed at
        rp.unlink(missing_ok=True)
        if rp.parent != root:
            try:
                rp.parent.rmdir()  # Gradio keeps each upload in a folder of its own
            except OSError:
                pass
