"""The per-collection manifest: which files are in the collection, with their content hash, chunk ids and
page spans. It is what makes re-ingest incremental. Written atomically (temp file + os.replace) so a crash
leaves either the old or the new manifest, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.types import PageSpan

VERSION = 1


@dataclass
class FileEntry:
    source: str
    content_hash: str
    size: int
    chunk_ids: list[str]
    ingested_at: float
    pages: list[list[int]] = field(default_factory=list)  # [page, start, end]
    mime: str = "text/plain"
    chars: int = 0

    @property
    def chunks(self) -> int:
        return len(self.chunk_ids)

    def page_spans(self) -> tuple[PageSpan, ...]:
        return tuple(PageSpan(p, s, e) for p, s, e in self.pages)


@dataclass
class Manifest:
    path: Path
    files: dict[str, FileEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        if not path.exists():
            return cls(path=path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            files = {src: FileEntry(**entry) for src, entry in raw.get("files", {}).items()}
            return cls(path=path, files=files)
        except (ValueError, TypeError, KeyError):
            # A damaged manifest only costs a re-embed: the runner reconciles it with the store.
            return cls(path=path)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": VERSION,
            "files": {src: asdict(e) for src, e in sorted(self.files.items())},
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".manifest-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def chunk_ids(self) -> set[str]:
        return {cid for e in self.files.values() for cid in e.chunk_ids}
