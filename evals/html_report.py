"""report.html: one self-contained page (inline CSS, charts as inline base64 PNG; no script, no external URL).

Every piece of text from the suite, the documents or the answers is HTML-escaped.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from evals.aggregate import LATENCY_NAMES, METRIC_DEFS, fmt
from evals.runner import CaseResult

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2433;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #dde;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.25rem .6rem;border-bottom:1px solid #eef;
text-align:left;vertical-align:top}td.num{text-align:right;font-variant-numeric:tabular-nums}
.dim{color:#667}.case{border:1px solid #dde;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.cit{margin:.3rem 0 .3rem 1rem;padding:.3rem .6rem;border-left:3px solid #bbc;background:#f7f8fb}
.cit.gold{border-left-color:#2a9d55}.cit.miss{border-left-color:#d04848}
.ok{color:#2a9d55}.bad{color:#d04848}img{max-width:100%}code{background:#f1f2f6;padding:0 .2rem}
"""


def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def metrics_chart(metrics: Mapping[str, float | None]) -> str | None:
    """Horizontal bars, one per measured metric (all in 0..1), as a data: URL."""
    from matplotlib.figure import Figure

    names = [d.name for d in METRIC_DEFS if metrics.get(d.name) is not None]
    if not names:
        return None
    values = [float(metrics[n]) for n in names]  # type: ignore[arg-type]
    fig = Figure(figsize=(7, 0.32 * len(names) + 0.8))
    ax = fig.add_subplot()
    colors = ["#c0504d" if n == "false_abstention_rate" else "#4a72b8" for n in names]
    ax.barh(range(len(names)), values, color=colors)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)
    for i, v in enumerate(values):
        ax.text(v + 0.01, i, f"{v:.3f}", va="center", fontsize=8)
    ax.set_xlabel("value (higher is better, except false_abstention_rate in red)")
    return _png(fig)


def latency_chart(results: Sequence[CaseResult], latency: Mapping[str, float | None]) -> str | None:
    """Histogram of end-to-end time per case, with p50 and p95 marked, as a data: URL."""
    from matplotlib.figure import Figure

    totals = [r.timings["total"] for r in results if r.error is None and "total" in r.timings]
    if not totals:
        return None
    fig = Figure(figsize=(7, 3))
    ax = fig.add_subplot()
    ax.hist(totals, bins=min(30, max(5, len(totals) // 3)), color="#7a9bd4")
    for p, style in (("p50", "--"), ("p95", ":")):
        v = latency.get(f"latency_total_{p}_ms")
        if v is not None:
            ax.axvline(v, color="#1d2433", linestyle=style, label=f"{p} {v:,.1f} ms")
    ax.set_xlabel("end-to-end time per case (ms)")
    ax.set_ylabel("cases")
    ax.legend()
    return _png(fig)


def _img(url: str | None, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="{url}">' if url else f'<p class="dim">no data for {escape(alt)}</p>'


def _case_html(r: CaseResult) -> str:
    c = r.case
    gold = "; ".join(c.answers) or ("(unanswerable)" if not c.answerable else "(no gold answer)")
    rows = [
        f'<div class="case"><h3>{escape(c.id)} <span class="dim">quality {r.quality:.2f}</span></h3>',
        f"<p><b>Question:</b> {escape(c.question)}</p>",
        f"<p><b>Gold:</b> {escape(gold)} <span class='dim'>in {escape(', '.join(c.sources) or '-')}</span></p>",
        f"<p><b>Answer{' (abstained)' if r.abstained else ''}:</b> {escape(r.answer or r.error or '')}</p>",
        f"<p><b>Short answer:</b> {escape(r.short_answer or '-')}</p>",
        f"<p class='dim'>retrieved: {escape(', '.join(x['source'] for x in r.retrieved) or '-')}</p>",
    ]
    for cit in r.citations:
        cls = "gold" if cit["gold"] else "miss"
        page = f" p.{cit['page']}" if cit.get("page") else ""
        where = f"{cit['source']}{page} [{cit['start']}:{cit['end']}]"
        rows.append(f'<div class="cit {cls}"><b>[{cit["n"]}]</b> <code>{escape(where)}</code> '
                    f'{"gold evidence" if cit["gold"] else "not gold evidence"}<br>{escape(cit["text"])}</div>')
    if r.claims:
        rows.append("<table><tr><th>sentence</th><th>cites</th><th>supported</th><th>method</th></tr>")
        for s in r.claims:
            ok = '<span class="ok">yes</span>' if s["supported"] else '<span class="bad">no</span>'
            rows.append(f"<tr><td>{escape(s['sentence'])}</td><td>{escape(str(s['cites']))}</td><td>{ok} "
                        f"<span class='dim'>{s['score']:.2f}</span></td><td>{escape(s['method'])}</td></tr>")
        rows.append("</table>")
    metrics = ", ".join(f"{k}={fmt(v)}" for k, v in r.metrics.items() if v is not None)
    rows.append(f"<p class='dim'>{escape(metrics)}</p></div>")
    return "\n".join(rows)


def render_html(report: Mapping[str, Any], results: Sequence[CaseResult], worst: Sequence[CaseResult]) -> str:
    s, c = report["settings"], report["counts"]
    metric_rows = "\n".join(
        f"<tr><td>{escape(d.name)}</td><td class='num'>{fmt(report['metrics'].get(d.name))}</td>"
        f"<td class='num dim'>{report['metric_cases'].get(d.name, 0)}</td>"
        f"<td class='dim'>{escape(d.definition)}</td></tr>"
        for d in METRIC_DEFS
    )
    latency_rows = "\n".join(
        f"<tr><td>{escape(n)}</td><td class='num'>{fmt(report['latency'].get(n), n)}</td></tr>" for n in LATENCY_NAMES
    )
    settings_text = ", ".join(f"{k}={s[k]}" for k in ("k", "llm", "embedder", "hybrid", "mmr", "chunk_size",
                                                       "chunk_overlap", "min_relevance") if k in s)
    version = escape(str(report["versions"].get("citeqa")))
    warnings = "".join(f"<li>{escape(w)}</li>" for w in report.get("warnings", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>citeqa eval report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>citeqa eval report</h1>
<p>Suite <code>{escape(str(report['suite']['path']))}</code>: {c['cases']} cases ({c['answerable']} answerable,
{c['unanswerable']} unanswerable, {c['skipped_lines']} malformed lines skipped), {escape(report['suite']['hash'])}.<br>
Docs <code>{escape(report['docs']['path'])}</code>: {report['docs']['documents']} documents.<br>
Settings: {escape(settings_text)}.<br>
Started {escape(report['started_at'])}, {report['seconds']:.1f} s, citeqa {version}.
</p>
{f'<h2>Warnings</h2><ul>{warnings}</ul>' if warnings else ''}
<h2>Summary</h2>
<table><tr><th>metric</th><th>value</th><th>cases</th><th>definition</th></tr>
{metric_rows}
</table>
{_img(metrics_chart(report['metrics']), 'metrics bar chart')}
<h2>Latency</h2>
<table><tr><th>stage</th><th>ms</th></tr>
{latency_rows}
</table>
{_img(latency_chart(results, report['latency']), 'latency histogram')}
<h2>Support check</h2>
<pre>{escape(json.dumps(report['support_method'], indent=2, ensure_ascii=False))}</pre>
<h2>Worst cases</h2>
{''.join(_case_html(r) for r in worst) or '<p>Every case scored perfectly.</p>'}
</body></html>
"""
