"""Which process serves a data directory. Embedded Chroma is one process's: a running ``citeqa serve`` does not
see what another process writes into the same store (its index is cached in memory), so while a server holds a
data directory with the embedded store, ``citeqa ingest`` and ``citeqa forget`` there are refused with a clear
message instead of writing what the server would half-see. Add files in the server's Library tab, or run both
against a ``chroma run`` server (``CITEQA_CHROMA``), which every process shares."""

from __future__ import annotations

import atexit
import json
import os
from pathlib import Path
from typing import Any

from rag.errors import BusyError

MARKER = "serving.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def mark_serving(data_dir: Path, url: str) -> Path:
    """Record that this process serves ``data_dir`` (removed at exit; a dead server's marker is ignored)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / MARKER
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "url": url}), encoding="utf-8")
    os.replace(tmp, path)

    def unmark() -> None:
        info = serving(data_dir)
        if info and info.get("pid") == os.getpid():
            path.unlink(missing_ok=True)

    atexit.register(unmark)
    return path


def serving(data_dir: Path) -> dict[str, Any] | None:
    """The live server of ``data_dir`` ({"pid", "url"}), or None."""
    try:
        info = json.loads((data_dir / MARKER).read_text(encoding="utf-8"))
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if pid != os.getpid() and _alive(pid) else None


def refuse_if_served(data_dir: Path, chroma: str | None, what: str) -> None:
    """Raise BusyError when another process serves ``data_dir`` on its embedded store (``what``: the command)."""
    if chroma:
        return  # a Chroma server is shared by every process: writes are seen by all
    info = serving(data_dir)
    if info:
        raise BusyError(
            f"a citeqa server (pid {info['pid']}, {info.get('url', '?')}) is using {data_dir} with its embedded "
            f"store and would not see what `citeqa {what}` writes: add or remove files in its Library tab, stop it "
            "first, or run both against a Chroma server (--chroma / CITEQA_CHROMA, see docs/chroma-server.md)"
        )
