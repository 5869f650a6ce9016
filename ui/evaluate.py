"""The Evaluate tab: run a suite (a shipped one, a feedback file, or any path) over a docs folder, with a
progress bar, then show the summary table, the bar chart, the worst cases and a link to report.html.

It drives the same runner as ``citeqa eval run`` (evals.runner.run_suite) with a Citeqa that shares the
server's embedder; the runner has no progress callback, so the Citeqa it gets is wrapped to report each
ingested file and each answered case."""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from rag.errors import CiteqaError

if TYPE_CHECKING:
    from ui.engine import Engine

log = logging.getLogger("citeqa.ui")
REPO_DOCS = Path(__file__).resolve().parents[1] / "docs"


def shipped_suites() -> list[Path]:
    try:
        import evals
    except ImportError:
        return []
    folder = Path(evals.__file__).parent / "suites"
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def suite_choices(engine: Engine) -> list[tuple[str, str]]:
    out = [(f"{p.stem} (shipped)", str(p)) for p in shipped_suites()]
    fb = engine.settings.data_dir / "feedback"
    if fb.is_dir():
        out += [(f"{p.stem} (your feedback)", str(p)) for p in sorted(fb.glob("*.jsonl"))]
    return out


def docs_for(engine: Engine, suite: str) -> str | None:
    """The docs folder a suite is about, when it can be told: feedback -> the collection's uploads; a shipped
    suite named after the bundled docs -> docs/."""
    p = Path(suite or "")
    if p.parent == engine.settings.data_dir / "feedback":
        from ui.feedback import read

        try:
            recorded = [c.get("docs") for c in read(p) if c.get("docs")]
        except (OSError, ValueError):
            recorded = []
        return recorded[-1] if recorded else str(engine.uploads_dir(p.stem))
    if p.suffix == ".jsonl" and p.parent.name == "suites" and REPO_DOCS.is_dir() and "doc" in p.stem:
        return str(REPO_DOCS)
    return None


class _Tracked:
    """A Citeqa that reports progress to the Evaluate tab's bar; everything else passes through."""

    def __init__(self, inner: Any, progress: gr.Progress, total: int) -> None:
        self._inner = inner
        self._progress = progress
        self._total = total
        self._done = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ingest(self, paths: Any, **kw: Any) -> Any:
        kw.pop("progress", None)

        def on_progress(done: int, total: int, current: str) -> None:
            self._progress((done, max(total, 1)), desc=f"Indexing the docs: {Path(current).name or 'done'}",
                           unit="files")

        return self._inner.ingest(paths, on_progress=on_progress, **kw)

    def ask(self, *a: Any, **kw: Any) -> Any:
        try:
            return self._inner.ask(*a, **kw)
        finally:
            self._done += 1
            self._progress((self._done, self._total), desc="Answering the suite's questions", unit="cases")


def summary_html(report: dict[str, Any]) -> str:
    from evals.aggregate import LATENCY_NAMES, METRIC_DEFS
    from evals.report import fmt

    rows = "".join(
        f"<tr class='{'dim' if report['metrics'].get(d.name) is None else ''}' "
        f"title='{html.escape(d.definition, quote=True)}'><td>{html.escape(d.name)}</td>"
        f"<td class='num'>{fmt(report['metrics'].get(d.name))}</td>"
        f"<td class='num dim'>{report['metric_cases'].get(d.name, 0)}</td></tr>"
        for d in METRIC_DEFS
    )
    rows += "".join(
        f"<tr><td>{html.escape(n)}</td><td class='num'>{fmt(report['latency'].get(n), n)}</td><td></td></tr>"
        for n in LATENCY_NAMES
    )
    c = report["counts"]
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in report.get("warnings", []))
    return (
        f"<div class='cq-eval-head'>{c['cases']} cases ({c['answerable']} answerable, {c['unanswerable']} "
        f"unanswerable), {c['abstained']} abstained, {c['errors']} errors; {report['docs']['documents']} documents; "
        f"{report['seconds']:.1f} s</div>"
        + (f"<ul class='cq-warn'>{warn}</ul>" if warn else "")
        + "<table class='cq-docs cq-metrics'><thead><tr><th>metric</th><th class='num'>value</th>"
        f"<th class='num'>cases</th></tr></thead><tbody>{rows}</tbody></table>"
        "<div class='cq-docs-total'>Hover a metric for its definition; n/a: no case in the suite measures it."
        " report.html has the definitions, every case and the latency chart.</div>"
    )


def worst_html(worst: list[Any]) -> str:
    if not worst:
        return "<div class='cq-ok-msg'>Every case scored perfectly.</div>"
    items = []
    for r in worst:
        c = r.case
        gold = "; ".join(c.answers) or ("(unanswerable)" if not c.answerable else "(no gold answer)")
        got = r.answer or r.error or ""
        items.append(
            f"<div class='cq-case'><div class='cq-case-head'><b>{html.escape(c.id)}</b> "
            f"<span class='dim'>quality {r.quality:.2f}</span></div>"
            f"<div><b>Q:</b> {html.escape(c.question)}</div>"
            f"<div><b>Expected:</b> {html.escape(gold)} <span class='dim'>in "
            f"{html.escape(', '.join(c.sources) or '-')}</span></div>"
            f"<div><b>Got{' (abstained)' if r.abstained else ''}:</b> {html.escape(got[:600])}</div></div>"
        )
    return "".join(items)


def run_eval(engine: Engine, suite: str, docs: str, limit: float | None,
             progress: gr.Progress = gr.Progress()):  # noqa: B008
    """Handler: returns (summary, chart, worst, link, report file)."""
    try:
        from evals.html_report import metrics_chart
        from evals.report import worst_cases, write_reports
        from evals.runner import run_suite
        from evals.suite import load_suite
    except ImportError:
        raise gr.Error("The eval module is not installed in this checkout: `citeqa eval` is unavailable.") from None
    if not (suite or "").strip():
        raise gr.Error("Pick a suite file (or type the path of a .jsonl suite).")
    if not (docs or "").strip():
        raise gr.Error("Give the docs folder the suite's sources are relative to.")
    try:
        loaded = load_suite(Path(suite.strip()).expanduser())
        if not loaded.cases:
            raise CiteqaError(f"{suite} has no valid case: see the format in `citeqa eval --help`")
        n = int(limit) if limit and limit > 0 else None
        total = min(len(loaded.cases), n) if n else len(loaded.cases)
        progress(0, desc="Starting…")
        embedder = engine.embedder()

        def factory(settings: Any) -> Any:
            from rag.pipeline import Citeqa

            return _Tracked(Citeqa(settings, embedder=embedder), progress, total)

        warnings: list[str] = []
        run = run_suite(loaded, Path(docs.strip()).expanduser(), engine.settings, app_factory=factory,
                        progress=False, limit=n, warn=warnings.append)
        out = engine.settings.data_dir / "eval-runs" / time.strftime("%Y-%m-%dT%H-%M-%S")
        report = write_reports(run, out)
    except CiteqaError as err:
        raise gr.Error(str(err)) from None
    except Exception as err:
        log.exception("eval run failed")
        raise gr.Error(f"the eval run failed: {type(err).__name__}: {err} (details in the server log)") from None
    chart = metrics_chart(report["metrics"])
    chart_html = f"<img class='cq-chart' alt='metrics bar chart' src='{chart}'>" if chart else ""
    html_path = out / "report.html"
    link = (
        f"<div class='cq-ok-msg'>Report written to <code>{html.escape(str(out))}</code>: "
        f"<a href='/gradio_api/file={html.escape(str(html_path))}' target='_blank' id='cq-report-link'>"
        "open report.html</a> (also report.json, report.md, cases.jsonl).</div>"
    )
    return (summary_html(report), chart_html, worst_html(worst_cases(run.results)), link,
            gr.update(value=str(html_path), visible=True))


def build_eval_tab(engine: Engine, tab: gr.Tab) -> None:
    choices = suite_choices(engine)
    first = choices[0][1] if choices else None
    with gr.Row():
        suite = gr.Dropdown(label="Suite (JSONL)", choices=choices, value=first, allow_custom_value=True, scale=3,
                            elem_id="cq-eval-suite",
                            info="a shipped suite, a feedback file from the Chat tab, or the path of any suite")
        docs = gr.Textbox(label="Docs folder", value=docs_for(engine, first or "") or "", scale=3,
                          elem_id="cq-eval-docs", info="the folder the suite's sources are relative to")
        limit = gr.Number(label="Only the first N cases (0 = all)", value=0, precision=0, scale=1,
                          elem_id="cq-eval-limit")
    with gr.Row():
        run = gr.Button("Run evaluation", variant="primary", elem_id="cq-eval-run", scale=0, min_width=200)
        refresh = gr.Button("Refresh suite list", size="sm", scale=0, min_width=160)
    link = gr.HTML("", elem_id="cq-eval-link")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            summary = gr.HTML("", elem_id="cq-eval-summary")
        with gr.Column(scale=2):
            chart = gr.HTML("", elem_id="cq-eval-chart")
    gr.Markdown("#### Worst cases")
    worst = gr.HTML("<div class='cq-empty'>Run a suite to see the cases it got most wrong.</div>",
                    elem_id="cq-eval-worst")
    report_file = gr.File(label="report.html", interactive=False, elem_id="cq-eval-file", visible=False)

    def on_run(s: str, d: str, n: float | None, progress: gr.Progress = gr.Progress()):  # noqa: B008
        return run_eval(engine, s, d, n, progress)

    def on_pick(s: str):
        guess = docs_for(engine, s or "")
        return guess if guess is not None else gr.skip()

    def on_refresh():
        return gr.update(choices=suite_choices(engine))  # the value stays as the user left it

    private = {"api_visibility": "private"}
    run.click(on_run, [suite, docs, limit], [summary, chart, worst, link, report_file], concurrency_id="eval",
              concurrency_limit=1, **private)
    suite.change(on_pick, [suite], [docs], **private)
    refresh.click(on_refresh, None, [suite], **private)
    tab.select(on_refresh, None, [suite], **private)  # feedback files written since the page loaded
