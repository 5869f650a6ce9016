"""Reading a file to ingest: what ``stat`` tells before a byte is read (`check_file`), its bytes (`read_file`)
and its hash a block at a time (`hash_file`)."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from ingest.loaders.common import SUPPORTED_SUFFIXES, _over_limit, unsupported_reason
from rag.errors import FileError

_BLOCK = 1 << 20  # bytes per read when only hashing / scanning


def check_file(path: Path, max_bytes: int) -> int:
    """What ``stat`` alone can tell, before a byte is read (so a file over the limit is never read): that
    ``path`` is a regular file of a supported type, not empty, at most ``max_bytes``. Returns its size."""
    name = str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileError(name, "no such file") from None
    except OSError as exc:
        raise FileError(name, f"cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileError(name, "not a regular file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise FileError(name, unsupported_reason(suffix))
    if st.st_size > max_bytes:
        raise FileError(name, _over_limit(st.st_size, max_bytes))
    if st.st_size == 0:
        raise FileError(name, "empty file (no text)")
    return st.st_size


def _open_error(path: Path, exc: OSError) -> FileError:
    if isinstance(exc, PermissionError):
        return FileError(str(path), "permission denied: make it readable (chmod +r)")
    if isinstance(exc, IsADirectoryError):
        return FileError(str(path), "not a regular file")
    return FileError(str(path), f"cannot read ({exc.strerror or exc})")


def read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes (after `check_file`); FileError when unreadable or grown past the limit since."""
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            raw = fh.read(min(size, max_bytes) + 1)  # one byte more shows whether it is longer than it said
            if len(raw) > size:
                raw += fh.read(max_bytes + 1 - len(raw))
    except OSError as exc:
        raise _open_error(path, exc) from None
    if len(raw) > max_bytes:  # grew since the stat
        raise FileError(str(path), _over_limit(None, max_bytes))
    return raw


def _hash_blocks(path: Path, max_bytes: int, *feeds: Callable[[bytes], object]) -> tuple[str, int]:
    """(sha256, size) of a file read a block at a time, each block also given to ``feeds``; FileError when it
    is over ``max_bytes`` or cannot be read. Memory stays at one block whatever the size."""
    h = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as fh:
            while block := fh.read(_BLOCK):
                size += len(block)
                if size > max_bytes:
                    raise FileError(str(path), _over_limit(None, max_bytes))
                h.update(block)
                for feed in feeds:
                    feed(block)
    except OSError as exc:
        raise _open_error(path, exc) from None
    return h.hexdigest(), size


def hash_file(path: Path, max_bytes: int) -> str:
    """The sha256 of a file, read a block at a time (to tell whether a big file changed without holding it)."""
    return _hash_blocks(path, max_bytes)[0]

