"""A persisted BM25 index kept in step with a collection, one directory per collection.

Two files (rag/bm25_format.py writes and reads them, each replaced atomically):

- ``corpus.npz``: the tokenized corpus, one entry per chunk (chunk id, source, token ids into a vocabulary).
  It is the source of truth and is what makes updates incremental: ``add``/``remove_*`` edit it in memory and
  ``save`` writes it back, so re-ingesting one file never re-tokenizes the others.
- ``index.npz``: the bm25s sparse score matrix (term-major CSC: for each term, the chunks containing it and
  their BM25 weight), built by ``save`` only when something changed. Queries read it and never rebuild it.

Both carry a generation stamp written by the same ``save``; an index that is missing, unreadable or from
another generation is rebuilt from the corpus (and re-persisted) instead of failing the query.

Tokenizer (the same for chunks and queries): ``rag.text.index_tokens`` (NFKC, casefold, "2,000" -> "2000",
"3.14" and "v1.2.3" whole, English stopwords removed, a plural-only "s"-stemmer). No stemmer dependency.
Document titles, for ``linked``: rag/titles.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.bm25_format import (
    CORPUS_FILE,
    FORMAT,
    INDEX_FILE,
    Columns,
    Matrix,
    Stamp,
    read_corpus,
    read_corpus_generation,
    read_index,
    stamp,
    write_corpus,
    write_index,
)
from rag.text import index_raw_tokens, index_term
from rag.text import index_tokens as tokenize  # the name callers and tests import from here
from rag.titles import TITLE_MAX_WORDS, TitleLinks, document_title, title_key
from rag.types import Chunk

__all__ = ["CORPUS_FILE", "FORMAT", "INDEX_FILE", "TITLE_MAX_WORDS", "BM25Index", "document_title", "lucene_matrix",
           "title_key", "tokenize"]

log = logging.getLogger(__name__)

Docs = dict[str, tuple[str, np.ndarray]]  # chunk id -> (source, term ids)


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
    """The query-time structure: the index file's columns and bm25s's term-major CSC score matrix, plus the maps
    around them."""

    columns: Columns  # ids: the chunk at each matrix position; titles: first chunk id of a document -> its title
    matrix: Matrix
    vocab: dict[str, int] = field(init=False)  # term -> column of the CSC matrix
    source_code: dict[str, int] = field(init=False)
    _links: TitleLinks | None = None  # built on first use
    _positions: dict[str, int] | None = None

    def __post_init__(self) -> None:
        self.vocab = {t: i for i, t in enumerate(self.columns.vocab)}
        self.source_code = {s: i for i, s in enumerate(self.columns.source_names)}

    @property
    def generation(self) -> str:
        return self.columns.generation

    @property
    def num_docs(self) -> int:
        return len(self.columns.ids)

    def links(self) -> TitleLinks:
        if self._links is None:
            self._links = TitleLinks(self.columns.titles)
        return self._links

    def source_of_chunk(self, chunk_id: str) -> str | None:
        if self._positions is None:
            self._positions = {d: i for i, d in enumerate(self.columns.ids)}
        pos = self._positions.get(chunk_id)
        return self.columns.source_names[self.columns.source_of[pos]] if pos is not None else None

    def postings(self, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(doc positions, weights) of the matrix rows of these terms, concatenated."""
        m = self.matrix
        if len(rows) == 1:
            lo, hi = int(m.indptr[rows[0]]), int(m.indptr[rows[0] + 1])
            return m.indices[lo:hi], m.data[lo:hi]
        docs = np.concatenate([m.indices[m.indptr[r] : m.indptr[r + 1]] for r in rows])
        weights = np.concatenate([m.data[m.indptr[r] : m.indptr[r + 1]] for r in rows])
        return docs, weights

    @classmethod
    def empty(cls) -> _Index:
        f32, i32 = np.zeros(0, np.float32), np.zeros(0, np.int32)
        return cls(Columns("", [], [], i32, [], {}), Matrix(f32, i32, np.zeros(1, np.int64)))


def _top_k(scores: np.ndarray, k: int) -> list[int]:
    """Positions of the ``k`` best positive scores, best first; ties by position."""
    cand = np.flatnonzero(scores > 0)
    if len(cand) > k:
        # Keep everything tied with the k-th score, then order fully, so ties break the same way always.
        kth = np.partition(scores[cand], len(cand) - k)[len(cand) - k]
        cand = cand[scores[cand] >= kth]
    order = np.lexsort((cand, -scores[cand]))[:k]
    return cand[order].tolist()


class BM25Index:
    """BM25 over the chunks of one collection, persisted under ``directory``; loads lazily on first use."""

    def __init__(self, directory: Path, k1: float = 1.5, b: float = 0.75) -> None:
        self.directory = Path(directory)
        self.k1 = k1
        self.b = b
        # Corpus (source of truth), loaded on the first call that needs it.
        self._docs: Docs | None = None
        self._titles: dict[str, str] = {}  # first chunk id of each document -> its title
        self._vocab = _Vocab()
        self._generation = ""
        self._corpus_stamp: Stamp | None = None
        self._dirty = False
        self._version = 0  # bumped by every in-memory change; an unsaved index built in memory records it
        # Query structure, loaded (or built) on the first search.
        self._index: _Index | None = None
        # (index file, corpus file) versions the cached query structure answers for: a save by another
        # process changes them, and the next search picks the new files up.
        self._index_key: tuple[Stamp | None, Stamp | None] | None = None
        self._index_version = -1
        self.damaged: str | None = None  # why the persisted corpus could not be read, when it could not

    @property
    def corpus_path(self) -> Path:
        return self.directory / CORPUS_FILE

    @property
    def index_path(self) -> Path:
        return self.directory / INDEX_FILE

    # -- corpus ----------------------------------------------------------------------------------------
    def _ensure_corpus(self) -> Docs:
        current = stamp(self.corpus_path)
        if self._docs is not None and (self._dirty or current == self._corpus_stamp):
            return self._docs
        docs, vocab, generation = self._load_corpus() if current is not None else ({}, [], "")
        self._docs = docs
        self._vocab = _Vocab(vocab)
        self._generation = generation
        self._corpus_stamp = current
        return docs

    def _load_corpus(self) -> tuple[Docs, list[str], str]:
        """The corpus on disk (and its titles into ``_titles``). A damaged file must not take retrieval down: it
        reads as empty, and ``damaged`` says so."""
        try:
            cols, parts = read_corpus(self.corpus_path)
            docs = {i: (cols.source_names[s], p)
                    for i, s, p in zip(cols.ids, cols.source_of.tolist(), parts, strict=True)}
        except Exception as exc:
            self._titles = {}
            self.damaged = (
                f"BM25 corpus {self.corpus_path} is unreadable ({exc}): keyword search starts empty until "
                "the chunks are added again (re-ingest)"
            )
            log.warning("%s", self.damaged)
            return {}, [], ""
        self._titles = {i: t for i, t in cols.titles.items() if i in docs}
        self.damaged = None
        return docs, cols.vocab, cols.generation

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

    def derived(self, *, drop_sources: Iterable[str], add: Sequence[Chunk], order: Sequence[str]) -> BM25Index:
        """A new index, held in memory (never ``save`` it: it names this one's directory only for its log lines):
        this one's corpus without the chunks of ``drop_sources``, plus ``add``, in the order of ``order`` (an id
        not in it is left out). This one is not changed, so questions running on it are not disturbed; the
        order makes the scores and their ties the same on every replica (ingest.replica)."""
        docs = self._ensure_corpus()
        drop = set(drop_sources)
        new = BM25Index(self.directory, self.k1, self.b)
        new._vocab = _Vocab(self._vocab.terms)  # the copied term ids keep their meaning
        mine = {i: d for i, d in docs.items() if d[0] not in drop}
        titles = {i: t for i, t in self._titles.items() if i in mine}
        raw = new._vocab.raw
        for chunk in add:
            tids = np.asarray([raw[t] for t in index_raw_tokens(chunk.text)], dtype=np.int32)
            mine[chunk.id] = (chunk.source, tids[tids >= 0])
            if chunk.index == 0:
                titles[chunk.id] = document_title(chunk.text, chunk.source)
        new._docs = {i: mine[i] for i in order if i in mine}
        new._titles = {i: t for i, t in titles.items() if i in new._docs}
        new._touch()
        return new

    def prepare(self) -> None:
        """Build the query structure now (it is otherwise built by the first search). Once built, searches only
        read it: an index shared by threads is prepared before they search it."""
        self._ensure_index()

    def ids(self) -> set[str]:
        return set(self._ensure_corpus())

    def sources(self) -> set[str]:
        return {src for src, _ in self._ensure_corpus().values()}

    def __len__(self) -> int:
        return len(self._ensure_corpus())

    # -- building and persisting -----------------------------------------------------------------------
    def _compact(self, generation: str) -> tuple[Columns, np.ndarray, np.ndarray, np.ndarray]:
        """The current corpus as the files' columns, the vocabulary renumbered to the terms still in use, with each
        chunk's length, the offsets and the renumbered term ids of all chunks. The new numbering is adopted in
        memory too, so ids stay consistent with what is on disk."""
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
        tokens = remap[flat]
        vocab_list = [self._vocab.terms[u] for u in used.tolist()]
        titles = {i: t for i, t in self._titles.items() if i in docs}
        self._vocab = _Vocab(vocab_list)
        parts = np.split(tokens, offsets[1:-1]) if ids else []
        self._docs = {i: (docs[i][0], p) for i, p in zip(ids, parts, strict=True)}
        return Columns(generation, ids, source_names, source_of, vocab_list, titles), lengths, offsets, tokens

    def _build(self, generation: str) -> tuple[_Index, np.ndarray, np.ndarray]:
        """The index over the current corpus, plus the corpus file's offsets and tokens (its other columns are the
        index's: both files share the compacted vocabulary)."""
        cols, lengths, offsets, tokens = self._compact(generation)
        matrix = Matrix(*lucene_matrix(tokens, lengths, len(cols.vocab), self.k1, self.b))
        return _Index(cols, matrix), offsets, tokens

    def save(self) -> None:
        """Persist pending changes: corpus and freshly built index, each written atomically. No-op when
        nothing changed since the last load or save."""
        if not self._dirty:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        generation = uuid.uuid4().hex
        index, offsets, tokens = self._build(generation)
        # Corpus first: a crash between the two leaves an index of the old generation, which the next
        # search notices and rebuilds from the (new) corpus.
        write_corpus(self.corpus_path, index.columns, offsets, tokens)
        write_index(self.index_path, index.columns, index.matrix)
        self._generation = generation
        self._corpus_stamp = stamp(self.corpus_path)
        self._index = index
        self._index_key = self._file_key()
        self._index_version = self._version
        self._dirty = False
        self.damaged = None

    def _corpus_generation(self) -> str | None:
        """The generation of the corpus on disk (reads one small member of the npz, not the whole file), or
        None when there is no readable corpus to compare with."""
        if self._docs is not None and stamp(self.corpus_path) == self._corpus_stamp and not self.damaged:
            return self._generation if self._corpus_stamp is not None else None
        try:
            return read_corpus_generation(self.corpus_path)
        except Exception:
            return None

    def _file_key(self) -> tuple[Stamp | None, Stamp | None]:
        return (stamp(self.index_path), stamp(self.corpus_path))

    # -- the query structure: in memory (unsaved changes), cached, nothing saved yet, or from the files -------
    def _ensure_index(self) -> _Index:
        if self._dirty:
            return self._unsaved_index()
        key = self._file_key()
        if self._index is not None and key == self._index_key:
            return self._index
        if key == (None, None):  # nothing saved yet
            self._index = _Index.empty()
            self._index_key = key
            return self._index
        index, why = self._read_current_index() if key[0] is not None else (None, "missing")
        if index is None:
            index = self._rebuild_index(why)
        self._index = index
        self._index_key = self._file_key()
        self._index_version = self._version
        return index

    def _unsaved_index(self) -> _Index:
        """Unsaved changes (add without save yet): an in-memory build, kept until the next change."""
        if self._index is None or self._index_version != self._version:
            self._index, _, _ = self._build("unsaved")
            self._index_version = self._version
        return self._index

    def _read_current_index(self) -> tuple[_Index | None, str]:
        """The index file when it is readable and of the corpus's generation, else None and why not."""
        try:
            index = _Index(*read_index(self.index_path))
            corpus_generation = self._corpus_generation()
        except Exception as exc:
            return None, f"unreadable ({exc})"
        # With no readable corpus to rebuild from, a readable index is the best there is: keep it.
        if corpus_generation is not None and index.generation != corpus_generation:
            return None, "out of date"
        return index, ""

    def _rebuild_index(self, why: str) -> _Index:
        log.warning("BM25 index %s is %s: rebuilding it from %s", self.index_path, why, CORPUS_FILE)
        self._ensure_corpus()
        index, _, _ = self._build(self._generation)
        if not self.damaged:  # an index of a corpus we could not read would only hide the damage
            try:
                write_index(self.index_path, index.columns, index.matrix)
            except OSError as exc:  # e.g. a read-only data dir: still answer from the in-memory build
                log.warning("could not write the rebuilt BM25 index %s (%s)", self.index_path, exc)
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
        docs, weights = idx.postings(rows)
        if source is not None:
            code = idx.source_code.get(source)
            if code is None:
                return []
            keep = idx.columns.source_of[docs] == code  # mask the postings: the filter costs nothing extra
            docs, weights = docs[keep], weights[keep]
        if len(docs) == 0:
            return []
        scores = np.bincount(docs, weights=weights, minlength=idx.num_docs)
        return [(idx.columns.ids[i], float(scores[i])) for i in _top_k(scores, k)]

    def linked(self, text: str, k: int, exclude_sources: Iterable[str] = (), source: str | None = None) -> list[str]:
        """First chunks of the documents whose title occurs in ``text`` (word for word, case-insensitive), in the
        order the titles first occur, at most ``k``: the documents a passage refers to by name. Documents in
        ``exclude_sources`` are skipped; with ``source``, only that document can be returned."""
        idx = self._ensure_index()
        links = idx.links() if idx.columns.titles else None
        if not links or k <= 0:
            return []
        skip = set(exclude_sources)
        out: list[str] = []
        for cid in links.mentioned(text):
            src = idx.source_of_chunk(cid)
            if src is None or src in skip or (source is not None and src != source) or cid in out:
                continue
            out.append(cid)
            if len(out) >= k:
                return out
        return out
