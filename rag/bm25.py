"""A persisted BM25 index kept in step with a collection, one directory per collection.

Two files, both replaced atomically (write a temp file, fsync, ``os.replace``):

- ``corpus.npz``: the tokenized corpus, one entry per chunk (chunk id, source, token ids into a vocabulary).
  It is the source of truth and is what makes updates incremental: ``add``/``remove_*`` edit it in memory and
  ``save`` writes it back, so re-ingesting one file never re-tokenizes the others.
- ``index.npz``: the bm25s sparse score matrix (term-major CSC: for each term, the chunks containing it and
  their BM25 weight), built by ``save`` only when something changed. Queries read it and never rebuild it.

Both carry a generation stamp written by the same ``save``; an index that is missing, unreadable or from
another generation is rebuilt from the corpus (and re-persisted) instead of failing the query.

Tokenizer (the same for chunks and queries): ``rag.text.index_tokens`` (NFKC, casefold, "2,000" -> "2000",
"3.14" and "v1.2.3" whole, English stopwords removed, a plural-only "s"-stemmer). No stemmer dependency.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.text import INDEX_STOPWORDS, folded_words, index_raw_tokens, index_term, plain_words
from rag.text import index_tokens as tokenize  # the name callers and tests import from here
from rag.types import Chunk

log = logging.getLogger(__name__)

FORMAT = 1
CORPUS_FILE = "corpus.npz"
INDEX_FILE = "index.npz"

TITLE_MAX_WORDS = 10


def document_title(first_chunk_text: str, source: str) -> str:
    """A document's title: its first line when that reads as a heading (at most ``TITLE_MAX_WORDS`` words, not a
    sentence), else its file name without extension ("q3_report" -> "q3 report")."""
    line = first_chunk_text.lstrip().split("\n", 1)[0].strip().lstrip("#").strip()
    words = plain_words(line)
    if line and 1 <= len(words) <= TITLE_MAX_WORDS and len(line) <= 120 and not line.endswith((".", ":", ";", ",")):
        return line
    return re.sub(r"[_\-]+", " ", Path(source).stem).strip()


def title_key(title: str) -> tuple[str, ...] | None:
    """The words a title is matched by in other documents' text (casefolded), or None when the title is too
    common to mean a link (a single stopword or a word of fewer than 4 letters)."""
    words = tuple(folded_words(title))
    if not words or len(words) > TITLE_MAX_WORDS:
        return None
    if len(words) == 1 and (words[0] in INDEX_STOPWORDS or len(words[0]) < 4):
        return None
    return words


class _Vocab(dict):
    """term -> id, handing out the next id to a term seen for the first time (``vocab[t]`` never fails)."""

    def __init__(self, terms: Sequence[str] = ()) -> None:
        super().__init__((t, i) for i, t in enumerate(terms))
        self.terms = list(terms)
        self.raw = _RawIds(self)

    def __missing__(self, term: str) -> int:
        tid = self[term] = len(self.terms)
        self.terms.append(term)
        return tid


class _RawIds(dict):
    """raw token -> term id (-1 for a stopword): indexing costs one dict lookup per token this way."""

    def __init__(self, vocab: _Vocab) -> None:
        super().__init__()
        self.vocab = vocab

    def __missing__(self, raw: str) -> int:
        term = index_term(raw)
        tid = self[raw] = self.vocab[term] if term else -1
        return tid


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


def _stamp(path: Path) -> tuple[int, int, int] | None:
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


def lucene_matrix(
    terms: np.ndarray, lengths: np.ndarray, n_terms: int, k1: float = 1.5, b: float = 0.75
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bm25s eager score matrix (``bm25s.BM25(method="lucene")``: term-major CSC ``data, indices, indptr``
    with weight ``idf * tf / (tf + k1 * (1 - b + b * len / avglen))``, ``idf = log(1 + (N - df + .5) / (df + .5))``),
    computed with whole-array operations (scipy sums the repeated (term, doc) pairs into term frequencies in
    C): bm25s builds it with a Python loop per document, which takes tens of seconds at 100k chunks, and
    ``save`` rebuilds it after every ingest. ``terms`` is the flat term-id sequence of all documents,
    ``lengths`` the number of terms of each. Parity with bm25s is checked by the tests."""
    import scipy.sparse as sp  # a dependency of bm25s

    lengths = np.asarray(lengths, dtype=np.int64)
    n_docs = len(lengths)
    if n_terms == 0 or n_docs == 0 or int(lengths.sum()) == 0:  # nothing can match
        return np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(n_terms + 1, np.int64)
    doc = np.repeat(np.arange(n_docs, dtype=np.int32), lengths)
    # Rows are terms, so CSR of (terms x docs) is exactly bm25s's term-major CSC of (docs x terms).
    m = sp.csr_matrix(
        (np.ones(len(doc), dtype=np.float32), (np.asarray(terms, dtype=np.int32), doc)), shape=(n_terms, n_docs)
    )
    m.sum_duplicates()  # one entry per (term, doc) holding tf, docs sorted within each term (a no-op if already)
    indptr = m.indptr.astype(np.int64)
    df = np.diff(indptr)
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    norm = (k1 * (1.0 - b + b * lengths / lengths.mean())).astype(np.float32)  # per doc; gathered below
    tf = m.data
    data = tf / (tf + norm[m.indices])
    data *= np.repeat(idf, df)
    return data, m.indices.astype(np.int32), indptr


@dataclass
class _Index:
    """The query-time structure: bm25s's term-major CSC score matrix plus the maps around it."""

    generation: str
    doc_ids: list[str]
    source_names: list[str]
    source_of: np.ndarray  # int32, per doc: index into source_names
    vocab: dict[str, int]  # term -> column of the CSC matrix
    data: np.ndarray  # float32 BM25 weight per (term, doc)
    indices: np.ndarray  # int32 doc position per (term, doc)
    indptr: np.ndarray  # int64, per term: its slice of data/indices
    source_code: dict[str, int] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)  # first chunk id of a document -> the document's title
    _links: dict[tuple[str, ...], list[str]] | None = None  # title words -> first chunk ids, built on first use
    _link_lengths: list[int] = field(default_factory=list)  # the word counts of those titles, longest first
    _positions: dict[str, int] | None = None

    def __post_init__(self) -> None:
        self.source_code = {s: i for i, s in enumerate(self.source_names)}

    def links(self) -> dict[tuple[str, ...], list[str]]:
        if self._links is None:
            table: dict[tuple[str, ...], list[str]] = {}
            for cid, title in self.titles.items():
                key = title_key(title)
                if key:
                    table.setdefault(key, []).append(cid)
            self._links = table
            self._link_lengths = sorted({len(key) for key in table}, reverse=True)
        return self._links

    @property
    def num_docs(self) -> int:
        return len(self.doc_ids)

    def doc_position(self, chunk_id: str) -> int | None:
        if self._positions is None:
            self._positions = {d: i for i, d in enumerate(self.doc_ids)}
        return self._positions.get(chunk_id)

    @classmethod
    def empty(cls) -> _Index:
        f32, i32 = np.zeros(0, np.float32), np.zeros(0, np.int32)
        return cls("", [], [], i32, {}, f32, i32, np.zeros(1, np.int64))


class BM25Index:
    """BM25 over the chunks of one collection, persisted under ``directory``; loads lazily on first use."""

    def __init__(self, directory: Path, k1: float = 1.5, b: float = 0.75) -> None:
        self.directory = Path(directory)
        self.k1 = k1
        self.b = b
        # Corpus (source of truth), loaded on the first call that needs it.
        self._docs: dict[str, tuple[str, np.ndarray]] | None = None
        self._titles: dict[str, str] = {}  # first chunk id of each document -> its title
        self._vocab = _Vocab()
        self._generation = ""
        self._corpus_stamp: tuple[int, int, int] | None = None
        self._dirty = False
        self._version = 0  # bumped by every in-memory change; an unsaved index built in memory records it
        # Query structure, loaded (or built) on the first search.
        self._index: _Index | None = None
        # (index file, corpus file) versions the cached query structure answers for: a save by another
        # process changes them, and the next search picks the new files up.
        self._index_key: tuple[tuple[int, int, int] | None, tuple[int, int, int] | None] | None = None
        self._index_version = -1
        self.damaged: str | None = None  # why the persisted corpus could not be read, when it could not

    @property
    def corpus_path(self) -> Path:
        return self.directory / CORPUS_FILE

    @property
    def index_path(self) -> Path:
        return self.directory / INDEX_FILE

    # -- corpus ----------------------------------------------------------------------------------------
    def _read_corpus(self) -> tuple[dict[str, tuple[str, np.ndarray]], list[str], str]:
        with _open_npz(self.corpus_path) as z:
            if int(z["format"]) != FORMAT:
                raise ValueError(f"format {int(z['format'])}, expected {FORMAT}")
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
        docs = {i: (source_names[s], p) for i, s, p in zip(ids, source_of.tolist(), parts, strict=True)}
        self._titles = {i: t for i, t in titles.items() if i in docs}
        return docs, vocab, generation

    def _ensure_corpus(self) -> dict[str, tuple[str, np.ndarray]]:
        stamp = _stamp(self.corpus_path)
        if self._docs is not None and (self._dirty or stamp == self._corpus_stamp):
            return self._docs
        docs: dict[str, tuple[str, np.ndarray]] = {}
        vocab: list[str] = []
        generation = ""
        if stamp is not None:
            try:
                docs, vocab, generation = self._read_corpus()
                self.damaged = None
            except Exception as exc:  # a damaged file must not take retrieval down: start empty, say so
                self._titles = {}
                self.damaged = (
                    f"BM25 corpus {self.corpus_path} is unreadable ({exc}): keyword search starts empty until "
                    "the chunks are added again (re-ingest)"
                )
                log.warning("%s", self.damaged)
                docs, vocab, generation = {}, [], ""
        self._docs = docs
        self._vocab = _Vocab(vocab)
        self._generation = generation
        self._corpus_stamp = stamp
        return docs

    def _touch(self) -> None:
        self._dirty = True
        self._version += 1

    # -- updates ---------------------------------------------------------------------------------------
    def add(self, chunks: Sequence[Chunk]) -> None:
        """Add chunks, replacing any with the same id (call ``save`` to persist)."""
        if not chunks:
            return
        docs = self._ensure_corpus()
        raw = self._vocab.raw
        for chunk in chunks:
            ids = np.asarray([raw[t] for t in index_raw_tokens(chunk.text)], dtype=np.int32)
            docs[chunk.id] = (chunk.source, ids[ids >= 0])
            if chunk.index == 0:
                self._titles[chunk.id] = document_title(chunk.text, chunk.source)
        self._touch()

    def remove_source(self, source: str) -> int:
        """Remove every chunk of ``source``; return how many were removed."""
        docs = self._ensure_corpus()
        gone = [i for i, (src, _) in docs.items() if src == source]
        for i in gone:
            del docs[i]
            self._titles.pop(i, None)
        if gone:
            self._touch()
        return len(gone)

    def remove_ids(self, ids: Iterable[str]) -> None:
        docs = self._ensure_corpus()
        removed = False
        for i in ids:
            removed |= docs.pop(i, None) is not None
            self._titles.pop(i, None)
        if removed:
            self._touch()

    def ids(self) -> set[str]:
        return set(self._ensure_corpus())

    def sources(self) -> set[str]:
        return {src for src, _ in self._ensure_corpus().values()}

    def __len__(self) -> int:
        return len(self._ensure_corpus())

    # -- building and persisting -----------------------------------------------------------------------
    def _build(self, generation: str) -> tuple[_Index, dict[str, np.ndarray]]:
        """The index over the current corpus, plus the compacted corpus arrays (vocabulary renumbered to the
        terms still in use, shared by both files)."""
        docs = self._ensure_corpus()
        ids = list(docs)
        source_names = sorted({src for src, _ in docs.values()})
        code = {s: i for i, s in enumerate(source_names)}
        source_of = np.asarray([code[docs[i][0]] for i in ids], dtype=np.int32)
        lengths = np.asarray([len(docs[i][1]) for i in ids], dtype=np.int64)
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.concatenate([docs[i][1] for i in ids]) if ids else np.zeros(0, dtype=np.int32)
        # Renumber the terms still in use densely (dropping those only removed chunks had): O(n), no sort.
        used = np.flatnonzero(np.bincount(flat, minlength=len(self._vocab.terms)))
        remap = np.full(len(self._vocab.terms), -1, dtype=np.int32)
        remap[used] = np.arange(len(used), dtype=np.int32)
        inv = remap[flat]
        vocab_list = [self._vocab.terms[u] for u in used.tolist()]

        data, indices, indptr = lucene_matrix(inv, lengths, len(vocab_list), self.k1, self.b)
        index = _Index(
            generation=generation,
            doc_ids=ids,
            source_names=source_names,
            source_of=source_of,
            vocab={t: i for i, t in enumerate(vocab_list)},
            data=data,
            indices=indices,
            indptr=indptr,
            titles={i: t for i, t in self._titles.items() if i in docs},
        )
        corpus = {
            "format": np.asarray(FORMAT),
            "generation": _pack([generation]),
            "n_docs": np.asarray(len(ids)),
            "ids": _pack(ids),
            "n_sources": np.asarray(len(source_names)),
            "source_names": _pack(source_names),
            "source_of": source_of,
            "n_vocab": np.asarray(len(vocab_list)),
            "vocab": _pack(vocab_list),
            "offsets": offsets,
            "tokens": inv,
            **_title_arrays(index.titles),
        }
        # Adopt the compacted numbering in memory too, so ids stay consistent with what is on disk.
        self._vocab = _Vocab(vocab_list)
        parts = np.split(inv, offsets[1:-1]) if ids else []
        self._docs = {i: (docs[i][0], p) for i, p in zip(ids, parts, strict=True)}
        return index, corpus

    @staticmethod
    def _index_arrays(index: _Index) -> dict[str, np.ndarray]:
        vocab_list = sorted(index.vocab, key=index.vocab.__getitem__)
        return {
            "format": np.asarray(FORMAT),
            "generation": _pack([index.generation]),
            "n_docs": np.asarray(index.num_docs),
            "doc_ids": _pack(index.doc_ids),
            "n_sources": np.asarray(len(index.source_names)),
            "source_names": _pack(index.source_names),
            "source_of": index.source_of,
            "n_vocab": np.asarray(len(vocab_list)),
            "vocab": _pack(vocab_list),
            **_title_arrays(index.titles),
            "data": index.data,
            "indices": index.indices,
            "indptr": index.indptr,
        }

    def save(self) -> None:
        """Persist pending changes: corpus and freshly built index, each written atomically. No-op when
        nothing changed since the last load or save."""
        if not self._dirty:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        generation = uuid.uuid4().hex
        index, corpus = self._build(generation)
        # Corpus first: a crash between the two leaves an index of the old generation, which the next
        # search notices and rebuilds from the (new) corpus.
        _atomic_savez(self.corpus_path, corpus)
        _atomic_savez(self.index_path, self._index_arrays(index))
        self._generation = generation
        self._corpus_stamp = _stamp(self.corpus_path)
        self._index = index
        self._index_key = self._file_key()
        self._index_version = self._version
        self._dirty = False
        self.damaged = None

    def _read_index(self) -> _Index:
        with _open_npz(self.index_path) as z:
            if int(z["format"]) != FORMAT:
                raise ValueError(f"format {int(z['format'])}, expected {FORMAT}")
            n = int(z["n_docs"])
            vocab_list = _unpack(z["vocab"], int(z["n_vocab"]))
            index = _Index(
                generation=_unpack(z["generation"], 1)[0],
                doc_ids=_unpack(z["doc_ids"], n),
                source_names=_unpack(z["source_names"], int(z["n_sources"])),
                source_of=z["source_of"].astype(np.int32, copy=False),
                vocab={t: i for i, t in enumerate(vocab_list)},
                data=z["data"].astype(np.float32, copy=False),
                indices=z["indices"].astype(np.int32, copy=False),
                indptr=z["indptr"].astype(np.int64, copy=False),
                titles=_read_titles(z),
            )
        if len(index.source_of) != n or len(index.indptr) != len(vocab_list) + 1:
            raise ValueError("array lengths disagree")
        if int(index.indptr[-1]) != len(index.data) or len(index.data) != len(index.indices):
            raise ValueError("matrix arrays disagree")
        return index

    def _corpus_generation(self) -> str | None:
        """The generation of the corpus on disk (reads one small member of the npz, not the whole file), or
        None when there is no readable corpus to compare with."""
        if self._docs is not None and _stamp(self.corpus_path) == self._corpus_stamp and not self.damaged:
            return self._generation if self._corpus_stamp is not None else None
        try:
            with _open_npz(self.corpus_path) as z:
                return _unpack(z["generation"], 1)[0]
        except Exception:
            return None

    def _file_key(self) -> tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]:
        return (_stamp(self.index_path), _stamp(self.corpus_path))

    def _ensure_index(self) -> _Index:
        if self._dirty:
            # Unsaved changes (add without save yet): answer from an in-memory build, kept until the next change.
            if self._index is None or self._index_version != self._version:
                self._index, _ = self._build("unsaved")
                self._index_version = self._version
            return self._index
        key = self._file_key()
        if self._index is not None and key == self._index_key:
            return self._index
        stamp = key[0]
        if key == (None, None):  # nothing saved yet
            self._index = _Index.empty()
            self._index_key = key
            return self._index
        index: _Index | None = None
        why = "missing"
        if stamp is not None:
            try:
                index = self._read_index()
                corpus_generation = self._corpus_generation()
                # With no readable corpus to rebuild from, a readable index is the best there is: keep it.
                if corpus_generation is not None and index.generation != corpus_generation:
                    why, index = "out of date", None
            except Exception as exc:
                why = f"unreadable ({exc})"
        if index is None:
            log.warning("BM25 index %s is %s: rebuilding it from %s", self.index_path, why, CORPUS_FILE)
            self._ensure_corpus()
            index, _ = self._build(self._generation)
            if not self.damaged:  # an index of a corpus we could not read would only hide the damage
                try:
                    _atomic_savez(self.index_path, self._index_arrays(index))
                except OSError as exc:  # e.g. a read-only data dir: still answer from the in-memory build
                    log.warning("could not write the rebuilt BM25 index %s (%s)", self.index_path, exc)
        self._index = index
        self._index_key = self._file_key()
        self._index_version = self._version
        return index

    # -- querying --------------------------------------------------------------------------------------
    def search(self, query: str, k: int, source: str | None = None) -> list[tuple[str, float]]:
        """Top-``k`` (chunk id, BM25 score) with a positive score, best first; ties by insertion order."""
        if k <= 0:
            return []
        idx = self._ensure_index()
        rows = [idx.vocab[t] for t in dict.fromkeys(tokenize(query)) if t in idx.vocab]
        if not rows or idx.num_docs == 0:
            return []
        if len(rows) == 1:
            lo, hi = int(idx.indptr[rows[0]]), int(idx.indptr[rows[0] + 1])
            docs, weights = idx.indices[lo:hi], idx.data[lo:hi]
        else:
            docs = np.concatenate([idx.indices[idx.indptr[r] : idx.indptr[r + 1]] for r in rows])
            weights = np.concatenate([idx.data[idx.indptr[r] : idx.indptr[r + 1]] for r in rows])
        if source is not None:
            code = idx.source_code.get(source)
            if code is None:
                return []
            keep = idx.source_of[docs] == code  # mask the postings: the filter costs nothing extra
            docs, weights = docs[keep], weights[keep]
        if len(docs) == 0:
            return []
        scores = np.bincount(docs, weights=weights, minlength=idx.num_docs)
        cand = np.flatnonzero(scores > 0)
        if len(cand) > k:
            # Keep everything tied with the k-th score, then order fully, so ties break the same way always.
            kth = np.partition(scores[cand], len(cand) - k)[len(cand) - k]
            cand = cand[scores[cand] >= kth]
        order = np.lexsort((cand, -scores[cand]))[:k]
        return [(idx.doc_ids[i], float(scores[i])) for i in cand[order].tolist()]

    def linked(self, text: str, k: int, exclude_sources: Iterable[str] = (), source: str | None = None) -> list[str]:
        """First chunks of the documents whose title occurs in ``text`` (word for word, case-insensitive), in the
        order the titles first occur, at most ``k``: the documents a passage refers to by name. Documents in
        ``exclude_sources`` are skipped; with ``source``, only that document can be returned."""
        idx = self._ensure_index()
        links = idx.links() if idx.titles else {}
        if not links or k <= 0:
            return []
        words = folded_words(text)
        lengths = idx._link_lengths
        skip = set(exclude_sources)
        out: list[str] = []
        for i in range(len(words)):
            for n in lengths:  # the longest title starting here first ("New York Times" before "New York")
                for cid in links.get(tuple(words[i : i + n]), ()):
                    pos = idx.doc_position(cid)
                    src = idx.source_names[idx.source_of[pos]] if pos is not None else None
                    if src is None or src in skip or (source is not None and src != source) or cid in out:
                        continue
                    out.append(cid)
                    if len(out) >= k:
                        return out
        return out
