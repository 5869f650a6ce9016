"""The files an eval run leaves: report.json, cases.jsonl, report.md (report.html: evals.html_report), and the
summary table printed at the end.

``report.json["metrics"]`` holds only deterministic figures (two runs of the same suite give the same object);
timestamps, durations and latency live beside it.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.aggregate import ALL_DEFS, LATENCY_NAMES, METRIC_DEFS, fmt
from evals.runner import CaseResult, EvalRun
from rag.cpu import fingerprint
from rag.settings import SECRETS

FORMAT = "citeqa-eval/1"
PACKAGES = ("citeqa", "chromadb", "sentence-transformers", "onnxruntime", "torch", "tokenizers", "bm25s",
            "blingfire", "langchain-core", "numpy", "pydantic", "llama-cpp-python")
WORST = 10


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    out["platform"] = platform.platform(terse=True)
    return out


def counts(run: EvalRun) -> dict[str, int]:
    cases = [r.case for r in run.results]
    return {
        "cases": len(cases),
        "answerable": sum(c.answerable for c in cases),
        "unanswerable": sum(not c.answerable for c in cases),
        "with_gold_answers": sum(bool(c.gold_answers) for c in cases),
        "retrieval_only": sum(c.answerable and not c.gold_answers for c in cases),
        "with_sources": sum(c.answerable and bool(c.sources) for c in cases),
        "with_passages": sum(c.answerable and bool(c.passages) for c in cases),
        "abstained": sum(r.abstained for r in run.results),
        "errors": sum(r.error is not None for r in run.results),
        "citations": sum(len(r.citations) for r in run.results),
        "sentences": sum(r.support[1] for r in run.results),
        "skipped_lines": len(run.suite.problems),
    }


def build_report(run: EvalRun) -> dict[str, Any]:
    metrics, metric_cases = run.metrics()
    s = run.settings
    return {
        "format": FORMAT,
        "metrics": metrics,
        "metric_cases": metric_cases,
        "latency": run.latency(),
        "counts": counts(run),
        "suite": {
            "path": str(Path(run.suite.path).resolve()) if run.suite.path else None,
            "hash": run.suite.hash,
            "cases": len(run.suite.cases),
            "skipped_lines": [{"line": p.line, "reason": p.reason} for p in run.suite.problems],
        },
        "docs": {"path": str(run.docs_dir), "hash": run.docs_hash, "documents": run.documents,
                 "collection": s.collection},
        "settings": s.model_dump(mode="json", exclude=set(SECRETS)),  # masked anyway; a report is shared
        "support_method": run.support_method,
        "definitions": {d.name: d.definition for d in ALL_DEFS.values()},
        "versions": versions(),
        # int8 kernels round differently with and without VNNI/AMX: embeddings, and so rankings and figures, may
        # differ slightly between CPU kinds (`citeqa eval compare` warns when two reports came from different ones)
        "machine": {**fingerprint(), "embedder": s.embedder},
        "ingest": run.ingest,
        "warnings": run.warnings,
        "started_at": run.started_at,
        "seconds": round(run.seconds, 3),
    }


def worst_cases(results: Sequence[CaseResult], n: int = WORST) -> list[CaseResult]:
    """The ``n`` cases with the lowest quality (ties in suite order); perfect cases are left out."""
    ranked = sorted(enumerate(results), key=lambda ir: (ir[1].quality, ir[0]))
    return [r for _, r in ranked if r.quality < 1.0][:n]


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render_markdown(report: Mapping[str, Any], worst: Sequence[CaseResult]) -> str:
    s = report["settings"]
    c = report["counts"]
    lines = [
        "# citeqa eval report",
        "",
        f"- suite: `{report['suite']['path']}` ({c['cases']} cases, {c['answerable']} answerable, "
        f"{c['unanswerable']} unanswerable; {c['skipped_lines']} malformed lines skipped), {report['suite']['hash']}",
        f"- docs: `{report['docs']['path']}` ({report['docs']['documents']} documents), {report['docs']['hash']}",
        f"- settings: k={s['k']}, llm={s['llm']}, verify={s.get('verify', 'off')}, embedder={s['embedder']}, "
        f"hybrid={s['hybrid']}, mmr={s['mmr']}, "
        f"chunk_size={s['chunk_size']}, chunk_overlap={s['chunk_overlap']}, min_relevance={s['min_relevance']}",
        f"- started {report['started_at']}, {report['seconds']:.1f} s; citeqa {report['versions'].get('citeqa')}",
        "",
        "## Metrics",
        "",
        "| metric | value | cases | definition |",
        "|---|---:|---:|---|",
    ]
    for d in METRIC_DEFS:
        lines.append(f"| {d.name} | {fmt(report['metrics'].get(d.name))} | {report['metric_cases'].get(d.name, 0)} "
                     f"| {_md_cell(d.definition)} |")
    lines += ["", "## Latency", "", "| stage | p50 | p95 |", "|---|---:|---:|"]
    for stage in ("retrieve", "answer", "total"):
        lat = report["latency"]
        lines.append(f"| {stage} | {fmt(lat.get(f'latency_{stage}_p50_ms'), '_ms')} "
                     f"| {fmt(lat.get(f'latency_{stage}_p95_ms'), '_ms')} |")
    sm = report["support_method"]
    lines += ["", "## Support check", "", f"{_md_cell(json.dumps(sm, ensure_ascii=False))}", ""]
    if report["warnings"]:
        lines += ["## Warnings", ""] + [f"- {_md_cell(w)}" for w in report["warnings"]] + [""]
    lines += ["## Worst cases", ""]
    if not worst:
        lines.append("Every case scored perfectly.")
    for r in worst:
        lines += [
            f"### {_md_cell(r.case.id)} (quality {r.quality:.2f})",
            "",
            f"- question: {_md_cell(r.case.question)}",
            f"- gold: {_md_cell('; '.join(r.case.answers) or ('(unanswerable)' if not r.case.answerable else '-'))}"
            f" in {_md_cell(', '.join(r.case.sources) or '-')}",
            f"- answer{' (abstained)' if r.abstained else ''}: {_md_cell(r.answer or r.error or '')}",
            f"- short answer: {_md_cell(r.short_answer or '-')}",
            f"- retrieved: {_md_cell(', '.join(x['source'] for x in r.retrieved) or '-')}",
        ]
        for cit in r.citations:
            mark = "gold" if cit["gold"] else "not gold"
            lines.append(f"  - [{cit['n']}] {_md_cell(cit['source'])} {cit['start']}-{cit['end']} ({mark}): "
                         f"\"{_md_cell(cit['text'])[:300]}\"")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_reports(run: EvalRun, out_dir: Path) -> dict[str, Any]:
    """Write report.json, cases.jsonl, report.md and report.html into ``out_dir``; return the report."""
    from evals.html_report import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(run)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with (out_dir / "cases.jsonl").open("w", encoding="utf-8") as fh:
        for r in run.results:
            fh.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    worst = worst_cases(run.results)
    (out_dir / "report.md").write_text(render_markdown(report, worst), encoding="utf-8")
    (out_dir / "report.html").write_text(render_html(report, run.results, worst), encoding="utf-8")
    return report


def figures(report: Mapping[str, Any]) -> dict[str, float | None]:
    """Metrics and latency of a report in one mapping (what --fail-under and compare look up)."""
    return {**report.get("metrics", {}), **report.get("latency", {})}


def print_summary(report: Mapping[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="citeqa eval", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("cases", justify="right", style="dim")
    for d in METRIC_DEFS:
        table.add_row(d.name, fmt(report["metrics"].get(d.name)), str(report["metric_cases"].get(d.name, 0)))
    table.add_section()
    n = report["counts"]["cases"] - report["counts"]["errors"]
    for name in LATENCY_NAMES:
        table.add_row(name, fmt(report["latency"].get(name), name), str(n))
    console.print(table)
    c = report["counts"]
    console.print(f"{c['cases']} cases ({c['answerable']} answerable, {c['unanswerable']} unanswerable), "
                  f"{c['abstained']} abstained, {c['skipped_lines']} malformed lines skipped; "
                  f"k={report['settings']['k']}, llm={report['settings']['llm']}, "
                  f"verify={report['settings'].get('verify', 'off')}", highlight=False)
