"""The collection manifest round-trips its files, and still reads a manifest written before ``embedder_family``
was dropped (the embedding family is recorded, and checked, in the Chroma collection: rag/store.py)."""

from __future__ import annotations

import json
from pathlib import Path

from ingest.manifest import VERSION, FileEntry, Manifest
from rag.types import PageSpan


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    m = Manifest(path)
    m.files["/d/b.pdf"] = FileEntry("/d/b.pdf", "h2", 20, ["b-0", "b-1"], 2.0, pages=[[1, 0, 5], [2, 7, 9]],
                                    mime="application/pdf", chars=9)
    m.files["/d/a.txt"] = FileEntry("/d/a.txt", "h1", 10, ["a-0"], 1.0)
    m.save()
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert set(raw) == {"version", "files"} and raw["version"] == VERSION
    assert list(raw["files"]) == ["/d/a.txt", "/d/b.pdf"]  # sorted, so a re-ingest rewrites it identically
    again = Manifest.load(path)
    assert again.files == m.files and again.chunk_ids() == {"a-0", "b-0", "b-1"}
    assert again.files["/d/b.pdf"].page_spans() == (PageSpan(1, 0, 5), PageSpan(2, 7, 9))


def test_a_manifest_with_the_old_embedder_family_key_loads(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    entry = {"source": "/d/a.txt", "content_hash": "h1", "size": 10, "chunk_ids": ["a-0"], "ingested_at": 1.0}
    path.write_text(json.dumps({"version": 1, "embedder_family": "", "files": {"/d/a.txt": entry}}), encoding="utf-8")
    m = Manifest.load(path)
    assert list(m.files) == ["/d/a.txt"] and m.files["/d/a.txt"].chunk_ids == ["a-0"]
    m.save()
    assert "embedder_family" not in json.loads(path.read_text(encoding="utf-8"))
