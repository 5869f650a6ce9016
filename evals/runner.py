"""Run a suite through the same chain as ``citeqa ask`` and collect per-case results.

The docs folder is ingested into a collection of its own, named from the folder's resolved path and the
settings that shape the index (embedder, chunking), so a rerun reuses it: ingest is incremental and unchanged
files are not embedded again. Files removed from the folder are pruned from that collection.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.aggregate import aggregate_latency, aggregate_metrics
from evals.claims import split_claims
from evals.metrics import Span
from evals.scoring import DEPTH, cites_gold, score_case
from evals.suite import Case, Suite
from rag.errors import CiteqaError, NotFoundError
from rag.generative import NOTE_FALLBACK
from rag.settings import Settings

AppFactory = Callable[[Settings], Any]  # Settings -> ingest.compose.Citeqa


@dataclass
class CaseResult:
    case: Case
    answer: str = ""
    short_answer: str | None = None
    abstained: bool = False
    citations: list[dict[str, Any]] = field(default_factory=list)
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)
    support: tuple[int, int] = (0, 0)
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    missing_passages: int = 0  # gold passages that do not occur verbatim in their sources
    notes: list[str] = field(default_factory=list)  # the answer's notes (fallbacks, the verifier's judgement)

    @property
    def quality(self) -> float:
        """One number per case for "worst cases": the mean of its quality metrics that apply (1 = all good)."""
        keys = ("f1", "answer_contains", "recall@k", "passage_recall@k", "citation_precision", "citation_recall",
                "support_rate", "abstention_rate")
        vals = [v for k in keys if (v := self.metrics.get(k)) is not None]
        fa = self.metrics.get("false_abstention_rate")
        if fa is not None:
            vals.append(1.0 - fa)
        return sum(vals) / len(vals) if vals else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "question": self.case.question,
            "answerable": self.case.answerable,
            "gold_answers": list(self.case.answers),
            "gold_sources": list(self.case.sources),
            "answer": self.answer,
            "short_answer": self.short_answer,
            "abstained": self.abstained,
            "citations": self.citations,
            "retrieved_sources": [r["source"] for r in self.retrieved],
            "retrieved": self.retrieved,
            "sentences": self.claims,
            "metrics": {k: (None if v is None else round(v, 6)) for k, v in self.metrics.items()},
            "timings_ms": {k: round(v, 2) for k, v in self.timings.items()},
            "error": self.error,
            "notes": list(self.notes),
        }


@dataclass
class EvalRun:
    suite: Suite
    docs_dir: Path
    settings: Settings
    results: list[CaseResult]
    ingest: dict[str, Any]
    docs_hash: str
    documents: int
    support_method: dict[str, Any]
    warnings: list[str]
    started_at: str
    seconds: float

    @property
    def case_metrics(self) -> list[dict[str, float | None]]:
        return [r.metrics for r in self.results]

    def metrics(self) -> tuple[dict[str, float | None], dict[str, int]]:
        return aggregate_metrics(self.case_metrics, [r.support for r in self.results])

    def latency(self) -> dict[str, float | None]:
        return aggregate_latency([r.timings for r in self.results if r.error is None])


def eval_collection(docs_dir: Path, settings: Settings) -> str:
    """The collection a docs folder is evaluated in: stable for the same folder and index settings."""
    key = f"{docs_dir.resolve()}|{settings.embedder}|{settings.chunk_size}|{settings.chunk_overlap}"
    return "eval-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def eval_settings(settings: Settings, docs_dir: Path) -> Settings:
    return settings.model_copy(update={"collection": eval_collection(docs_dir, settings)})


class _Docs:
    """Relative names and (lazily) texts of the documents in the eval collection."""

    def __init__(self, app: Any, root: Path) -> None:
        self.app = app
        self.root = root.resolve()
        self._texts: dict[str, str | None] = {}

    def contains(self, source: str) -> bool:
        return Path(source).resolve().is_relative_to(self.root)

    def rel(self, source: str) -> str:
        try:
            return Path(source).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return source

    def text(self, rel: str) -> str | None:
        if rel not in self._texts:
            try:
                self._texts[rel] = self.app.document_text(str(self.root / rel))
            except CiteqaError:
                self._texts[rel] = None
        return self._texts[rel]


def _occurrences(text: str, needle: str) -> list[tuple[int, int]]:
    out, pos = [], text.find(needle)
    while pos >= 0 and len(out) < 50:
        out.append((pos, pos + len(needle)))
        pos = text.find(needle, pos + 1)
    return out


def locate_passages(case: Case, docs: _Docs, all_sources: Sequence[str]) -> tuple[list[list[Span]], list[str]]:
    """Where each gold passage occurs: in the case's gold sources (all documents when it names none)."""
    located: list[list[Span]] = []
    missing: list[str] = []
    for passage in case.passages or ():
        p = passage.strip()
        spans = []
        for rel in case.sources or all_sources:
            text = docs.text(rel)
            if text:
                spans.extend(Span(rel, p, a, b) for a, b in _occurrences(text, p))
        if not spans:
            missing.append(p)
        located.append(spans)
    return located, missing


def _chunk_span(hit: Any, docs: _Docs) -> Span:
    c = hit.chunk
    return Span(docs.rel(c.source), c.text, c.start, c.end)


def _citation_span(cit: Any, docs: _Docs) -> Span:
    return Span(docs.rel(cit.source), cit.text, cit.start, cit.end)


class SupportJudge:
    """Wraps rag.support.SupportChecker: which claims of an answer the text they cite supports."""

    def __init__(self, embedder: Any) -> None:
        self.methods: Counter[str] = Counter()
        try:
            from rag.support import SupportChecker
        except ImportError as exc:  # the support check is another module; the rest of the run is still useful
            self.checker = None
            self.unavailable = f"rag.support is not available ({exc})"
        else:
            self.checker = SupportChecker(embedder)
            self.unavailable = ""

    def describe(self) -> dict[str, Any]:
        if self.checker is None:
            return {"checker": None, "note": self.unavailable + ": support_rate not measured"}
        cls = type(self.checker)
        doc = inspect.getdoc(cls) or inspect.getdoc(sys.modules.get(cls.__module__)) or ""
        # the numbers that decide support: the module's constants (e.g. THRESHOLD) and the checker's attributes
        module = sys.modules.get(cls.__module__)
        constants = {k: v for k, v in vars(module).items() if k.isupper() and k != "TYPE_CHECKING"} if module else {}
        attributes = {**vars(cls), **vars(self.checker)}
        params = {
            k: v
            for k, v in sorted({**constants, **attributes}.items())
            if not k.startswith("_") and isinstance(v, int | float | str | bool)
        }
        return {
            "checker": f"{cls.__module__}.{cls.__qualname__}",
            "description": doc.split("\n\n")[0].replace("\n", " "),
            "parameters": params,
            "unit": "answer sentence (rag.citations.parse_markers, [n] markers stripped), judged against the "
            "verbatim text of the citations it carries; a sentence citing nothing is unsupported",
            "methods_used": dict(sorted(self.methods.items())),
        }

    def judge(self, answer: str, citations: Sequence[Any]) -> tuple[list[dict[str, Any]], tuple[int, int]]:
        if self.checker is None:
            return [], (0, 0)
        by_n = {c.n: c.text for c in citations}
        rows: list[dict[str, Any]] = []
        for claim in split_claims(answer):
            evidence = [by_n[n] for n in claim.cites if n in by_n]
            if evidence:
                res = self.checker.check(claim.text, evidence)
                supported, score, method = bool(res.supported), float(res.score), str(res.method)
            else:
                supported, score, method = False, 0.0, "no citation"
            self.methods[method] += 1
            rows.append({"sentence": claim.text, "cites": list(claim.cites), "supported": supported,
                         "score": round(score, 4), "method": method})
        return rows, (sum(r["supported"] for r in rows), len(rows))


def run_case(app: Any, case: Case, docs: _Docs, judge: SupportJudge, k: int, all_sources: Sequence[str]) -> CaseResult:
    from rag.errors import QuestionError

    result = CaseResult(case)
    t0 = time.perf_counter()
    try:
        ans = app.ask(case.question, k=k)
    except QuestionError as exc:
        result.error = str(exc)
        result.abstained = True
        result.metrics = score_case(case, answer="", short_answer=None, abstained=True, top_k=[])
        return result
    wall = (time.perf_counter() - t0) * 1000
    hits = sorted(ans.hits, key=lambda h: h.rank)
    if not hits or k < DEPTH:
        deep = sorted(app.retrieve(case.question, max(k, DEPTH)), key=lambda h: h.rank)
    else:
        deep = hits
    top_k = [_chunk_span(h, docs) for h in (hits or deep[:k])]
    ranking = [_chunk_span(h, docs) for h in deep[:DEPTH]]
    cit_spans = [_citation_span(c, docs) for c in ans.citations]
    located, missing = locate_passages(case, docs, all_sources) if case.passages else ([], [])
    result.missing_passages = len(missing)
    claims, support = ([], (0, 0)) if ans.abstained else judge.judge(ans.answer, ans.citations)

    result.answer = ans.answer
    result.short_answer = ans.short_answer
    result.abstained = bool(ans.abstained)
    result.notes = list(ans.notes)
    result.claims = claims
    result.support = support
    result.timings = {k_: float(v) for k_, v in ans.timings.items() if k_ in ("retrieve", "answer", "total")}
    result.timings.setdefault("total", wall)
    gold = cites_gold(case, cit_spans, located)
    result.citations = [
        {"n": c.n, "source": s.source, "page": c.page, "start": c.start, "end": c.end, "text": c.text,
         "score": round(float(c.score), 6), "gold": g, "supported": c.supported}
        for c, s, g in zip(ans.citations, cit_spans, gold, strict=True)
    ]
    result.retrieved = [
        {"rank": i, "source": s.source, "start": s.start, "end": s.end, "score": round(float(h.score), 6),
         "gold_source": s.source in case.sources}
        for i, (h, s) in enumerate(zip(hits or deep[:k], top_k, strict=True), start=1)
    ]
    result.metrics = score_case(
        case, answer=ans.answer, short_answer=ans.short_answer, abstained=result.abstained, top_k=top_k,
        ranking=ranking, citations=cit_spans, located=located, support=support,
        fallback=None if getattr(getattr(app, "settings", None), "llm", "extractive") == "extractive"
        else NOTE_FALLBACK in ans.notes,
    )
    return result


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run_suite(
    suite: Suite,
    docs_dir: Path,
    settings: Settings,
    *,
    app_factory: AppFactory | None = None,
    progress: bool = True,
    limit: int | None = None,
    warn: Callable[[str], None] | None = None,
) -> EvalRun:
    """Ingest ``docs_dir`` into its eval collection and run every case of ``suite``; raises CiteqaError."""
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    docs_dir = Path(docs_dir).expanduser()
    if not docs_dir.is_dir():
        raise NotFoundError(f"docs folder {docs_dir} does not exist: give --docs the folder the suite is about")
    settings = eval_settings(settings, docs_dir)
    if app_factory is None:
        from ingest.compose import Citeqa

        app_factory = Citeqa
    app = app_factory(settings)
    started, t0 = _now(), time.perf_counter()
    warnings: list[str] = []

    def note(msg: str) -> None:
        warnings.append(msg)
        warn(msg)

    report = app.ingest([docs_dir.resolve()], prune=True, progress=progress)
    for path, reason in report.failed:
        note(f"could not ingest {path}: {reason}")
    docs = _Docs(app, docs_dir)
    infos = [s for s in app.sources() if docs.contains(s.source)]
    if not infos:
        raise NotFoundError(f"no document could be ingested from {docs_dir}: add .txt .md .html .pdf .docx files")
    all_sources = sorted(docs.rel(s.source) for s in infos)
    digest = hashlib.sha256()
    for s in sorted(infos, key=lambda s: docs.rel(s.source)):
        digest.update(f"{docs.rel(s.source)}\0{s.content_hash}\n".encode())

    cases = list(suite.cases[:limit] if limit else suite.cases)
    known = set(all_sources)
    unknown = sorted({s for c in cases for s in c.sources} - known)
    if unknown:
        note(f"{len(unknown)} gold source(s) are not documents of {docs_dir} (e.g. {', '.join(unknown[:3])}): "
             "sources are file names relative to the docs folder")

    judge = SupportJudge(app.embedder)
    if judge.checker is None:
        note(judge.unavailable + ": support_rate is not measured")
    results: list[CaseResult] = []
    missing_passages = 0
    with _bar(progress, len(cases)) as advance:
        for case in cases:
            res = run_case(app, case, docs, judge, settings.k, all_sources)
            missing_passages += res.missing_passages
            results.append(res)
            advance(case.id)
    if missing_passages:
        note(f"{missing_passages} gold passage(s) do not occur verbatim in their sources: they match by text only")
    return EvalRun(
        suite=suite, docs_dir=docs_dir.resolve(), settings=settings, results=results, ingest=report.to_dict(),
        docs_hash="sha256:" + digest.hexdigest(), documents=len(infos), support_method=judge.describe(),
        warnings=warnings, started_at=started, seconds=time.perf_counter() - t0,
    )


class _bar:
    """A rich progress bar on stderr (or nothing), as a context manager yielding ``advance(label)``."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self.progress: Any = None

    def __enter__(self) -> Callable[[str], None]:
        if not self.enabled:
            return lambda label: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]eval[/]"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.description}", style="dim"), console=Console(stderr=True), transient=True,
        )
        self.progress.start()
        task = self.progress.add_task("", total=self.total)
        return lambda label: self.progress.update(task, advance=1, description=label)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
