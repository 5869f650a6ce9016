"""Per-case metrics as small pure functions (no I/O, no randomness: the same inputs give the same numbers).

A function returns ``None`` when the metric does not apply to the case (e.g. no gold answers); aggregates
average only over the cases where it applies (see ``evals.aggregate``).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# -- answers (SQuAD) --------------------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str | None) -> str:
    """SQuAD normalisation: lower case, drop punctuation and the articles a/an/the, collapse whitespace."""
    if not text:
        return ""
    s = text.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _golds(golds: Iterable[str]) -> list[str]:
    return [g for g in golds if g and g.strip()]


def exact_match(prediction: str | None, golds: Sequence[str]) -> float | None:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0 (max over ``golds``).

    ``None`` prediction (no short answer, e.g. an abstention) counts as the empty string. Blank gold answers
    are ignored; with no gold answer left the metric does not apply (``None``).
    """
    gold = _golds(golds)
    if not gold:
        return None
    pred = normalize_answer(prediction)
    return max(float(pred == normalize_answer(g)) for g in gold)


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        # SQuAD: if either side is empty, F1 is 1 when both are empty, else 0
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str | None, golds: Sequence[str]) -> float | None:
    """SQuAD token F1 between the normalised prediction and each gold answer, max over ``golds``.

    Same conventions as :func:`exact_match` for ``None`` predictions and blank or missing gold answers.
    """
    gold = _golds(golds)
    if not gold:
        return None
    pred = normalize_answer(prediction).split()
    return max(_f1(pred, normalize_answer(g).split()) for g in gold)


def answer_contains(answer: str | None, golds: Sequence[str]) -> float | None:
    """1.0 when some normalised gold answer appears, on token boundaries, in the normalised full answer.

    A gold answer that normalises to nothing (e.g. "The") never matches. ``None`` when no gold answer applies.
    """
    gold = _golds(golds)
    if not gold:
        return None
    text = f" {normalize_answer(answer)} "
    return max(float(bool(n) and f" {n} " in text) for n in (normalize_answer(g) for g in gold))


# -- evidence spans ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """A piece of a source document: a retrieved chunk, a citation, or a located gold passage.

    ``source`` is the path relative to the docs folder; ``start``/``end`` are offsets into the extracted text
    (None when unknown).
    """

    source: str
    text: str
    start: int | None = None
    end: int | None = None


def _squash(text: str) -> str:
    return " ".join(text.split())


def overlap(a: Span, b: Span) -> int:
    """Characters two spans of the same source share (0 for different sources or unknown offsets)."""
    if a.source != b.source or None in (a.start, a.end, b.start, b.end):
        return 0
    return max(0, min(a.end, b.end) - max(a.start, b.start))  # type: ignore[type-var, operator]


def passage_matches(passage: str, located: Sequence[Span], item: Span) -> bool:
    """Does ``item`` (a chunk or a citation) hold the gold ``passage``?

    Yes when the passage occurs inside the item's text (whitespace-insensitive), or when the item overlaps one
    of the passage's located occurrences (``located``: spans in gold documents) by at least half of the shorter
    of the two, so a passage cut by a chunk boundary still counts for the chunk holding most of it, and a chunk
    lying inside a long passage counts too.
    """
    p = passage.strip()
    if not p:
        return False
    if p in item.text or _squash(p) in _squash(item.text):
        return True
    for span in located:
        shared = overlap(span, item)
        if shared and item.start is not None and item.end is not None:
            shorter = min(len(p), item.end - item.start)
            if shorter > 0 and shared * 2 >= shorter:
                return True
    return False


def source_matches(item: Span, gold_sources: Iterable[str]) -> set[str]:
    """The gold sources ``item`` belongs to (a set of at most one element)."""
    return {item.source} & set(gold_sources)


def passages_matched(item: Span, passages: Sequence[str], located: Sequence[Sequence[Span]]) -> set[str]:
    """Indices (as strings) of the gold passages ``item`` holds; ``located[i]`` are passage i's occurrences."""
    return {str(i) for i, p in enumerate(passages) if passage_matches(p, located[i] if i < len(located) else (), item)}


# -- rankings ---------------------------------------------------------------------------------------------------
# A ranking is given as, for each retrieved position in order (rank 1 first), the set of gold ids (sources or
# passages) that position matches. Ties in score are broken by the retriever's order (``Hit.rank``), so the
# metrics are deterministic. A gold id found again lower down earns nothing more.


def hit_at_k(matches: Sequence[set[str]], k: int) -> float:
    """1.0 when any of the first ``k`` positions matches a gold id."""
    return float(any(matches[:k]))


def recall_at_k(matches: Sequence[set[str]], n_gold: int, k: int) -> float | None:
    """Share of the ``n_gold`` gold ids matched within the first ``k`` positions (None when n_gold is 0)."""
    if n_gold <= 0:
        return None
    found: set[str] = set().union(*matches[:k]) if matches[:k] else set()
    return min(1.0, len(found) / n_gold)


def reciprocal_rank(matches: Sequence[set[str]], depth: int = 10) -> float:
    """1 / position of the first match within ``depth`` (0.0 when none)."""
    for i, m in enumerate(matches[:depth], start=1):
        if m:
            return 1.0 / i
    return 0.0


def ndcg(matches: Sequence[set[str]], n_gold: int, depth: int = 10) -> float | None:
    """Binary-relevance nDCG@depth.

    Gain at position i is the number of gold ids first matched there, discounted by 1/log2(i+1); the ideal
    places one gold id per position for min(n_gold, depth) positions. A position matching several new gold ids
    at once (a chunk holding two gold passages) can exceed the ideal, so the result is capped at 1.0.
    """
    if n_gold <= 0:
        return None
    seen: set[str] = set()
    dcg = 0.0
    for i, m in enumerate(matches[:depth], start=1):
        new = m - seen
        seen |= m
        dcg += len(new) / math.log2(i + 1)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(n_gold, depth) + 1))
    return min(1.0, dcg / ideal)


# -- citations ----------------------------------------------------------------------------------------------------
def citation_precision(cites_gold: Sequence[bool]) -> float | None:
    """Share of an answer's citations that point into gold evidence (None when it has no citations)."""
    if not cites_gold:
        return None
    return sum(cites_gold) / len(cites_gold)


def citation_recall(cites_gold: Sequence[bool]) -> float:
    """1.0 when at least one of an answer's citations points into gold evidence."""
    return float(any(cites_gold))


# -- summaries ----------------------------------------------------------------------------------------------------
def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
