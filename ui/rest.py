"""citeqa's REST API (``/api/...``): what the CLI does, over HTTP. Mounted by ui/api.py, which checks the key
of every request; a key limited to some collections gets 403 for any other (existing or not)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile

from rag.errors import CiteqaError
from rag.types import Turn
from ui import uploads
from ui.api_context import FORBIDDEN, Api, ApiError, api_of, caller, from_citeqa
from ui.keys import ApiKey
from ui.openai_shapes import AskRequest, EvalRequest

router = APIRouter(prefix="/api", tags=["citeqa"])
KEY = Depends(caller)


@router.post("/ask")
async def ask(body: AskRequest, request: Request, key: ApiKey = KEY) -> dict[str, Any]:
    """Answer a question: the `citeqa ask --json` object (answer with [n] markers, citations, timings...)."""
    api = api_of(request)
    name = api.collection(body.collection, key)
    history = [Turn(t.question, t.answer) for t in body.history]
    try:
        answer = await api.run(api.ask, name, body.question, history, body.k, body.source)
    except CiteqaError as err:
        raise from_citeqa(err, param="question") from None
    return answer.to_dict()


@router.get("/collections")
def collections(request: Request, key: ApiKey = KEY) -> dict[str, list[str]]:
    """The collections this key may use."""
    return {"collections": api_of(request).collections(key)}


@router.get("/collections/{name}/sources")
async def sources(name: str, request: Request, key: ApiKey = KEY) -> list[dict[str, Any]]:
    """The files of a collection (the `citeqa sources --json` list)."""
    api = api_of(request)
    name = api.collection(name, key)
    infos = await api.run(lambda: api.qa(name).sources())
    return [i.to_dict() for i in infos]


@router.post("/collections/{name}/documents")
async def ingest(name: str, request: Request, files: list[UploadFile] = File(...),  # noqa: B008
                 key: ApiKey = KEY) -> dict[str, Any]:
    """Add uploaded files to a collection (created when it does not exist); a file of the same name is replaced."""
    api = api_of(request)
    name = api.collection(name, key, create=True)
    with tempfile.TemporaryDirectory(prefix="citeqa-api-") as tmp:
        staged = []
        for i, f in enumerate(files):
            path = Path(tmp) / f"{i}-{uploads.safe_name(f.filename or 'upload')}"
            with path.open("wb") as out:
                shutil.copyfileobj(f.file, out)
            staged.append((f.filename or "upload", path))
        return await api.run(ingest_files, api, name, staged)


def ingest_files(api: Api, name: str, staged: list[tuple[str, Path]]) -> dict[str, Any]:
    """Place the files in the collection's upload folder and ingest them; a file that fails is taken out again
    (as the Library tab does)."""
    qa = api.qa(name)
    folder = api.engine.uploads_dir(name)
    failed: list[dict[str, str]] = []
    placed: list[uploads.Placed] = []
    taken: set[str] = set()
    for shown, path in staged:
        reason = uploads.check(path, shown, qa.settings.max_file_mb)
        if reason:
            failed.append({"name": shown, "reason": reason})
        else:
            placed.append(uploads.place(path, shown, folder, taken))
    report = None
    if placed:
        try:
            report = qa.ingest([p.dest for p in placed], progress=False, commit_lock=api.engine.lock(name).write)
        except BaseException:
            for p in placed:
                p.rollback()
            raise
    bad = {str(Path(p).resolve()): r for p, r in (report.failed if report else [])}
    for p in placed:
        if str(p.dest) in bad:
            p.rollback()
            failed.append({"name": p.name, "reason": bad[str(p.dest)]})
        else:
            p.commit()
    names = {str(p.dest): p.dest.name for p in placed}

    def shown(paths: list[str]) -> list[str]:
        return [names.get(str(Path(x).resolve()), Path(x).name) for x in paths]

    return {"collection": name, "added": shown(report.added) if report else [],
            "updated": shown(report.updated) if report else [],
            "unchanged": shown(report.unchanged) if report else [], "failed": failed,
            "chunks": report.chunks if report else 0}


@router.delete("/collections/{name}/documents")
async def forget(name: str, request: Request, source: str = Query(..., description="a source, as `sources` lists it"),
                 key: ApiKey = KEY) -> dict[str, Any]:
    """Remove a file's chunks from a collection (`citeqa forget`)."""
    api = api_of(request)
    name = api.collection(name, key)

    def run() -> int:
        qa = api.qa(name)
        with api.engine.lock(name).write():
            n = qa.forget(source)
        p = Path(source)
        if p.parent == api.engine.uploads_dir(name).resolve():
            p.unlink(missing_ok=True)  # our own copy of an upload
        return n

    return {"collection": name, "source": source, "removed_chunks": await api.run(run)}


@router.get("/eval/suites")
def eval_suites(request: Request, key: ApiKey = KEY) -> dict[str, Any]:
    """The suites `POST /api/eval` runs, and the documents it can run them over."""
    from ui.evaluate import docs_choices, suite_choices

    api = api_of(request)
    suites = [v for _, v in suite_choices(api.engine) if _suite_allowed(v, key)]
    docs = [v for _, v in docs_choices(api.engine) if _docs_allowed(v, key)]
    return {"suites": suites, "docs": docs}


def _suite_allowed(suite: str, key: ApiKey) -> bool:
    kind, _, name = suite.partition(":")
    return kind != "feedback" or key.allows(name)


def _docs_allowed(docs: str, key: ApiKey) -> bool:
    from ui.evaluate import COLLECTION

    return not docs.startswith(COLLECTION) or key.allows(docs.removeprefix(COLLECTION))


@router.post("/eval")
async def run_eval(body: EvalRequest, request: Request, key: ApiKey = KEY) -> dict[str, Any]:
    """Run an eval suite (`citeqa eval`): its metrics and where the reports were written."""
    if not (_suite_allowed(body.suite, key) and _docs_allowed(body.docs, key)):
        raise FORBIDDEN
    api = api_of(request)
    try:
        return await api.run(eval_run, api, body)
    except CiteqaError as err:
        raise ApiError(400, str(err), param="suite") from None


def eval_run(api: Api, body: EvalRequest) -> dict[str, Any]:
    from evals.report import write_reports
    from evals.runner import run_suite
    from evals.suite import load_suite
    from ingest.compose import Citeqa
    from ui.evaluate import docs_folder, pick_suite

    engine = api.engine
    loaded = load_suite(pick_suite(engine, body.suite, None))
    if not loaded.cases:
        raise CiteqaError(f"{body.suite} has no valid case")
    folder, missing = docs_folder(engine, body.docs)
    embedder = engine.embedder()
    index = engine.settings.model_copy(update={"data_dir": engine.settings.data_dir / "eval-index"})
    warnings: list[str] = [f"{src} is in the collection but no longer on disk: not evaluated" for src in missing]
    run = run_suite(loaded, folder, index, app_factory=lambda s: Citeqa(s, embedder=embedder), progress=False,
                    limit=body.limit, warn=warnings.append)
    run.warnings.extend(warnings)
    out = engine.settings.data_dir / "eval-runs" / time.strftime("%Y-%m-%dT%H-%M-%S")
    report = write_reports(run, out)
    return {"metrics": report.get("metrics"), "cases": len(run.results), "warnings": list(run.warnings),
            "report_dir": str(out)}
