"""The shipped suite over the project's own docs/, gated like a user would gate CI with `citeqa eval`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

# Thresholds the current system meets (see the README's evaluation section for the figures).
GATES = {
    "exact_match": 0.75,
    "answer_contains": 0.9,
    "hit@k": 0.95,
    "citation_precision": 0.9,
    "support_rate": 0.95,
    "abstention_rate": 0.85,
    "false_abstention_rate": 0.1,
}


def test_docs_suite_meets_its_gates(tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = [sys.executable, "-m", "ui.cli", "eval", str(REPO / "evals/suites/docs.jsonl"), "--docs",
            str(REPO / "docs"), "--out", str(out), "--no-progress"]
    for name, value in GATES.items():
        args += ["--fail-under", f"{name}={value}"]
    env = dict(os.environ, CITEQA_EMBEDDER="minilm-int8")
    r = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["counts"]["cases"] >= 20 and report["counts"]["unanswerable"] >= 5
    for name in ("report.json", "cases.jsonl", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0
