"""Defaults shared by the settings and the library functions that take the same knobs, defined once so they
cannot drift apart (no imports: safe to import from anywhere)."""

from __future__ import annotations

CHUNK_SIZE = 128  # max word pieces per chunk (the embedder reads at most 256)
CHUNK_OVERLAP = 24  # word pieces of overlap between neighbouring chunks
