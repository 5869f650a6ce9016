"""The Evaluate tab: run a suite (a shipped one, a feedback file, or one the user uploads) over documents the
server already offers (a collection's own documents, or the bundled docs/ for the shipped suites), with a
progress bar, then show the summary table, the bar chart, the worst cases and a link to report.html.

A session never names a server path: suites and documents are picked from lists the server makes, and checked
against them again when the run starts (docs/security.md). The runner indexes a folder, so a collection's
documents are copied into ``DATA_DIR/eval-docs/COLLECTION`` first (exactly its documents, nothing beside them),
and runs index into ``DATA_DIR/eval-index``, so their collections never show in the Library's list.

It drives the same runner as ``citeqa eval run`` (evals.runner.run_suite) with a Citeqa that shares the
server's embedder; the runner has no progress callback, so the Citeqa it gets is wrapped to report each
ingested file and each answered case."""

from __future__ import annotations

import html
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from rag.errors import CiteqaError, NotFoundError

if TYPE_CHECKING:
    from ui.engine import Engine

log = logging.getLogger("citeqa.ui")
REPO_DOCS = Path(__file__).resolve().parents[1] / "docs"
BUNDLED = "bundled"  # the docs choice for the bundled docs/ folder
COLLECTION = "collection:"  # the docs choice for a collection's own documents: "collection:NAME"


def shipped_suites() -> list[Path]:
    try:
        import evals
    except ImportError:
        return []
    folder = Path(evals.__file__).parent / "suites"
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def suite_files(engine: Engine) -> dict[str, Path]:
    """The suites a session may pick, by key (``shipped:NAME``, ``feedback:COLLECTION``): the page never holds
    a server path."""
    out = {f"shipped:{p.stem}": p for p in shipped_suites()}
    fb = engine.settings.feedback_folder
    if fb.is_dir():
        out.update({f"feedback:{p.stem}": p for p in sorted(fb.glob("*.jsonl"))})
    return out


def suite_choices(engine: Engine) -> list[tuple[str, str]]:
    return [(f"{key.partition(':')[2]} ({'shipped' if key.startswith('shipped:') else 'your feedback'})", key)
            for key in suite_files(engine)]


def docs_choices(engine: Engine) -> list[tuple[str, str]]:
    """What a suite can be run over: each collection's own documents, and the bundled docs/ folder."""
    out = [(f"documents of collection {c}", f"{COLLECTION}{c}") for c in engine.collections()]
    if REPO_DOCS.is_dir():
        out.append(("the bundled docs/ folder (for the shipped suites)", BUNDLED))
    return out


def docs_for(engine: Engine, suite: str) -> str | None:
    """The documents a suite is about, when it can be told: a feedback file -> its collection's documents; a
    shipped suite named after the bundled docs -> docs/."""
    kind, _, name = (suite or "").partition(":")
    if kind == "feedback" and name in engine.collections():
        return f"{COLLECTION}{name}"
    if kind == "shipped" and REPO_DOCS.is_dir() and "doc" in name:
        return BUNDLED
    return None


def pick_suite(engine: Engine, suite: str | None, uploaded: str | None) -> Path:
    """The suite to run: an uploaded file (Gradio keeps it in its upload cache), else one of suite_choices."""
    if uploaded:
        return Path(uploaded)
    path = suite_files(engine).get(suite or "")
    if path is None:
        raise CiteqaError("pick a suite from the list, or upload a .jsonl suite")
    return path


def stage_collection(engine: Engine, collection: str) -> tuple[Path, list[str]]:
    """A folder with copies of exactly the collection's documents, laid out as its feedback suites name them
    (relative to feedback.docs_root), and the sources that could not be copied (gone since they were ingested)."""
    from ui.feedback import docs_root

    sources = [i.source for i in engine.qa(collection).sources()]
    if not sources:
        raise NotFoundError(f"collection '{collection}' has no documents: add some in the Library tab first")
    root = docs_root(sources, engine.uploads_dir(collection), sources)
    dest = (engine.settings.data_dir / "eval-docs" / collection).resolve()
    wanted: dict[Path, Path] = {}
    for src in map(Path, sources):
        try:
            rel = src.relative_to(root) if root is not None else Path(src.name)
        except ValueError:
            rel = Path(src.name)
        wanted[dest / rel] = src
    missing = []
    for target, src in wanted.items():
        try:
            st = src.stat()
        except OSError:
            missing.append(str(src))
            continue
        if target.is_file() and (target.stat().st_size, target.stat().st_mtime) == (st.st_size, st.st_mtime):
            continue  # copied by an earlier run and unchanged since
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    for f in [f for f in dest.rglob("*") if f.is_file() and f not in wanted]:
        f.unlink()  # removed from the collection since the last run
    return dest, missing


def docs_folder(engine: Engine, choice: str | None) -> tuple[Path, list[str]]:
    """The folder a docs choice stands for (see docs_choices); anything else, a path included, is refused."""
    choice = choice or ""
    if choice == BUNDLED and REPO_DOCS.is_dir():
        return REPO_DOCS, []
    name = choice.removeprefix(COLLECTION)
    if choice.startswith(COLLECTION) and name in engine.collections():
        return stage_collection(engine, name)
    raise CiteqaError("pick the documents to run the suite over from the list (a collection, or the bundled docs)")


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


def run_eval(engine: Engine, suite: str | None, uploaded: str | None, docs: str | None, limit: float | None,
             progress: gr.Progress = gr.Progress()):  # noqa: B008
    """Handler: returns (summary, chart, worst, link, report file). ``suite`` is one of suite_choices (or
    ``uploaded``, a suite the user uploaded), ``docs`` one of docs_choices."""
    try:
        from evals.html_report import metrics_chart
        from evals.report import worst_cases, write_reports
        from evals.runner import run_suite
        from evals.suite import load_suite
    except ImportError:
        raise gr.Error("The eval module is not installed in this checkout: `citeqa eval` is unavailable.") from None
    try:
        path = pick_suite(engine, suite, uploaded)
        loaded = load_suite(path)
        if not loaded.cases:
            raise CiteqaError(f"{path.name} has no valid case: see the format in `citeqa eval --help`")
        progress(0, desc="Copying the documents…")
        folder, missing = docs_folder(engine, docs)
        n = int(limit) if limit and limit > 0 else None
        total = min(len(loaded.cases), n) if n else len(loaded.cases)
        progress(0, desc="Starting…")
        embedder = engine.embedder()

        def factory(settings: Any) -> Any:
            from ingest.compose import Citeqa

            return _Tracked(Citeqa(settings, embedder=embedder), progress, total)

        warnings: list[str] = []
        index = engine.settings.model_copy(update={"data_dir": engine.settings.data_dir / "eval-index"})
        run = run_suite(loaded, folder, index, app_factory=factory, progress=False, limit=n, warn=warnings.append)
        run.warnings.extend(f"{src} is in the collection but no longer on disk: not evaluated" for src in missing)
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
        suite = gr.Dropdown(label="Suite (JSONL)", choices=choices, value=first, allow_custom_value=False, scale=3,
                            elem_id="cq-eval-suite", info="a shipped suite or a feedback file from the Chat tab")
        suite_file = gr.File(label="…or upload a suite (.jsonl)", file_types=[".jsonl"], type="filepath", scale=2,
                             height=90, elem_id="cq-eval-suite-file")
        docs = gr.Dropdown(label="Documents", choices=docs_choices(engine), scale=3, allow_custom_value=False,
                           value=docs_for(engine, first or "") or f"{COLLECTION}{engine.settings.collection}",
                           elem_id="cq-eval-docs", info="what the suite's sources name: a collection's documents")
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

    def on_run(s: str | None, f: str | None, d: str | None, n: float | None,
               progress: gr.Progress = gr.Progress()):  # noqa: B008
        return run_eval(engine, s, f, d, n, progress)

    def on_pick(s: str):
        guess = docs_for(engine, s or "")
        return guess if guess is not None else gr.skip()

    def on_refresh():  # the values stay as the user left them
        return gr.update(choices=suite_choices(engine)), gr.update(choices=docs_choices(engine))

    private = {"api_visibility": "private"}
    run.click(on_run, [suite, suite_file, docs, limit], [summary, chart, worst, link, report_file],
              concurrency_id="eval", concurrency_limit=1, **private)
    suite.change(on_pick, [suite], [docs], **private)
    refresh.click(on_refresh, None, [suite, docs], **private)
    tab.select(on_refresh, None, [suite, docs], **private)  # feedback files and collections made since the load
