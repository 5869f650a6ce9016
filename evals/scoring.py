"""Score one case: from what the system returned (as plain spans and strings) to the per-case metric values.

Pure: the runner turns an ``Answer`` into the arguments; tests call it with hand-made spans.
"""

from __future__ import annotations

from collections.abc import Sequence

from evals.metrics import (
    Span,
    answer_contains,
    citation_precision,
    citation_recall,
    exact_match,
    hit_at_k,
    ndcg,
    passages_matched,
    recall_at_k,
    reciprocal_rank,
    source_matches,
    token_f1,
)
from evals.suite import Case

DEPTH = 10  # rank depth of MRR and nDCG


def cites_gold(case: Case, citations: Sequence[Span], located: Sequence[Sequence[Span]] = ()) -> list[bool]:
    """For each citation: does it point into a gold source, or hold a gold passage?"""
    passages = case.passages or ()
    return [
        bool(source_matches(c, case.sources)) or bool(passages and passages_matched(c, passages, located))
        for c in citations
    ]


def score_case(
    case: Case,
    *,
    answer: str,
    short_answer: str | None,
    abstained: bool,
    top_k: Sequence[Span],
    ranking: Sequence[Span] | None = None,
    citations: Sequence[Span] = (),
    located: Sequence[Sequence[Span]] = (),
    support: tuple[int, int] = (0, 0),
    fallback: bool | None = None,
) -> dict[str, float | None]:
    """Per-case metric values, keyed by the suite metric names (None where a metric does not apply).

    ``top_k``: the passages the answerer got, best first; ``ranking``: the retrieval ranking to depth 10 for
    MRR/nDCG (defaults to ``top_k``); ``located[i]``: where gold passage i occurs in the gold documents;
    ``support``: (supported sentences, sentences) of the answer; ``fallback``: a generative answer whose markers
    were unusable, so the extractive evidence was shown (None for the extractive answerer).
    """
    ranking = top_k if ranking is None else ranking
    k = len(top_k)
    m: dict[str, float | None] = {}

    golds = case.gold_answers
    answer_text = "" if abstained else answer
    m["exact_match"] = exact_match(None if abstained else short_answer, golds)
    m["f1"] = token_f1(None if abstained else short_answer, golds)
    m["answer_contains"] = answer_contains(answer_text, golds)

    sources = case.sources if case.answerable else ()
    src_topk = [source_matches(s, sources) for s in top_k]
    src_rank = [source_matches(s, sources) for s in ranking[:DEPTH]]
    has_sources = bool(sources)
    m["hit@k"] = hit_at_k(src_topk, k) if has_sources else None
    m["recall@k"] = recall_at_k(src_topk, len(set(sources)), k) if has_sources else None
    m["mrr@10"] = reciprocal_rank(src_rank, DEPTH) if has_sources else None
    m["ndcg@10"] = ndcg(src_rank, len(set(sources)), DEPTH) if has_sources else None

    passages = (case.passages or ()) if case.answerable else ()
    if passages:
        p_topk = [passages_matched(s, passages, located) for s in top_k]
        p_rank = [passages_matched(s, passages, located) for s in ranking[:DEPTH]]
        m["passage_hit@k"] = hit_at_k(p_topk, k)
        m["passage_recall@k"] = recall_at_k(p_topk, len(passages), k)
        m["passage_mrr@10"] = reciprocal_rank(p_rank, DEPTH)
        m["passage_ndcg@10"] = ndcg(p_rank, len(passages), DEPTH)
    else:
        for name in ("passage_hit@k", "passage_recall@k", "passage_mrr@10", "passage_ndcg@10"):
            m[name] = None

    has_evidence = case.answerable and (bool(case.sources) or bool(case.passages))
    if has_evidence and not abstained:
        gold = cites_gold(case, citations, located)
        m["citation_precision"] = citation_precision(gold)
        m["citation_recall"] = citation_recall(gold)
    else:
        m["citation_precision"] = None
        m["citation_recall"] = None

    supported, total = support
    m["support_rate"] = supported / total if total and not abstained else None
    m["fallback_rate"] = None if fallback is None or abstained else float(fallback)

    m["abstention_rate"] = None if case.answerable else float(abstained)
    m["false_abstention_rate"] = float(abstained) if case.answerable else None
    return m
