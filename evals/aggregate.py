"""Metric names, their meaning and direction, and how per-case values become suite figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evals.metrics import mean, percentile


@dataclass(frozen=True)
class MetricDef:
    name: str
    group: str  # answer | retrieval | passages | citations | abstention | latency
    higher_is_better: bool
    definition: str


_ANSWERABLE = "averaged over answerable cases"
METRIC_DEFS: tuple[MetricDef, ...] = (
    MetricDef("exact_match", "answer", True,
              f"SQuAD-normalised short answer equals a gold answer (max over answers); {_ANSWERABLE} with gold "
              "answers; no short answer (abstained) scores 0"),
    MetricDef("f1", "answer", True,
              f"SQuAD token F1 of the short answer, max over gold answers; {_ANSWERABLE} with gold answers"),
    MetricDef("answer_contains", "answer", True,
              f"a normalised gold answer occurs in the normalised full answer (markers stripped); {_ANSWERABLE} "
              "with gold answers; an abstention scores 0"),
    MetricDef("hit@k", "retrieval", True,
              f"a chunk of a gold source is among the k passages the answerer got; {_ANSWERABLE} with sources"),
    MetricDef("recall@k", "retrieval", True,
              f"share of the gold sources with a chunk among the k passages; {_ANSWERABLE} with sources"),
    MetricDef("mrr@10", "retrieval", True,
              f"1 / rank of the first chunk of a gold source in the top 10 (0 if none); {_ANSWERABLE} with sources"),
    MetricDef("ndcg@10", "retrieval", True,
              "binary nDCG over the top 10 chunks, a gold source earning gain once (at its first chunk); "
              f"{_ANSWERABLE} with sources"),
    MetricDef("passage_hit@k", "passages", True,
              f"a gold passage is held by one of the k passages (contained, or overlapped by at least half); "
              f"{_ANSWERABLE} with passages"),
    MetricDef("passage_recall@k", "passages", True,
              f"share of the gold passages held by the k passages; {_ANSWERABLE} with passages"),
    MetricDef("passage_mrr@10", "passages", True,
              f"1 / rank of the first chunk holding a gold passage in the top 10; {_ANSWERABLE} with passages"),
    MetricDef("passage_ndcg@10", "passages", True,
              f"binary nDCG over the top 10 chunks against the gold passages (capped at 1); {_ANSWERABLE} with "
              "passages"),
    MetricDef("citation_precision", "citations", True,
              "share of an answer's citations that point into a gold source or hold a gold passage; averaged "
              "over answered (not abstained) answerable cases with gold evidence and at least one citation"),
    MetricDef("citation_recall", "citations", True,
              "share of answered answerable cases with gold evidence where at least one citation points into "
              "gold evidence"),
    MetricDef("support_rate", "citations", True,
              "share of answer sentences (markers stripped) supported by the text of the citations they carry, "
              "pooled over all answered cases; a sentence citing nothing is unsupported (method: support_method)"),
    MetricDef("fallback_rate", "citations", False,
              "share of answered cases where a generative backend cited nothing checkable, so the extractive "
              "evidence was shown instead (its support then measures the fallback, not the model); n/a for the "
              "extractive answerer"),
    MetricDef("abstention_rate", "abstention", True, "share of unanswerable cases where the system abstained"),
    MetricDef("false_abstention_rate", "abstention", False, "share of answerable cases where the system abstained"),
)

STAGES = ("retrieve", "answer", "total")
LATENCY_DEFS: tuple[MetricDef, ...] = tuple(
    MetricDef(f"latency_{stage}_{p}_ms", "latency", False,
              f"{p} of the {'end-to-end' if stage == 'total' else stage} time per case in milliseconds "
              "(not deterministic, so kept out of `metrics`)")
    for stage in STAGES
    for p in ("p50", "p95")
)
ALL_DEFS: dict[str, MetricDef] = {d.name: d for d in METRIC_DEFS + LATENCY_DEFS}
METRIC_NAMES: tuple[str, ...] = tuple(d.name for d in METRIC_DEFS)
LATENCY_NAMES: tuple[str, ...] = tuple(d.name for d in LATENCY_DEFS)


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def aggregate_metrics(
    case_metrics: Sequence[Mapping[str, float | None]],
    support_counts: Sequence[tuple[int, int]] = (),
) -> tuple[dict[str, float | None], dict[str, int]]:
    """Suite metrics and, per metric, how many cases it was computed over.

    Every metric is the mean of the per-case values that apply (not None), except ``support_rate``, which pools
    ``support_counts`` ((supported sentences, sentences) per case) over all cases (its count is the cases with at
    least one sentence). ``None`` when no case applies.
    """
    metrics: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    for name in METRIC_NAMES:
        if name == "support_rate":
            supported = sum(s for s, _ in support_counts)
            total = sum(t for _, t in support_counts)
            metrics[name] = _round(supported / total) if total else None
            counts[name] = sum(1 for _, t in support_counts if t)
            continue
        values = [m.get(name) for m in case_metrics]
        metrics[name] = _round(mean(values))
        counts[name] = sum(v is not None for v in values)
    return metrics, counts


def aggregate_latency(timings: Sequence[Mapping[str, float]]) -> dict[str, float | None]:
    """p50 and p95 per stage (milliseconds) over the cases that report that stage."""
    out: dict[str, float | None] = {}
    for stage in STAGES:
        values = [float(t[stage]) for t in timings if t.get(stage) is not None]
        for p, q in (("p50", 50), ("p95", 95)):
            v = percentile(values, q)
            out[f"latency_{stage}_{p}_ms"] = None if v is None else round(v, 2)
    return out


def is_regression(name: str, old: float | None, new: float | None, tolerance: float = 0.0) -> bool:
    """``new`` is worse than ``old`` by more than ``tolerance`` in the metric's direction.

    For latency the tolerance is relative (0.1 = 10 % slower is still fine), otherwise absolute.
    """
    if old is None or new is None:
        return False
    d = ALL_DEFS.get(name)
    higher = d.higher_is_better if d else True
    if d and d.group == "latency":
        return new > old * (1 + tolerance) and new - old > 1e-9
    return (old - new > tolerance + 1e-12) if higher else (new - old > tolerance + 1e-12)


def fmt(value: float | None, name: str = "") -> str:
    """A figure as the reports print it: 3 decimals, milliseconds with a unit, n/a for None."""
    if value is None:
        return "n/a"
    if name.endswith("_ms"):
        return f"{value:,.1f} ms"
    return f"{value:.3f}"
