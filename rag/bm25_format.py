"""The files of a BM25 index directory (rag/bm25.py), written and read here only.

Two files, both replaced atomically (write a temp file, fsync, ``os.replace``), ``.npz`` without pickles:

- ``corpus.npz``: the tokenized corpus, one entry per chunk (chunk id, source, token ids into a vocabulary).
  It is the source of truth and is what makes updates incremental.
- ``index.npz``: the bm25s sparse score matrix (term-major CSC: for each term, the chunks containing it and
  their BM25 weight). Queries read it and never rebuild it.

Both hold the same `Columns` (format, generation stamp, chunk ids, sources, vocabulary, titles) under the same
names, except that the chunk ids are ``ids`` in the corpus and ``doc_ids`` in the index; then the corpus has
``offsets`` and ``tokens``, the index ``data``, ``indices`` and ``indptr``.
"""

from __future__ import annotations

import os
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = 1
CORPUS_FILE = "corpus.npz"
INDEX_FILE = "index.npz"

Stamp = tuple[int, int, int]


@dataclass(frozen=True)
class Columns:
    """What both files hold: the chunks (ids in order, the source of each), the vocabulary (term ids are
    positions in it), the document titles (first chunk id -> title) and the generation of the save."""

    generation: str
    ids: list[str]
    source_names: list[str]
    source_of: np.ndarray  # int32, per chunk: index into source_names
    vocab: list[str]
    titles: dict[str, str]


@dataclass(frozen=True)
class Matrix:
    """The BM25 score matrix in bm25s's term-major CSC form."""

    data: np.ndarray  # float32 BM25 weight per (term, doc)
    indices: np.ndarray  # int32 doc position per (term, doc)
    indptr: np.ndarray  # int64, per term: its slice of data/indices


# -- packing lists of strings into numpy arrays (npz with allow_pickle=False) ------------------------------
def _pack(strings: Sequence[str]) -> np.ndarray:
    # NUL cannot occur in paths, chunk ids or tokens, so it is a safe separator.
    return np.frombuffer("\0".join(strings).encode("utf-8"), dtype=np.uint8)


def _unpack(arr: np.ndarray, n: int) -> list[str]:
    if n == 0:
        return []
    out = arr.tobytes().decode("utf-8").split("\0")
    if len(out) != n:
        raise ValueError(f"expected {n} strings, found {len(out)}")
    return out


def _title_arrays(titles: dict[str, str]) -> dict[str, np.ndarray]:
    ids = list(titles)
    return {"n_titles": np.asarray(len(ids)), "title_ids": _pack(ids), "titles": _pack([titles[i] for i in ids])}


def _read_titles(z) -> dict[str, str]:  # z: an open NpzFile; files written before titles existed have none
    if "n_titles" not in z.files:
        return {}
    n = int(z["n_titles"])
    return dict(zip(_unpack(z["title_ids"], n), _unpack(z["titles"], n), strict=True))


def _open_npz(path: Path):  # -> numpy.lib.npyio.NpzFile
    # np.load on a damaged file guesses it is a pickle and says so, which would mislead whoever reads the log.
    if not zipfile.is_zipfile(path):
        raise ValueError("not a valid .npz archive")
    return np.load(path, allow_pickle=False)


def _check_format(z) -> None:
    if int(z["format"]) != FORMAT:
        raise ValueError(f"format {int(z['format'])}, expected {FORMAT}")


def stamp(path: Path) -> Stamp | None:
    """Identity of a file's current version (so another process's save is noticed with one stat)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- writing: the one place the layout is spelled out -------------------------------------------------------
def _column_arrays(cols: Columns, ids_key: str) -> dict[str, np.ndarray]:
    return {
        "format": np.asarray(FORMAT),
        "generation": _pack([cols.generation]),
        "n_docs": np.asarray(len(cols.ids)),
        ids_key: _pack(cols.ids),
        "n_sources": np.asarray(len(cols.source_names)),
        "source_names": _pack(cols.source_names),
        "source_of": cols.source_of,
        "n_vocab": np.asarray(len(cols.vocab)),
        "vocab": _pack(cols.vocab),
    }


def write_corpus(path: Path, cols: Columns, offsets: np.ndarray, tokens: np.ndarray) -> None:
    """``offsets`` (int64, one more than chunks): chunk i's term ids are ``tokens[offsets[i]:offsets[i + 1]]``."""
    arrays = {**_column_arrays(cols, "ids"), "offsets": offsets, "tokens": tokens, **_title_arrays(cols.titles)}
    _atomic_savez(path, arrays)


def write_index(path: Path, cols: Columns, matrix: Matrix) -> None:
    arrays = {**_column_arrays(cols, "doc_ids"), **_title_arrays(cols.titles),
              "data": matrix.data, "indices": matrix.indices, "indptr": matrix.indptr}
    _atomic_savez(path, arrays)


# -- reading: ValueError (or what numpy raises) on a damaged or foreign file --------------------------------
def read_corpus(path: Path) -> tuple[Columns, list[np.ndarray]]:
    """The corpus file's columns and each chunk's term ids (int32), checked for consistency."""
    with _open_npz(path) as z:
        _check_format(z)
        n = int(z["n_docs"])
        ids = _unpack(z["ids"], n)
        source_names = _unpack(z["source_names"], int(z["n_sources"]))
        source_of = z["source_of"]
        vocab = _unpack(z["vocab"], int(z["n_vocab"]))
        offsets = z["offsets"]
        tokens = z["tokens"]
        generation = _unpack(z["generation"], 1)[0]
        titles = _read_titles(z)
    if len(source_of) != n or len(offsets) != n + 1 or int(offsets[-1]) != len(tokens):
        raise ValueError("array lengths disagree")
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= len(vocab)):
        raise ValueError("token ids outside the vocabulary")
    parts = np.split(tokens.astype(np.int32, copy=False), offsets[1:-1]) if n else []
    return Columns(generation, ids, source_names, source_of, vocab, titles), parts


def read_corpus_generation(path: Path) -> str:
    """The generation of the corpus file (reads one small member of the npz, not the whole file)."""
    with _open_npz(path) as z:
        return _unpack(z["generation"], 1)[0]


def read_index(path: Path) -> tuple[Columns, Matrix]:
    """The index file's columns and score matrix, checked for consistency."""
    with _open_npz(path) as z:
        _check_format(z)
        n = int(z["n_docs"])
        vocab = _unpack(z["vocab"], int(z["n_vocab"]))
        generation = _unpack(z["generation"], 1)[0]
        doc_ids = _unpack(z["doc_ids"], n)
        source_names = _unpack(z["source_names"], int(z["n_sources"]))
        source_of = z["source_of"].astype(np.int32, copy=False)
        matrix = Matrix(z["data"].astype(np.float32, copy=False), z["indices"].astype(np.int32, copy=False),
                        z["indptr"].astype(np.int64, copy=False))
        titles = _read_titles(z)
    if len(source_of) != n or len(matrix.indptr) != len(vocab) + 1:
        raise ValueError("array lengths disagree")
    if int(matrix.indptr[-1]) != len(matrix.data) or len(matrix.data) != len(matrix.indices):
        raise ValueError("matrix arrays disagree")
    return Columns(generation, doc_ids, source_names, source_of, vocab, titles), matrix
