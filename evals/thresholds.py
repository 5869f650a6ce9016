"""``--fail-under METRIC=VALUE``: CI gates on suite figures.

For metrics where higher is better the run fails when the figure is below VALUE; for those where lower is
better (false_abstention_rate, latency_*) VALUE is a ceiling and the run fails when the figure is above it.
A gate on a metric the suite could not measure (no case it applies to) fails too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from evals.aggregate import ALL_DEFS
from rag.errors import ConfigError


@dataclass(frozen=True)
class Threshold:
    metric: str
    value: float


@dataclass(frozen=True)
class Miss:
    metric: str
    value: float | None
    threshold: float
    higher_is_better: bool

    def message(self) -> str:
        if self.value is None:
            return f"{self.metric}: not measured on this suite (no case it applies to), threshold {self.threshold:g}"
        op = "<" if self.higher_is_better else ">"
        kind = "minimum" if self.higher_is_better else "maximum"
        return f"{self.metric} = {self.value:.4g} {op} {self.threshold:g} ({kind})"


def parse_threshold(spec: str) -> Threshold:
    """``"hit@k=0.8"`` -> Threshold; raises ConfigError naming the known metrics."""
    name, sep, raw = spec.rpartition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(f"bad --fail-under {spec!r}: write METRIC=VALUE, e.g. --fail-under hit@k=0.8")
    if name not in ALL_DEFS:
        raise ConfigError(f"bad --fail-under {spec!r}: unknown metric '{name}'; known: {', '.join(ALL_DEFS)}")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"bad --fail-under {spec!r}: '{raw}' is not a number") from None
    if ALL_DEFS[name].group != "latency" and not 0.0 <= value <= 1.0:
        raise ConfigError(f"bad --fail-under {spec!r}: {name} is a fraction between 0 and 1 (e.g. 0.8, not 80)")
    if value < 0:
        raise ConfigError(f"bad --fail-under {spec!r}: a latency ceiling must be positive milliseconds")
    return Threshold(name, value)


def parse_thresholds(specs: Iterable[str]) -> list[Threshold]:
    return [parse_threshold(s) for s in specs]


def check_thresholds(thresholds: Iterable[Threshold], figures: Mapping[str, float | None]) -> list[Miss]:
    """The thresholds ``figures`` (metrics and latency together) miss, in the order given."""
    misses = []
    for t in thresholds:
        higher = ALL_DEFS[t.metric].higher_is_better
        value = figures.get(t.metric)
        if value is None or (value < t.value if higher else value > t.value):
            misses.append(Miss(t.metric, value, t.value, higher))
    return misses
