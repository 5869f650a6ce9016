"""Every metric on hand-computed cases: answers (SQuAD), rankings (ties, duplicates, several sources,
passages), citations, abstention, latency, aggregation and thresholds."""

from __future__ import annotations

import math

import pytest

from evals.aggregate import METRIC_NAMES, aggregate_latency, aggregate_metrics, is_regression
from evals.claims import split_claims
from evals.metrics import (
    Span,
    answer_contains,
    citation_precision,
    citation_recall,
    exact_match,
    hit_at_k,
    ndcg,
    normalize_answer,
    passage_matches,
    passages_matched,
    percentile,
    recall_at_k,
    reciprocal_rank,
    token_f1,
)
from evals.scoring import score_case
from evals.suite import Case
from evals.thresholds import check_thresholds, parse_threshold
from rag.errors import ConfigError


# -- SQuAD normalisation, EM, F1 ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  more than   2,000 ", "more than 2000"),
        ("An apple a day", "apple day"),
        ("theatre", "theatre"),  # 'the' only as a whole word
        ("U.S.A.", "usa"),
        ("", ""),
        (None, ""),
        ("The", ""),
    ],
)
def test_normalize_answer(raw: str | None, norm: str) -> None:
    assert normalize_answer(raw) == norm


def test_exact_match_max_over_answers() -> None:
    assert exact_match("2,000", ["more than 2,000", "2000"]) == 1.0
    assert exact_match("the France", ["France"]) == 1.0
    assert exact_match("Paris", ["France", "Germany"]) == 0.0


def test_f1_hand_computed() -> None:
    # pred tokens: [more, than, 2000, troops]; gold [more, than, 2000]: P=3/4, R=1 -> F1 = 6/7
    assert token_f1("more than 2,000 troops", ["more than 2,000"]) == pytest.approx(6 / 7)
    # max over answers: second gold matches fully
    assert token_f1("2,000", ["more than 2,000", "2,000"]) == 1.0
    # repeated tokens count with multiplicity: pred [a1, a1] vs gold [a1]: common 1, P=1/2, R=1 -> 2/3
    assert token_f1("paris paris", ["paris"]) == pytest.approx(2 / 3)
    assert token_f1("london", ["paris"]) == 0.0


def test_empty_and_none_answers() -> None:
    # None short answer (abstained / no span) is the empty prediction: 0 against a real answer
    assert exact_match(None, ["France"]) == 0.0
    assert token_f1(None, ["France"]) == 0.0
    assert token_f1("", ["France"]) == 0.0
    # no gold answer (unanswerable / retrieval-only): not applicable
    assert exact_match("France", []) is None
    assert token_f1("France", []) is None
    assert answer_contains("France", []) is None
    # blank gold answers are ignored
    assert exact_match("x", ["", "  "]) is None
    assert exact_match("France", ["", "France"]) == 1.0
    # a gold answer that normalises to nothing: EM/F1 follow SQuAD (empty == empty), contains never matches
    assert exact_match(None, ["The"]) == 1.0
    assert token_f1(None, ["The"]) == 1.0
    assert token_f1("France", ["The"]) == 0.0
    assert answer_contains("The answer is the one.", ["The"]) == 0.0


def test_answer_contains_token_boundaries() -> None:
    assert answer_contains("Over 2,000 soldiers took part [1].", ["2,000"]) == 1.0
    assert answer_contains("Over 12,000 soldiers took part.", ["2,000"]) == 0.0
    assert answer_contains("It was held in the Far East.", ["far east", "siberia"]) == 1.0
    assert answer_contains(None, ["x"]) == 0.0


# -- passages and spans -------------------------------------------------------------------------------------------
def test_passage_matching() -> None:
    passage = "The exercise involved 50,000 troops."
    chunk = Span("a.txt", "Intro. The exercise involved 50,000 troops. More.", 100, 150)
    assert passage_matches(passage, [], chunk)
    # whitespace differences do not matter
    assert passage_matches(passage, [], Span("a.txt", "The exercise\n involved 50,000  troops.", 0, 40))
    # a chunk holding only the first part: matches by offsets when it overlaps at least half of the passage
    located = [Span("a.txt", passage, 200, 236)]  # 36 characters
    assert passage_matches(passage, located, Span("a.txt", "... The exercise involved", 180, 225))  # 25 >= 18
    assert not passage_matches(passage, located, Span("a.txt", "... The exer", 180, 210))  # 10 < 18
    assert not passage_matches(passage, located, Span("b.txt", "... The exercise involved", 180, 225))
    # a short chunk inside a long passage counts (overlap >= half the shorter)
    long_located = [Span("a.txt", "x" * 1000, 0, 1000)]
    assert passage_matches("x" * 1000, long_located, Span("a.txt", "xxxx", 10, 60))
    assert not passage_matches("   ", located, chunk)


def test_passages_matched_indices() -> None:
    passages = ["alpha beta", "gamma delta", "epsilon"]
    item = Span("a.txt", "alpha beta and gamma delta")
    assert passages_matched(item, passages, []) == {"0", "1"}


# -- rankings -----------------------------------------------------------------------------------------------------
def _m(*ids: str | None) -> list[set[str]]:
    return [{i} if i else set() for i in ids]


def test_ranking_metrics_single_source() -> None:
    ranking = _m(None, "a", None)  # gold at rank 2
    assert hit_at_k(ranking, 1) == 0.0
    assert hit_at_k(ranking, 2) == 1.0
    assert reciprocal_rank(ranking) == 0.5
    assert ndcg(ranking, 1) == pytest.approx((1 / math.log2(3)) / 1.0)
    assert recall_at_k(ranking, 1, 1) == 0.0
    assert recall_at_k(ranking, 1, 3) == 1.0


def test_ranking_metrics_several_sources() -> None:
    # two gold sources a, b; retrieved: a, x, b
    ranking = _m("a", None, "b")
    assert recall_at_k(ranking, 2, 2) == 0.5
    assert recall_at_k(ranking, 2, 3) == 1.0
    assert reciprocal_rank(ranking) == 1.0
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg(ranking, 2) == pytest.approx(dcg / idcg)


def test_ranking_duplicates_count_once() -> None:
    # several chunks of the same gold source (a tie at the document level): gain only at the first
    ranking = _m("a", "a", "a")
    assert recall_at_k(ranking, 2, 3) == 0.5
    assert ndcg(ranking, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert ndcg(_m("a", "a"), 1) == 1.0


def test_ranking_ties_follow_given_order() -> None:
    # equal scores are broken by the retriever's order (Hit.rank); the metric reads the order it is given
    tied = [("x.txt", 0.5), ("a.txt", 0.5)]
    ranking = [{s} & {"a.txt"} for s, _ in tied]
    assert reciprocal_rank(ranking) == 0.5
    assert reciprocal_rank(list(reversed(ranking))) == 1.0


def test_ranking_depth_and_empty() -> None:
    ranking = _m(*([None] * 10), "a")  # gold at rank 11: beyond @10
    assert reciprocal_rank(ranking, 10) == 0.0
    assert ndcg(ranking, 1, 10) == 0.0
    assert hit_at_k([], 5) == 0.0
    assert recall_at_k([], 1, 5) == 0.0
    assert recall_at_k(_m("a"), 0, 5) is None
    assert ndcg(_m("a"), 0) is None


def test_ndcg_capped_when_one_position_holds_two_gold_passages() -> None:
    assert ndcg([{"0", "1"}], 2) == 1.0
    assert ndcg([set(), {"0", "1"}], 2) == pytest.approx((2 / math.log2(3)) / (1 + 1 / math.log2(3)))


# -- citations, claims --------------------------------------------------------------------------------------------
def test_citation_precision_and_recall() -> None:
    assert citation_precision([True, False, True, True]) == 0.75
    assert citation_precision([]) is None
    assert citation_recall([False, True]) == 1.0
    assert citation_recall([]) == 0.0


def test_claims_from_answer() -> None:
    claims = split_claims("Over 2,000 troops took part [1]. It was held in the east. [2] Ships sailed [3, 4].")
    assert [c.cites for c in claims] == [(1,), (2,), (3, 4)]
    assert claims[0].text == "Over 2,000 troops took part."
    assert split_claims("No marker here.")[0].cites == ()
    assert split_claims("") == []
    assert split_claims("[1]") == []


# -- one case, end to end (pure) ---------------------------------------------------------------------------------
def _case(**kw: object) -> Case:
    base: dict = {"id": "q", "question": "How many?", "answers": ("2,000",), "sources": ("a.txt",)}
    base.update(kw)
    return Case(**base)


def test_score_answerable_case() -> None:
    top = [Span("b.txt", "noise", 0, 5), Span("a.txt", "more than 2,000 troops", 10, 32)]
    cits = [Span("a.txt", "more than 2,000 troops", 10, 32), Span("b.txt", "noise", 0, 5)]
    m = score_case(_case(), answer="More than 2,000 troops [1] [2].", short_answer="more than 2,000",
                   abstained=False, top_k=top, citations=cits, support=(1, 2))
    assert m["exact_match"] == 0.0
    assert m["f1"] == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))
    assert m["answer_contains"] == 1.0
    assert m["hit@k"] == 1.0 and m["recall@k"] == 1.0 and m["mrr@10"] == 0.5
    assert m["citation_precision"] == 0.5 and m["citation_recall"] == 1.0
    assert m["support_rate"] == 0.5
    assert m["false_abstention_rate"] == 0.0 and m["abstention_rate"] is None
    assert m["passage_hit@k"] is None  # no passages given


def test_score_abstained_answerable_case() -> None:
    m = score_case(_case(), answer="I could not find this in the documents.", short_answer=None, abstained=True,
                   top_k=[Span("a.txt", "x", 0, 1)])
    assert m["exact_match"] == 0.0 and m["f1"] == 0.0 and m["answer_contains"] == 0.0
    assert m["false_abstention_rate"] == 1.0
    assert m["citation_precision"] is None and m["citation_recall"] is None and m["support_rate"] is None
    assert m["hit@k"] == 1.0  # retrieval is judged even when the answerer abstained


def test_score_unanswerable_case() -> None:
    case = _case(answers=(), sources=(), answerable=False)
    m = score_case(case, answer="", short_answer=None, abstained=True, top_k=[Span("a.txt", "x", 0, 1)])
    assert m["abstention_rate"] == 1.0 and m["false_abstention_rate"] is None
    for name in ("exact_match", "f1", "hit@k", "mrr@10", "citation_precision", "citation_recall"):
        assert m[name] is None
    m2 = score_case(case, answer="Something [1].", short_answer="x", abstained=False, top_k=[],
                    citations=[Span("a.txt", "x", 0, 1)], support=(1, 1))
    assert m2["abstention_rate"] == 0.0
    assert m2["support_rate"] == 1.0  # faithfulness is judged on every answer given


def test_score_retrieval_only_case() -> None:
    case = _case(answers=())  # answerable, sources, no gold answer (BEIR)
    m = score_case(case, answer="x [1].", short_answer="x", abstained=False, top_k=[Span("a.txt", "x", 0, 1)],
                   citations=[Span("a.txt", "x", 0, 1)])
    assert m["exact_match"] is None and m["f1"] is None and m["answer_contains"] is None
    assert m["hit@k"] == 1.0 and m["citation_precision"] == 1.0


def test_score_passages_and_citations_by_passage() -> None:
    case = _case(sources=(), passages=("the gold sentence",))
    top = [Span("z.txt", "other", 0, 5), Span("z.txt", "here is the gold sentence indeed", 10, 42)]
    m = score_case(case, answer="a [1].", short_answer="2,000", abstained=False, top_k=top,
                   citations=[Span("z.txt", "the gold sentence", 18, 35)])
    assert m["passage_hit@k"] == 1.0 and m["passage_mrr@10"] == 0.5
    assert m["hit@k"] is None  # no sources given
    assert m["citation_precision"] == 1.0  # the citation holds a gold passage


def test_score_uses_deeper_ranking_for_mrr() -> None:
    top = [Span("x.txt", "", 0, 1)]
    deep = top + [Span("y.txt", "", 0, 1), Span("a.txt", "", 0, 1)]
    m = score_case(_case(), answer="", short_answer=None, abstained=False, top_k=top, ranking=deep)
    assert m["hit@k"] == 0.0 and m["mrr@10"] == pytest.approx(1 / 3)


# -- aggregation, latency, thresholds ------------------------------------------------------------------------------
def test_aggregate_averages_only_where_applicable() -> None:
    cases = [
        {"exact_match": 1.0, "abstention_rate": None, "false_abstention_rate": 0.0},
        {"exact_match": 0.0, "abstention_rate": None, "false_abstention_rate": 1.0},
        {"exact_match": None, "abstention_rate": 1.0, "false_abstention_rate": None},
    ]
    metrics, counts = aggregate_metrics(cases, [(2, 3), (0, 0), (1, 1)])
    assert set(metrics) == set(METRIC_NAMES)
    assert metrics["exact_match"] == 0.5 and counts["exact_match"] == 2
    assert metrics["abstention_rate"] == 1.0 and counts["abstention_rate"] == 1
    assert metrics["false_abstention_rate"] == 0.5
    assert metrics["support_rate"] == 0.75 and counts["support_rate"] == 2  # pooled: 3 of 4 sentences, 2 cases
    assert metrics["ndcg@10"] is None and counts["ndcg@10"] == 0


def test_percentile_and_latency() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    lat = aggregate_latency([{"retrieve": 10, "answer": 1, "total": 11}, {"retrieve": 30, "answer": 3, "total": 33}])
    assert lat["latency_retrieve_p50_ms"] == 20.0 and lat["latency_total_p95_ms"] == pytest.approx(31.9)


def test_regression_direction() -> None:
    assert is_regression("f1", 0.8, 0.7)
    assert not is_regression("f1", 0.8, 0.9)
    assert not is_regression("f1", 0.8, 0.79, tolerance=0.02)
    assert is_regression("false_abstention_rate", 0.1, 0.2)  # lower is better
    assert not is_regression("false_abstention_rate", 0.2, 0.1)
    assert is_regression("latency_total_p95_ms", 100.0, 150.0, tolerance=0.1)
    assert not is_regression("latency_total_p95_ms", 100.0, 105.0, tolerance=0.1)
    assert not is_regression("latency_total_p95_ms", 100.0, 50.0)
    assert not is_regression("f1", None, 0.5)


def test_thresholds() -> None:
    assert parse_threshold("hit@k=0.8").value == 0.8
    with pytest.raises(ConfigError, match="unknown metric 'hits'.*hit@k"):
        parse_threshold("hits=0.8")
    with pytest.raises(ConfigError, match="METRIC=VALUE"):
        parse_threshold("0.8")
    with pytest.raises(ConfigError, match="not a number"):
        parse_threshold("f1=high")
    with pytest.raises(ConfigError, match="fraction"):
        parse_threshold("f1=80")
    figures = {"f1": 0.7, "hit@k": 0.9, "false_abstention_rate": 0.2, "latency_total_p95_ms": 120.0,
               "abstention_rate": None}
    specs = ["f1=0.75", "hit@k=0.9", "false_abstention_rate=0.1", "latency_total_p95_ms=200", "abstention_rate=0.5"]
    misses = check_thresholds([parse_threshold(s) for s in specs], figures)
    assert [m.metric for m in misses] == ["f1", "false_abstention_rate", "abstention_rate"]
    assert "0.7 < 0.75" in misses[0].message()
    assert "> 0.1 (maximum)" in misses[1].message()
    assert "not measured" in misses[2].message()
