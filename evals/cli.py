"""``citeqa eval``: run a suite, import public QA sets, compare two runs.

Wiring (ui/cli.py): ``register(app, settings_factory=...)``. The three forms:

    citeqa eval SUITE.jsonl --docs DIR [--out DIR] [--k N] [--llm BACKEND] [--fail-under METRIC=VALUE ...]
    citeqa eval import squad|hotpotqa|beir SOURCE... --out DIR
    citeqa eval compare A B

``eval`` is a command group whose default command is ``run``: when the first argument is not a subcommand
name, ``run`` is implied (so ``citeqa eval SUITE ...`` == ``citeqa eval run SUITE ...``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from typer.core import TyperGroup

from rag.errors import CiteqaError

if TYPE_CHECKING:
    from evals.runner import EvalRun
    from evals.suite import Suite
    from evals.thresholds import Threshold

SettingsFactory = Callable[..., Any]  # (**flags, None = not given) -> rag.settings.Settings

EVAL_HELP = """Measure answer accuracy on a suite of questions: offline, deterministic, CI-friendly.

\b
  citeqa eval SUITE.jsonl --docs DIR [--out DIR] [--k N] [--llm BACKEND] [--fail-under METRIC=VALUE ...]
  citeqa eval import squad|hotpotqa|beir SOURCE... --out DIR
  citeqa eval compare A B

A suite is JSONL, one case per line: {"id": "q1", "question": "...", "answers": ["2,000"],
"sources": ["file.txt"], "answerable": true} (optional "passages": gold evidence strings).
"""


class EvalGroup(TyperGroup):
    """A group with a default command: ``eval ARGS`` means ``eval run ARGS`` unless ARGS[0] is a subcommand."""

    default_command = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


class Kind(StrEnum):
    squad = "squad"
    hotpotqa = "hotpotqa"
    beir = "beir"


class Per(StrEnum):
    paragraph = "paragraph"
    article = "article"


def _err(msg: str) -> None:
    print(f"citeqa: error: {msg}", file=sys.stderr)


@contextmanager
def _errors() -> Iterator[None]:
    """CiteqaError -> one line on stderr and its exit code."""
    try:
        yield
    except CiteqaError as exc:
        _err(str(exc))
        raise typer.Exit(getattr(exc, "exit_code", 1)) from None


def default_out_dir(root: Path = Path("eval-results")) -> Path:
    base = root / time.strftime("%Y-%m-%dT%H-%M-%S")
    out, n = base, 2
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


def _default_settings(**flags: Any) -> Any:
    from rag.settings import load_settings

    return load_settings(**flags)


def build_eval_app(settings_factory: SettingsFactory | None = None, app_factory: Any = None) -> typer.Typer:
    """The ``eval`` group. ``app_factory(settings)`` builds the pipeline (default ingest.compose.Citeqa)."""
    eval_app = typer.Typer(cls=EvalGroup, help=EVAL_HELP, no_args_is_help=True, add_completion=False)
    _add_run(eval_app, settings_factory or _default_settings, app_factory)
    _add_import(eval_app)
    _add_compare(eval_app)
    return eval_app


def _add_run(eval_app: typer.Typer, factory: SettingsFactory, app_factory: Any) -> None:
    @eval_app.command("run")
    def run_cmd(
        suite: Annotated[Path, typer.Argument(help="The suite: JSONL, one case per line.", show_default=False)],
        docs: Annotated[Path, typer.Option("--docs", help="The folder the suite's sources are relative to; "
                                           "ingested into a collection of its own (reused while unchanged).",
                                           show_default=False)],
        out: Annotated[Path | None, typer.Option("--out", help="Output folder [default: eval-results/<timestamp>]",
                                                 show_default=False)] = None,
        k: Annotated[int | None, typer.Option("--k", help="Passages retrieved per question.")] = None,
        llm: Annotated[str | None, typer.Option("--llm", help="Answer backend: extractive, llamacpp:PATH.gguf, "
                                                "ollama:MODEL, openai:MODEL@URL, local.")] = None,
        verify: Annotated[str | None, typer.Option("--verify", help="off or local: the local model judges whether "
                                                   "the passages answer before an answer is given; claims: and "
                                                   "each cited sentence of a generated answer.")] = None,
        fail_under: Annotated[list[str] | None, typer.Option(
            "--fail-under", metavar="METRIC=VALUE",
            help="Exit 1 when METRIC misses VALUE (a minimum; a maximum for false_abstention_rate and latency_*). "
                 "Repeatable.")] = None,
        limit: Annotated[int | None, typer.Option("--limit", min=1, help="Run only the first N cases.")] = None,
        embedder: Annotated[str | None, typer.Option("--embedder", help="minilm or minilm-int8.")] = None,
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where collections live.")] = None,
        chroma: Annotated[str | None, typer.Option("--chroma", help="host:port of a `chroma run` server.")] = None,
        hybrid: Annotated[bool | None, typer.Option("--hybrid/--no-hybrid", help="Fuse BM25 with dense retrieval.",
                                                    show_default=False)] = None,
        mmr: Annotated[bool | None, typer.Option("--mmr/--no-mmr", help="Diversify passages with MMR.",
                                                 show_default=False)] = None,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
    ) -> None:
        """Run SUITE over the documents in --docs and write report.json, cases.jsonl, report.md, report.html."""
        from evals.report import print_summary
        from evals.runner import run_suite
        from evals.thresholds import parse_thresholds

        with _errors():
            thresholds = parse_thresholds(fail_under or [])
            loaded = _load_cases(suite)
            settings = factory(k=k, llm=llm, embedder=embedder, data_dir=data_dir, chroma=chroma, hybrid=hybrid,
                               mmr=mmr, verify=verify)
            run = run_suite(loaded, docs, settings, app_factory=app_factory, progress=progress, limit=limit)
            out_dir = out or default_out_dir()
            report = _write_reports(run, out_dir)
        print_summary(report)
        print(f"wrote {out_dir}/report.json, cases.jsonl, report.md, report.html")
        _check_thresholds(thresholds, report)


def _load_cases(suite: Path) -> Suite:
    """The suite's valid cases; each invalid line is reported on stderr, and no valid case is an error."""
    from evals.suite import load_suite
    from rag.errors import ConfigError

    loaded = load_suite(suite)
    for problem in loaded.problems:
        print(problem.format(suite), file=sys.stderr)
    if not loaded.cases:
        raise ConfigError(f"{suite} has no valid case: see the format in `citeqa eval --help`")
    return loaded


def _write_reports(run: EvalRun, out_dir: Path) -> dict[str, Any]:
    from evals.report import write_reports

    try:
        return write_reports(run, out_dir)
    except OSError as exc:
        raise CiteqaError(f"cannot write the reports to {out_dir}: {exc.strerror or exc}: "
                          "choose another --out") from None


def _check_thresholds(thresholds: list[Threshold], report: dict[str, Any]) -> None:
    """Exit 1, naming each, when a --fail-under threshold is missed."""
    from evals.report import figures
    from evals.thresholds import check_thresholds

    misses = check_thresholds(thresholds, figures(report))
    if misses:
        print("FAILED --fail-under:", file=sys.stderr)
        for m in misses:
            print(f"  {m.message()}", file=sys.stderr)
        raise typer.Exit(1)
    if thresholds:
        print(f"all {len(thresholds)} --fail-under threshold(s) met")


def _add_import(eval_app: typer.Typer) -> None:
    @eval_app.command("import")
    def import_cmd(
        kind: Annotated[Kind, typer.Argument(help="squad (2.0 JSON), hotpotqa (questions.json [corpus.json]) or "
                                             "beir (folder with corpus.jsonl, queries.jsonl, qrels/).")],
        sources: Annotated[list[Path], typer.Argument(help="The data set's files or folder.", exists=True,
                                                      show_default=False)],
        out: Annotated[Path, typer.Option("--out", help="Writes OUT/docs/ and OUT/suite.jsonl.",
                                          show_default=False)],
        limit: Annotated[int | None, typer.Option("--limit", min=1, help="Import only the first N questions.")] = None,
        max_docs: Annotated[int | None, typer.Option(
            "--max-docs", min=1, help="At most N documents (the ones the questions need are always kept).")] = None,
        per: Annotated[Per, typer.Option("--per", help="squad: one document per paragraph or per article.")]
        = Per.paragraph,
        split: Annotated[str, typer.Option("--split", help="beir: the qrels split to read.")] = "test",
        force: Annotated[bool, typer.Option("--force", help="Replace OUT/docs if it has files.")] = False,
    ) -> None:
        """Convert a public QA data set into a docs folder and a suite."""
        from evals.importers import run_import

        with _errors():
            summary = run_import(kind.value, sources, out, limit=limit, max_docs=max_docs, force=force,
                                 per=per.value, split=split)
        for note in summary["notes"]:
            print(f"note: {note}", file=sys.stderr)
        print(f"wrote {summary['docs']} documents to {summary['docs_dir']} and {summary['cases']} cases "
              f"({summary['answerable']} answerable, {summary['unanswerable']} unanswerable, "
              f"{summary['retrieval_only']} retrieval-only) to {summary['suite']}")
        print(f"next: citeqa eval {summary['suite']} --docs {summary['docs_dir']}")


def _add_compare(eval_app: typer.Typer) -> None:
    @eval_app.command("compare")
    def compare_cmd(
        a: Annotated[Path, typer.Argument(help="The baseline: report.json or the folder holding it.",
                                          show_default=False)],
        b: Annotated[Path, typer.Argument(help="The candidate: report.json or the folder holding it.",
                                          show_default=False)],
        tolerance: Annotated[float, typer.Option("--tolerance", min=0.0,
                                                 help="Metric drops up to this (absolute) are not regressions.")]
        = 0.0,
        latency_tolerance: Annotated[float, typer.Option(
            "--latency-tolerance", min=0.0, help="Latency rises up to this fraction are not regressions.")] = 0.10,
        fail_on_regression: Annotated[bool, typer.Option("--fail-on-regression",
                                                         help="Exit 1 when any metric regressed.")] = False,
    ) -> None:
        """Show two runs' metrics side by side with deltas; regressions are marked (latency: lower is better)."""
        from evals.compare import compare, context_notes, load_report, print_comparison

        with _errors():
            ra, rb = load_report(a), load_report(b)
        rows = compare(ra, rb, tolerance, latency_tolerance)
        print_comparison(rows, context_notes(ra, rb), str(a), str(b))
        if fail_on_regression and any(r.regression for r in rows):
            raise typer.Exit(1)


def register(app: typer.Typer, settings_factory: SettingsFactory | None = None) -> None:
    """Add ``eval`` to the main CLI.

    ``settings_factory(**flags)`` builds the Settings for a run from eval's own flags (k, llm, embedder,
    data_dir, chroma, hybrid, mmr; None = not given), e.g. merged over the main app's global flags; the default is
    ``rag.settings.load_settings``. The collection is always eval's own (derived from --docs).
    """
    app.add_typer(build_eval_app(settings_factory), name="eval")
