"""The near-miss suites (evals/suites/near-miss-*.jsonl): answerable questions paired with unanswerable twins
that change one thing (another person, year, attribute, an entity the text does not mention, a quantity of
another thing), gated like the docs suite. Written by hand and never tuned on: the answerer's thresholds come
from SQuAD's Computational_complexity_theory article (evals/tools/calibrate_abstention.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATASETS, REPO, need_shared

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# What the current system meets on these suites (figures in the README); the targets (abstention >= 0.85,
# false abstention <= 0.10) are not all met yet: see the README's "Honest answers" section.
GATES = {
    "docs": {"abstention_rate": 0.50, "false_abstention_rate": 0.10, "answer_contains": 0.75},
    "squad": {"abstention_rate": 0.70, "false_abstention_rate": 0.15, "answer_contains": 0.80},
}


def _run(suite: Path, docs: Path, out: Path, gates: dict[str, float]) -> dict:
    args = [sys.executable, "-m", "ui.cli", "eval", str(suite), "--docs", str(docs), "--out", str(out),
            "--no-progress"]
    for name, value in gates.items():
        if name == "false_abstention_rate":
            continue  # a ceiling, checked below
        args += ["--fail-under", f"{name}={value}"]
    env = dict(os.environ, CITEQA_EMBEDDER="minilm-int8")
    r = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["metrics"]["false_abstention_rate"] <= gates["false_abstention_rate"], report["metrics"]
    return report


def test_near_miss_docs_suite(tmp_path: Path) -> None:
    report = _run(REPO / "evals/suites/near-miss-docs.jsonl", REPO / "docs", tmp_path / "report", GATES["docs"])
    assert report["counts"]["cases"] >= 30 and report["counts"]["unanswerable"] >= 15


def test_near_miss_squad_suite(tmp_path: Path) -> None:
    squad = need_shared(DATASETS / "squad-v2-small" / "squad-v2-small.json")
    imported = tmp_path / "squad"
    r = subprocess.run([sys.executable, "-m", "ui.cli", "eval", "import", "squad", str(squad), "--out",
                        str(imported)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    report = _run(REPO / "evals/suites/near-miss-squad.jsonl", imported / "docs", tmp_path / "report",
                  GATES["squad"])
    assert report["counts"]["cases"] >= 30 and report["counts"]["unanswerable"] >= 15
