"""Sentence-aware chunking sized in the embedder's word pieces. A pure function: Document -> list[Chunk], and
for every chunk ``doc.text[chunk.start:chunk.end] == chunk.text``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from rag.sentences import split_sentences
from rag.types import Chunk, Document

CountFn = Callable[[list[str]], list[int]]


def default_count_tokens(texts: list[str]) -> list[int]:
    """Word pieces per text with the model's own tokenizer ([CLS]/[SEP] not counted)."""
    from rag.embeddings import load_tokenizer

    if not texts:
        return []
    encs = load_tokenizer().encode_batch(texts, add_special_tokens=False)
    return [len(e.ids) for e in encs]


def chunk_id(doc: Document, start: int, end: int) -> str:
    key = f"{doc.source}\x00{doc.content_hash}\x00{start}\x00{end}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def _split_long(text: str, start: int, end: int, tokens: int, max_tokens: int) -> list[tuple[int, int, int]]:
    """Cut an over-long sentence at whitespace into pieces of about max_tokens (estimated proportionally,
    then verified by the caller's packing, which never merges an over-long piece)."""
    n_pieces = -(-tokens // max_tokens)
    approx = max(1, (end - start) // n_pieces)
    pieces: list[tuple[int, int, int]] = []
    a = start
    while a < end:
        b = min(end, a + approx)
        if b < end:
            cut = text.rfind(" ", a + approx // 2, b)
            b = cut if cut > a else b
        s, e = a, b
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            pieces.append((s, e, -1))
        a = b
    return pieces


def _sentences_with_tokens(
    text: str, spans: Sequence[tuple[int, int]], count: CountFn, max_tokens: int
) -> list[tuple[int, int, int]]:
    counts = count([text[a:b] for a, b in spans])
    out: list[tuple[int, int, int]] = []
    for (a, b), n in zip(spans, counts, strict=True):
        if n <= max_tokens:
            out.append((a, b, n))
            continue
        pieces = _split_long(text, a, b, n, max_tokens)
        # verify the estimate; halve again any piece that is still too long
        while True:
            piece_counts = count([text[s:e] for s, e, _ in pieces])
            bad = [i for i, c in enumerate(piece_counts) if c > max_tokens]
            if not bad:
                out.extend((s, e, c) for (s, e, _), c in zip(pieces, piece_counts, strict=True))
                break
            fixed: list[tuple[int, int, int]] = []
            for i, (s, e, _) in enumerate(pieces):
                fixed.extend(_split_long(text, s, e, piece_counts[i], max_tokens) if i in bad else [(s, e, -1)])
            if len(fixed) == len(pieces):  # cannot cut further (one giant token): keep as is, model truncates
                out.extend((s, e, c) for (s, e, _), c in zip(pieces, piece_counts, strict=True))
                break
            pieces = fixed
    return out


def _pack(sents: list[tuple[int, int, int]], max_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """Greedy packing of whole sentences; each new chunk starts with trailing sentences of the previous one
    totalling at most ``overlap`` tokens. Counts are summed per sentence (a slight over-estimate of the
    joined text's count, so the limit holds)."""
    chunks: list[tuple[int, int]] = []
    i = 0
    n = len(sents)
    while i < n:
        total = 0
        j = i
        while j < n and (j == i or total + sents[j][2] <= max_tokens):
            total += sents[j][2]
            j += 1
        chunks.append((sents[i][0], sents[j - 1][1]))
        if j >= n:
            break
        # step back over trailing sentences for the overlap, but always make progress
        back = j
        kept = 0
        while back - 1 > i and kept + sents[back - 1][2] <= overlap:
            back -= 1
            kept += sents[back][2]
        i = back if back > i else j
    return chunks


def chunk_document(
    doc: Document, max_tokens: int = 200, overlap_tokens: int = 40, count_tokens: CountFn | None = None
) -> list[Chunk]:
    count = count_tokens or default_count_tokens
    regions = [(p.start, p.end, p.page) for p in doc.pages] if doc.pages else [(0, len(doc.text), None)]
    spans_by_region = [split_sentences(doc.text, a, b) for a, b, _ in regions]
    flat = [s for spans in spans_by_region for s in spans]
    if not flat:
        return []
    # one tokenizer batch for the whole document
    all_counts = count([doc.text[a:b] for a, b in flat])
    counts = iter(all_counts)
    chunks: list[Chunk] = []
    for (_, _, page), spans in zip(regions, spans_by_region, strict=True):
        if not spans:
            continue
        region_counts = [next(counts) for _ in spans]
        sents: list[tuple[int, int, int]] = []
        for (a, b), c in zip(spans, region_counts, strict=True):
            if c <= max_tokens:
                sents.append((a, b, c))
            else:
                sents.extend(_sentences_with_tokens(doc.text, [(a, b)], count, max_tokens))
        for start, end in _pack(sents, max_tokens, overlap_tokens):
            chunks.append(
                Chunk(
                    id=chunk_id(doc, start, end),
                    source=doc.source,
                    text=doc.text[start:end],
                    start=start,
                    end=end,
                    page=page,
                    index=len(chunks),
                    doc_hash=doc.content_hash,
                )
            )
    return chunks
