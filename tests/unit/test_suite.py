"""Suite parsing (malformed lines, unknown fields, hash), and the eval command end to end over a fake pipeline:
report files, self-contained HTML, --fail-under exit codes, the default command, and compare."""

from __future__ import annotations

import json
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from evals.cli import build_eval_app, register
from evals.suite import Case, load_suite, normalize_source, parse_suite, suite_hash, write_suite
from rag.errors import NotFoundError
from rag.types import ABSTAIN_TEXT, Answer, Chunk, Citation, Hit

# -- parsing ------------------------------------------------------------------------------------------------------
GOOD = '{"id": "q1", "question": "How many?", "answers": ["2,000"], "sources": ["v.txt"], "answerable": true}'


def test_parse_valid_case_and_unknown_fields() -> None:
    line = json.dumps({"id": "q1", "question": " How many? ", "answers": ["more than 2,000", "2,000"],
                       "sources": ["./docs/v.txt"], "answerable": True, "passages": ["p"], "difficulty": "easy"})
    suite = parse_suite([line])
    assert not suite.problems
    (case,) = suite.cases
    assert case.question == "How many?"
    assert case.sources == ("docs/v.txt",)
    assert case.passages == ("p",)
    assert case.extra == {"difficulty": "easy"}
    assert case.to_dict()["difficulty"] == "easy"  # kept, and written back
    assert case.line == 1


def test_defaults() -> None:
    (case,) = parse_suite(['{"id": 7, "question": "q?"}']).cases
    assert case.id == "7" and case.answers == () and case.sources == () and case.answerable is True
    assert case.passages is None and case.gold_answers == ()


def test_malformed_lines_are_reported_by_number_and_skipped() -> None:
    lines = [
        GOOD,
        "",  # blank: ignored silently
        "{not json",
        '["a list"]',
        '{"id": "q3", "answers": ["x"]}',
        '{"id": "q4", "question": "q?", "answers": "x"}',
        '{"id": "q5", "question": "q?", "answerable": "yes"}',
        '{"id": "q6", "question": "q?", "answers": ["x"], "answerable": false}',
        '{"id": "q1", "question": "again?"}',
        '{"id": "", "question": "q?"}',
        '{"id": "q9", "question": "fine?", "answers": [], "answerable": false}',
    ]
    suite = parse_suite(lines, "s.jsonl")
    assert [c.id for c in suite.cases] == ["q1", "q9"]
    got = {p.line: p.reason for p in suite.problems}
    assert set(got) == {3, 4, 5, 6, 7, 8, 9, 10}
    assert "not valid JSON" in got[3]
    assert "JSON object" in got[4]
    assert '"question"' in got[5]
    assert "list of strings" in got[6]
    assert '"answerable"' in got[7]
    assert "answerable" in got[8] and "answers" in got[8]
    assert "duplicate id" in got[9] and "line 1" in got[9]
    assert suite.problems[0].format("s.jsonl") == f"s.jsonl:3: skipped: {got[3]}"


def test_suite_hash_ignores_formatting_but_not_content(tmp_path: Path) -> None:
    a = parse_suite([GOOD]).cases
    b = parse_suite(['{"answerable":true,"sources":["v.txt"],"answers":["2,000"],"question":"How many?","id":"q1"}',
                     "{bad"]).cases
    c = parse_suite([GOOD.replace("2,000", "2000")]).cases
    assert suite_hash(a) == suite_hash(b) != suite_hash(c)
    assert suite_hash(a).startswith("sha256:")
    path = tmp_path / "s.jsonl"
    write_suite(path, a)
    assert load_suite(path).hash == suite_hash(a)


def test_load_missing_suite(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        load_suite(tmp_path / "nope.jsonl")


def test_normalize_source() -> None:
    assert normalize_source("./a/b.txt") == "a/b.txt"
    assert normalize_source("a\\b.txt") == "a/b.txt"
    assert normalize_source(" v.txt ") == "v.txt"


# -- a fake pipeline ----------------------------------------------------------------------------------------------
DOCS = {
    "vostok.txt": "The Vostok exercise involved more than 2,000 troops. It was held in the Far East.",
    "ships.txt": "Ships of the Pacific Fleet sailed in the Sea of Japan. They fired missiles.",
    "sub/cats.txt": "Cats sleep a lot. They purr when they are happy.",
}
SHORT = {"How many troops took part in Vostok?": "more than 2,000", "Where did the ships sail?": "Sea of Japan"}


@dataclass
class _Ingest:
    failed: list
    def to_dict(self) -> dict[str, Any]:
        return {"failed": self.failed, "added": [], "chunks": 0}


class FakeApp:
    """Word-overlap retrieval over whole documents; answers with the top document's first sentence, or abstains."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.embedder = object()
        self.root: Path | None = None

    def ingest(self, paths: list[Path], prune: bool = False, progress: bool = True) -> _Ingest:
        self.root = Path(paths[0]).resolve()
        return _Ingest([])

    def sources(self) -> list[Any]:
        assert self.root is not None
        return [types.SimpleNamespace(source=str(p), content_hash=str(len(p.read_text())))
                for p in sorted(self.root.rglob("*.txt"))]

    def document_text(self, source: str) -> str:
        return Path(source).read_text()

    def retrieve(self, question: str, k: int) -> list[Hit]:
        words = set(re.findall(r"\w+", question.lower()))
        scored = []
        for s in self.sources():
            text = self.document_text(s.source)
            overlap = len(words & set(re.findall(r"\w+", text.lower())))
            scored.append((-overlap, s.source, text))
        scored.sort()
        return [Hit(Chunk(f"c{i}", src, text, 0, len(text)), float(-neg), rank=i)
                for i, (neg, src, text) in enumerate(scored[:k], start=1)]

    def ask(self, question: str, k: int | None = None) -> Answer:
        hits = self.retrieve(question, k or 5)
        short = SHORT.get(question)
        if short is None:
            return Answer(question, ABSTAIN_TEXT, None, True, hits=tuple(hits),
                          timings={"retrieve": 1.0, "answer": 0.5, "total": 1.5})
        top = hits[0].chunk
        first = top.text.split(". ")[0] + "."
        cit = Citation(1, top.source, None, 0, len(first), first, hits[0].score)
        return Answer(question, f"{first} [1]", short, False, citations=(cit,), hits=tuple(hits),
                      timings={"retrieve": 2.0, "answer": 1.0, "total": 3.0})


@dataclass
class _Result:
    supported: bool
    score: float
    method: str


class _Checker:
    """Stand-in for rag.support.SupportChecker: verbatim containment."""

    threshold = 0.5

    def __init__(self, embedder: Any) -> None:
        pass

    def check(self, sentence: str, evidence: list[str]) -> _Result:
        ok = any(sentence.strip() in e for e in evidence)
        return _Result(ok, 1.0 if ok else 0.0, "verbatim")


@pytest.fixture
def fake_support(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("rag.support")
    mod.SupportChecker = _Checker  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rag.support", mod)


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "docs"
    for name, text in DOCS.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text)
    suite = tmp_path / "suite.jsonl"
    cases = [
        {"id": "troops", "question": "How many troops took part in Vostok?", "answers": ["more than 2,000", "2,000"],
         "sources": ["vostok.txt"], "answerable": True, "passages": ["involved more than 2,000 troops"]},
        {"id": "ships", "question": "Where did the ships sail?", "answers": ["the Sea of Japan"],
         "sources": ["ships.txt"], "answerable": True, "note": "<b>kept</b>"},
        {"id": "cats", "question": "Why do cats purr <script>alert(1)</script>?", "answers": ["happy"],
         "sources": ["sub/cats.txt"], "answerable": True},
        {"id": "moon", "question": "Who landed on the moon?", "answers": [], "sources": [], "answerable": False},
    ]
    suite.write_text("\n".join(json.dumps(c) for c in cases) + "\n{oops\n")
    return docs, suite


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def ask() -> None:  # the main app has other commands
        pass

    app.add_typer(build_eval_app(app_factory=FakeApp), name="eval")
    return app


def _run(args: list[str]) -> Any:
    return CliRunner().invoke(_cli(), args, env={"COLUMNS": "200"})


def test_eval_run_writes_reports(workspace: tuple[Path, Path], tmp_path: Path, fake_support: None) -> None:
    docs, suite = workspace
    out = tmp_path / "out"
    secrets = {"OPENAI_API_KEY": "sk-never-in-a-report", "CITEQA_AUTH": "user:never-in-a-report"}
    res = CliRunner().invoke(_cli(), ["eval", str(suite), "--docs", str(docs), "--out", str(out), "--no-progress",
                                      "--k", "2"], env={"COLUMNS": "200", **secrets})
    assert res.exit_code == 0, res.output
    assert not [p for p in out.iterdir() if "never-in-a-report" in p.read_text(encoding="utf-8")]
    assert "never-in-a-report" not in res.output
    assert f"{suite}:5: skipped: not valid JSON" in res.stderr  # malformed line reported by number
    assert "exact_match" in res.stdout  # summary table
    for name in ("report.json", "cases.jsonl", "report.md", "report.html"):
        assert (out / name).is_file()
    report = json.loads((out / "report.json").read_text())
    m = report["metrics"]
    # hand-computed: troops EM 1, ships EM 1 ("Sea of Japan" == "the Sea of Japan"), cats abstained EM 0
    assert m["exact_match"] == pytest.approx(2 / 3)
    assert m["answer_contains"] == pytest.approx(2 / 3)  # both full answers quote their gold answer
    assert m["hit@k"] == 1.0 and m["mrr@10"] == 1.0
    assert m["passage_hit@k"] == 1.0 and report["metric_cases"]["passage_hit@k"] == 1
    assert m["citation_precision"] == 1.0 and m["citation_recall"] == 1.0
    assert m["support_rate"] == 1.0
    assert m["abstention_rate"] == 1.0 and m["false_abstention_rate"] == pytest.approx(1 / 3)
    assert report["counts"]["cases"] == 4 and report["counts"]["skipped_lines"] == 1
    assert report["suite"]["skipped_lines"][0]["line"] == 5
    assert report["settings"]["k"] == 2 and report["settings"]["collection"].startswith("eval-")
    assert "openai_api_key" not in report["settings"] and "auth" not in report["settings"]
    assert report["support_method"]["checker"].endswith("_Checker")
    assert report["support_method"]["parameters"]["threshold"] == 0.5  # the numbers that decide support
    assert {"citeqa", "chromadb", "sentence-transformers", "python"} <= set(report["versions"])
    assert "started_at" not in report["metrics"] and set(report["latency"]) >= {"latency_total_p95_ms"}
    assert report["latency"]["latency_total_p50_ms"] == 2.25  # of 3, 3, 1.5, 1.5 ms
    cases = [json.loads(line) for line in (out / "cases.jsonl").read_text().splitlines()]
    assert [c["id"] for c in cases] == ["troops", "ships", "cats", "moon"]
    assert cases[0]["citations"][0]["source"] == "vostok.txt" and cases[0]["citations"][0]["gold"] is True
    assert cases[0]["retrieved_sources"][0] == "vostok.txt"
    assert cases[2]["retrieved_sources"][0] == "sub/cats.txt"  # relative to the docs folder
    assert cases[0]["metrics"]["exact_match"] == 1.0 and cases[3]["metrics"]["abstention_rate"] == 1.0
    md = (out / "report.md").read_text()
    assert "| exact_match | 0.667 |" in md and "## Worst cases" in md


def test_html_is_self_contained_and_escaped(workspace: tuple[Path, Path], tmp_path: Path,
                                           fake_support: None) -> None:
    docs, suite = workspace
    out = tmp_path / "out"
    assert _run(["eval", str(suite), "--docs", str(docs), "--out", str(out), "--no-progress"]).exit_code == 0
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html and "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the question is escaped
    assert html.count('src="data:image/png;base64,') == 2  # metric bars and latency histogram
    assert "Worst cases" in html and "cats" in html


def test_two_fake_runs_give_identical_metrics(workspace: tuple[Path, Path], tmp_path: Path,
                                              fake_support: None) -> None:
    docs, suite = workspace
    reports = []
    for name in ("a", "b"):
        assert _run(["eval", "run", str(suite), "--docs", str(docs), "--out", str(tmp_path / name),
                     "--no-progress"]).exit_code == 0
        reports.append(json.loads((tmp_path / name / "report.json").read_text()))
    assert reports[0]["metrics"] == reports[1]["metrics"]
    assert reports[0]["suite"]["hash"] == reports[1]["suite"]["hash"]
    assert reports[0]["docs"]["hash"] == reports[1]["docs"]["hash"]


def test_fail_under_exit_codes(workspace: tuple[Path, Path], tmp_path: Path, fake_support: None) -> None:
    docs, suite = workspace
    base = ["eval", str(suite), "--docs", str(docs), "--no-progress"]
    ok = _run(base + ["--out", str(tmp_path / "ok"), "--fail-under", "hit@k=0.9", "--fail-under", "exact_match=0.6",
                      "--fail-under", "false_abstention_rate=0.5", "--fail-under", "latency_total_p95_ms=1000"])
    assert ok.exit_code == 0, ok.output
    assert "4 --fail-under threshold(s) met" in ok.stdout
    bad = _run(base + ["--out", str(tmp_path / "bad"), "--fail-under", "exact_match=0.9",
                       "--fail-under", "false_abstention_rate=0.1", "--fail-under", "hit@k=0.5"])
    assert bad.exit_code == 1
    assert "FAILED --fail-under" in bad.stderr
    assert "exact_match = 0.6667 < 0.9 (minimum)" in bad.stderr
    assert "false_abstention_rate = 0.3333 > 0.1 (maximum)" in bad.stderr
    assert "hit@k =" not in bad.stderr
    assert (tmp_path / "bad" / "report.json").is_file()  # the reports are written before gating
    unknown = _run(base + ["--out", str(tmp_path / "unk"), "--fail-under", "accuracy=0.5"])
    assert unknown.exit_code == 2
    assert "unknown metric 'accuracy'" in unknown.stderr and "exact_match" in unknown.stderr
    assert not (tmp_path / "unk").exists()  # rejected before running


def test_cli_errors_and_help(tmp_path: Path, workspace: tuple[Path, Path]) -> None:
    docs, suite = workspace
    missing = _run(["eval", str(tmp_path / "nope.jsonl"), "--docs", str(docs)])
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{bad\n")
    res = _run(["eval", str(empty), "--docs", str(docs)])
    assert res.exit_code == 2 and "no valid case" in res.stderr
    nodocs = _run(["eval", str(suite), "--docs", str(tmp_path / "nodocs"), "--no-progress"])
    assert nodocs.exit_code == 1 and "docs folder" in nodocs.stderr
    helped = _run(["eval", "--help"])
    assert helped.exit_code == 0
    for word in ("run", "import", "compare", "SUITE.jsonl --docs DIR", "--fail-under"):
        assert word in helped.stdout


def test_register_adds_eval_to_a_main_app() -> None:
    app = typer.Typer()

    @app.command()
    def ask() -> None:
        pass

    register(app)
    res = CliRunner().invoke(app, ["eval", "compare", "--help"])
    assert res.exit_code == 0 and "regressions" in res.stdout


# -- compare ------------------------------------------------------------------------------------------------------
def _report(path: Path, metrics: dict[str, float | None], latency: dict[str, float | None], k: int = 5) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    body = {"metrics": metrics, "latency": latency, "suite": {"hash": "sha256:x"}, "docs": {"hash": "sha256:d"},
            "settings": {"k": k, "data_dir": str(path)}}
    (path / "report.json").write_text(json.dumps(body))
    return path


def test_compare_marks_regressions_direction_aware(tmp_path: Path) -> None:
    a = _report(tmp_path / "a", {"f1": 0.80, "hit@k": 0.90, "false_abstention_rate": 0.10, "ndcg@10": None},
                {"latency_total_p95_ms": 100.0, "latency_total_p50_ms": 50.0})
    b = _report(tmp_path / "b", {"f1": 0.70, "hit@k": 0.95, "false_abstention_rate": 0.05, "ndcg@10": None},
                {"latency_total_p95_ms": 150.0, "latency_total_p50_ms": 40.0}, k=10)
    res = _run(["eval", "compare", str(a), str(b / "report.json")])
    assert res.exit_code == 0, res.output
    lines = {ln.split()[1]: ln for ln in res.stdout.splitlines() if ln.startswith("│ ") and len(ln.split()) > 2}
    assert "-0.100" in lines["f1"] and "REGRESSION" in lines["f1"]
    assert "+0.050" in lines["hit@k"] and "better" in lines["hit@k"]
    assert "better" in lines["false_abstention_rate"]  # lower is better
    assert "REGRESSION" in lines["latency_total_p95_ms"] and "+50.0 ms" in lines["latency_total_p95_ms"]
    assert "better" in lines["latency_total_p50_ms"]
    assert "n/a" in lines["ndcg@10"]
    assert "settings changed: k 5 -> 10" in res.stdout
    assert "2 regression(s): f1, latency_total_p95_ms" in res.stdout
    gated = _run(["eval", "compare", str(a), str(b), "--fail-on-regression"])
    assert gated.exit_code == 1
    tolerant = _run(["eval", "compare", str(a), str(b), "--fail-on-regression", "--tolerance", "0.2",
                     "--latency-tolerance", "1.0"])
    assert tolerant.exit_code == 0, tolerant.output


def test_compare_missing_report(tmp_path: Path) -> None:
    res = _run(["eval", "compare", str(tmp_path / "x"), str(tmp_path / "y")])
    assert res.exit_code == 1 and "does not exist" in res.stderr


def test_case_round_trip() -> None:
    case = Case("a", "q?", ("x",), ("f.txt",), True, None, {"k": 1})
    assert parse_suite([json.dumps(case.to_dict())]).cases[0] == Case("a", "q?", ("x",), ("f.txt",), True, None,
                                                                       {"k": 1}, 1)


def _machine_report(path: Path, cpu: str, features: list[str], ort: str = "1.20.0") -> Path:
    _report(path, {"f1": 0.5}, {})
    body = json.loads((path / "report.json").read_text())
    body["machine"] = {"cpu": cpu, "machine": "x86_64", "features": features, "embedder": "minilm-int8"}
    body["versions"] = {"onnxruntime": ort, "numpy": "2.0"}
    (path / "report.json").write_text(json.dumps(body))
    return path


def test_compare_warns_when_the_runs_came_from_different_cpus(tmp_path: Path) -> None:
    amd = _machine_report(tmp_path / "amd", "AMD EPYC", ["avx2", "fma"])
    intel = _machine_report(tmp_path / "intel", "Intel Xeon Platinum", ["amx_int8", "avx2", "avx512_vnni", "fma"],
                            ort="1.21.0")
    res = _run(["eval", "compare", str(amd), str(intel)])
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())
    assert "the runs came from different CPUs (AMD EPYC -> Intel Xeon Platinum" in out
    assert "+amx_int8" in out and "+avx512_vnni" in out and "int8 embeddings round differently" in out
    assert "library versions differ: onnxruntime 1.20.0 -> 1.21.0" in out
    same = _run(["eval", "compare", str(amd), str(_machine_report(tmp_path / "amd2", "AMD EPYC", ["avx2", "fma"]))])
    assert "different CPUs" not in same.stdout and "versions differ" not in same.stdout
    old = _run(["eval", "compare", str(_report(tmp_path / "old", {"f1": 0.5}, {})), str(amd)])
    assert "does not record its machine" in " ".join(old.stdout.split())
