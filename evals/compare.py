"""``citeqa eval compare A B``: two report.json side by side, with deltas and regressions marked.

A regression is B worse than A in the metric's direction (latency and false_abstention_rate: lower is better)
by more than the tolerance (absolute for metrics, relative for latency).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.aggregate import ALL_DEFS, LATENCY_NAMES, METRIC_NAMES, is_regression
from evals.report import figures, fmt
from rag.errors import NotFoundError

LATENCY_TOLERANCE = 0.10


@dataclass(frozen=True)
class Row:
    metric: str
    a: float | None
    b: float | None
    regression: bool
    improvement: bool

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


def load_report(path: str | Path) -> dict[str, Any]:
    """A report.json, given as the file or the eval output folder holding it."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    if not p.is_file():
        raise NotFoundError(f"{p} does not exist: give a report.json or the folder `citeqa eval` wrote")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotFoundError(f"{p} is not a readable report.json ({exc})") from None
    if not isinstance(data, dict) or "metrics" not in data:
        raise NotFoundError(f"{p} is not a citeqa eval report (no \"metrics\"): give a report.json from `citeqa eval`")
    return data


def compare(a: Mapping[str, Any], b: Mapping[str, Any], tolerance: float = 0.0,
            latency_tolerance: float = LATENCY_TOLERANCE) -> list[Row]:
    fa, fb = figures(a), figures(b)
    rows = []
    names = list(METRIC_NAMES) + list(LATENCY_NAMES)
    names += sorted(n for n in set(fa) | set(fb) if n not in ALL_DEFS)  # metrics from newer formats
    for name in names:
        va, vb = fa.get(name), fb.get(name)
        if va is None and vb is None and name not in fa and name not in fb:
            continue
        tol = latency_tolerance if name in LATENCY_NAMES else tolerance
        worse = is_regression(name, va, vb, tol)
        better = is_regression(name, vb, va, tol)
        rows.append(Row(name, va, vb, worse, better))
    return rows


def context_notes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """What differs between the two runs besides the figures (so deltas are read right)."""
    notes = []
    if a.get("suite", {}).get("hash") != b.get("suite", {}).get("hash"):
        notes.append("the suites differ (different suite hash): deltas compare different questions")
    if a.get("docs", {}).get("hash") != b.get("docs", {}).get("hash"):
        notes.append("the documents differ (different docs hash)")
    notes += machine_notes(a, b)
    sa, sb = a.get("settings", {}), b.get("settings", {})
    changed = [k for k in sorted(set(sa) | set(sb)) if k not in ("data_dir", "collection") and sa.get(k) != sb.get(k)]
    if changed:
        notes.append("settings changed: " + ", ".join(f"{k} {sa.get(k)!r} -> {sb.get(k)!r}" for k in changed))
    return notes


# what embeddings, rankings and figures depend on besides the code, the settings and the data
DEPENDS_ON = ("onnxruntime", "numpy", "tokenizers", "torch", "sentence-transformers", "chromadb", "bm25s",
              "blingfire", "llama-cpp-python", "citeqa")


def machine_notes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Warnings when two runs came from different CPUs (kernel features) or library versions: int8 kernels round
    differently with and without VNNI/AMX, so the same suite can give slightly different figures."""
    ma, mb = a.get("machine"), b.get("machine")
    notes = []
    if not ma or not mb:
        notes.append("warning: one report does not record its machine (an older report): figures may differ "
                     "by CPU kind without this being visible")
    else:
        fa, fb = set(ma.get("features") or ()), set(mb.get("features") or ())
        if fa != fb or ma.get("machine") != mb.get("machine"):
            diff = ", ".join([f"-{f}" for f in sorted(fa - fb)] + [f"+{f}" for f in sorted(fb - fa)])
            notes.append(
                f"warning: the runs came from different CPUs ({ma.get('cpu')!s} -> {mb.get('cpu')!s}; kernel "
                f"features {diff or 'same'}): int8 embeddings round differently, so rankings and figures can "
                "differ slightly for that reason alone"
            )
        elif ma.get("cpu") != mb.get("cpu"):
            notes.append(f"the runs came from different CPU models ({ma.get('cpu')} -> {mb.get('cpu')}) with the "
                         "same kernel features")
    va, vb = a.get("versions") or {}, b.get("versions") or {}
    changed = [n for n in DEPENDS_ON if n in va and n in vb and va.get(n) != vb.get(n)]
    if changed:
        notes.append("warning: library versions differ: " +
                     ", ".join(f"{n} {va.get(n)} -> {vb.get(n)}" for n in changed))
    return notes


def print_comparison(rows: list[Row], notes: list[str], label_a: str, label_b: str, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="citeqa eval compare", title_justify="left")
    table.add_column("metric")
    table.add_column(f"A {label_a}", justify="right")
    table.add_column(f"B {label_b}", justify="right")
    table.add_column("delta", justify="right")
    table.add_column("")
    for r in rows:
        d = r.delta
        if d is None:
            delta = "n/a"
        elif r.metric.endswith("_ms"):
            delta = f"{d:+,.1f} ms"
        else:
            delta = f"{d:+.3f}"
        mark = "[red]REGRESSION[/]" if r.regression else ("[green]better[/]" if r.improvement else "")
        table.add_row(r.metric, fmt(r.a, r.metric), fmt(r.b, r.metric), delta, mark)
    console.print(table)
    for n in notes:
        console.print(f"note: {n}", highlight=False)
    regs = [r.metric for r in rows if r.regression]
    console.print(f"{len(regs)} regression(s)" + (f": {', '.join(regs)}" if regs else ""), highlight=False)
